using Microsoft.Data.Sqlite;
using SQLitePCL;
using Tollgate.Metering;

namespace Tollgate.Storage.Sqlite;

/// <summary>
/// The ledger's single-row INSERT, prepared once on the writer connection and bound by position through
/// SQLitePCL's raw API. <see cref="SqliteCommand"/> binds every parameter by name (SQLite looks each name up
/// in a list, one string compare per entry) and boxes every value; with 26 columns per row that was a few
/// microseconds of every request. It runs inside the transaction the caller began on the same connection.
/// </summary>
internal sealed class LedgerInsertStatement : IDisposable
{
    private const string Sql = """
        INSERT INTO ledger (request_id, ts_ms, tenant_id, key_id, model, route, provider, deployment, attempts,
            input_uncached, input_cached, cache_write_5m, cache_write_1h, output_text, output_reasoning,
            usage_source, cost_pusd, price_pusd, first_byte_ms, total_ms, status, error_code,
            task, baseline_pusd, attempt_kind, escalations, provider_reported_cost_pusd)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22,
            ?23, ?24, ?25, ?26, ?27)
        """;

    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _statement;

    public LedgerInsertStatement(SqliteConnection connection)
    {
        _db = connection.Handle ?? throw new InvalidOperationException("The ledger connection is not open.");
        SqliteException.ThrowExceptionForRC(raw.sqlite3_prepare_v2(_db, Sql, out _statement), _db);
    }

    public void Insert(LedgerEntry e)
    {
        Text(1, e.RequestId);
        Int(2, e.TimestampMs);
        Text(3, e.TenantId);
        Text(4, e.KeyId);
        Text(5, e.Model);
        Text(6, e.Route);
        Text(7, e.Provider);
        Text(8, e.Deployment);
        Int(9, e.Attempts);
        Int(10, e.Usage.InputUncached);
        Int(11, e.Usage.InputCached);
        Int(12, e.Usage.CacheWrite5m);
        Int(13, e.Usage.CacheWrite1h);
        Int(14, e.Usage.OutputText);
        Int(15, e.Usage.OutputReasoning);
        Text(16, e.UsageSource switch { UsageSource.Reported => "reported", UsageSource.Estimated => "estimated", _ => null });
        Int(17, e.CostPicoUsd);
        Int(18, e.PricePicoUsd);
        Int(19, e.FirstByteMs);
        Int(20, e.TotalMs);
        Int(21, e.Status);
        Text(22, e.ErrorCode);
        Text(23, e.Task);
        Int(24, e.BaselineCostPicoUsd);
        Text(25, e.AttemptKind switch { LedgerAttemptKind.Hedge => "hedge", LedgerAttemptKind.Escalated => "escalated", _ => null });
        Int(26, e.Escalations);
        Int(27, e.ProviderReportedCostPicoUsd);

        var rc = raw.sqlite3_step(_statement);
        raw.sqlite3_reset(_statement);
        if (rc != raw.SQLITE_DONE)
        {
            SqliteException.ThrowExceptionForRC(rc, _db);
        }
    }

    public void Dispose() => _statement.Dispose();

    private void Text(int index, string? value) =>
        Check(value is null ? raw.sqlite3_bind_null(_statement, index) : raw.sqlite3_bind_text(_statement, index, value));

    private void Int(int index, long? value) =>
        Check(value is { } v ? raw.sqlite3_bind_int64(_statement, index, v) : raw.sqlite3_bind_null(_statement, index));

    private void Check(int rc) => SqliteException.ThrowExceptionForRC(rc, _db);
}
