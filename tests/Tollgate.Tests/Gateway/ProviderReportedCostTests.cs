using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Tollgate.Tests.Fakes;
using Tollgate.Tests.Infrastructure;
using Tollgate.Tests.Tenancy;

namespace Tollgate.Tests.Gateway;

/// <summary>
/// A provider's own reported cost (OpenRouter's <c>usage.cost</c>) end to end: an OpenRouter-shaped upstream replaying
/// recorded OpenRouter bytes, beside an OpenAI-compatible one that reports no cost. The gateway's price table for the
/// OpenRouter deployment is deliberately stale, so what the provider said and what we computed differ.
/// </summary>
public sealed class ProviderReportedCostTests : IAsyncLifetime
{
    /// <summary>The recorded <c>usage.cost</c> of the fixture: 94 uncached input, 100 cache-write and 2 output tokens.</summary>
    private const decimal ReportedUsd = 0.000687m;

    /// <summary>Our price of the same tokens: 94 × 2 + 100 × 2.5 + 2 × 10 = 458 µ$ (OpenRouter charged 3, 3.75 and 15).</summary>
    private const decimal OursUsd = 0.000458m;

    /// <summary>The plain provider's default answer, 12 input and 7 output tokens at 1 and 2 per million: 26 µ$.</summary>
    private const decimal PlainUsd = 0.000026m;

    private const string ProviderCostHeader = "x-tollgate-provider-cost-usd";

