using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Tollgate.Tests.Fakes;
using Tollgate.Tests.Infrastructure;
using Tollgate.Tests.Tenancy;

namespace Tollgate.Tests.Dashboard;

/// <summary>
/// A gateway with two tenants and real traffic through two fake providers, so every report number is
/// what the ledger recorded: acme (plan pro) sends 3 answered requests, one of them after a failover,
/// and 1 refused (unknown model); globex (plan starter) sends 1. Each tenant has one key. With
/// <c>unpricedCachedInput</c>, the second provider answers with cached input tokens that its deployment d1 has no
/// price for: acme's two requests it serves (one asked for d1, one failed over to it) then have an unknown cost.
/// </summary>
internal sealed class DashboardWorld : IAsyncDisposable
{
    private DashboardWorld(GatewayScenario scenario, string acme, string acmeKey, string globex, string globexKey)
    {
        Scenario = scenario;
        Acme = acme;
        AcmeKey = acmeKey;
        Globex = globex;
        GlobexKey = globexKey;
    }

    /// <summary>Markup in a name: the page must show it as text, never parse it.</summary>
    public const string GlobexName = "Globex <img src=x id=injected> & Co";

    public GatewayScenario Scenario { get; }

    public TestGateway Gateway => Scenario.Gateway;

    public string Acme { get; }

    public string AcmeKey { get; }

    public string Globex { get; }

    public string GlobexKey { get; }

    public static Task<DashboardWorld> StartAsync(CancellationToken cancellationToken) => StartAsync(unpricedCachedInput: false, cancellationToken);

    public static async Task<DashboardWorld> StartAsync(bool unpricedCachedInput, CancellationToken cancellationToken)
    {
        Action<JsonObject>? configure = unpricedCachedInput ? config => config["models"]!["d1"]!.AsObject().Remove("cachedInputPerMillion") : null;
        var scenario = await GatewayScenario.StartAsync(providers: 2, configure: configure, cancellationToken: cancellationToken);
        try
        {
            var gateway = scenario.Gateway;
            var acme = await Tenants.CreateAsync(gateway, "Acme", "pro", cancellationToken);
            var globex = await Tenants.CreateAsync(gateway, GlobexName, "starter", cancellationToken);
            var acmeKey = (string)(await Tenants.CreateKeyAsync(gateway, new { name = "acme-app", tenant = acme, limits = new { monthlyTokens = 1_000_000, monthlyBudgetUsd = 5m } }, cancellationToken))["key"]!;
            var globexKey = (string)(await Tenants.CreateKeyAsync(gateway, new { name = "globex-app", tenant = globex }, cancellationToken))["key"]!;

            scenario.Fakes[0].Default = FakeBehavior.Ok(promptTokens: 1200, completionTokens: 340);
            scenario.Fakes[1].Default = FakeBehavior.Ok(promptTokens: 800, completionTokens: 95, cachedTokens: unpricedCachedInput ? 500 : 0);
            using (var acmeClient = gateway.NewClient(acmeKey))
            {
                await ChatAsync(acmeClient, "gpt-4o", HttpStatusCode.OK, cancellationToken);
                await ChatAsync(acmeClient, "d1", HttpStatusCode.OK, cancellationToken);

                // The cheapest provider fails once: the request fails over to the next one.
                scenario.Fakes[0].Enqueue(FakeBehavior.Status(503));
                await ChatAsync(acmeClient, "gpt-4o", HttpStatusCode.OK, cancellationToken);
                await ChatAsync(acmeClient, "no-such-model", HttpStatusCode.NotFound, cancellationToken);
            }

            using (var globexClient = gateway.NewClient(globexKey))
            {
                await ChatAsync(globexClient, "gpt-4o", HttpStatusCode.OK, cancellationToken);
            }

            return new DashboardWorld(scenario, acme, acmeKey, globex, globexKey);
        }
        catch
        {
            await scenario.DisposeAsync();
            throw;
        }
    }

    /// <summary>GETs an admin API path with the admin key and returns its JSON.</summary>
    public async Task<JsonObject> AdminJsonAsync(string path, CancellationToken cancellationToken) =>
        (await Gateway.Admin.GetFromJsonAsync<JsonObject>(path, cancellationToken))!;

    /// <summary>GETs a /v1 path with a tenant's key and returns its JSON.</summary>
    public async Task<JsonObject> TenantJsonAsync(string key, string path, CancellationToken cancellationToken)
    {
        using var client = Gateway.NewClient(key);
        return (await client.GetFromJsonAsync<JsonObject>(path, cancellationToken))!;
    }

    public ValueTask DisposeAsync() => Scenario.DisposeAsync();

    private static async Task ChatAsync(HttpClient client, string model, HttpStatusCode expected, CancellationToken cancellationToken)
    {
        using var response = await client.PostAsJsonAsync("v1/chat/completions", GatewayScenario.ChatBody(model), cancellationToken);
        Assert.True(response.StatusCode == expected, $"{model}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellationToken)}");
    }
}
