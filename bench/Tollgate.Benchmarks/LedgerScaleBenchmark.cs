using System.Diagnostics;
using System.Globalization;
using Tollgate.Metering;
using Tollgate.Storage.Sqlite;

namespace Tollgate.Benchmarks;

/// <summary>
/// Fills a fresh SQLite ledger with millions of rows spread over three months, 200 tenants, 1,000 keys and
/// 12 models, then times the reports the gateway serves: one tenant's month by day and model (what
/// <c>GET /v1/usage</c> and an invoice read), all tenants' month by tenant, and the month-to-date totals
/// the limiter loads at start. Wall-clock numbers of one machine: see docs/performance.md.
/// </summary>
public static class LedgerScaleBenchmark
{
    private const int Tenants = 200;
    private const int KeysPerTenant = 5;
    private const int Batch = 10_000;

    private static readonly string[] Models = ["gpt-4o", "gpt-4o-mini", "deepseek-chat", "claude-haiku-4-5", "claude-sonnet-4-5", "gemini-2.5-flash",
        "gemini-2.5-pro", "llama-3.3-70b", "gpt-4.1", "gpt-4.1-mini", "deepseek-reasoner", "llama3.2"];

    private static readonly string[] Providers = ["openai", "deepseek", "anthropic", "gemini", "groq"];

    public static async Task RunAsync(int rows, TextWriter output)
    {
        var directory = Directory.CreateTempSubdirectory("tollgate-ledger-bench-").FullName;
        try
        {
            var database = new SqliteDatabase(directory);
            await database.MigrateAsync(CancellationToken.None);
            await using var store = new SqliteLedgerStore(database);

            var start = new DateTimeOffset(2026, 9, 1, 0, 0, 0, TimeSpan.Zero);
            var span = new DateTimeOffset(2026, 12, 1, 0, 0, 0, TimeSpan.Zero) - start;
            var random = new Random(42);
            var insert = Stopwatch.StartNew();
            var batch = new List<LedgerEntry>(Batch);
            for (var i = 0; i < rows; i++)
            {
                // Rows arrive in time order, as the gateway writes them.
                var ts = start + (span * ((double)i / rows));
                var tenant = random.Next(Tenants);
                var model = random.Next(Models.Length);
                var input = random.Next(50, 4_000);
                var outputTokens = random.Next(1, 800);
                batch.Add(new LedgerEntry
                {
                    RequestId = "req_" + i.ToString("x12", CultureInfo.InvariantCulture),
                    TimestampMs = ts.ToUnixTimeMilliseconds(),
                    TenantId = "tenant-" + tenant.ToString("000", CultureInfo.InvariantCulture),
                    KeyId = "key_" + tenant.ToString("000", CultureInfo.InvariantCulture) + "_" + random.Next(KeysPerTenant).ToString(CultureInfo.InvariantCulture),
                    Model = Models[model],
                    Route = Models[model],
                    Provider = Providers[model % Providers.Length],
                    Deployment = Providers[model % Providers.Length] + "/" + Models[model],
                    Attempts = 1,
                    Usage = new UsageBuckets(input, random.Next(2) == 0 ? 0 : input / 2, 0, 0, outputTokens, 0),
                    UsageSource = UsageSource.Reported,
                    CostPicoUsd = (input * 2_500_000L) + (outputTokens * 10_000_000L),
                    PricePicoUsd = (input + outputTokens) * 5_000_000L,
                    FirstByteMs = random.Next(80, 900),
                    TotalMs = random.Next(200, 9_000),
                    Status = random.Next(100) == 0 ? 502 : 200,
                    ErrorCode = null,
                });
                if (batch.Count == Batch)
                {
                    await store.AppendAsync(batch, CancellationToken.None);
                    batch.Clear();
                }
            }

            await store.AppendAsync(batch, CancellationToken.None);
            insert.Stop();
            var size = new DirectoryInfo(directory).EnumerateFiles().Sum(f => f.Length);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"inserted {rows:N0} rows in {insert.Elapsed.TotalSeconds:F1} s ({rows / insert.Elapsed.TotalSeconds:N0} rows/s, batches of {Batch:N0}); database {size / 1024.0 / 1024.0:F0} MB"));

            var november = new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);
            var december = november.AddMonths(1);
            await TimeAsync(output, "one tenant, November, by day and model", () =>
                store.QueryAsync(new UsageQuery(november, december, "tenant-042", UsageGrouping.Day | UsageGrouping.Model), CancellationToken.None));
            await TimeAsync(output, "one tenant, November, total", () =>
                store.QueryAsync(new UsageQuery(november, december, "tenant-042", UsageGrouping.None), CancellationToken.None));
            await TimeAsync(output, "all tenants, November, by tenant", () =>
                store.QueryAsync(new UsageQuery(november, december, null, UsageGrouping.Tenant), CancellationToken.None));
            await TimeAsync(output, "month-to-date totals per key (start-up)", () =>
                store.MonthTotalsAsync(november, CancellationToken.None));
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(directory, recursive: true);
        }
    }

    private static async Task TimeAsync<T>(TextWriter output, string name, Func<Task<IReadOnlyList<T>>> query)
    {
        var cold = Stopwatch.StartNew();
        var result = await query();
        cold.Stop();
        var warm = new List<double>();
        for (var i = 0; i < 5; i++)
        {
            var watch = Stopwatch.StartNew();
            await query();
            warm.Add(watch.Elapsed.TotalMilliseconds);
        }

        warm.Sort();
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{name}: {result.Count} rows; first {cold.Elapsed.TotalMilliseconds:F1} ms, median of 5 after {warm[2]:F1} ms"));
    }
}
