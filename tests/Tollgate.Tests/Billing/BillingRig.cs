using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Tollgate.Billing;
using Tollgate.Configuration;
using Tollgate.Metering;
using Tollgate.Routing;
using Tollgate.Storage.Sqlite;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Billing;

/// <summary>
/// A gateway (two fake providers: d0 at $1/$2 per 1M input/output, d1 at $2/$4, route gpt-4o = [d0, d1]) plus
/// plan <c>starter</c> ($9, 1000 included tokens, $0.005 per 1K beyond) and deployment <c>nop</c> with no output
/// price. Ledger rows are appended through <see cref="SqliteLedgerStore"/> for exact months and amounts.
/// </summary>
public sealed class BillingRig : IAsyncDisposable
{
    private BillingRig(GatewayScenario scenario)
    {
        Scenario = scenario;
        Database = new SqliteDatabase(scenario.Gateway.DataDirectory);
    }

    public GatewayScenario Scenario { get; }

    public TestGateway Gateway => Scenario.Gateway;

    public SqliteDatabase Database { get; }

    public static async Task<BillingRig> StartAsync(CancellationToken cancellationToken)
    {
        var scenario = await GatewayScenario.StartAsync(providers: 2, configure: c =>
        {
            c["plans"] = JsonNode.Parse("""{ "starter": { "monthlyFeeUsd": 9, "includedTokens": 1000, "overagePer1KTokensUsd": 0.005 } }""");
            c["models"]!["nop"] = JsonNode.Parse("""{ "provider": "p0", "upstreamModel": "no-output-price", "inputPerMillion": 1 }""");
        }, cancellationToken: cancellationToken);
        return new BillingRig(scenario);
    }

    public static LedgerEntry Row(
        string tenant, string key, string model, string? deployment, string time, long input, long output, decimal? cost,
        decimal price = 0m, decimal? baseline = null, int status = 200, int attempts = 1, LedgerAttemptKind kind = LedgerAttemptKind.Answer, bool usage = true) => new()
        {
            RequestId = "req_" + Guid.NewGuid().ToString("N"),
            TimestampMs = DateTimeOffset.Parse(time, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal).ToUnixTimeMilliseconds(),
            TenantId = tenant,
            KeyId = key,
            Model = model,
            Route = model,
            Provider = deployment is null ? null : deployment == "nop" ? "p0" : "p" + deployment[1..],
            Deployment = deployment,
            Attempts = attempts,
            Usage = new UsageBuckets(input, 0, 0, 0, output, 0),
            UsageSource = usage ? UsageSource.Reported : null,
            CostPicoUsd = Money.ToPico(cost),
            PricePicoUsd = Money.ToPico(price),
            BaselineCostPicoUsd = Money.ToPico(baseline),
            Status = status,
            AttemptKind = kind,
        };

    public async Task AppendAsync(CancellationToken cancellationToken, params LedgerEntry[] rows)
    {
        await using var ledger = new SqliteLedgerStore(Database);
        await ledger.AppendAsync(rows, cancellationToken);
    }

    public async Task<JsonObject> GetJsonAsync(HttpClient client, string path, CancellationToken cancellationToken)
    {
        using var response = await client.GetAsync(path, cancellationToken);
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        Assert.True(response.IsSuccessStatusCode, $"{path}: {(int)response.StatusCode} {text}");
        return JsonNode.Parse(text)!.AsObject();
    }

    public async Task<string> CreateTenantAsync(string name, string plan, CancellationToken cancellationToken)
    {
        using var response = await Gateway.Admin.PostAsJsonAsync("admin/tenants", new { name, plan }, cancellationToken);
        Assert.Equal(System.Net.HttpStatusCode.Created, response.StatusCode);
        return (string)(await response.Content.ReadFromJsonAsync<JsonObject>(cancellationToken))!["id"]!;
    }

    public async Task<string> CreateKeyAsync(string tenant, CancellationToken cancellationToken)
    {
        using var response = await Gateway.Admin.PostAsJsonAsync("admin/keys", new { name = "k-" + tenant, tenant }, cancellationToken);
        Assert.Equal(System.Net.HttpStatusCode.Created, response.StatusCode);
        return (string)(await response.Content.ReadFromJsonAsync<JsonObject>(cancellationToken))!["key"]!;
    }

    /// <summary>A billing service over this gateway's database with other options and clock (what a later config or the CLI sees).</summary>
    public BillingService Service(TollgateOptions options, TimeProvider time) =>
        new(new SqliteBillingStore(Database), new SqliteTenantStore(Database, time), options, Gateway.Services.GetRequiredService<Catalog>(), time);

    public TollgateOptions Options => Gateway.Services.GetRequiredService<TollgateOptions>();

    public async ValueTask DisposeAsync() => await Scenario.DisposeAsync();
}
