using Npgsql;
using NpgsqlTypes;
using Tollgate.Configuration;
using Tollgate.Keys;
using Tollgate.Metering;
using Tollgate.Tenancy;

namespace Tollgate.Storage.Postgres;

/// <summary>
/// Limits whose counters live in the shared database, so every instance checks against what all of them used and
/// hold. Each reserve, settle or release is one transaction under a per-tenant advisory lock: the check and the
/// reservation are one step across instances, and an overage price is computed from the tenant's exact usage
/// before the request. A caller without any limit (no plan, no limits on the key) touches nothing here.
/// </summary>
/// <remarks>
/// A request in flight is a row in <c>limit_holds</c>; one whose instance died stops counting after
/// <see cref="HoldLifetime"/>. Month rows are made from the ledger the first time a scope is limited in a month, and
/// the key and tenant stores delete them when the limits change, so they are made again from the ledger.
/// </remarks>
public sealed class PostgresUsageLimiter(PostgresDatabase database, TimeProvider time) : IUsageLimiter
{
    /// <summary>Longer than any request may run (attempts, hedges and a long stream); a hold older than this is a crashed instance's.</summary>
    public static readonly TimeSpan HoldLifetime = TimeSpan.FromMinutes(30);

    public Task InitializeAsync(ILedgerStore ledger, CancellationToken cancellationToken) => Task.CompletedTask;

    public async ValueTask<LimitOutcome> TryReserveAsync(ApiKeyRecord key, PlanOptions? plan, long tokens, decimal? costUsd, CancellationToken cancellationToken)
    {
        if (LimitRules.RefuseUnknownPrice(key, plan, costUsd) is { } refused)
        {
            return new LimitOutcome(refused, null);
        }

        var now = time.GetUtcNow();
        var cost = costUsd is { } c ? Money.RoundToPico(c) : 0m;
        var scopes = Scopes.Of(key, plan);
        var hold = new Hold(key, plan, tokens, cost, LimitRules.MinuteOf(now), LimitRules.MonthOf(now), scopes, Guid.NewGuid());
        if (scopes.IsEmpty)
        {
            return new LimitOutcome(LimitDecision.Allow, hold);
        }

        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        var (tenant, keyCounters) = await LockAndReadAsync(connection, transaction, hold, now, cancellationToken).ConfigureAwait(false);
        var decision = LimitRules.Check(tenant, keyCounters, key.EffectiveLimits, plan, tokens, cost, now);
        if (!decision.Allowed)
        {
            // Committed all the same: the month rows just made from the ledger are kept for the next request.
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            return new LimitOutcome(decision, null);
        }

        await using (var batch = new NpgsqlBatch(connection, transaction))
        {
            foreach (var scope in scopes.All)
            {
                batch.BatchCommands.Add(Command("""
                    INSERT INTO limit_minutes (scope, minute, requests, tokens) VALUES ($1, $2, 1, $3)
                    ON CONFLICT (scope, minute) DO UPDATE SET requests = limit_minutes.requests + 1, tokens = limit_minutes.tokens + excluded.tokens
                    """, Text(scope), Long(hold.Minute), Long(tokens)));
                batch.BatchCommands.Add(Command("DELETE FROM limit_minutes WHERE scope = $1 AND minute < $2", Text(scope), Long(hold.Minute - 1)));
            }

            batch.BatchCommands.Add(Command(
                "INSERT INTO limit_holds (id, tenant_scope, key_scope, month, tokens, cost_pusd, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                new NpgsqlParameter<Guid> { TypedValue = hold.Id }, Text(scopes.Tenant), Text(scopes.Key), Long(hold.Month), Long(tokens), Pico(cost),
                new NpgsqlParameter<DateTimeOffset> { NpgsqlDbType = NpgsqlDbType.TimestampTz, TypedValue = (now + HoldLifetime).ToUniversalTime() }));
            await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return new LimitOutcome(decision, hold);
    }

    public async ValueTask AddExtraCostAsync(Reservation reservation, decimal costUsd)
    {
        var hold = (Hold)reservation;
        if (hold.Scopes.IsEmpty)
        {
            return;
        }

        await using var connection = await database.OpenAsync(CancellationToken.None).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(CancellationToken.None).ConfigureAwait(false);
        await using (var batch = new NpgsqlBatch(connection, transaction))
        {
            AddLockAndMonthRows(batch, hold);
            foreach (var scope in hold.Scopes.All)
            {
                batch.BatchCommands.Add(Command("UPDATE limit_months SET cost_pusd = cost_pusd + $3 WHERE scope = $1 AND month = $2", Text(scope), Long(hold.Month), Pico(Money.RoundToPico(costUsd))));
            }

            await batch.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
        }

        await transaction.CommitAsync(CancellationToken.None).ConfigureAwait(false);
    }

    public async ValueTask<long> SettleAsync(Reservation reservation, long tokens, decimal? costUsd)
    {
        var hold = (Hold)reservation;
        if (hold.Done)
        {
            return 0;
        }

        hold.Done = true;
        if (hold.Scopes.IsEmpty)
        {
            return 0;
        }

        var cost = costUsd is { } c ? Money.RoundToPico(c) : hold.CostUsd;
        await using var connection = await database.OpenAsync(CancellationToken.None).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(CancellationToken.None).ConfigureAwait(false);
        long? before = null;
        await using (var batch = new NpgsqlBatch(connection, transaction))
        {
            AddLockAndMonthRows(batch, hold);
            foreach (var scope in hold.Scopes.All)
            {
                // The usage goes to the month it was reserved in (the month of the request's ledger row), and the
                // tenant's tokens before it price the overage exactly: the tenant's lock serialises every settle.
                batch.BatchCommands.Add(Command(
                    "UPDATE limit_months SET tokens = tokens + $3, cost_pusd = cost_pusd + $4 WHERE scope = $1 AND month = $2 RETURNING scope, tokens - $3",
                    Text(scope), Long(hold.Month), Long(tokens), Pico(cost)));
            }

            AddReturnOfHold(batch, hold, tokens);
            await using var reader = await batch.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
            do
            {
                // The lock's SELECT has one column; only the month updates return (scope, tokens before).
                while (reader.FieldCount == 2 && await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false))
                {
                    if (reader.GetString(0) == hold.Scopes.Tenant)
                    {
                        before = reader.GetInt64(1);
                    }
                }
            }
            while (await reader.NextResultAsync(CancellationToken.None).ConfigureAwait(false));
        }

        await transaction.CommitAsync(CancellationToken.None).ConfigureAwait(false);
        return hold.Plan is { } plan && before is { } used ? LimitRules.OveragePicoUsd(plan, used, tokens) : 0L;
    }

