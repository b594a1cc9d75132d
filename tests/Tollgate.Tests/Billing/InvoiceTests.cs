using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Time.Testing;
using Tollgate.Configuration;
using Tollgate.Metering;
using static Tollgate.Tests.Billing.BillingRig;

namespace Tollgate.Tests.Billing;

/// <summary>
/// October 2026 of tenant acme on plan starter ($9, 1000 included tokens, $0.005 per 1K beyond), in ledger order:
/// 600 tokens (within), 700 (300 over: $0.0015), 1000 (all over: $0.005), an uncharged hedge of 500 (not billable),
/// a charged escalated attempt of 200 (over: $0.001). Billable 2500, overage 1500 tokens = $0.0075, due $9.0075.
/// The default tenant (no plan) used 100 tokens.
/// </summary>
public sealed class InvoiceTests : IAsyncLifetime
{
    private BillingRig _rig = null!;
    private string _acme = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _rig = await StartAsync(Ct);
        _acme = await _rig.CreateTenantAsync("Acme <b>&</b> \"Co\"", "starter", Ct);
        await _rig.AppendAsync(
            Ct,
            Row(_acme, "kA", "gpt-4o", "d0", "2026-10-03T10:00:00Z", 400, 200, 0.0008m),
            Row(_acme, "kA", "cheap", "d0", "2026-10-10T10:00:00Z", 500, 200, 0.0009m, price: 0.0015m),
            Row(_acme, "kA", "gpt-4o", "d1", "2026-10-11T10:00:00Z", 800, 200, 0.0012m, price: 0.005m),
            Row(_acme, "kA", "gpt-4o", "d0", "2026-10-11T10:00:01Z", 500, 0, 0.0005m, kind: LedgerAttemptKind.Hedge),
            Row(_acme, "kA", "cheap", "d1", "2026-10-12T10:00:00Z", 200, 0, 0.0002m, price: 0.001m, kind: LedgerAttemptKind.Escalated),
            Row("default", "kD", "gpt-4o", "d0", "2026-10-20T10:00:00Z", 100, 0, 0.0001m));
    }

    public async ValueTask DisposeAsync() => await _rig.DisposeAsync();

    private async Task<(HttpStatusCode Status, JsonObject Body)> IssueAsync(object body)
    {
        using var response = await _rig.Gateway.Admin.PostAsJsonAsync("admin/invoices/issue", body, Ct);
        return (response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!.AsObject());
    }

    private JsonObject InvoiceOf(JsonObject issued, string tenant) =>
        issued["invoices"]!.AsArray().Single(i => (string)i!["tenant"]! == tenant)!.AsObject();

    [Fact]
    public async Task Issue_Month_FeePlusOverageAndLinesSumToTotal()
    {
        var (status, body) = await IssueAsync(new { month = "2026-10" });

        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal(2L, (long)body["issued"]!);
        Assert.Equal(["default", _acme], body["invoices"]!.AsArray().Select(i => (string)i!["tenant"]!)); // the idle ones have no October
        var invoice = InvoiceOf(body, _acme);
        Assert.Equal($"inv_2026-10_{_acme}_1", (string)invoice["id"]!);
        Assert.Equal(1, (int)invoice["version"]!);
        Assert.True((bool)invoice["final"]!);
        Assert.Equal("starter", (string)invoice["plan"]!);
        Assert.Equal(9m, (decimal)invoice["planFeeUsd"]!);
        Assert.Equal(1000L, (long)invoice["includedTokens"]!);
        Assert.Equal(2500L, (long)invoice["tokensUsed"]!);
        Assert.Equal(1500L, (long)invoice["overageTokens"]!);
        Assert.Equal(0.005m, (decimal)invoice["overagePer1KTokensUsd"]!);
        Assert.Equal(0.0075m, (decimal)invoice["overageUsd"]!);
        Assert.Equal(9.0075m, (decimal)invoice["totalDueUsd"]!);
        Assert.Equal(3L, (long)invoice["requests"]!);
        Assert.Equal(0.0036m, (decimal)invoice["providerCostUsd"]!);

        var lines = invoice["lines"]!.AsArray();
        Assert.Equal(["cheap", "gpt-4o"], lines.Select(l => (string)l!["model"]!));
        Assert.Equal((1L, 900L, 500L, 0.0025m, 0.0011m), Line(lines[0]!));
        Assert.Equal((2L, 1600L, 1000L, 0.005m, 0.0025m), Line(lines[1]!));
        Assert.Equal((decimal)invoice["overageUsd"]!, lines.Sum(l => (decimal)l!["amountUsd"]!));
        Assert.Equal((long)invoice["overageTokens"]!, lines.Sum(l => (long)l!["overageTokens"]!));

        var free = InvoiceOf(body, "default");
        Assert.Null(free["plan"]);
        Assert.Equal(0m, (decimal)free["totalDueUsd"]!);
        Assert.Equal(100L, (long)free["tokensUsed"]!);
        Assert.Equal(0L, (long)free["overageTokens"]!);
        Assert.Equal(0.0001m, (decimal)free["providerCostUsd"]!);

        static (long, long, long, decimal, decimal) Line(JsonNode l) =>
            ((long)l["requests"]!, (long)l["tokens"]!, (long)l["overageTokens"]!, (decimal)l["amountUsd"]!, (decimal)l["providerCostUsd"]!);
    }

    [Fact]
    public async Task Issue_Again_ReturnsTheSameInvoicesUnchanged()
    {
        var (_, first) = await IssueAsync(new { month = "2026-10" });

        var (status, second) = await IssueAsync(new { month = "2026-10" });

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(0L, (long)second["issued"]!);
        Assert.Equal(first["invoices"]!.ToJsonString(), second["invoices"]!.ToJsonString());
    }

    [Fact]
    public async Task IssuedInvoice_PlanPricesChange_StoredSnapshotUnchangedAndReissueIsVersion2()
    {
        await IssueAsync(new { month = "2026-10", tenant = _acme });
        var before = await GetTextAsync($"admin/invoices/inv_2026-10_{_acme}_1");

        // The operator raises the plan's prices; a server (or the CLI) with that configuration reissues.
        var options = _rig.Options with
        {
            Plans = new Dictionary<string, PlanOptions>(StringComparer.OrdinalIgnoreCase)
            {
                ["starter"] = _rig.Options.Plans["starter"] with { MonthlyFeeUsd = 19m, OveragePer1KTokensUsd = 0.01m },
            },
        };
        var later = _rig.Service(options, TimeProvider.System);
        var unchanged = await later.IssueAsync("2026-10", _acme, reissue: false, Ct);
        var reissued = await later.IssueAsync("2026-10", _acme, reissue: true, Ct);

        Assert.Equal(0, unchanged.Issued);
        Assert.Equal(9.0075m, Assert.Single(unchanged.Invoices).TotalDueUsd);
        var v2 = Assert.Single(reissued.Invoices);
        Assert.Equal($"inv_2026-10_{_acme}_2", v2.Id);
        Assert.Equal(2, v2.Version);
        Assert.Equal(19m, v2.PlanFeeUsd);
        Assert.Equal(0.01m, v2.OveragePer1KTokensUsd);
        Assert.Equal(0.0075m, v2.OverageUsd); // what the limiter charged in October, whatever the price is now
        Assert.Equal(19.0075m, v2.TotalDueUsd);

        Assert.Equal(before, await GetTextAsync($"admin/invoices/inv_2026-10_{_acme}_1"));
        var list = await _rig.GetJsonAsync(_rig.Gateway.Admin, $"admin/invoices?tenant={_acme}&month=2026-10", Ct);
        Assert.Equal([9.0075m, 19.0075m], list["invoices"]!.AsArray().Select(i => (decimal)i!["totalDueUsd"]!));
        Assert.Equal([1, 2], list["invoices"]!.AsArray().Select(i => (int)i!["version"]!));
    }

    [Fact]
    public async Task IssuedInvoice_DatabaseRefusesUpdatesAndDeletes()
    {
        await IssueAsync(new { month = "2026-10" });
        await using var connection = await _rig.Database.OpenAsync(Ct);

        foreach (var sql in (string[])["UPDATE invoices SET total_due_usd = '0'", "DELETE FROM invoices"])
        {
            await using var command = connection.CreateCommand();
            command.CommandText = sql;
            var ex = await Assert.ThrowsAsync<SqliteException>(() => command.ExecuteNonQueryAsync(Ct));
            Assert.Contains("issued invoices", ex.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task InvoiceHtml_RendersPrintablePageWithEveryValueEncoded()
    {
        await IssueAsync(new { month = "2026-10" });

        using var response = await _rig.Gateway.Admin.GetAsync($"admin/invoices/inv_2026-10_{_acme}_1.html", Ct);
        var html = await response.Content.ReadAsStringAsync(Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType!.MediaType);
        Assert.StartsWith("<!DOCTYPE html>", html, StringComparison.Ordinal);
        Assert.Contains("@media print", html, StringComparison.Ordinal);
        Assert.Contains("Acme &lt;b&gt;&amp;&lt;/b&gt; &quot;Co&quot;", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<b>", html, StringComparison.Ordinal);
        Assert.Contains("$9.0075", html, StringComparison.Ordinal);
        Assert.Contains("Usage: gpt-4o", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task V1Invoices_TenantKey_SeesOnlyItsOwnAnd404sAnothers()
    {
        await IssueAsync(new { month = "2026-10" });
        using var acme = _rig.Gateway.NewClient(await _rig.CreateKeyAsync(_acme, Ct));

        var list = await _rig.GetJsonAsync(acme, "v1/invoices", Ct);
        var own = await _rig.GetJsonAsync(acme, $"v1/invoices/inv_2026-10_{_acme}_1", Ct);
        using var html = await acme.GetAsync($"v1/invoices/inv_2026-10_{_acme}_1.html", Ct);
        using var other = await acme.GetAsync("v1/invoices/inv_2026-10_default_1", Ct);
        using var otherHtml = await acme.GetAsync("v1/invoices/inv_2026-10_default_1.html", Ct);
        var defaultsOwn = await _rig.GetJsonAsync(_rig.Gateway.Client, "v1/invoices", Ct);

        Assert.Equal([$"inv_2026-10_{_acme}_1"], list["invoices"]!.AsArray().Select(i => (string)i!["id"]!));
        Assert.Equal(9.0075m, (decimal)own["totalDueUsd"]!);
        Assert.Equal(HttpStatusCode.OK, html.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, other.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, otherHtml.StatusCode);
        Assert.Equal("invoice_not_found", (string)JsonNode.Parse(await other.Content.ReadAsStringAsync(Ct))!["error"]!["code"]!);
        Assert.Equal(["inv_2026-10_default_1"], defaultsOwn["invoices"]!.AsArray().Select(i => (string)i!["id"]!));
    }

    [Fact]
    public async Task Margin_DraftsBeforeIssuingAndInvoicesAfter_SameExactNumbers()
    {
        const string Path = "admin/reports/margin?from=2026-10-01&to=2026-10-31";
        var draft = await _rig.GetJsonAsync(_rig.Gateway.Admin, Path, Ct);
        await IssueAsync(new { month = "2026-10" });
        var issued = await _rig.GetJsonAsync(_rig.Gateway.Admin, Path, Ct);

        foreach (var report in (JsonObject[])[draft, issued])
        {
            var rows = report["rows"]!.AsArray();
            Assert.Equal(["default", _acme], rows.Select(r => (string)r!["tenant"]!));
            Assert.Equal((0m, 0.0001m, -0.0001m, 0m), Margin(rows[0]!));
            Assert.Equal((9.0075m, 0.0036m, 9.0039m, 99.96m), Margin(rows[1]!));
            Assert.Equal((9.0075m, 0.0037m, 9.0038m, 99.96m), Margin(report["totals"]!));
        }

        Assert.Equal((0, 2), ((int)draft["totals"]!["issuedInvoices"]!, (int)draft["totals"]!["draftInvoices"]!));
        Assert.Equal((2, 0), ((int)issued["totals"]!["issuedInvoices"]!, (int)issued["totals"]!["draftInvoices"]!));

        static (decimal, decimal, decimal, decimal) Margin(JsonNode r) =>
            ((decimal)r["revenueUsd"]!, (decimal)r["providerCostUsd"]!, (decimal)r["marginUsd"]!, (decimal)r["marginPercent"]!);
    }

    [Fact]
    public async Task Margin_Csv_ByMonth()
    {
        await IssueAsync(new { month = "2026-10" });

        using var response = await _rig.Gateway.Admin.GetAsync("admin/reports/margin?from=2026-10-01&to=2026-10-31&groupBy=month&format=csv", Ct);
        var csv = await response.Content.ReadAsStringAsync(Ct);

        Assert.Equal("month,revenue_usd,provider_cost_usd,margin_usd,margin_percent,issued_invoices,draft_invoices\n2026-10,9.0075,0.0037,9.0038,99.96,2,0\n", csv);
    }

    [Fact]
    public async Task Issue_CurrentMonth_IssuedButNotFinal()
    {
        var billing = _rig.Service(_rig.Options, new FakeTimeProvider(new DateTimeOffset(2026, 10, 20, 0, 0, 0, TimeSpan.Zero)));

        var outcome = await billing.IssueAsync("2026-10", _acme, reissue: false, Ct);
        var future = await billing.IssueAsync("2026-11", null, reissue: false, Ct);

        var invoice = Assert.Single(outcome.Invoices);
        Assert.False(invoice.Final);
        Assert.Equal(9.0075m, invoice.TotalDueUsd); // the ledger rows it can see (the test wrote later ones too)
        Assert.Equal(Tollgate.Billing.IssueError.Invalid, future.Error);
    }

    [Theory]
    [InlineData("""{"month":"2026-13"}""", HttpStatusCode.BadRequest)]
    [InlineData("""{"month":"November"}""", HttpStatusCode.BadRequest)]
    [InlineData("""{"month":"2999-01"}""", HttpStatusCode.BadRequest)]
    [InlineData("""{}""", HttpStatusCode.BadRequest)]
    [InlineData("""not json""", HttpStatusCode.BadRequest)]
    [InlineData("""{"month":"2026-10","tenant":"ten_nobody"}""", HttpStatusCode.NotFound)]
    public async Task Issue_BadRequests_ClearProblemNever500(string body, HttpStatusCode expected)
    {
        using var content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        using var response = await _rig.Gateway.Admin.PostAsync("admin/invoices/issue", content, Ct);
        var problem = JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!;

        Assert.Equal(expected, response.StatusCode);
        Assert.False(string.IsNullOrEmpty((string?)problem["detail"]));
    }

    [Fact]
    public async Task GetInvoice_UnknownId_404()
    {
        using var response = await _rig.Gateway.Admin.GetAsync("admin/invoices/inv_2026-10_nobody_1", Ct);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    private async Task<string> GetTextAsync(string path)
    {
        using var response = await _rig.Gateway.Admin.GetAsync(path, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync(Ct);
    }
}
