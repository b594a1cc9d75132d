using System.Net;
using System.Text.Json.Nodes;

namespace Tollgate.Tests.Billing;

public sealed class ReportTests(ReportFixture fixture) : IClassFixture<ReportFixture>
{
    private const string October = "from=2026-10-01&to=2026-10-31";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private BillingRig Rig => fixture.Rig;

    private Task<JsonObject> AdminAsync(string path) => Rig.GetJsonAsync(Rig.Gateway.Admin, path, Ct);

    private static string Summary(JsonObject report, string dimension) =>
        string.Join(';', report["rows"]!.AsArray().Select(r => $"{(string)r![dimension]!}={(long)r["requests"]!}/{(long)r["totalTokens"]!}"));

    [Theory]
    [InlineData("day", "2026-10-05=1/1500;2026-10-12=2/5300;2026-10-20=1/20;2026-10-31=1/200")]
    [InlineData("week", "2026-10-05=1/1500;2026-10-12=2/5300;2026-10-19=1/20;2026-10-26=1/200")]
    [InlineData("month", "2026-10=5/7020")]
    [InlineData("tenant", "acme=2/6800;globex=3/220")]
    [InlineData("key", "kA=2/6800;kB=2/200;kB2=1/20")]
    [InlineData("model", "cheap=2/200;gpt-4o=2/6800;mystery=1/20")]
    [InlineData("provider", "p0=4/4020;p1=1/3000")]
    [InlineData("deployment", "d0=3/4000;d1=1/3000;nop=1/20")]
    [InlineData("status", "200=4/7020;502=1/0")]
    public async Task UsageReport_GroupByEachDimension_ExactRows(string dimension, string expected)
    {
        var report = await AdminAsync($"admin/reports/usage?{October}&groupBy={dimension}");

        Assert.Equal(expected, Summary(report, dimension));
        Assert.Equal(dimension, (string)report["groupBy"]![0]!);
    }

    [Fact]
    public async Task UsageReport_Totals_CountErrorsFailoversAndExtraAttemptsExactly()
    {
        var totals = (await AdminAsync($"admin/reports/usage?{October}"))["totals"]!;

        Assert.Equal(5L, (long)totals["requests"]!); // the hedge row is not a request
        Assert.Equal(1L, (long)totals["errors"]!);
        Assert.Equal(2L, (long)totals["failovers"]!);
        Assert.Equal(1L, (long)totals["extraAttempts"]!);
        Assert.Equal(5110L, (long)totals["inputTokens"]!);
        Assert.Equal(1910L, (long)totals["outputTokens"]!);
        Assert.Equal(7020L, (long)totals["totalTokens"]!);
        Assert.Equal(0.0129m, (decimal)totals["costUsd"]!); // hedge cost included
        Assert.Equal(1L, (long)totals["unknownCostRequests"]!);
        Assert.Equal(0.0105m, (decimal)totals["priceUsd"]!);
        Assert.Equal(-0.0024m, (decimal)totals["marginUsd"]!);
    }

    [Fact]
    public async Task UsageReport_TwoDimensions_RowsPerPairAndMoneyPerRow()
    {
        var report = await AdminAsync($"admin/reports/usage?{October}&groupBy=tenant,model");

        var rows = report["rows"]!.AsArray();
        Assert.Equal(["acme/gpt-4o", "globex/cheap", "globex/mystery"], rows.Select(r => $"{r!["tenant"]}/{r["model"]}"));
        Assert.Equal(0.0126m, (decimal)rows[0]!["costUsd"]!);
        Assert.Equal(0.01m, (decimal)rows[0]!["priceUsd"]!);
        Assert.Equal(-0.0026m, (decimal)rows[0]!["marginUsd"]!);
        Assert.Null(rows[0]!["day"]); // dimensions not grouped by are left out
    }

