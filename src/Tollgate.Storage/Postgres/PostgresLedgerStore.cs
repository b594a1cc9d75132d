using System.Text;
using Npgsql;
using NpgsqlTypes;
using Tollgate.Metering;

namespace Tollgate.Storage.Postgres;

/// <summary>
/// The usage ledger in the shared database. Every instance appends its own batches; a batch is one binary
/// <c>COPY</c>, which PostgreSQL commits as a whole (and, with the server's default <c>synchronous_commit</c>,
/// flushes to its WAL before the commit returns), so a row is durable before the request it meters is answered.
/// </summary>
public sealed class PostgresLedgerStore(PostgresDatabase database) : ILedgerStore
{
    private const string Copy = """
        COPY ledger (request_id, ts_ms, tenant_id, key_id, model, route, provider, deployment, attempts,
            input_uncached, input_cached, cache_write_5m, cache_write_1h, output_text, output_reasoning,
            usage_source, cost_pusd, price_pusd, first_byte_ms, total_ms, status, error_code,
            task, baseline_pusd, attempt_kind, escalations, provider_reported_cost_pusd) FROM STDIN (FORMAT BINARY)
        """;

    /// <summary>UTC day of a row, <c>yyyy-MM-dd</c>: plain timestamp arithmetic, so the session's time zone plays no part.</summary>
    internal const string Day = "to_char(timestamp 'epoch' + ts_ms * interval '1 millisecond', 'YYYY-MM-DD')";

