using System.Collections.Concurrent;
using Npgsql;
using NpgsqlTypes;
using Tollgate.Configuration;
using Tollgate.Keys;
using Tollgate.Metering;
using Tollgate.Tenancy;

namespace Tollgate.Storage.Postgres;

/// <summary>
/// Limits whose counters live in the shared database, so every instance checks against what all of them used and
/// hold. A reservation is one round trip: one batch, run as one transaction under a per-tenant advisory lock, in which
/// the database itself decides (the same rules as <see cref="LimitRules.Check"/>) and writes the hold, so requests
/// racing through different instances can never all see the same headroom. Settling is one round trip too: the
/// usage is added and the hold deleted in one transaction, and the tenant's month row lock orders settles, so an
/// overage is priced on the tenant's exact usage before the request. A caller without any limit (no plan, no limits
/// on the key) touches nothing here.
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

    /// <summary>One reservation in this many also deletes its scopes' expired holds.</summary>
    private const int HoldSweepEvery = 64;

    /// <summary>One tenant's reservations in the database at once, per instance (one runs while the next is sent).</summary>
    private const int ReservationsPerTenant = 2;

    private readonly ConcurrentDictionary<string, TenantGate> _tenantGates = new(StringComparer.Ordinal);

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

        var limits = key.EffectiveLimits;
        var tenant = new LimitCounters();
        var keyCounters = new LimitCounters();

        // At most a couple of one tenant's reservations per instance go to the database at once; the others wait here.
        // They would only wait on the tenant's lock there, each holding one of the few counter connections that every
        // tenant's reservations and settles share: a burst of one tenant would make all the others queue behind it.
        var gate = _tenantGates.GetOrAdd(hold.TenantId, static _ => new TenantGate(ReservationsPerTenant));
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        bool? allowed;
        try
        {
            allowed = await ReserveInDatabaseAsync(hold, scopes, limits, plan, tokens, cost, now, tenant, keyCounters, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            gate.Release();
        }

        // The database decided (and wrote the hold when it allowed); the same rules over the counters it read give the
        // refusal its message. They cannot disagree unless the SQL below and LimitRules drift apart.
        var decision = LimitRules.Check(tenant, keyCounters, limits, plan, tokens, cost, now);
        if (allowed == true)
        {
            return new LimitOutcome(LimitDecision.Allow, hold);
        }

        return new LimitOutcome(decision.Allowed ? new LimitDecision(LimitKind.RateLimit, "The request does not fit the limits of this key or its tenant.", null) : decision, null);
    }

    /// <summary>
    /// One batch, one implicit transaction, one round trip: the tenant's lock is held only while the server runs it,
    /// never across the network or a busy gateway's scheduling delay. Fills the counters as they were and answers
    /// whether the database allowed the request (and wrote its hold).
    /// </summary>
    private async Task<bool?> ReserveInDatabaseAsync(Hold hold, Scopes scopes, KeyLimits limits, PlanOptions? plan, long tokens, decimal cost, DateTimeOffset now,
        LimitCounters tenant, LimitCounters keyCounters, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenCountersAsync(cancellationToken).ConfigureAwait(false);
        await using var batch = new NpgsqlBatch(connection);
        batch.BatchCommands.Add(Command("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", Text(hold.TenantId)));
        AddMonthRows(batch, hold);
        if (Random.Shared.Next(HoldSweepEvery) == 0)
        {
            // Expired holds no longer count; deleting them is housekeeping, done now and then rather than every time.
            batch.BatchCommands.Add(Command("DELETE FROM limit_holds WHERE (tenant_scope = $1 OR key_scope = $2) AND expires_at <= $3",
                Text(scopes.Tenant), Text(scopes.Key), Time(now)));
        }

        batch.BatchCommands.Add(Command(ReserveSql,
            Text(scopes.Tenant), Int(plan?.Rpm), Int(plan?.Tpm), NullableLong(plan is { HardQuota: true } ? plan.IncludedTokens : null), NullablePico(plan?.MonthlyBudgetUsd),
            Text(scopes.Key), Int(limits.Rpm), Int(limits.Tpm), NullableLong(limits.MonthlyTokens), NullablePico(limits.MonthlyBudgetUsd),
            Long(hold.Month), Long(hold.Minute), Time(now), Long(tokens), Pico(cost),
            new NpgsqlParameter<Guid> { TypedValue = hold.Id }, Time(now + HoldLifetime)));

        bool? allowed = null;

        // Not cancelled with the client once sent: a hold written by a batch whose answer was dropped would count for
        // HoldLifetime. Read to the end, a hold of a request that then ends is released by its settle or release.
        await using (var reader = await batch.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false))
        {
            do
            {
                // Only the decision's SELECT has eight columns (the lock's has one; the rest return no rows).
                while (reader.FieldCount == 8 && await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false))
                {
                    var counters = reader.GetString(0) == scopes.Tenant ? tenant : keyCounters;
                    counters.MonthTokens = reader.GetInt64(1);
                    counters.MonthCostUsd = Money.PicoSumToUsd(reader.GetDecimal(2));
                    counters.MinuteRequests = reader.GetInt64(3);
                    counters.MinuteTokens = reader.GetInt64(4);
                    counters.ReservedTokens = reader.GetInt64(5);
                    counters.ReservedCostUsd = Money.PicoSumToUsd(reader.GetDecimal(6));
                    allowed = reader.GetBoolean(7);
                }
            }
            while (await reader.NextResultAsync(CancellationToken.None).ConfigureAwait(false));
        }

        return allowed;
    }

    public async ValueTask AddExtraCostAsync(Reservation reservation, decimal costUsd)
    {
        var hold = (Hold)reservation;
        if (hold.Scopes.IsEmpty)
        {
            return;
        }

        await using var connection = await database.OpenCountersAsync(CancellationToken.None).ConfigureAwait(false);
        await using var batch = new NpgsqlBatch(connection);
        AddMonthRows(batch, hold);
        foreach (var scope in hold.Scopes.All)
        {
            batch.BatchCommands.Add(Command("UPDATE limit_months SET cost_pusd = cost_pusd + $3 WHERE scope = $1 AND month = $2", Text(scope), Long(hold.Month), Pico(Money.RoundToPico(costUsd))));
        }

        await batch.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
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
        await using var connection = await database.OpenCountersAsync(CancellationToken.None).ConfigureAwait(false);
        await using var batch = new NpgsqlBatch(connection);
        AddMonthRows(batch, hold);
        foreach (var scope in hold.Scopes.All)
        {
            // The usage goes to the month it was reserved in (the month of the request's ledger row), and the tenant's
            // tokens before it price the overage exactly: the update's row lock serialises the tenant's settles (no
            // advisory lock is needed here: a reservation that runs meanwhile sees the hold or the usage, never neither).
            batch.BatchCommands.Add(Command(
                "UPDATE limit_months SET tokens = tokens + $3, cost_pusd = cost_pusd + $4 WHERE scope = $1 AND month = $2 RETURNING scope, tokens - $3",
                Text(scope), Long(hold.Month), Long(tokens), Pico(cost)));
        }

        AddReturnOfHold(batch, hold, tokens);
        long? before = null;
        await using (var reader = await batch.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false))
        {
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

        await using var connection = await database.OpenCountersAsync(CancellationToken.None).ConfigureAwait(false);
        await using var batch = new NpgsqlBatch(connection);
        AddReturnOfHold(batch, hold, tokens: 0);
        await batch.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
    }

    public ValueTask<MonthToDate> MonthToDateAsync(string tenantId, string keyId, CancellationToken cancellationToken) =>
        LedgerMonthToDateAsync(database, tenantId, keyId, time.GetUtcNow(), cancellationToken);

    /// <summary>
    /// Month-to-date tokens and cost of a tenant and one of its keys, summed from the ledger: the truth for settled
    /// usage (the counters only add what is settled and not yet committed), and the only source for tenants without a
    /// plan, which keep no counters at all.
    /// </summary>
    internal static async ValueTask<MonthToDate> LedgerMonthToDateAsync(PostgresDatabase database, string tenantId, string keyId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"""
            SELECT coalesce(sum({TokensOfRow}) FILTER (WHERE attempt_kind IS NULL), 0)::bigint,
                   coalesce(sum(cost_pusd), 0),
                   coalesce(sum({TokensOfRow}) FILTER (WHERE attempt_kind IS NULL AND key_id = $2), 0)::bigint,
                   coalesce(sum(cost_pusd) FILTER (WHERE key_id = $2), 0)
            FROM ledger WHERE tenant_id = $1 AND ts_ms >= $3
            """, connection);
        command.Parameters.Add(Text(tenantId));
        command.Parameters.Add(Text(keyId));
        command.Parameters.Add(Long(LimitRules.MonthStart(now).ToUnixTimeMilliseconds()));
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
        await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false);
        return new MonthToDate(reader.GetInt64(0), Money.PicoSumToUsd(reader.GetDecimal(1)), reader.GetInt64(2), Money.PicoSumToUsd(reader.GetDecimal(3)));
    }

    /// <summary>
    /// One scope's usage in one calendar month as the ledger has it: requests' own rows for tokens (extra attempts are
    /// the gateway's overhead, never a tenant's tokens), every row for cost. <paramref name="keyId"/> null: the tenant's.
    /// </summary>
    internal static async ValueTask<(long Tokens, decimal CostPicoUsd)> LedgerMonthUsageAsync(PostgresDatabase database, string tenantId, string? keyId, long month, CancellationToken cancellationToken)
    {
        var monthStart = MonthDate(month);
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"""
            SELECT coalesce(sum({TokensOfRow}) FILTER (WHERE attempt_kind IS NULL), 0)::bigint, coalesce(sum(cost_pusd), 0)
            FROM ledger WHERE tenant_id = $1 AND ts_ms >= $2 AND ts_ms < $3 AND ($4::text IS NULL OR key_id = $4)
            """, connection);
        command.Parameters.Add(Text(tenantId));
        command.Parameters.Add(Long(monthStart.ToUnixTimeMilliseconds()));
        command.Parameters.Add(Long(monthStart.AddMonths(1).ToUnixTimeMilliseconds()));
        command.Parameters.Add(Text(keyId));
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
        await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false);
        return (reader.GetInt64(0), reader.GetDecimal(1));
    }

    /// <summary>The tokens a ledger row counts against quotas: every input and output bucket.</summary>
    private const string TokensOfRow = "input_uncached + input_cached + cache_write_5m + cache_write_1h + output_text + output_reasoning";

    /// <summary>
    /// Reads both scopes' counters (settled this month, this minute, and the live holds), decides with the same rules as
    /// <see cref="LimitRules.Check"/>, and when the request fits counts it in the minute and writes its hold, all in one
    /// statement. The SELECT returns the counters as they were before (data-modifying CTEs see one snapshot).
    /// A limit given as null does not apply; a scope given as null has no limits at all.
    /// </summary>
    private const string ReserveSql = """
        WITH scopes AS (
            SELECT * FROM (VALUES ($1::text, $2::bigint, $3::bigint, $4::bigint, $5::numeric),
                                  ($6::text, $7::bigint, $8::bigint, $9::bigint, $10::numeric)) AS v(scope, rpm, tpm, max_tokens, max_cost)
            WHERE scope IS NOT NULL),
        snap AS (
            SELECT s.*,
                   coalesce((SELECT tokens FROM limit_months WHERE scope = s.scope AND month = $11), 0) AS month_tokens,
                   coalesce((SELECT cost_pusd FROM limit_months WHERE scope = s.scope AND month = $11), 0) AS month_cost,
                   coalesce((SELECT requests FROM limit_minutes WHERE scope = s.scope AND minute = $12), 0) AS minute_requests,
                   coalesce((SELECT tokens FROM limit_minutes WHERE scope = s.scope AND minute = $12), 0) AS minute_tokens,
                   coalesce((SELECT sum(tokens) FROM limit_holds WHERE (tenant_scope = s.scope OR key_scope = s.scope) AND month = $11 AND expires_at > $13), 0)::bigint AS held_tokens,
                   coalesce((SELECT sum(cost_pusd) FROM limit_holds WHERE (tenant_scope = s.scope OR key_scope = s.scope) AND month = $11 AND expires_at > $13), 0) AS held_cost
            FROM scopes s),
        verdict AS (
            SELECT bool_and(
                       (rpm IS NULL OR minute_requests + 1 <= rpm)
                   AND (tpm IS NULL OR minute_tokens = 0 OR minute_tokens + $14 <= tpm)
                   AND (max_tokens IS NULL OR month_tokens + held_tokens + $14 <= max_tokens)
                   AND (max_cost IS NULL OR month_cost + held_cost + $15 <= max_cost)) AS allowed
            FROM snap),
        counted AS (
            INSERT INTO limit_minutes (scope, minute, requests, tokens)
            SELECT scope, $12, 1, $14 FROM snap WHERE (SELECT allowed FROM verdict)
            ON CONFLICT (scope, minute) DO UPDATE SET requests = limit_minutes.requests + 1, tokens = limit_minutes.tokens + excluded.tokens),
        held AS (
            INSERT INTO limit_holds (id, tenant_scope, key_scope, month, tokens, cost_pusd, expires_at)
            SELECT $16, $1, $6, $11, $14, $15, $17 WHERE (SELECT allowed FROM verdict)),
        pruned AS (
            DELETE FROM limit_minutes m USING snap WHERE m.scope = snap.scope AND m.minute < $12 - 1)
        SELECT scope, month_tokens, month_cost, minute_requests, minute_tokens, held_tokens, held_cost, (SELECT allowed FROM verdict)
        FROM snap
        """;

    /// <summary>
    /// Each limited scope's month row, made from the ledger when missing: the key's or tenant's usage so far this month,
    /// requests' own rows for tokens, every row for cost. When the row exists the ledger is not read (the NOT EXISTS is
    /// evaluated once); two instances making it at once are settled by ON CONFLICT.
    /// </summary>
    private static void AddMonthRows(NpgsqlBatch batch, Hold hold)
    {
        var monthStart = MonthDate(hold.Month);
        var monthStartMs = monthStart.ToUnixTimeMilliseconds();
        var monthEndMs = monthStart.AddMonths(1).ToUnixTimeMilliseconds();
        foreach (var scope in hold.Scopes.All)
        {
            var isKey = scope == hold.Scopes.Key;
            var command = Command($"""
                INSERT INTO limit_months (scope, month, tokens, cost_pusd)
                SELECT $1, $2,
                       coalesce(sum({TokensOfRow}) FILTER (WHERE attempt_kind IS NULL), 0),
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

    internal static DateTimeOffset MonthDate(long month) => new((int)((month - 1) / 12), (int)(((month - 1) % 12) + 1), 1, 0, 0, 0, TimeSpan.Zero);

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

    private static NpgsqlParameter<long?> NullableLong(long? value) => new() { NpgsqlDbType = NpgsqlDbType.Bigint, TypedValue = value };

    private static NpgsqlParameter<long?> Int(int? value) => NullableLong(value);

    private static NpgsqlParameter<decimal?> NullablePico(decimal? usd) => new() { NpgsqlDbType = NpgsqlDbType.Numeric, TypedValue = usd * 1_000_000_000_000m };

    private static NpgsqlParameter<DateTimeOffset> Time(DateTimeOffset value) => new() { NpgsqlDbType = NpgsqlDbType.TimestampTz, TypedValue = value.ToUniversalTime() };

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
