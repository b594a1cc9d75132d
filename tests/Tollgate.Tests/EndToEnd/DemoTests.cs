using Microsoft.Data.Sqlite;
using Tollgate.Server.Cli;
using Tollgate.Tests.Tenancy;

namespace Tollgate.Tests.EndToEnd;

/// <summary><c>tollgate demo</c>: demo providers, real gateway, real traffic, the savings report and the dashboard address.</summary>
public sealed class DemoTests : IDisposable
{
    private readonly string _dataDirectory = Path.Combine(Path.GetTempPath(), "tollgate-demo-test-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        if (Directory.Exists(_dataDirectory))
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
    }

    [Fact]
    public async Task Demo_SendsMixedTrafficThroughTheGateway_AndPrintsTheSavingsReportAndDashboard()
    {
        var ct = TestContext.Current.CancellationToken;
        var output = new StringWriter();
        var error = new StringWriter();

        var exit = await TollgateCommandLine.InvokeAsync(
            ["demo", "--requests", "150", "--concurrency", "16", "--no-wait", "--urls", "http://127.0.0.1:0", "--data-dir", _dataDirectory], output, error);

        var text = output.ToString();
        Assert.True(exit == 0, text + error);
        Assert.Contains("every provider below is a DEMO provider", text, StringComparison.Ordinal);
        Assert.Matches(@"Saved %\s+\d+\.\d\d", text);
        Assert.Matches(@"Dashboard: http://127\.0\.0\.1:\d+/dashboard", text);
        Assert.Contains("Invoices for ", text, StringComparison.Ordinal);

        // Every request has its ledger row, every provider that served is a demo one, and three tenants were billed.
        var rows = await Tenants.QueryAsync(_dataDirectory, "SELECT count(*), count(DISTINCT tenant_id), sum(provider IS NOT NULL AND provider NOT LIKE 'demo-%') FROM ledger WHERE attempt_kind IS NULL", ct);
        Assert.Equal([150L, 3L, 0L], rows[0]);
        var invoices = await Tenants.QueryAsync(_dataDirectory, "SELECT count(*) FROM invoices", ct);
        Assert.Equal(3L, invoices[0][0]);
    }
}