    [Theory]
    [InlineData("tenant=globex&from=2026-10-01&to=2026-10-31", 3, 220)]
    [InlineData("from=2026-10-12&to=2026-10-20", 3, 5320)]
    [InlineData("from=2026-10-01&to=2026-10-31T23:59:59Z", 4, 6820)] // an ISO time is exclusive
    [InlineData("from=2026-10-01&to=2026-11-01", 6, 7022)] // a date is inclusive: takes in 2026-11-01 00:00
    [InlineData("tenant=nobody&from=2026-10-01&to=2026-10-31", 0, 0)]
    public async Task UsageReport_Filters_SelectExactRows(string query, long requests, long tokens)
    {
        var totals = (await AdminAsync($"admin/reports/usage?{query}"))["totals"]!;

        Assert.Equal(requests, (long)totals["requests"]!);
        Assert.Equal(tokens, (long)totals["totalTokens"]!);
    }

    [Fact]
    public async Task SavingsReport_DefaultBaseline_UsesRecordedRouteMaxPerRequest()
    {
        var report = await AdminAsync($"admin/reports/savings?{October}&groupBy=model");

        Assert.Equal("route-max", (string)report["baseline"]!);
        var rows = report["rows"]!.AsArray();
        Assert.Equal(["cheap", "gpt-4o", "mystery"], rows.Select(r => (string)r!["model"]!));

        Assert.Equal(2L, (long)rows[0]!["requests"]!);
        Assert.Equal(0.0003m, (decimal)rows[0]!["costUsd"]!);
        Assert.Equal(0.0006m, (decimal)rows[0]!["baselineCostUsd"]!);
        Assert.Equal(0.0003m, (decimal)rows[0]!["savedUsd"]!);
        Assert.Equal(50m, (decimal)rows[0]!["savedPercent"]!);

        // The hedge adds to what was spent and nothing to the baseline.
        Assert.Equal(0.0126m, (decimal)rows[1]!["costUsd"]!);
        Assert.Equal(0.012m, (decimal)rows[1]!["baselineCostUsd"]!);
        Assert.Equal(-0.0006m, (decimal)rows[1]!["savedUsd"]!);
        Assert.Equal(-5m, (decimal)rows[1]!["savedPercent"]!);

        // An unknown cost is counted, never priced at 0.
        Assert.Equal(0m, (decimal)rows[2]!["costUsd"]!);
        Assert.Equal(1L, (long)rows[2]!["unknownCostRequests"]!);

        var totals = report["totals"]!;
        Assert.Equal(5L, (long)totals["requests"]!);
        Assert.Equal(0.0129m, (decimal)totals["costUsd"]!);
        Assert.Equal(0.0126m, (decimal)totals["baselineCostUsd"]!);
        Assert.Equal(-0.0003m, (decimal)totals["savedUsd"]!);
        Assert.Equal(-2.38m, (decimal)totals["savedPercent"]!);
        Assert.Equal(1L, (long)totals["unknownCostRequests"]!);
    }

    [Fact]
    public async Task SavingsReport_NoGroupBy_OneTotalsRow()
    {
        var report = await AdminAsync($"admin/reports/savings?{October}");

        Assert.Empty(report["groupBy"]!.AsArray());
        var row = Assert.Single(report["rows"]!.AsArray());
        Assert.Equal(0.0126m, (decimal)row!["baselineCostUsd"]!);
    }

    [Theory]
    [InlineData("d0", 0.0063, -0.0066, -104.76, 1)] // 1000/500 + 2000/1000 + 100/100 at $1/$2 per 1M
    [InlineData("d1", 0.0126, -0.0003, -2.38, 1)]
    [InlineData("gpt-4o", 0.0126, -0.0003, -2.38, 1)] // a route: its most expensive candidate (d1)
    public async Task SavingsReport_NamedBaseline_PricesTheSameTokens(string baseline, double baselineUsd, double savedUsd, double percent, long unknown)
    {
        var totals = (await AdminAsync($"admin/reports/savings?{October}&baseline={baseline}"))["totals"]!;

        Assert.Equal((decimal)baselineUsd, (decimal)totals["baselineCostUsd"]!);
        Assert.Equal(0.0129m, (decimal)totals["costUsd"]!);
        Assert.Equal((decimal)savedUsd, (decimal)totals["savedUsd"]!);
        Assert.Equal((decimal)percent, (decimal)totals["savedPercent"]!);
        Assert.Equal(unknown, (long)totals["unknownCostRequests"]!);
    }

