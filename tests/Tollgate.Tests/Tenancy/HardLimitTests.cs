using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Tollgate.Metering;
using Tollgate.Tests.Fakes;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Tenancy;

public sealed class HardLimitTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<List<(HttpStatusCode Status, string? Code, string? RetryAfter)>> FireAsync(HttpClient client, int count, JsonObject body)
    {
        var tasks = Enumerable.Range(0, count).Select(async _ =>
        {
            using var response = await client.PostAsJsonAsync("v1/chat/completions", body, Ct);
            var code = response.StatusCode == HttpStatusCode.OK ? null : (string?)(await response.Content.ReadFromJsonAsync<JsonObject>(Ct))!["error"]!["code"];
            return (response.StatusCode, code, response.Headers.RetryAfter?.ToString());
        });
        return [.. await Task.WhenAll(tasks)];
    }

    [Fact]
    public async Task TenantBudget_500Concurrent_LedgerNeverPassesTheBudget()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, configure: c =>
            c["plans"] = JsonNode.Parse("""{ "capped": { "monthlyBudgetUsd": 0.05 } }"""),
            cancellationToken: Ct);
        var tenant = await Tenants.CreateAsync(scenario.Gateway, "capped", "capped", Ct);
        using var client = scenario.Gateway.NewClient((string)(await Tenants.CreateKeyAsync(scenario.Gateway, new { name = "k", tenant }, Ct))["key"]!);

        // Real usage close to the reservation (900 of max_tokens 1000 at $2/M), so the budget binds after ~27 requests.
        scenario.Fakes[0].Default = FakeBehavior.Ok(promptTokens: 5, completionTokens: 900);
        var results = await FireAsync(client, 500, Tenants.Chat(maxTokens: 1000));

        var ok = results.Count(r => r.Status == HttpStatusCode.OK);
        var rows = await Tenants.QueryAsync(scenario.Gateway.DataDirectory, $"SELECT count(*), sum(cost_pusd), sum(status = 200) FROM ledger WHERE tenant_id = '{tenant}'", Ct);
        var spent = Money.ToUsd((long)rows[0][1]!);

        // The bound: what real usage exceeds its reservation. Here input is reserved from the tokenizer (≥ 5)
        // and output at max_tokens (≥ 900), so the bound is 0 and spend stays within the budget itself.
        Assert.True(spent <= 0.05m, $"spent {spent} > 0.05");
        Assert.InRange(ok, 20, 28); // each reserves ≈ $0.00201 of the $0.05; each really costs $0.001805
        Assert.All(results.Where(r => r.Status != HttpStatusCode.OK), r =>
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, r.Status);
            Assert.Equal("budget_exceeded", r.Code);
        });
        Assert.Equal(500L, rows[0][0]);
        Assert.Equal((long)ok, rows[0][2]);
        Assert.Equal(ok, scenario.Fakes[0].RequestCount);
    }

    [Fact]
    public async Task KeyTokenQuota_500Concurrent_LedgerNeverPassesTheQuota()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        var tenant = await Tenants.CreateAsync(scenario.Gateway, "t", "pro", Ct);
        using var client = scenario.Gateway.NewClient((string)(await Tenants.CreateKeyAsync(scenario.Gateway, new { name = "k", tenant, limits = new { monthlyTokens = 10_000 } }, Ct))["key"]!);
        scenario.Fakes[0].Default = FakeBehavior.Ok(promptTokens: 5, completionTokens: 90);

        var results = await FireAsync(client, 500, Tenants.Chat(maxTokens: 100));

        var ok = results.Count(r => r.Status == HttpStatusCode.OK);
        var rows = await Tenants.QueryAsync(scenario.Gateway.DataDirectory, "SELECT sum(input_uncached + output_text), sum(status = 200) FROM ledger WHERE key_id != ''", Ct);
        Assert.True((long)rows[0][0]! <= 10_000, $"tokens {rows[0][0]} > 10000");
        Assert.InRange(ok, 80, 106);
        Assert.Equal((long)ok, rows[0][1]);
        Assert.All(results.Where(r => r.Status != HttpStatusCode.OK), r => Assert.Equal("monthly_token_quota_exceeded", r.Code));
    }

    [Fact]
    public async Task LimitedKey_LoneSurrogateEscapeInTheBody_IsEstimatedAndAnswered()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        var tenant = await Tenants.CreateAsync(scenario.Gateway, "t", "pro", Ct);
        using var client = scenario.Gateway.NewClient((string)(await Tenants.CreateKeyAsync(scenario.Gateway, new { name = "k", tenant, limits = new { monthlyTokens = 10_000 } }, Ct))["key"]!);

        // Valid JSON whose "\ud800" escape is no valid UTF-16: the reservation estimate must still count it.
        using var content = new StringContent("""{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"half a pair: \ud800 ok"}]}""", System.Text.Encoding.UTF8, "application/json");
        using var response = await client.PostAsync("v1/chat/completions", content, Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task FreePlanHardQuota_RefusesPastIncludedTokens()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, configure: c =>
            c["plans"] = JsonNode.Parse("""{ "free": { "monthlyFeeUsd": 0, "includedTokens": 300, "hardQuota": true } }"""),
            cancellationToken: Ct);
        var tenant = await Tenants.CreateAsync(scenario.Gateway, "f", "free", Ct);
        using var client = scenario.Gateway.NewClient((string)(await Tenants.CreateKeyAsync(scenario.Gateway, new { name = "k", tenant }, Ct))["key"]!);

        var results = new List<(HttpStatusCode Status, string? Code, string? RetryAfter)>();
        for (var i = 0; i < 20; i++)
        {
            results.AddRange(await FireAsync(client, 1, Tenants.Chat(maxTokens: 50)));
        }

        // 19 tokens each, about 60 reserved: the 13th no longer fits in 300.
        Assert.InRange(results.Count(r => r.Status == HttpStatusCode.OK), 11, 13);
        Assert.Equal(HttpStatusCode.OK, results[0].Status);
        Assert.Equal("monthly_token_quota_exceeded", results[^1].Code);
        Assert.Equal(HttpStatusCode.TooManyRequests, results[^1].Status);
    }

    [Fact]
    public async Task KeyRpm_RefusesWithRetryAfter()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        using var client = scenario.Gateway.NewClient((string)(await Tenants.CreateKeyAsync(scenario.Gateway, new { name = "k", limits = new { rpm = 3 } }, Ct))["key"]!);

        var results = new List<(HttpStatusCode Status, string? Code, string? RetryAfter)>();
        for (var i = 0; i < 5; i++)
        {
            results.AddRange(await FireAsync(client, 1, GatewayScenario.ChatBody()));
        }

        // Three fit in one minute window, unless the window turned over during the test; then at most six would.
        Assert.Contains(results, r => r.Status == HttpStatusCode.TooManyRequests);
        var refused = results.First(r => r.Status == HttpStatusCode.TooManyRequests);
        Assert.Equal("rate_limit_exceeded", refused.Code);
        Assert.InRange(int.Parse(refused.RetryAfter!, System.Globalization.CultureInfo.InvariantCulture), 1, 60);
    }

    [Fact]
    public async Task UnknownPrice_RefusedWithBudget_AllowedWithout()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, configure: c =>
        {
            var model = c["models"]!["d0"]!.AsObject();
            model.Remove("outputPerMillion");
        }, cancellationToken: Ct);
        using var budgeted = scenario.Gateway.NewClient((string)(await Tenants.CreateKeyAsync(scenario.Gateway, new { name = "b", limits = new { monthlyBudgetUsd = 10 } }, Ct))["key"]!);

        var refused = await FireAsync(budgeted, 1, GatewayScenario.ChatBody());
        var allowed = await FireAsync(scenario.Client, 1, GatewayScenario.ChatBody());

        Assert.Equal(HttpStatusCode.Forbidden, refused[0].Status);
        Assert.Equal("price_unknown_with_budget", refused[0].Code);
        Assert.Equal(HttpStatusCode.OK, allowed[0].Status);
        Assert.Equal(1, scenario.Fakes[0].RequestCount);
    }
}
