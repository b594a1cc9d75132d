using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Tollgate.Storage.Sqlite;
using Tollgate.Tests.Infrastructure;
using static Tollgate.Tests.Billing.BillingRig;

namespace Tollgate.Tests.Billing;

/// <summary>
/// Totals past USD 9.2 million, where a 64-bit sum of picodollars ends. Every row carries one extra picodollar,
/// so a total that went through floating point, or was rounded anywhere, would lose it.
/// </summary>
public sealed class LargeAmountTests
{
    private const decimal Cost = 4_000_000.000000000001m;
    private const decimal Price = 2_500_000.000000000001m;
    private const decimal Baseline = 5_000_000.000000000001m;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ReportsAndInvoice_TotalsPast9Point2MillionUsd_ExactToThePicodollar()
    {
        await using var rig = await StartAsync(Ct);
        var tenant = await rig.CreateTenantAsync("Big", "starter", Ct);
        await rig.AppendAsync(
            Ct,
            Row(tenant, "kA", "gpt-4o", "d0", "2026-10-05T10:00:00Z", 1000, 500, Cost, price: Price, baseline: Baseline),
            Row(tenant, "kA", "gpt-4o", "d0", "2026-10-06T10:00:00Z", 1000, 500, Cost, price: Price, baseline: Baseline),
            Row(tenant, "kB", "gpt-4o", "d1", "2026-10-07T10:00:00Z", 1000, 500, Cost, price: Price, baseline: Baseline));

        // SQLite's sum() of these cost_pusd values would fail the query: 12 × 10¹⁸ > 2⁶³ − 1.
        var usage = (await rig.GetJsonAsync(rig.Gateway.Admin, "admin/usage?from=2026-10-01&to=2026-10-31", Ct))["totals"]!;
        Assert.Equal(12_000_000.000000000003m, (decimal)usage["costUsd"]!);
        Assert.Equal(7_500_000.000000000003m, (decimal)usage["priceUsd"]!);

        var report = await rig.GetJsonAsync(rig.Gateway.Admin, "admin/reports/usage?from=2026-10-01&to=2026-10-31&groupBy=key", Ct);
        Assert.Equal([8_000_000.000000000002m, 4_000_000.000000000001m], report["rows"]!.AsArray().Select(r => (decimal)r!["costUsd"]!));
        Assert.Equal(12_000_000.000000000003m, (decimal)report["totals"]!["costUsd"]!);
        Assert.Equal(-4_500_000m, (decimal)report["totals"]!["marginUsd"]!);

        var savings = (await rig.GetJsonAsync(rig.Gateway.Admin, "admin/reports/savings?from=2026-10-01&to=2026-10-31", Ct))["totals"]!;
        Assert.Equal(15_000_000.000000000003m, (decimal)savings["baselineCostUsd"]!);
        Assert.Equal(3_000_000m, (decimal)savings["savedUsd"]!);

        using var issued = await rig.Gateway.Admin.PostAsJsonAsync("admin/invoices/issue", new { month = "2026-10", tenant }, Ct);
        var body = JsonNode.Parse(await issued.Content.ReadAsStringAsync(Ct))!;
        Assert.Equal(HttpStatusCode.Created, issued.StatusCode);
        var invoice = body["invoices"]![0]!;
        Assert.Equal(7_500_009.000000000003m, (decimal)invoice["totalDueUsd"]!); // the $9 plan fee plus the overage charged
        Assert.Equal(12_000_000.000000000003m, (decimal)invoice["providerCostUsd"]!);
    }

    [Fact]
    public async Task MonthToDate_Past9Point2MillionUsd_SeededExactlyFromTheLedgerAtStart()
    {
        var dataDirectory = Directory.CreateTempSubdirectory("tollgate-test-").FullName;
        var database = new SqliteDatabase(dataDirectory);
        await database.MigrateAsync(Ct);
        await using (var ledger = new SqliteLedgerStore(database))
        {
            await ledger.AppendAsync(
                [
                    Row("default", "kOld", "gpt-4o", "d0", "2026-10-02T10:00:00Z", 1000, 500, Cost),
                    Row("default", "kOld", "gpt-4o", "d0", "2026-10-03T10:00:00Z", 1000, 500, Cost),
                    Row("default", "kOld", "gpt-4o", "d0", "2026-10-04T10:00:00Z", 1000, 500, Cost),
                    Row("default", "kOld", "gpt-4o", "d0", "2026-09-30T23:59:59Z", 1000, 500, Cost), // last month
                ],
                Ct);
        }

        var config = new JsonObject
        {
            ["providers"] = new JsonObject { ["p0"] = Configs.Provider(new Uri("http://127.0.0.1:9/v1")) },
            ["models"] = new JsonObject { ["d0"] = Configs.Model("p0", "upstream-0", 1, 2) },
        };
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-10-15T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        await using var gateway = await TestGateway.StartAsync(config, time: time, dataDirectory: dataDirectory, cancellationToken: Ct);

        var limits = (await gateway.Client.GetFromJsonAsync<JsonObject>("v1/usage", Ct))!["limits"]!;

        Assert.Equal(12_000_000.000000000003m, (decimal)limits["tenantMonthCostUsd"]!);
        Assert.Equal(4500L, (long)limits["tenantMonthTokens"]!);
    }
}
