using System.Globalization;
using System.Text;
using Microsoft.Data.Sqlite;
using Tollgate.Billing;
using Tollgate.Metering;

namespace Tollgate.Storage.Sqlite;

/// <summary>
/// Report reads of the ledger and the write-once <c>invoices</c> table. Reads open their own connection, so they
/// never wait behind the ledger writer's batches longer than one commit (WAL readers do not block writers).
/// </summary>
public sealed class SqliteBillingStore(SqliteDatabase database) : IBillingStore
{
    private const string InvoiceColumns = "id, tenant_id, month, version, issued_at, total_due_usd, document";

    public async Task<IReadOnlyList<LedgerFact>> FactsAsync(DateTimeOffset start, DateTimeOffset until, string? tenantId, CancellationToken cancellationToken)
    {
        var sql = new StringBuilder($"""
            SELECT strftime('%Y-%m-%d', ts_ms / 1000, 'unixepoch'), tenant_id, key_id, model, coalesce(provider, ''), coalesce(deployment, ''), status,
                   attempt_kind IS NULL, usage_source IS NOT NULL, cost_pusd IS NOT NULL, baseline_pusd IS NOT NULL,
                   count(*), sum(attempts > 1), sum(escalations),
                   sum(input_uncached), sum(input_cached), sum(cache_write_5m), sum(cache_write_1h), sum(output_text), sum(output_reasoning),
                   {PicoSums.Sql("cost_pusd")}, {PicoSums.Sql("price_pusd")}, {PicoSums.Sql("baseline_pusd")},
                   provider_reported_cost_pusd IS NOT NULL, {PicoSums.Sql("provider_reported_cost_pusd")}
            FROM ledger WHERE ts_ms >= $from AND ts_ms < $to
            """);
        if (tenantId is not null)
        {
            sql.Append(" AND tenant_id = $tenant");
        }

        // Column 27, whether the provider reported its cost, is a fact key like the other "is known" flags; it was added
        // after the sums, so it is grouped by position out of order.
        sql.Append(" GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 27");
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = sql.ToString();
        command.Parameters.AddWithValue("$from", start.ToUnixTimeMilliseconds());
        command.Parameters.AddWithValue("$to", until.ToUnixTimeMilliseconds());
        if (tenantId is not null)
        {
            command.Parameters.AddWithValue("$tenant", tenantId);
        }

        var facts = new List<LedgerFact>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
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
                IsRequest = reader.GetInt64(7) != 0,
                HasUsage = reader.GetInt64(8) != 0,
                CostKnown = reader.GetInt64(9) != 0,
                BaselineKnown = reader.GetInt64(10) != 0,
                Rows = reader.GetInt64(11),
                Failovers = reader.GetInt64(12),
                Escalations = reader.GetInt64(13),
                Usage = new UsageBuckets(reader.GetInt64(14), reader.GetInt64(15), reader.GetInt64(16), reader.GetInt64(17), reader.GetInt64(18), reader.GetInt64(19)),
                CostUsd = PicoSums.Read(reader, 20) ?? 0m,
                PriceUsd = PicoSums.Read(reader, 22) ?? 0m,
                BaselineUsd = PicoSums.Read(reader, 24) ?? 0m,
                ProviderCostReported = reader.GetInt64(26) != 0,
                ProviderReportedCostUsd = PicoSums.Read(reader, 27) ?? 0m,
            });
        }

        return facts;
    }

    public async Task<IReadOnlyList<InvoiceModelUsage>> InvoiceUsageAsync(string tenantId, DateTimeOffset monthStart, DateTimeOffset monthEnd, long includedTokens, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();

        // "running" is the billable tokens up to and including a row, in ledger order; a billable row's overage is
        // the part of its tokens past the included ones: running − max(running − tokens, included), at least 0.
        command.CommandText = $"""
            WITH rows AS (
                SELECT model, attempt_kind IS NULL AS is_request, (attempt_kind IS NULL OR price_pusd > 0) AS billable,
                       input_uncached + input_cached + cache_write_5m + cache_write_1h + output_text + output_reasoning AS tokens,
                       price_pusd, cost_pusd, usage_source, ts_ms, seq
                FROM ledger WHERE tenant_id = $tenant AND ts_ms >= $from AND ts_ms < $to),
            running AS (
                SELECT *, sum(CASE WHEN billable THEN tokens ELSE 0 END) OVER (ORDER BY ts_ms, seq ROWS UNBOUNDED PRECEDING) AS total
                FROM rows)
            SELECT model, sum(is_request),
                   sum(CASE WHEN billable THEN tokens ELSE 0 END),
                   sum(CASE WHEN billable THEN max(0, total - max(total - tokens, $included)) ELSE 0 END),
                   {PicoSums.Sql("price_pusd")}, {PicoSums.Sql("cost_pusd")}, sum(cost_pusd IS NULL AND usage_source IS NOT NULL)
            FROM running GROUP BY model ORDER BY model
            """;
        command.Parameters.AddWithValue("$tenant", tenantId);
        command.Parameters.AddWithValue("$from", monthStart.ToUnixTimeMilliseconds());
        command.Parameters.AddWithValue("$to", monthEnd.ToUnixTimeMilliseconds());
        command.Parameters.AddWithValue("$included", includedTokens);
        var lines = new List<InvoiceModelUsage>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            lines.Add(new InvoiceModelUsage(
                reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3),
                PicoSums.Read(reader, 4) ?? 0m, PicoSums.Read(reader, 6) ?? 0m, reader.GetInt64(8)));
        }

        return lines;
    }

    public async Task<IReadOnlySet<string>> TenantsWithUsageAsync(DateTimeOffset start, DateTimeOffset until, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT DISTINCT tenant_id FROM ledger WHERE ts_ms >= $from AND ts_ms < $to";
        command.Parameters.AddWithValue("$from", start.ToUnixTimeMilliseconds());
        command.Parameters.AddWithValue("$to", until.ToUnixTimeMilliseconds());
        var ids = new HashSet<string>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            ids.Add(reader.GetString(0));
        }

        return ids;
    }

    public async Task<bool> TryAddInvoiceAsync(StoredInvoice invoice, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = $"INSERT OR IGNORE INTO invoices ({InvoiceColumns}) VALUES ($id, $tenant, $month, $version, $issued, $total, $document)";
        command.Parameters.AddWithValue("$id", invoice.Id);
        command.Parameters.AddWithValue("$tenant", invoice.TenantId);
        command.Parameters.AddWithValue("$month", invoice.Month);
        command.Parameters.AddWithValue("$version", invoice.Version);
        command.Parameters.AddWithValue("$issued", invoice.IssuedAt.ToString("O", CultureInfo.InvariantCulture));
        command.Parameters.AddWithValue("$total", invoice.TotalDueUsd.ToString(CultureInfo.InvariantCulture));
        command.Parameters.AddWithValue("$document", invoice.Document);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    public async Task<IReadOnlyList<StoredInvoice>> ListInvoicesAsync(string? tenantId, string? month, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = $"""
            SELECT {InvoiceColumns} FROM invoices
            WHERE ($tenant IS NULL OR tenant_id = $tenant) AND ($month IS NULL OR month = $month)
            ORDER BY month, tenant_id, version
            """;
        command.Parameters.AddWithValue("$tenant", (object?)tenantId ?? DBNull.Value);
        command.Parameters.AddWithValue("$month", (object?)month ?? DBNull.Value);
        var invoices = new List<StoredInvoice>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            invoices.Add(Read(reader));
        }

        return invoices;
    }

    public async Task<StoredInvoice?> GetInvoiceAsync(string id, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = $"SELECT {InvoiceColumns} FROM invoices WHERE id = $id";
        command.Parameters.AddWithValue("$id", id);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? Read(reader) : null;
    }

    private static StoredInvoice Read(SqliteDataReader reader) => new(
        reader.GetString(0),
        reader.GetString(1),
        reader.GetString(2),
        reader.GetInt32(3),
        DateTimeOffset.Parse(reader.GetString(4), CultureInfo.InvariantCulture),
        decimal.Parse(reader.GetString(5), NumberStyles.Number, CultureInfo.InvariantCulture),
        reader.GetString(6));
}