    public async Task AppendAsync(IReadOnlyList<LedgerEntry> entries, CancellationToken cancellationToken)
    {
        if (entries.Count == 0)
        {
            return;
        }

        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var import = await connection.BeginBinaryImportAsync(Copy, CancellationToken.None).ConfigureAwait(false);
        foreach (var e in entries)
        {
            await import.StartRowAsync(CancellationToken.None).ConfigureAwait(false);
            await import.WriteAsync(e.RequestId, NpgsqlDbType.Text, CancellationToken.None).ConfigureAwait(false);
            await import.WriteAsync(e.TimestampMs, NpgsqlDbType.Bigint, CancellationToken.None).ConfigureAwait(false);
            await import.WriteAsync(e.TenantId, NpgsqlDbType.Text, CancellationToken.None).ConfigureAwait(false);
            await import.WriteAsync(e.KeyId, NpgsqlDbType.Text, CancellationToken.None).ConfigureAwait(false);
            await import.WriteAsync(e.Model, NpgsqlDbType.Text, CancellationToken.None).ConfigureAwait(false);
            await WriteTextAsync(import, e.Route, CancellationToken.None).ConfigureAwait(false);
            await WriteTextAsync(import, e.Provider, CancellationToken.None).ConfigureAwait(false);
            await WriteTextAsync(import, e.Deployment, CancellationToken.None).ConfigureAwait(false);
            await import.WriteAsync(e.Attempts, NpgsqlDbType.Integer, CancellationToken.None).ConfigureAwait(false);
            await import.WriteAsync(e.Usage.InputUncached, NpgsqlDbType.Bigint, CancellationToken.None).ConfigureAwait(false);
            await import.WriteAsync(e.Usage.InputCached, NpgsqlDbType.Bigint, CancellationToken.None).ConfigureAwait(false);
            await import.WriteAsync(e.Usage.CacheWrite5m, NpgsqlDbType.Bigint, CancellationToken.None).ConfigureAwait(false);
            await import.WriteAsync(e.Usage.CacheWrite1h, NpgsqlDbType.Bigint, CancellationToken.None).ConfigureAwait(false);
            await import.WriteAsync(e.Usage.OutputText, NpgsqlDbType.Bigint, CancellationToken.None).ConfigureAwait(false);
            await import.WriteAsync(e.Usage.OutputReasoning, NpgsqlDbType.Bigint, CancellationToken.None).ConfigureAwait(false);
            await WriteTextAsync(import, e.UsageSource switch { UsageSource.Reported => "reported", UsageSource.Estimated => "estimated", _ => null }, CancellationToken.None).ConfigureAwait(false);
            await WriteBigintAsync(import, e.CostPicoUsd, CancellationToken.None).ConfigureAwait(false);
            await import.WriteAsync(e.PricePicoUsd, NpgsqlDbType.Bigint, CancellationToken.None).ConfigureAwait(false);
            await WriteBigintAsync(import, e.FirstByteMs, CancellationToken.None).ConfigureAwait(false);
            await import.WriteAsync(e.TotalMs, NpgsqlDbType.Bigint, CancellationToken.None).ConfigureAwait(false);
            await import.WriteAsync(e.Status, NpgsqlDbType.Integer, CancellationToken.None).ConfigureAwait(false);
            await WriteTextAsync(import, e.ErrorCode, CancellationToken.None).ConfigureAwait(false);
            await WriteTextAsync(import, e.Task, CancellationToken.None).ConfigureAwait(false);
            await WriteBigintAsync(import, e.BaselineCostPicoUsd, CancellationToken.None).ConfigureAwait(false);
            await WriteTextAsync(import, e.AttemptKind switch { LedgerAttemptKind.Hedge => "hedge", LedgerAttemptKind.Escalated => "escalated", _ => null }, CancellationToken.None).ConfigureAwait(false);
            await import.WriteAsync(e.Escalations, NpgsqlDbType.Integer, CancellationToken.None).ConfigureAwait(false);
            await WriteBigintAsync(import, e.ProviderReportedCostPicoUsd, CancellationToken.None).ConfigureAwait(false);
        }

        await import.CompleteAsync(CancellationToken.None).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<UsageRow>> QueryAsync(UsageQuery query, CancellationToken cancellationToken)
    {
        var groups = new List<(UsageGrouping Flag, string Expression)>
        {
            (UsageGrouping.Day, Day),
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

        // bigint sums are numeric in PostgreSQL: exact at any size. Token sums are cast back to bigint.
        sql.Append("""
            count(*),
            count(*) FILTER (WHERE attempt_kind IS NULL AND (status < 200 OR status >= 300)),
            sum(input_uncached)::bigint, sum(input_cached)::bigint, sum(cache_write_5m + cache_write_1h)::bigint,
            sum(output_text)::bigint, sum(output_reasoning)::bigint,
            sum(cost_pusd),
            count(*) FILTER (WHERE cost_pusd IS NULL AND usage_source IS NOT NULL),
            sum(price_pusd),
            count(*) FILTER (WHERE attempt_kind IS NULL),
            count(*) FILTER (WHERE provider_reported_cost_pusd IS NOT NULL),
            sum(provider_reported_cost_pusd),
            sum(cost_pusd) FILTER (WHERE provider_reported_cost_pusd IS NOT NULL),
            count(*) FILTER (WHERE provider_reported_cost_pusd IS NOT NULL AND cost_pusd IS NULL)
            FROM ledger WHERE ts_ms >= $1 AND ts_ms < $2
            """);
        if (query.TenantId is not null)
        {
            sql.Append(" AND tenant_id = $3");
        }

        if (groups.Count > 0)
        {
            // Byte order, as the embedded database sorts, whatever collation the server's database was made with.
            sql.Append(" GROUP BY ").Append(string.Join(", ", Enumerable.Range(1, groups.Count)))
                .Append(" ORDER BY ").Append(string.Join(", ", groups.Select(g => g.Expression + " COLLATE \"C\"")));
        }

        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand(sql.ToString(), connection);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = query.From.ToUnixTimeMilliseconds() });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = query.To.ToUnixTimeMilliseconds() });
        if (query.TenantId is not null)
        {
            command.Parameters.Add(PostgresKeyStore.Text(query.TenantId));
        }

        var rows = new List<UsageRow>();
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
        while (await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            var n = groups.Count;

            // An aggregate without GROUP BY returns one row even when nothing matched.
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
            reported.Add(reader.GetInt64(n + 11), Usd(reader, n + 12) ?? 0m, reader.GetInt64(n + 14) > 0 ? null : Usd(reader, n + 13) ?? 0m);
            rows.Add(new UsageRow
            {
                Day = Group(UsageGrouping.Day),
                Tenant = Group(UsageGrouping.Tenant),
                Key = Group(UsageGrouping.Key),
                Model = Group(UsageGrouping.Model),
                Provider = Group(UsageGrouping.Provider),
                Requests = reader.GetInt64(n + 10),
                Errors = reader.GetInt64(n + 1),
                InputTokens = Long(reader, n + 2),
                CachedInputTokens = Long(reader, n + 3),
                CacheWriteTokens = Long(reader, n + 4),
                OutputTokens = Long(reader, n + 5),
                ReasoningTokens = Long(reader, n + 6),
                CostUsd = Usd(reader, n + 7) ?? 0m,
                UnknownCostRequests = reader.GetInt64(n + 8),
                PriceUsd = Usd(reader, n + 9) ?? 0m,
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
        await using var command = new NpgsqlCommand("""
            SELECT tenant_id, key_id,
                   coalesce(sum(input_uncached + input_cached + cache_write_5m + cache_write_1h + output_text + output_reasoning)
                            FILTER (WHERE attempt_kind IS NULL), 0)::bigint,
                   sum(cost_pusd)
            FROM ledger WHERE ts_ms >= $1 GROUP BY tenant_id, key_id
            """, connection);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = monthStart.ToUnixTimeMilliseconds() });
        var totals = new List<KeyMonthTotals>();
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
        while (await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            totals.Add(new KeyMonthTotals(reader.GetString(0), reader.GetString(1), reader.GetInt64(2), Usd(reader, 3) ?? 0m));
        }

        return totals;
    }

    /// <summary>A picodollar sum (numeric) in exact USD; null when every summed value was null.</summary>
    internal static decimal? Usd(NpgsqlDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : Money.PicoSumToUsd(reader.GetDecimal(ordinal));

    private static long Long(NpgsqlDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? 0 : reader.GetInt64(ordinal);

    private static Task WriteTextAsync(NpgsqlBinaryImporter import, string? value, CancellationToken cancellationToken) =>
        value is null ? import.WriteNullAsync(CancellationToken.None) : import.WriteAsync(value, NpgsqlDbType.Text, CancellationToken.None);

    private static Task WriteBigintAsync(NpgsqlBinaryImporter import, long? value, CancellationToken cancellationToken) =>
        value is { } v ? import.WriteAsync(v, NpgsqlDbType.Bigint, CancellationToken.None) : import.WriteNullAsync(CancellationToken.None);
}
