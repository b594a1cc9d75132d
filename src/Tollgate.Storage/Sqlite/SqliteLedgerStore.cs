using System.Globalization;
using System.Text;
using Microsoft.Data.Sqlite;
using Tollgate.Metering;

namespace Tollgate.Storage.Sqlite;

/// <summary>
/// The usage ledger in the embedded database. Appends are batches in one transaction on one long-lived
/// connection. In WAL mode a committed batch survives a process kill either way; with
/// <paramref name="fsyncEveryCommit"/> (<c>storage.ledgerFsync</c>) each commit is also flushed to disk
/// (<c>synchronous = FULL</c>) so it survives a power cut, and grouping many requests per commit keeps
/// that flush off each request.
/// </summary>
public sealed class SqliteLedgerStore(SqliteDatabase database, bool fsyncEveryCommit = false) : ILedgerStore, IAsyncDisposable
{
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly WalCheckpointer _checkpoints = new(database);
    private SqliteConnection? _writer;
    private LedgerInsertStatement? _insert;
    private bool _disposed;

    public async Task AppendAsync(IReadOnlyList<LedgerEntry> entries, CancellationToken cancellationToken)
    {
        if (entries.Count == 0)
        {
            return;
        }

        await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_writer is null)
            {
                _writer = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
                using var pragma = _writer.CreateCommand();
                pragma.CommandText = fsyncEveryCommit ? "PRAGMA synchronous = FULL;" : "PRAGMA synchronous = NORMAL;";
                await pragma.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                await WalCheckpointer.DisableAutomaticAsync(_writer, cancellationToken).ConfigureAwait(false);
            }

            await using (var transaction = (SqliteTransaction)await _writer.BeginTransactionAsync(cancellationToken).ConfigureAwait(false))
            {
                // One prepared single-row INSERT, executed per row inside the batch's transaction. (A multi-row
                // VALUES statement was measured 4x slower: SQLite looks parameters up by name, linearly.)
                _insert ??= new LedgerInsertStatement(_writer);
                foreach (var entry in entries)
                {
                    _insert.Insert(entry);
                }

                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            }

