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
    public async Task Invoice_OneTenantMonthPast9Point2MillionUsd_IssuedListedAndReadBackExact()
    {
        await using var rig = await StartAsync(Ct);
        var tenant = await rig.CreateTenantAsync("Huge", "starter", Ct);
        await rig.AppendAsync(
            Ct,
            Row(tenant, "kA", "gpt-4o", "d0", "2026-10-05T10:00:00Z", 1000, 500, Cost, price: Cost),
            Row(tenant, "kA", "gpt-4o", "d0", "2026-10-06T10:00:00Z", 1000, 500, Cost, price: Cost),
            Row(tenant, "kA", "gpt-4o", "d0", "2026-10-07T10:00:00Z", 1000, 500, Cost, price: Cost));
        const decimal Due = 12_000_009.000000000003m; // the $9 plan fee plus 12 million of overage: past 2⁶³ picodollars

        using var issued = await rig.Gateway.Admin.PostAsJsonAsync("admin/invoices/issue", new { month = "2026-10", tenant }, Ct);
        var body = JsonNode.Parse(await issued.Content.ReadAsStringAsync(Ct))!;
        Assert.Equal(HttpStatusCode.Created, issued.StatusCode);
        var id = (string)body["invoices"]![0]!["id"]!;
        Assert.Equal(Due, (decimal)body["invoices"]![0]!["totalDueUsd"]!);

        var listed = await rig.GetJsonAsync(rig.Gateway.Admin, $"admin/invoices?month=2026-10&tenant={tenant}", Ct);
        Assert.Equal(Due, (decimal)Assert.Single(listed["invoices"]!.AsArray())!["totalDueUsd"]!);
        var read = await rig.GetJsonAsync(rig.Gateway.Admin, $"admin/invoices/{id}", Ct);
        Assert.Equal(Due, (decimal)read["totalDueUsd"]!);
    }

    [Fact]
    public async Task Migration5_InvoicesIssuedBefore_KeepTheirTotalsExactlyAndStayImmutable()
    {
        var database = new SqliteDatabase(Directory.CreateTempSubdirectory("tollgate-migrate-").FullName);
        await database.MigrateAsync(Ct);
        await using (var connection = await database.OpenAsync(Ct))
        {
            // Put the invoices table back as version 4 shipped it, with rows, and forget migration 5.
            await using var downgrade = connection.CreateCommand();
            downgrade.CommandText = """
                DROP TABLE invoices;
                CREATE TABLE invoices (
                    id              TEXT PRIMARY KEY,
                    tenant_id       TEXT NOT NULL,
                    month           TEXT NOT NULL,
                    version         INTEGER NOT NULL,
                    issued_at       TEXT NOT NULL,
                    total_due_pusd  INTEGER NOT NULL,
                    document        TEXT NOT NULL,
                    UNIQUE (tenant_id, month, version)
                );
                CREATE INDEX invoices_month ON invoices (month, tenant_id);
                CREATE TRIGGER invoices_immutable BEFORE UPDATE ON invoices
                    BEGIN SELECT RAISE(ABORT, 'issued invoices are immutable; re-issue makes a new version'); END;
                CREATE TRIGGER invoices_kept BEFORE DELETE ON invoices
                    BEGIN SELECT RAISE(ABORT, 'issued invoices are kept; re-issue makes a new version'); END;
                INSERT INTO invoices VALUES ('inv_2026-09_t1_1', 't1', '2026-09', 1, '2026-10-01T00:00:00.0000000+00:00', 9223372036854775807, '{"a":1}');
                INSERT INTO invoices VALUES ('inv_2026-09_t2_1', 't2', '2026-09', 1, '2026-10-01T00:00:00.0000000+00:00', 9000000000001, '{"b":2}');
                INSERT INTO invoices VALUES ('inv_2026-09_t3_1', 't3', '2026-09', 1, '2026-10-01T00:00:00.0000000+00:00', 0, '{"c":3}');
                DELETE FROM schema_migrations WHERE version = 5;
                """;
            await downgrade.ExecuteNonQueryAsync(Ct);
        }

        await database.MigrateAsync(Ct);

        var store = new SqliteBillingStore(database);
        var invoices = await store.ListInvoicesAsync(null, "2026-09", Ct);
        Assert.Equal([9_223_372.036854775807m, 9.000000000001m, 0m], invoices.Select(i => i.TotalDueUsd));
        Assert.Equal(["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"], invoices.Select(i => i.Document));
        await using (var connection = await database.OpenAsync(Ct))
        {
            await using var change = connection.CreateCommand();
            change.CommandText = "UPDATE invoices SET document = '{}' WHERE id = 'inv_2026-09_t1_1'";
            Assert.Contains("immutable", (await Assert.ThrowsAsync<Microsoft.Data.Sqlite.SqliteException>(() => change.ExecuteNonQueryAsync(Ct))).Message, StringComparison.Ordinal);
            change.CommandText = "DELETE FROM invoices";
            Assert.Contains("kept", (await Assert.ThrowsAsync<Microsoft.Data.Sqlite.SqliteException>(() => change.ExecuteNonQueryAsync(Ct))).Message, StringComparison.Ordinal);
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
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
