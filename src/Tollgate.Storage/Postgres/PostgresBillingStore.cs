using System.Text;
using Npgsql;
using NpgsqlTypes;
using Tollgate.Billing;
using Tollgate.Metering;

namespace Tollgate.Storage.Postgres;

/// <summary>Report reads of the shared ledger and the write-once <c>invoices</c> table (see <see cref="IBillingStore"/>).</summary>
public sealed class PostgresBillingStore(PostgresDatabase database) : IBillingStore
{
    private const string InvoiceColumns = "id, tenant_id, month, version, issued_at, total_due_usd, document";

    public async Task<IReadOnlyList<LedgerFact>> FactsAsync(DateTimeOffset start, DateTimeOffset until, string? tenantId, CancellationToken cancellationToken)
    {
        var sql = new StringBuilder($"""
            SELECT {PostgresLedgerStore.Day}, tenant_id, key_id, model, coalesce(provider, ''), coalesce(deployment, ''), status,
                   attempt_kind IS NULL, usage_source IS NOT NULL, cost_pusd IS NOT NULL, baseline_pusd IS NOT NULL,
                   count(*), count(*) FILTER (WHERE attempts > 1), sum(escalations)::bigint,
                   sum(input_uncached)::bigint, sum(input_cached)::bigint, sum(cache_write_5m)::bigint, sum(cache_write_1h)::bigint,
                   sum(output_text)::bigint, sum(output_reasoning)::bigint,
                   sum(cost_pusd), sum(price_pusd), sum(baseline_pusd),
                   provider_reported_cost_pusd IS NOT NULL, sum(provider_reported_cost_pusd)
            FROM ledger WHERE ts_ms >= $1 AND ts_ms < $2
            """);
        if (tenantId is not null)
        {
            sql.Append(" AND tenant_id = $3");
        }

        // Column 24, whether the provider reported its cost, is a fact key like the other "is known" flags; it was added
        // after the sums, so it is grouped by position out of order.
        sql.Append(" GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 24");
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand(sql.ToString(), connection);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = start.ToUnixTimeMilliseconds() });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = until.ToUnixTimeMilliseconds() });
        if (tenantId is not null)
        {
            command.Parameters.Add(PostgresKeyStore.Text(tenantId));
        }

        var facts = new List<LedgerFact>();
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
        while (await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            facts.Add(new LedgerFact
            {
                Day = reader.GetString(0),
                Tenant = reader.GetString(1),
                Key = reader.GetString(2),
                Model = reader.GetString(3),
                Provider = reader.GetString(4),
                Deployment = reader.GetString(5),
                Status = reader.GetInt32(6),
                IsRequest = reader.GetBoolean(7),
                HasUsage = reader.GetBoolean(8),
                CostKnown = reader.GetBoolean(9),
                BaselineKnown = reader.GetBoolean(10),
                Rows = reader.GetInt64(11),
                Failovers = reader.GetInt64(12),
                Escalations = reader.GetInt64(13),
                Usage = new UsageBuckets(reader.GetInt64(14), reader.GetInt64(15), reader.GetInt64(16), reader.GetInt64(17), reader.GetInt64(18), reader.GetInt64(19)),
                CostUsd = PostgresLedgerStore.Usd(reader, 20) ?? 0m,
                PriceUsd = PostgresLedgerStore.Usd(reader, 21) ?? 0m,
                BaselineUsd = PostgresLedgerStore.Usd(reader, 22) ?? 0m,
                ProviderCostReported = reader.GetBoolean(23),
                ProviderReportedCostUsd = PostgresLedgerStore.Usd(reader, 24) ?? 0m,
            });
        }

        return facts;
    }

    public async Task<IReadOnlyList<InvoiceModelUsage>> InvoiceUsageAsync(string tenantId, DateTimeOffset monthStart, DateTimeOffset monthEnd, long includedTokens, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);

        // "running" is the billable tokens up to and including a row, in ledger order; a billable row's overage is
        // the part of its tokens past the included ones: running − max(running − tokens, included), at least 0.
        // Rows from several instances interleave by time; seq (assigned at insert) breaks ties in one order for all.
        await using var command = new NpgsqlCommand("""
            WITH rows AS (
                SELECT model, attempt_kind IS NULL AS is_request, (attempt_kind IS NULL OR price_pusd > 0) AS billable,
                       input_uncached + input_cached + cache_write_5m + cache_write_1h + output_text + output_reasoning AS tokens,
                       price_pusd, cost_pusd, usage_source, ts_ms, seq
                FROM ledger WHERE tenant_id = $1 AND ts_ms >= $2 AND ts_ms < $3),
            running AS (
                SELECT *, sum(CASE WHEN billable THEN tokens ELSE 0 END) OVER (ORDER BY ts_ms, seq ROWS UNBOUNDED PRECEDING) AS total
                FROM rows)
            SELECT model, count(*) FILTER (WHERE is_request),
                   coalesce(sum(tokens) FILTER (WHERE billable), 0)::bigint,
                   coalesce(sum(greatest(0, total - greatest(total - tokens, $4))) FILTER (WHERE billable), 0)::bigint,
                   sum(price_pusd), sum(cost_pusd), count(*) FILTER (WHERE cost_pusd IS NULL AND usage_source IS NOT NULL)
            FROM running GROUP BY model ORDER BY model COLLATE "C"
            """, connection);
        command.Parameters.Add(PostgresKeyStore.Text(tenantId));
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = monthStart.ToUnixTimeMilliseconds() });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = monthEnd.ToUnixTimeMilliseconds() });
        command.Parameters.Add(new NpgsqlParameter<long> { NpgsqlDbType = NpgsqlDbType.Bigint, TypedValue = includedTokens });
        var lines = new List<InvoiceModelUsage>();
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
        while (await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            lines.Add(new InvoiceModelUsage(
                reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3),
                PostgresLedgerStore.Usd(reader, 4) ?? 0m, PostgresLedgerStore.Usd(reader, 5) ?? 0m, reader.GetInt64(6)));
        }

        return lines;
    }

    public async Task<IReadOnlySet<string>> TenantsWithUsageAsync(DateTimeOffset start, DateTimeOffset until, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("SELECT DISTINCT tenant_id FROM ledger WHERE ts_ms >= $1 AND ts_ms < $2", connection);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = start.ToUnixTimeMilliseconds() });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = until.ToUnixTimeMilliseconds() });
        var ids = new HashSet<string>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
        while (await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            ids.Add(reader.GetString(0));
        }

        return ids;
    }

    public async Task<bool> TryAddInvoiceAsync(StoredInvoice invoice, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);

        // No conflict target: a clash on the id or on (tenant, month, version) both mean "issued concurrently".
        await using var command = new NpgsqlCommand($"INSERT INTO invoices ({InvoiceColumns}) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING", connection);
        command.Parameters.Add(PostgresKeyStore.Text(invoice.Id));
        command.Parameters.Add(PostgresKeyStore.Text(invoice.TenantId));
        command.Parameters.Add(PostgresKeyStore.Text(invoice.Month));
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = invoice.Version });
        command.Parameters.Add(PostgresKeyStore.Time(invoice.IssuedAt));
        command.Parameters.Add(new NpgsqlParameter<decimal> { NpgsqlDbType = NpgsqlDbType.Numeric, TypedValue = invoice.TotalDueUsd });
        command.Parameters.Add(PostgresKeyStore.Text(invoice.Document));
        return await command.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false) == 1;
    }

    public async Task<IReadOnlyList<StoredInvoice>> ListInvoicesAsync(string? tenantId, string? month, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"""
            SELECT {InvoiceColumns} FROM invoices
            WHERE ($1::text IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR month = $2)
            ORDER BY month COLLATE "C", tenant_id COLLATE "C", version
            """, connection);
        command.Parameters.Add(PostgresKeyStore.Text(tenantId));
        command.Parameters.Add(PostgresKeyStore.Text(month));
        var invoices = new List<StoredInvoice>();
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
        while (await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            invoices.Add(Read(reader));
        }

        return invoices;
    }

    public async Task<StoredInvoice?> GetInvoiceAsync(string id, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"SELECT {InvoiceColumns} FROM invoices WHERE id = $1", connection);
        command.Parameters.Add(PostgresKeyStore.Text(id));
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
        return await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false) ? Read(reader) : null;
    }

    private static StoredInvoice Read(NpgsqlDataReader reader) => new(
        reader.GetString(0),
        reader.GetString(1),
        reader.GetString(2),
        reader.GetInt32(3),
        reader.GetFieldValue<DateTimeOffset>(4),
        reader.GetDecimal(5),
        reader.GetString(6));
}