    public async ValueTask ReleaseAsync(Reservation reservation)
    {
        var hold = (Hold)reservation;
        if (hold.Done)
        {
            return;
        }

        hold.Done = true;
        if (hold.Scopes.IsEmpty)
        {
            return;
        }

        await using var connection = await database.OpenAsync(CancellationToken.None).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(CancellationToken.None).ConfigureAwait(false);
        await using (var batch = new NpgsqlBatch(connection, transaction))
        {
            batch.BatchCommands.Add(Command("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", Text(hold.TenantId)));
            AddReturnOfHold(batch, hold, tokens: 0);
            await batch.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
        }

        await transaction.CommitAsync(CancellationToken.None).ConfigureAwait(false);
    }

    public async ValueTask<MonthToDate> MonthToDateAsync(string tenantId, string keyId, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);

        // The ledger is the truth for settled usage; the counters only add what is settled and not yet committed,
        // so for a report the ledger's sums serve (tenants without a plan have no counters at all).
        await using var command = new NpgsqlCommand("""
            SELECT coalesce(sum(input_uncached + input_cached + cache_write_5m + cache_write_1h + output_text + output_reasoning) FILTER (WHERE attempt_kind IS NULL), 0)::bigint,
                   coalesce(sum(cost_pusd), 0),
                   coalesce(sum(input_uncached + input_cached + cache_write_5m + cache_write_1h + output_text + output_reasoning) FILTER (WHERE attempt_kind IS NULL AND key_id = $2), 0)::bigint,
                   coalesce(sum(cost_pusd) FILTER (WHERE key_id = $2), 0)
            FROM ledger WHERE tenant_id = $1 AND ts_ms >= $3
            """, connection);
        command.Parameters.Add(Text(tenantId));
        command.Parameters.Add(Text(keyId));
        command.Parameters.Add(Long(LimitRules.MonthStart(now).ToUnixTimeMilliseconds()));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        return new MonthToDate(reader.GetInt64(0), Money.PicoSumToUsd(reader.GetDecimal(1)), reader.GetInt64(2), Money.PicoSumToUsd(reader.GetDecimal(3)));
    }

    /// <summary>Takes the tenant's lock, makes missing month rows from the ledger, and reads both scopes' counters.</summary>
    private static async Task<(LimitCounters Tenant, LimitCounters Key)> LockAndReadAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Hold hold, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var batch = new NpgsqlBatch(connection, transaction);
        AddLockAndMonthRows(batch, hold);
        batch.BatchCommands.Add(Command("""
            SELECT s.scope,
                   coalesce((SELECT tokens FROM limit_months WHERE scope = s.scope AND month = $2), 0),
                   coalesce((SELECT cost_pusd FROM limit_months WHERE scope = s.scope AND month = $2), 0),
                   coalesce((SELECT requests FROM limit_minutes WHERE scope = s.scope AND minute = $3), 0),
                   coalesce((SELECT tokens FROM limit_minutes WHERE scope = s.scope AND minute = $3), 0),
                   coalesce((SELECT sum(tokens) FROM limit_holds WHERE (tenant_scope = s.scope OR key_scope = s.scope) AND month = $2 AND expires_at > $4), 0)::bigint,
                   coalesce((SELECT sum(cost_pusd) FROM limit_holds WHERE (tenant_scope = s.scope OR key_scope = s.scope) AND month = $2 AND expires_at > $4), 0)
            FROM unnest($1::text[]) AS s(scope)
            """,
            new NpgsqlParameter<string[]> { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text, TypedValue = [.. hold.Scopes.All] },
            Long(hold.Month), Long(hold.Minute),
            new NpgsqlParameter<DateTimeOffset> { NpgsqlDbType = NpgsqlDbType.TimestampTz, TypedValue = now.ToUniversalTime() }));
        batch.BatchCommands.Add(Command("DELETE FROM limit_holds WHERE (tenant_scope = $1 OR key_scope = $2) AND expires_at <= $3", Text(hold.Scopes.Tenant), Text(hold.Scopes.Key),
            new NpgsqlParameter<DateTimeOffset> { NpgsqlDbType = NpgsqlDbType.TimestampTz, TypedValue = now.ToUniversalTime() }));

        var tenant = new LimitCounters();
        var key = new LimitCounters();
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        do
        {
            // Only the counters' SELECT has seven columns (the lock's has one, the rest return no rows).
            while (reader.FieldCount == 7 && await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var counters = reader.GetString(0) == hold.Scopes.Tenant ? tenant : key;
                counters.MonthTokens = reader.GetInt64(1);
                counters.MonthCostUsd = Money.PicoSumToUsd(reader.GetDecimal(2));
                counters.MinuteRequests = reader.GetInt64(3);
                counters.MinuteTokens = reader.GetInt64(4);
                counters.ReservedTokens = reader.GetInt64(5);
                counters.ReservedCostUsd = Money.PicoSumToUsd(reader.GetDecimal(6));
            }
        }
        while (await reader.NextResultAsync(cancellationToken).ConfigureAwait(false));

        return (tenant, key);
    }

    /// <summary>
    /// The tenant's lock (every scope of a request belongs to one tenant), then each limited scope's month row, made
    /// from the ledger when missing: the key's or tenant's usage so far this month, requests' own rows for tokens,
    /// every row for cost. When the row exists the ledger is not read (the NOT EXISTS is evaluated once).
    /// </summary>
    private static void AddLockAndMonthRows(NpgsqlBatch batch, Hold hold)
    {
        batch.BatchCommands.Add(Command("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", Text(hold.TenantId)));
        var monthStart = MonthDate(hold.Month);
        var monthStartMs = monthStart.ToUnixTimeMilliseconds();
        var monthEndMs = monthStart.AddMonths(1).ToUnixTimeMilliseconds();
        foreach (var scope in hold.Scopes.All)
        {
            var isKey = scope == hold.Scopes.Key;
            var command = Command($"""
                INSERT INTO limit_months (scope, month, tokens, cost_pusd)
                SELECT $1, $2,
                       coalesce(sum(input_uncached + input_cached + cache_write_5m + cache_write_1h + output_text + output_reasoning) FILTER (WHERE attempt_kind IS NULL), 0),
                       coalesce(sum(cost_pusd), 0)
                FROM ledger
                WHERE NOT EXISTS (SELECT 1 FROM limit_months WHERE scope = $1 AND month = $2)
                  AND tenant_id = $3 AND ts_ms >= $4 AND ts_ms < $5{(isKey ? " AND key_id = $6" : string.Empty)}
                ON CONFLICT (scope, month) DO NOTHING
                """, Text(scope), Long(hold.Month), Text(hold.TenantId), Long(monthStartMs), Long(monthEndMs));
            if (isKey)
            {
                command.Parameters.Add(Text(hold.KeyId));
            }

            batch.BatchCommands.Add(command);
        }
    }

    /// <summary>Deletes the hold and gives back the minute's tokens the request did not use.</summary>
    private static void AddReturnOfHold(NpgsqlBatch batch, Hold hold, long tokens)
    {
        foreach (var scope in hold.Scopes.All)
        {
            batch.BatchCommands.Add(Command(
                "UPDATE limit_minutes SET tokens = greatest(0, tokens + $3) WHERE scope = $1 AND minute = $2",
                Text(scope), Long(hold.Minute), Long(tokens - hold.Tokens)));
        }

        batch.BatchCommands.Add(Command("DELETE FROM limit_holds WHERE id = $1", new NpgsqlParameter<Guid> { TypedValue = hold.Id }));
    }

    private static DateTimeOffset MonthDate(long month) => new((int)((month - 1) / 12), (int)(((month - 1) % 12) + 1), 1, 0, 0, 0, TimeSpan.Zero);

    private static NpgsqlBatchCommand Command(string sql, params NpgsqlParameter[] parameters)
    {
        var command = new NpgsqlBatchCommand(sql);
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(parameter);
        }

        return command;
    }

    private static NpgsqlParameter<string?> Text(string? value) => PostgresKeyStore.Text(value);

    private static NpgsqlParameter<long> Long(long value) => new() { NpgsqlDbType = NpgsqlDbType.Bigint, TypedValue = value };

    /// <summary>An amount in USD (already whole picodollars) as exact numeric picodollars.</summary>
    private static NpgsqlParameter<decimal> Pico(decimal usd) => new() { NpgsqlDbType = NpgsqlDbType.Numeric, TypedValue = usd * 1_000_000_000_000m };

    /// <summary>
    /// The counter scopes a request is limited in: its tenant when the tenant has a plan, its key when the key has
    /// limits of its own. A scope without limits keeps no counters.
    /// </summary>
    internal readonly record struct Scopes(string? Tenant, string? Key)
    {
        public bool IsEmpty => Tenant is null && Key is null;

        public IEnumerable<string> All => new[] { Tenant, Key }.OfType<string>();

        public static Scopes Of(ApiKeyRecord key, PlanOptions? plan) =>
            new(plan is null ? null : TenantScope(key.TenantId), key.Limits is null ? null : KeyScope(key.Id));

        public static string TenantScope(string tenantId) => "t:" + tenantId;

        public static string KeyScope(string keyId) => "k:" + keyId;
    }

    private sealed class Hold(ApiKeyRecord key, PlanOptions? plan, long tokens, decimal cost, long minute, long month, Scopes scopes, Guid id)
        : Reservation(key, plan, tokens, cost, minute, month)
    {
        public Scopes Scopes { get; } = scopes;

        public Guid Id { get; } = id;
    }
}
