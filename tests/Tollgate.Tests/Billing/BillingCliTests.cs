using System.Text.Json.Nodes;
using Tollgate.Server.Cli;
using Tollgate.Storage.Sqlite;
using Tollgate.Tests.Infrastructure;
using static Tollgate.Tests.Billing.BillingRig;

namespace Tollgate.Tests.Billing;

/// <summary>
/// <c>tollgate report ...</c> and <c>tollgate invoices ...</c> on a database file with no server running: in process
/// through <see cref="TollgateCommandLine"/>, and <c>invoices issue</c> through the real executable.
/// </summary>
public sealed class BillingCliTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("tollgate-billing-cli-").FullName;
    private string _acme = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private string ConfigPath => Path.Combine(_directory, "tollgate.json");

    private string DataDirectory => Path.Combine(_directory, "data");

    public async ValueTask InitializeAsync()
    {
        var unused = new Uri("http://127.0.0.1:9/v1");
        var config = new JsonObject
        {
            ["useDefaults"] = false,
            ["providers"] = new JsonObject { ["p0"] = Configs.Provider(unused, "P0_KEY"), ["p1"] = Configs.Provider(unused, "P1_KEY") },
            ["models"] = new JsonObject { ["d0"] = Configs.Model("p0", "m0", 1m, 2m), ["d1"] = Configs.Model("p1", "m1", 2m, 4m) },
            ["routes"] = new JsonObject { ["gpt-4o"] = Configs.Route("cheapest", "d0", "d1") },
            ["plans"] = JsonNode.Parse("""{ "starter": { "monthlyFeeUsd": 9, "includedTokens": 1000, "overagePer1KTokensUsd": 0.005 } }"""),
        };
        await File.WriteAllTextAsync(ConfigPath, config.ToJsonString(), Ct);

        var database = new SqliteDatabase(DataDirectory);
        await database.MigrateAsync(Ct);
        _acme = (await new SqliteTenantStore(database, TimeProvider.System).CreateAsync("acme", "starter", Ct)).Id;
        await using var ledger = new SqliteLedgerStore(database);
        await ledger.AppendAsync(
            [
                Row(_acme, "k", "gpt-4o", "d0", "2026-10-02T00:00:00Z", 1000, 0, 0.001m, baseline: 0.004m),
                Row(_acme, "k", "gpt-4o", "d0", "2026-10-03T00:00:00Z", 1000, 0, 0.001m, price: 0.005m, baseline: 0.004m),
                Row(_acme, "k", "cheap", "d1", "2026-10-04T00:00:00Z", 1000, 0, 0.002m, price: 0.005m, baseline: 0.002m),
            ],
            Ct);
    }

    public ValueTask DisposeAsync()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Left for the OS temp cleaner.
        }

        return ValueTask.CompletedTask;
    }

    private async Task<(int Exit, string Output, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await TollgateCommandLine.InvokeAsync([.. args, "--config", ConfigPath, "--data-dir", DataDirectory], output, error);
        return (exit, output.ToString(), error.ToString());
    }

    [Fact]
    public async Task ReportSavings_Json_RequestsPerProviderAndModelWithSharesCostsAndSaving()
    {
        var (exit, output, error) = await RunAsync("report", "savings", "--from", "2026-10-01", "--to", "2026-10-31", "--json");

        Assert.True(exit == 0, error);
        var summary = JsonNode.Parse(output)!;
        Assert.Equal(3L, (long)summary["requests"]!);
        var models = summary["models"]!.AsArray();
        Assert.Equal(["p0/gpt-4o/2/66.67/0.002", "p1/cheap/1/33.33/0.002"], models.Select(m => $"{m!["provider"]}/{m["model"]}/{m["requests"]}/{(decimal)m["sharePercent"]!}/{(decimal)m["costUsd"]!}"));
        Assert.Equal(["p0/0.002", "p1/0.002"], summary["providers"]!.AsArray().Select(p => $"{p!["provider"]}/{(decimal)p["costUsd"]!}"));
        Assert.Equal(0.004m, (decimal)summary["costUsd"]!);
        Assert.Equal(0.010m, (decimal)summary["baselineCostUsd"]!);
        Assert.Equal(0.006m, (decimal)summary["savedUsd"]!);
        Assert.Equal(60m, (decimal)summary["savedPercent"]!);
        Assert.Equal("route-max", (string)summary["baseline"]!);
    }

    [Fact]
    public async Task ReportSavings_Table_ShowsTotalsAndSaving()
    {
        var (exit, output, _) = await RunAsync("report", "savings", "--from", "2026-10-01", "--to", "2026-10-31", "--baseline", "d1");

        Assert.Equal(0, exit);
        var lines = output.Split('\n');
        Assert.Contains(lines, l => l.StartsWith("p0        gpt-4o", StringComparison.Ordinal) && l.EndsWith("66.67  0.002", StringComparison.Ordinal));
        Assert.Contains("Baseline cost  0.006", output, StringComparison.Ordinal); // 3000 input tokens at d1's $2/M
        Assert.Contains("Saved          0.002", output, StringComparison.Ordinal);
        Assert.Contains("Saved %        33.33", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReportUsage_CsvAndBadGroupBy()
    {
        var (exit, csv, _) = await RunAsync("report", "usage", "--from", "2026-10-01", "--to", "2026-10-31", "--group-by", "model", "--csv");
        var (badExit, _, error) = await RunAsync("report", "usage", "--group-by", "colour");

        Assert.Equal(0, exit);
        Assert.Equal(3, csv.TrimEnd('\n').Split('\n').Length);
        Assert.StartsWith("cheap,1,0,0,0,0,1000,", csv.Split('\n')[1], StringComparison.Ordinal);
        Assert.Equal(1, badExit);
        Assert.Contains("Unknown groupBy 'colour'", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReportUsage_Table_SetsAProviderReportedCostBesideOursOnlyOnceOneWasReported()
    {
        string[] args = ["report", "usage", "--from", "2026-10-01", "--to", "2026-10-31", "--group-by", "model"];
        var (exit, before, _) = await RunAsync(args);
        await using (var ledger = new SqliteLedgerStore(new SqliteDatabase(DataDirectory)))
        {
            await ledger.AppendAsync([Row(_acme, "k", "cheap", "d1", "2026-10-05T00:00:00Z", 1000, 0, 0.002m) with { ProviderReportedCostPicoUsd = 3_500_000_000 }], Ct);
        }

        var (afterExit, after, _) = await RunAsync(args);

        Assert.Equal((0, 0), (exit, afterExit));
        Assert.DoesNotContain("PROVIDER REPORTED", before, StringComparison.Ordinal);
        var lines = after.TrimEnd('\n').Split('\n');
        Assert.EndsWith("PROVIDER REPORTED  COST OF THOSE", lines[0], StringComparison.Ordinal);

        // cheap: the provider said 0.0035 where our prices say 0.002 for that row; gpt-4o: no provider said anything.
        Assert.Matches(@"^cheap\s.*\s0\.0035\s+0\.002$", lines[1]);
        Assert.Matches(@"^gpt-4o\s.*\s0\.003\s+$", lines[2]); // its margin, then two blank cells
        Assert.Matches(@"^TOTAL\s.*\s0\.0035\s+0\.002$", lines[3]);
    }

    [Fact]
    public async Task InvoicesIssue_RealExecutable_IssuesPrintsAndKeepsTheSnapshot()
    {
        string[] where = ["--config", ConfigPath, "--data-dir", DataDirectory];
        var id = $"inv_2026-10_{_acme}_1";

        var (exit, table) = await GatewayProcess.RunAsync(["invoices", "issue", "--month", "2026-10", .. where], Ct);
        var (againExit, again) = await GatewayProcess.RunAsync(["invoices", "issue", "--month", "2026-10", "--json", .. where], Ct);
        var (showExit, shown) = await GatewayProcess.RunAsync(["invoices", "show", id, .. where], Ct);

        Assert.True(exit == 0, table);
        Assert.Contains(id, table, StringComparison.Ordinal);
        Assert.Contains("1 issued, 0 already issued (unchanged) for 2026-10.", table, StringComparison.Ordinal);
        Assert.Equal(0, againExit);
        Assert.Equal(0L, (long)JsonNode.Parse(again)!["issued"]!);
        Assert.Equal(0, showExit);
        var invoice = JsonNode.Parse(shown)!;
        Assert.Equal(9.01m, (decimal)invoice["totalDueUsd"]!); // $9 + 2000 tokens over at $0.005/1K
        Assert.Equal(3000L, (long)invoice["tokensUsed"]!);
        Assert.Equal(2000L, (long)invoice["overageTokens"]!);
    }

    [Fact]
    public async Task InvoicesShowAndList_HtmlAndUnknownId()
    {
        await RunAsync("invoices", "issue", "--month", "2026-10");

        var (_, html, _) = await RunAsync("invoices", "show", $"inv_2026-10_{_acme}_1", "--html");
        var (_, list, _) = await RunAsync("invoices", "list", "--month", "2026-10", "--json");
        var (missingExit, _, missing) = await RunAsync("invoices", "show", "inv_nope");

        Assert.Contains("$9.01", html, StringComparison.Ordinal);
        Assert.Equal(9.01m, (decimal)JsonNode.Parse(list)!["invoices"]![0]!["totalDueUsd"]!);
        Assert.Equal(1, missingExit);
        Assert.Contains("inv_nope", missing, StringComparison.Ordinal);
    }
}