            await _checkpoints.CommittedAsync(_writer).ConfigureAwait(false);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    public async Task<IReadOnlyList<UsageRow>> QueryAsync(UsageQuery query, CancellationToken cancellationToken)
    {
        var groups = new List<(UsageGrouping Flag, string Expression)>
        {
            (UsageGrouping.Day, "strftime('%Y-%m-%d', ts_ms / 1000, 'unixepoch')"),
            (UsageGrouping.Tenant, "tenant_id"),
            (UsageGrouping.Key, "key_id"),
            (UsageGrouping.Model, "model"),
            (UsageGrouping.Provider, "coalesce(provider, '')"),
        };
        groups.RemoveAll(g => (query.GroupBy & g.Flag) == 0);

        var sql = new StringBuilder("SELECT ");
        foreach (var (_, expression) in groups)
        {
            sql.Append(expression).Append(", ");
        }

        sql.Append($"""
            count(*),
            sum(attempt_kind IS NULL AND (status < 200 OR status >= 300)),
            sum(input_uncached), sum(input_cached), sum(cache_write_5m + cache_write_1h), sum(output_text), sum(output_reasoning),
            {PicoSums.Sql("cost_pusd")},
            sum(cost_pusd IS NULL AND usage_source IS NOT NULL),
            {PicoSums.Sql("price_pusd")},
            sum(attempt_kind IS NULL),
            sum(provider_reported_cost_pusd IS NOT NULL),
            {PicoSums.Sql("provider_reported_cost_pusd")},
            {PicoSums.Sql("CASE WHEN provider_reported_cost_pusd IS NOT NULL THEN cost_pusd END")},
            sum(provider_reported_cost_pusd IS NOT NULL AND cost_pusd IS NULL)
            FROM ledger WHERE ts_ms >= $from AND ts_ms < $to
            """);
        if (query.TenantId is not null)
        {
            sql.Append(" AND tenant_id = $tenant");
        }

        if (groups.Count > 0)
        {
            var positions = string.Join(", ", Enumerable.Range(1, groups.Count).Select(i => i.ToString(CultureInfo.InvariantCulture)));
            sql.Append(" GROUP BY ").Append(positions).Append(" ORDER BY ").Append(positions);
        }

        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = sql.ToString();
        command.Parameters.AddWithValue("$from", query.From.ToUnixTimeMilliseconds());
        command.Parameters.AddWithValue("$to", query.To.ToUnixTimeMilliseconds());
        if (query.TenantId is not null)
        {
            command.Parameters.AddWithValue("$tenant", query.TenantId);
        }

        var rows = new List<UsageRow>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var n = groups.Count;
            // An aggregate without GROUP BY returns one row even when nothing matched. Column n counts every
            // row, extra attempt rows included; n + 12 counts requests. The provider-reported columns come last.
            if (reader.GetInt64(n) == 0)
            {
                continue;
            }

            string? Group(UsageGrouping flag)
            {
                var index = groups.FindIndex(g => g.Flag == flag);
                return index < 0 ? null : reader.GetString(index);
            }

            var reported = default(ReportedCostTotals);
            reported.Add(
                Long(reader, n + 13),
                PicoSums.Read(reader, n + 14) ?? 0m,
                Long(reader, n + 18) > 0 ? null : PicoSums.Read(reader, n + 16) ?? 0m);
            rows.Add(new UsageRow
            {
                Day = Group(UsageGrouping.Day),
                Tenant = Group(UsageGrouping.Tenant),
                Key = Group(UsageGrouping.Key),
                Model = Group(UsageGrouping.Model),
                Provider = Group(UsageGrouping.Provider),
                Requests = Long(reader, n + 12),
                Errors = Long(reader, n + 1),
                InputTokens = Long(reader, n + 2),
                CachedInputTokens = Long(reader, n + 3),
                CacheWriteTokens = Long(reader, n + 4),
                OutputTokens = Long(reader, n + 5),
                ReasoningTokens = Long(reader, n + 6),
                CostUsd = PicoSums.Read(reader, n + 7) ?? 0m,
                UnknownCostRequests = Long(reader, n + 9),
                PriceUsd = PicoSums.Read(reader, n + 10) ?? 0m,
                ProviderReportedCostUsd = reported.ReportedUsd,
                ProviderReportedCostRequests = reported.Rows,
                CostUsdWhereProviderReported = reported.CostUsd,
            });
        }

        return rows;
    }

    public async Task<IReadOnlyList<KeyMonthTotals>> MonthTotalsAsync(DateTimeOffset monthStart, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = $"""
            SELECT tenant_id, key_id,
                   sum(CASE WHEN attempt_kind IS NULL THEN input_uncached + input_cached + cache_write_5m + cache_write_1h + output_text + output_reasoning ELSE 0 END),
                   {PicoSums.Sql("cost_pusd")}
            FROM ledger WHERE ts_ms >= $from GROUP BY tenant_id, key_id
            """;
        command.Parameters.AddWithValue("$from", monthStart.ToUnixTimeMilliseconds());
        var totals = new List<KeyMonthTotals>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            totals.Add(new KeyMonthTotals(reader.GetString(0), reader.GetString(1), reader.GetInt64(2), PicoSums.Read(reader, 3) ?? 0m));
        }

        return totals;
    }

    /// <summary>The writer's checkpoint schedule (tests look at its counters).</summary>
    internal WalCheckpointer Checkpoints => _checkpoints;

    public async ValueTask DisposeAsync()
    {
        // The host's container and GatewayStorage may both dispose the store.
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _insert?.Dispose();
        await _checkpoints.DrainAsync().ConfigureAwait(false);
        _checkpoints.Dispose();

        if (_writer is not null)
        {
            // The connection goes back to the pool: give it SQLite's own checkpoints again.
            await WalCheckpointer.RestoreAutomaticAsync(_writer).ConfigureAwait(false);
            await _writer.DisposeAsync().ConfigureAwait(false);
        }

        _writeGate.Dispose();
    }

    private static long Long(SqliteDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? 0 : reader.GetInt64(ordinal);
}
