using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Tollgate.Tests.Fakes;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Tenancy;

public sealed class LedgerTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Success_RowIsCommittedBeforeTheResponse_WithExactCost()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        scenario.Fakes[0].Default = FakeBehavior.Ok(promptTokens: 1000, completionTokens: 500, cachedTokens: 200);

        using var response = await scenario.PostChatAsync(GatewayScenario.ChatBody(), Ct);
        var requestId = response.Headers.GetValues("x-request-id").Single();

        // d0: input $1/M, cached $0.5/M, output $2/M → 800 × 1 + 200 × 0.5 + 500 × 2 = 1900 µ$ = 1.9e9 picodollars.
        var rows = await Tenants.QueryAsync(scenario.Gateway.DataDirectory,
            $"SELECT tenant_id, model, provider, deployment, attempts, input_uncached, input_cached, output_text, usage_source, cost_pusd, status, error_code, typeof(cost_pusd) FROM ledger WHERE request_id = '{requestId}'", Ct);
        var row = Assert.Single(rows);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(["default", "gpt-4o", "p0", "d0", 1L, 800L, 200L, 500L, "reported", 1_900_000_000L, 200L, null, "integer"], row);
        Assert.Equal("0.0019", response.Headers.GetValues("x-tollgate-cost-usd").Single());
    }

    [Fact]
    public async Task Failures_AreRowsToo_WithTheirErrorCode()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        scenario.Fakes[0].Default = FakeBehavior.Status(503);

        using var unknownModel = await scenario.PostChatAsync(GatewayScenario.ChatBody("nope"), Ct);
        using var allFailed = await scenario.PostChatAsync(GatewayScenario.ChatBody(), Ct);
        using var badBody = await scenario.Client.PostAsync("v1/chat/completions", new StringContent("{", Encoding.UTF8, "application/json"), Ct);

        var rows = await Tenants.QueryAsync(scenario.Gateway.DataDirectory, "SELECT request_id, status, error_code, usage_source, cost_pusd FROM ledger ORDER BY seq", Ct);
        Assert.Equal(3, rows.Count);
        Assert.Equal([unknownModel.Headers.GetValues("x-request-id").Single(), 404L, "model_not_found", null, 0L], rows[0]);
        Assert.Equal([allFailed.Headers.GetValues("x-request-id").Single(), 502L, "all_providers_failed", null, 0L], rows[1]);
        Assert.Equal(400L, rows[2][1]);
    }

    [Fact]
    public async Task Stream_RowCommittedBeforeDone_StreamingAndNonStreamingSameBuckets()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        scenario.Fakes[0].Default = FakeBehavior.Ok(promptTokens: 30, completionTokens: 9);

        using var streamed = await scenario.PostChatAsync(GatewayScenario.ChatBody(stream: true), Ct);
        var body = await streamed.Content.ReadAsStringAsync(Ct);
        using var buffered = await scenario.PostChatAsync(GatewayScenario.ChatBody(), Ct);

        Assert.EndsWith("data: [DONE]\n\n", body, StringComparison.Ordinal);
        var rows = await Tenants.QueryAsync(scenario.Gateway.DataDirectory, "SELECT input_uncached, output_text, usage_source, cost_pusd, status FROM ledger ORDER BY seq", Ct);
        Assert.Equal(2, rows.Count);
        Assert.Equal(rows[0], rows[1]);
        Assert.Equal([30L, 9L, "reported", 48_000_000L, 200L], rows[0]);
    }

    [Fact]
    public async Task StreamCutByClient_IsBilledForWhatWasDelivered()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        scenario.Fakes[0].Default = FakeBehavior.HangMidStream(afterContentChunks: 2);
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = new StringContent(GatewayScenario.ChatBody(stream: true).ToJsonString(), Encoding.UTF8, "application/json"),
        };

        using (var response = await scenario.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct))
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(Ct));
            var contentEvents = 0;
            while (contentEvents < 2 && await reader.ReadLineAsync(Ct) is { } line)
            {
                contentEvents += line.Contains("\"content\"", StringComparison.Ordinal) ? 1 : 0;
            }
        }

        // The client has gone; the gateway commits the row when it notices. Poll the file as an auditor would.
        List<object?[]> rows = [];
        for (var i = 0; i < 100 && rows.Count == 0; i++)
        {
            rows = await Tenants.QueryAsync(scenario.Gateway.DataDirectory, "SELECT status, error_code, usage_source, output_text, input_uncached, cost_pusd FROM ledger", Ct);
            await Task.Delay(50, Ct);
        }

        var row = Assert.Single(rows);
        Assert.Equal(499L, row[0]);
        Assert.Equal("client_aborted", row[1]);
        Assert.Equal("estimated", row[2]);
        Assert.True((long)row[3]! > 0, "output tokens of the relayed text are billed");
        Assert.True((long)row[4]! > 0, "input tokens are billed");
        Assert.True((long)row[5]! > 0);
    }

    [Fact]
    public async Task UsageReports_TenantSeesOnlyItsOwn_AdminSeesAll()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        var gateway = scenario.Gateway;
        var a = await Tenants.CreateAsync(gateway, "alpha", "pro", Ct);
        var b = await Tenants.CreateAsync(gateway, "beta", "pro", Ct);
        using var alpha = gateway.NewClient((string)(await Tenants.CreateKeyAsync(gateway, new { name = "a", tenant = a }, Ct))["key"]!);
        using var beta = gateway.NewClient((string)(await Tenants.CreateKeyAsync(gateway, new { name = "b", tenant = b }, Ct))["key"]!);
        for (var i = 0; i < 3; i++)
        {
            using var r = await alpha.PostAsJsonAsync("v1/chat/completions", GatewayScenario.ChatBody(), Ct);
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }

        using (var r = await beta.PostAsJsonAsync("v1/chat/completions", GatewayScenario.ChatBody(), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }

        var alphaReport = (await alpha.GetFromJsonAsync<JsonObject>("v1/usage?groupBy=tenant,model", Ct))!;
        var betaReport = (await beta.GetFromJsonAsync<JsonObject>("v1/usage", Ct))!;
        using var snoop = await alpha.GetAsync($"v1/usage?tenant={b}", Ct);
        var adminReport = (await gateway.Admin.GetFromJsonAsync<JsonObject>("admin/usage?groupBy=tenant", Ct))!;
        var csv = await gateway.Admin.GetStringAsync($"admin/usage?tenant={a}&groupBy=day,model,provider&format=csv", Ct);
        using var anonymous = await gateway.Anonymous.GetAsync("admin/usage", Ct);

        Assert.Equal(a, (string?)alphaReport["tenant"]);
        Assert.Equal(3, (long)alphaReport["totals"]!["requests"]!);
        Assert.All(alphaReport["data"]!.AsArray(), row => Assert.Null(row!["tenant"]));
        Assert.Equal("pro", (string?)alphaReport["limits"]!["plan"]);
        Assert.Equal(57, (long)alphaReport["limits"]!["tenantMonthTokens"]!); // 3 × (12 + 7)
        Assert.Equal(1, (long)betaReport["totals"]!["requests"]!);
        Assert.Equal(HttpStatusCode.Forbidden, snoop.StatusCode);
        var byTenant = adminReport["data"]!.AsArray().ToDictionary(r => (string)r!["tenant"]!, r => (long)r!["requests"]!);
        Assert.Equal(3, byTenant[a]);
        Assert.Equal(1, byTenant[b]);
        var lines = csv.Trim().Split('\n');
        Assert.StartsWith("day,model,provider,requests,errors,input_tokens", lines[0], StringComparison.Ordinal);
        Assert.Equal(2, lines.Length);
        Assert.Contains(",gpt-4o,p0,3,0,", lines[1], StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
    }

    [Fact]
    public async Task PlanOverage_TenantPriceIsTokensBeyondIncludedAtSellingPrice()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, configure: c =>
            c["plans"] = JsonNode.Parse("""{ "tiny": { "monthlyFeeUsd": 1, "includedTokens": 25, "overagePer1KTokensUsd": 0.005 } }"""),
            cancellationToken: Ct);
        var tenant = await Tenants.CreateAsync(scenario.Gateway, "small", "tiny", Ct);
        using var client = scenario.Gateway.NewClient((string)(await Tenants.CreateKeyAsync(scenario.Gateway, new { name = "k", tenant }, Ct))["key"]!);

        for (var i = 0; i < 3; i++)
        {
            using var r = await client.PostAsJsonAsync("v1/chat/completions", GatewayScenario.ChatBody(), Ct);
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }

        // 19 tokens each: 19 included, then 13 of 19 beyond 25, then all 19 → 32 tokens × $0.005/1K = $0.00016.
        var prices = await Tenants.QueryAsync(scenario.Gateway.DataDirectory, "SELECT price_pusd FROM ledger ORDER BY seq", Ct);
        Assert.Equal([0L, 65_000_000L, 95_000_000L], prices.Select(p => p[0]));
    }
}