    [Fact]
    public async Task SavingsReport_BaselineWithoutAPrice_StaysUnknown()
    {
        // 'nop' has no output price: every request with output tokens has an unknown baseline.
        var report = await AdminAsync($"admin/reports/savings?{October}&baseline=nop");

        var totals = report["totals"]!;
        Assert.Equal("nop", (string)report["baseline"]!);
        Assert.Equal(0m, (decimal)totals["baselineCostUsd"]!);
        Assert.Equal(0.0026m, (decimal)totals["costUsd"]!); // only the hedge's cost, which needs no baseline
        Assert.Equal(4L, (long)totals["unknownCostRequests"]!); // r1, r2, r4 (baseline) and r7 (cost)
        Assert.Equal(0m, (decimal)totals["savedPercent"]!);
    }

    [Fact]
    public async Task UsageReport_Csv_HeaderThenOneLinePerRow()
    {
        using var response = await Rig.Gateway.Admin.GetAsync($"admin/reports/usage?{October}&groupBy=tenant,model&format=csv", Ct);
        var csv = await response.Content.ReadAsStringAsync(Ct);

        Assert.Equal("text/csv", response.Content.Headers.ContentType!.MediaType);
        var lines = csv.TrimEnd('\n').Split('\n');
        Assert.Equal(
            "tenant,model,requests,errors,failovers,escalations,extra_attempts,input_tokens,cached_input_tokens,cache_write_tokens,output_tokens,reasoning_tokens,total_tokens,cost_usd,unknown_cost_requests,price_usd,margin_usd,provider_reported_cost_usd,provider_reported_cost_requests,cost_usd_where_provider_reported",
            lines[0]);
        Assert.Equal("acme,gpt-4o,2,0,1,0,1,5000,0,0,1800,0,6800,0.0126,0,0.01,-0.0026,,0,", lines[1]);
        Assert.Equal(4, lines.Length);
    }

    [Fact]
    public async Task SavingsReport_Csv_HeaderThenRows()
    {
        using var response = await Rig.Gateway.Admin.GetAsync($"admin/reports/savings?{October}&groupBy=model&format=csv", Ct);
        var lines = (await response.Content.ReadAsStringAsync(Ct)).TrimEnd('\n').Split('\n');

        Assert.Equal("model,requests,cost_usd,baseline_cost_usd,saved_usd,saved_percent,unknown_cost_requests", lines[0]);
        Assert.Equal("cheap,2,0.0003,0.0006,0.0003,50.00,0", lines[1]);
        Assert.Equal(4, lines.Length);
    }

    [Theory]
    [InlineData("admin/reports/usage?groupBy=color")]
    [InlineData("admin/reports/usage?from=yesterday")]
    [InlineData("admin/reports/usage?to=2026-13-45")]
    [InlineData("admin/reports/usage?from=2026-10-31&to=2026-10-01")]
    [InlineData("admin/reports/usage?format=xml")]
    [InlineData("admin/reports/usage?groupBy=day&groupBy=model")]
    [InlineData("admin/reports/savings?baseline=no-such-model")]
    [InlineData("admin/reports/margin?groupBy=model")]
    [InlineData("admin/reports/margin?from=1990-01-01")]
    [InlineData("admin/invoices?month=2026-13")]
    [InlineData("admin/invoices?month=November")]
    public async Task Reports_BadParameters_400WithAMessage(string path)
    {
        using var response = await Rig.Gateway.Admin.GetAsync(path, Ct);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!;

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.False(string.IsNullOrEmpty((string?)body["detail"]));
    }

    [Fact]
    public async Task Reports_WithoutAdminKey_401()
    {
        using var response = await Rig.Gateway.Client.GetAsync("admin/reports/usage", Ct);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }
}