    private FixtureServer _openRouter = null!;
    private FakeUpstream _plain = null!;
    private TestGateway _gateway = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _openRouter = await FixtureServer.StartAsync(
            "Providers/OpenAI/Fixtures/openrouter-cache-write.json", "Providers/OpenAI/Fixtures/openrouter-cache-write.sse", Ct);
        _plain = await FakeUpstream.StartAsync("sk-plain", Ct);
        var sonnet = Configs.Model("openrouter", "anthropic/claude-sonnet-4", 2m, 10m);
        sonnet["cacheWrite5mPerMillion"] = 2.5m;
        var config = new JsonObject
        {
            ["providers"] = new JsonObject
            {
                ["openrouter"] = Configs.Provider(_openRouter.BaseUrl, "OPENROUTER_KEY"),
                ["plain"] = Configs.Provider(_plain.BaseUrl, "PLAIN_KEY"),
            },
            ["models"] = new JsonObject
            {
                ["openrouter/sonnet"] = sonnet,
                ["plain/gpt-4o"] = Configs.Model("plain", "upstream-plain", 1m, 2m),
            },
            ["routes"] = new JsonObject
            {
                ["sonnet"] = Configs.Route("cheapest", "openrouter/sonnet"),
                ["gpt-4o"] = Configs.Route("cheapest", "plain/gpt-4o"),
            },
        };
        var secrets = new Dictionary<string, string> { ["OPENROUTER_KEY"] = "sk-or", ["PLAIN_KEY"] = "sk-plain" };
        _gateway = await TestGateway.StartAsync(config, secrets, cancellationToken: Ct);
    }

    public async ValueTask DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _plain.DisposeAsync();
        await _openRouter.DisposeAsync();
    }

    [Fact]
    public async Task BufferedAnswer_ProviderReportsCost_HeaderRowAndReportsCarryItBesideOurs()
    {
        using var response = await PostChatAsync("sonnet", stream: false);

        var row = await LedgerRowAsync(response);
        var usage = await AdminUsageAsync("provider");
        var report = await ReportAsync("provider");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("0.000687", Header(response, ProviderCostHeader));
        Assert.Equal("0.000458", Header(response, "x-tollgate-cost-usd"));
        Assert.Equal([687_000_000L, 458_000_000L, "integer"], row);
        AssertReported(GroupOf(usage["data"], "provider", "openrouter"), ReportedUsd, 1, OursUsd);
        AssertReported(usage["totals"], ReportedUsd, 1, OursUsd);
        AssertReported(GroupOf(report["rows"], "provider", "openrouter"), ReportedUsd, 1, OursUsd);
        AssertReported(report["totals"], ReportedUsd, 1, OursUsd);
    }

    [Fact]
    public async Task StreamedAnswer_ProviderReportsCost_RowAndReportsCarryIt_NoHeaderBeforeUsageIsKnown()
    {
        using var response = await PostChatAsync("sonnet", stream: true);
        var body = await response.Content.ReadAsStringAsync(Ct);

        var row = await LedgerRowAsync(response);
        var tenantUsage = (await _gateway.Client.GetFromJsonAsync<JsonObject>("v1/usage?groupBy=model", Ct))!;
        var report = await ReportAsync("model");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.EndsWith("data: [DONE]\n\n", body, StringComparison.Ordinal);
        Assert.False(response.Headers.Contains(ProviderCostHeader), "stream headers leave before the usage chunk");
        Assert.Equal([687_000_000L, 458_000_000L, "integer"], row);
        AssertReported(GroupOf(tenantUsage["data"], "model", "sonnet"), ReportedUsd, 1, OursUsd);
        AssertReported(GroupOf(report["rows"], "model", "sonnet"), ReportedUsd, 1, OursUsd);
    }

    [Fact]
    public async Task ProviderWithoutCost_BufferedAndStreamed_LeavesItUnknownNotZero()
    {
        using var buffered = await PostChatAsync("gpt-4o", stream: false);
        using var streamed = await PostChatAsync("gpt-4o", stream: true);
        await streamed.Content.ReadAsStringAsync(Ct);

        var rows = await Tenants.QueryAsync(_gateway.DataDirectory, "SELECT provider_reported_cost_pusd, cost_pusd FROM ledger ORDER BY seq", Ct);
        var usage = await AdminUsageAsync("provider");
        var report = await ReportAsync("provider");
        var csv = await _gateway.Admin.GetStringAsync("admin/usage?groupBy=provider&format=csv", Ct);
        Assert.Equal(HttpStatusCode.OK, buffered.StatusCode);
        Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
        Assert.Equal("0.000026", Header(buffered, "x-tollgate-cost-usd"));
        Assert.False(buffered.Headers.Contains(ProviderCostHeader));
        Assert.Equal(2, rows.Count);
        Assert.All(rows, r => Assert.Equal([null, 26_000_000L], r));
        foreach (var group in new[] { GroupOf(usage["data"], "provider", "plain"), usage["totals"]!, GroupOf(report["rows"], "provider", "plain"), report["totals"]! })
        {
            Assert.False(group.AsObject().ContainsKey("providerReportedCostUsd"), group.ToJsonString());
            Assert.False(group.AsObject().ContainsKey("costUsdWhereProviderReported"), group.ToJsonString());
            Assert.Equal(0, (long)group["providerReportedCostRequests"]!);
        }

        var lines = csv.TrimEnd('\n').Split('\n');
        Assert.Equal(2, lines.Length);
        Assert.Equal(
            "provider,requests,errors,input_tokens,cached_input_tokens,cache_write_tokens,output_tokens,reasoning_tokens,total_tokens,cost_usd,unknown_cost_requests,price_usd,provider_reported_cost_usd,provider_reported_cost_requests,cost_usd_where_provider_reported",
            lines[0]);
        var cells = lines[1].Split(',');
        Assert.Equal(["plain", "2"], cells[..2]);
        Assert.Equal(PlainUsd * 2, decimal.Parse(cells[9], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(["", "0", ""], cells[^3..]);
    }

    [Fact]
    public async Task Reports_MixedProviders_CompareTheReportedCostWithOursOverTheSameRowsOnly()
    {
        using (var first = await PostChatAsync("sonnet", stream: false))
        using (var second = await PostChatAsync("sonnet", stream: true))
        using (var plain = await PostChatAsync("gpt-4o", stream: false))
        {
            await second.Content.ReadAsStringAsync(Ct);
            Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK], new[] { first.StatusCode, second.StatusCode, plain.StatusCode });
        }

        var usage = await AdminUsageAsync(string.Empty);
        var report = await ReportAsync(string.Empty);
        var csv = await _gateway.Admin.GetStringAsync("admin/reports/usage?groupBy=provider&format=csv", Ct);

        // costUsd covers every row; the comparison only the two rows OpenRouter priced itself.
        Assert.Equal((2 * OursUsd) + PlainUsd, (decimal)usage["totals"]!["costUsd"]!);
        AssertReported(usage["totals"], 2 * ReportedUsd, 2, 2 * OursUsd);
        Assert.Equal((2 * OursUsd) + PlainUsd, (decimal)report["totals"]!["costUsd"]!);
        AssertReported(report["totals"], 2 * ReportedUsd, 2, 2 * OursUsd);
        var lines = csv.TrimEnd('\n').Split('\n');
        Assert.EndsWith(",provider_reported_cost_usd,provider_reported_cost_requests,cost_usd_where_provider_reported", lines[0], StringComparison.Ordinal);
        Assert.StartsWith("openrouter,2,", lines[1], StringComparison.Ordinal);
        Assert.EndsWith(",0.001374,2,0.000916", lines[1], StringComparison.Ordinal);
        Assert.StartsWith("plain,1,", lines[2], StringComparison.Ordinal);
        Assert.EndsWith(",,0,", lines[2], StringComparison.Ordinal);
    }

    private Task<HttpResponseMessage> PostChatAsync(string model, bool stream) =>
        _gateway.Client.PostAsync("v1/chat/completions", new StringContent(GatewayScenario.ChatBody(model, stream).ToJsonString(), Encoding.UTF8, "application/json"), Ct);

    /// <summary>The request's ledger row: the provider-reported cost, our cost and the stored type of the former.</summary>
    private async Task<object?[]> LedgerRowAsync(HttpResponseMessage response)
    {
        var requestId = Header(response, "x-request-id");
        var rows = await Tenants.QueryAsync(
            _gateway.DataDirectory,
            $"SELECT provider_reported_cost_pusd, cost_pusd, typeof(provider_reported_cost_pusd) FROM ledger WHERE request_id = '{requestId}'",
            Ct);
        return Assert.Single(rows);
    }

    private async Task<JsonObject> AdminUsageAsync(string groupBy) =>
        (await _gateway.Admin.GetFromJsonAsync<JsonObject>($"admin/usage?groupBy={groupBy}", Ct))!;

    private async Task<JsonObject> ReportAsync(string groupBy) =>
        (await _gateway.Admin.GetFromJsonAsync<JsonObject>($"admin/reports/usage?groupBy={groupBy}", Ct))!;

    private static string Header(HttpResponseMessage response, string name) => response.Headers.GetValues(name).Single();

    private static JsonNode GroupOf(JsonNode? rows, string dimension, string value) =>
        Assert.Single(rows!.AsArray(), r => (string?)r![dimension] == value)!;

    private static void AssertReported(JsonNode? group, decimal reportedUsd, long rows, decimal costUsd)
    {
        Assert.NotNull(group);
        Assert.Equal(reportedUsd, (decimal)group["providerReportedCostUsd"]!);
        Assert.Equal(rows, (long)group["providerReportedCostRequests"]!);
        Assert.Equal(costUsd, (decimal)group["costUsdWhereProviderReported"]!);
    }
}
