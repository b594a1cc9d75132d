using System.Globalization;
using StackExchange.Redis;
using Tollgate.Configuration;
using Tollgate.Keys;
using Tollgate.Metering;
using Tollgate.Storage.Postgres;
using Tollgate.Tenancy;

namespace Tollgate.Storage.Redis;

/// <summary>
/// Limits whose counters live in Redis, for instances that share a PostgreSQL database and a hot tenant's rate of
/// requests: a reservation, a settle and a release are each one script that Redis runs atomically, one round trip
/// with no lock held anywhere, where the database limiter queues a tenant's requests on its advisory lock. The rules
/// are <see cref="LimitRules"/>'s (see <see cref="RedisLimitScripts"/>), and the ledger stays in PostgreSQL: month
/// counters are made from it the first time a scope is limited in a month, again whenever Redis has lost them
/// (a restart without persistence, an eviction), and again when the scope's limits or plan change.
/// </summary>
/// <remarks>
/// A request in flight is a hold in Redis; one whose instance died stops counting after <see cref="HoldLifetime"/>.
/// If Redis is unreachable, reservations fail closed (503 <c>limits_unavailable</c>) and a request already answered is
/// still settled: its overage is priced from the ledger, and once Redis answers again its hold is released and its
/// counters are made again from the ledger (by this instance; if it stops first, the hold expires by itself).
/// A change of limits or plan that PostgreSQL committed while Redis could not be reached owes the forget of that
/// scope's counters (<see cref="ForgetAsync"/>); it is carried out when Redis reconnects, and before any reservation of
/// this instance reads that scope's counters. What is owed is kept in this process only.
/// </remarks>
public sealed partial class RedisUsageLimiter : IUsageLimiter, IAsyncDisposable
{
    /// <summary>Longer than any request may run (attempts, hedges and a long stream); a hold older than this is a crashed instance's.</summary>
    public static readonly TimeSpan HoldLifetime = TimeSpan.FromMinutes(30);

    private const long PicoPerUsd = 1_000_000_000_000L;

    /// <summary>A script that meets an unseeded month counter is run again after seeding; twice is only a race with a reset.</summary>
    private const int SeedAttempts = 3;

    private readonly RedisConnection _redis;
    private readonly PostgresDatabase _database;
    private readonly TimeProvider _time;

    public RedisUsageLimiter(RedisConnection redis, PostgresDatabase database, TimeProvider time)
    {
        _redis = redis;
        _database = database;
        _time = time;

        // Every instance's reservations read the same counters: what this one owes is put right as soon as Redis is
        // back, not when this instance next happens to get a limited request.
        redis.Restored += (_, _) => _ = RepairWhileRedisAnswersAsync();
    }

    public Task InitializeAsync(ILedgerStore ledger, CancellationToken cancellationToken) => Task.CompletedTask;

    public async ValueTask<LimitOutcome> TryReserveAsync(ApiKeyRecord key, PlanOptions? plan, long tokens, decimal? costUsd, CancellationToken cancellationToken)
    {
        if (LimitRules.RefuseUnknownPrice(key, plan, costUsd) is { } refused)
        {
            return new LimitOutcome(refused, null);
        }

        var now = _time.GetUtcNow();
        var cost = costUsd is { } c ? Money.RoundToPico(c) : 0m;
        var hold = new Hold(key, plan, tokens, cost, LimitRules.MinuteOf(now), LimitRules.MonthOf(now), Guid.NewGuid().ToString("N"));
        var limited = hold.TenantLimited || hold.KeyLimited;
        if (!_repairs.IsEmpty || Volatile.Read(ref _owedScopes) > 0)
        {
            if (!limited)
            {
                // It reads no counter a repair could make again: it starts the repairs and does not wait for Redis.
                _ = RepairAsync();
                return new LimitOutcome(LimitDecision.Allow, hold);
            }

            await RepairsDoneAsync(hold, now, cancellationToken).ConfigureAwait(false);
        }

        if (!limited)
        {
            return new LimitOutcome(LimitDecision.Allow, hold);
        }

        var limits = key.EffectiveLimits;
        var (costWhole, costPico) = Split(cost);
        RedisValue[] arguments =
        [
            now.ToUnixTimeMilliseconds(), hold.Id, (now + HoldLifetime).ToUnixTimeMilliseconds(), tokens, costWhole, costPico,
            .. ScopeArguments(hold.TenantLimited, plan?.Rpm, plan?.Tpm, plan is { HardQuota: true } ? plan.IncludedTokens : null, plan?.MonthlyBudgetUsd),
            .. ScopeArguments(hold.KeyLimited, limits.Rpm, limits.Tpm, limits.MonthlyTokens, limits.MonthlyBudgetUsd),
        ];

        // Not cancelled with the client once sent: a hold written by a script whose answer was dropped would count
        // for HoldLifetime. Read to the end, a hold of a request that then ends is released by its settle or release.
        var result = await RunAsync(RedisLimitScripts.Reserve, hold, arguments, cancellationToken).ConfigureAwait(false);
        var tenant = new LimitCounters();
        var keyCounters = new LimitCounters();
        var index = 1;
        if (hold.TenantLimited)
        {
            Read(result, ref index, tenant);
        }

        if (hold.KeyLimited)
        {
            Read(result, ref index, keyCounters);
        }

        if ((string?)result[0] == "ok")
        {
            return new LimitOutcome(LimitDecision.Allow, hold);
        }

        // Redis decided; the same rules over the counters it read give the refusal its message. They cannot disagree
        // unless the script and LimitRules drift apart.
        var decision = LimitRules.Check(tenant, keyCounters, limits, plan, tokens, cost, now);
        return new LimitOutcome(decision.Allowed ? new LimitDecision(LimitKind.RateLimit, "The request does not fit the limits of this key or its tenant.", null) : decision, null);
    }

    public async ValueTask AddExtraCostAsync(Reservation reservation, decimal costUsd)
    {
        var hold = (Hold)reservation;
        if (!hold.TenantLimited && !hold.KeyLimited)
        {
            return;
        }

        var (whole, pico) = Split(Money.RoundToPico(costUsd));
        try
        {
            await RunAsync(RedisLimitScripts.AddCost, hold, [whole, pico, Flag(hold.TenantLimited), Flag(hold.KeyLimited)], CancellationToken.None).ConfigureAwait(false);
        }
        catch (RedisUnavailableException)
        {
            // The cost is in the ledger row the caller writes next; the counters get it when they are remade.
            _repairs.Enqueue(new Repair(hold, _time.GetUtcNow() + RepairDelay, Release: false, Remake: true));
            throw;
        }
    }

    public async ValueTask<long> SettleAsync(Reservation reservation, long tokens, decimal? costUsd)
    {
        var hold = (Hold)reservation;
        if (hold.Done)
        {
            return 0;
        }

        hold.Done = true;
        if (!hold.TenantLimited && !hold.KeyLimited)
        {
            return 0;
        }

        var (whole, pico) = Split(costUsd is { } c ? Money.RoundToPico(c) : hold.CostUsd);
        long before;
        try
        {
            var result = await RunAsync(RedisLimitScripts.Settle, hold, [hold.Id, tokens, whole, pico, hold.Tokens, Flag(hold.TenantLimited), Flag(hold.KeyLimited)], CancellationToken.None).ConfigureAwait(false);
            before = Long(result[1]);
        }
        catch (RedisUnavailableException)
        {
            // The answer has been given: it is priced on the tenant's month as the ledger has it, rather than refused
            // for want of a counter. Redis keeps its hold and misses its usage until the repair below runs.
            _repairs.Enqueue(new Repair(hold, _time.GetUtcNow() + RepairDelay, Release: true, Remake: true));
            if (hold.Plan is null)
            {
                return 0;
            }

            before = (await PostgresUsageLimiter.LedgerMonthUsageAsync(_database, hold.TenantId, null, hold.Month, CancellationToken.None).ConfigureAwait(false)).Tokens;
        }

        return hold.Plan is { } plan && before >= 0 ? LimitRules.OveragePicoUsd(plan, before, tokens) : 0L;
    }

    public async ValueTask ReleaseAsync(Reservation reservation)
    {
        var hold = (Hold)reservation;
        if (hold.Done)
        {
            return;
        }

        hold.Done = true;
        if (!hold.TenantLimited && !hold.KeyLimited)
        {
            return;
        }

        try
        {
            await RunAsync(RedisLimitScripts.Release, hold, [hold.Id, hold.Tokens, Flag(hold.TenantLimited), Flag(hold.KeyLimited)], CancellationToken.None).ConfigureAwait(false);
        }
        catch (RedisUnavailableException)
        {
            // Nothing was used, and the failed request keeps its ledger row: the hold is released once Redis is back.
            _repairs.Enqueue(new Repair(hold, _time.GetUtcNow(), Release: true, Remake: false));
        }
    }

    public ValueTask<MonthToDate> MonthToDateAsync(string tenantId, string keyId, CancellationToken cancellationToken) =>
        PostgresUsageLimiter.LedgerMonthToDateAsync(_database, tenantId, keyId, _time.GetUtcNow(), cancellationToken);

    /// <summary>Runs a script over the hold's keys, seeding the month counters it asks for and running it again.</summary>
    private async Task<RedisResult[]> RunAsync(string script, Hold hold, RedisValue[] arguments, CancellationToken cancellationToken)
    {
        var redisDatabase = await _redis.DatabaseAsync().ConfigureAwait(false);
        RedisKey[] keys =
        [
            $"tollgate:{{{hold.TenantId}}}:holds", $"tollgate:{{{hold.TenantId}}}:hold-info",
            MonthKey(hold.TenantId, null, hold.Month), MinuteKey(hold.TenantId, null, hold.Minute),
            MonthKey(hold.TenantId, hold.KeyId, hold.Month), MinuteKey(hold.TenantId, hold.KeyId, hold.Minute),
        ];

        for (var attempt = 0; ; attempt++)
        {
            RedisResult[] result;
            try
            {
                result = (RedisResult[])(await redisDatabase.ScriptEvaluateAsync(script, keys, arguments).ConfigureAwait(false))!;
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                throw new RedisUnavailableException(_redis.Description, ex);
            }

            if ((string?)result[0] != "seed")
            {
                return result;
            }

            if (attempt == SeedAttempts)
            {
                throw new RedisUnavailableException(_redis.Description, new InvalidOperationException("its month counters were reset again each time they were made"));
            }

            await SeedAsync(redisDatabase, hold, [.. result.Skip(1).Select(r => (RedisKey)(string?)r)], cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Makes month counters from the ledger's usage of that month (the key's, or the tenant's as a whole).</summary>
    private async Task SeedAsync(IDatabase redisDatabase, Hold hold, RedisKey[] months, CancellationToken cancellationToken)
    {
        var tenantMonth = MonthKey(hold.TenantId, null, hold.Month);
        var arguments = new List<RedisValue>();
        foreach (var month in months)
        {
            var (tokens, costPico) = await PostgresUsageLimiter.LedgerMonthUsageAsync(_database, hold.TenantId, month == tenantMonth ? null : hold.KeyId, hold.Month, cancellationToken).ConfigureAwait(false);
            var (whole, pico) = SplitPico(costPico);
            arguments.AddRange([tokens, whole, pico]);
        }

        // Kept a month past the month's end, for requests that settle after midnight and for reports of the old month.
        arguments.Add(PostgresUsageLimiter.MonthDate(hold.Month).AddMonths(2).ToUnixTimeMilliseconds());
        try
        {
            await redisDatabase.ScriptEvaluateAsync(RedisLimitScripts.Seed, months, [.. arguments]).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw new RedisUnavailableException(_redis.Description, ex);
        }
    }

    private static RedisKey MonthKey(string tenantId, string? keyId, long month) =>
        keyId is null ? $"tollgate:{{{tenantId}}}:t:m:{month}" : $"tollgate:{{{tenantId}}}:k:{keyId}:m:{month}";

    private static RedisKey MinuteKey(string tenantId, string? keyId, long minute) =>
        keyId is null ? $"tollgate:{{{tenantId}}}:t:r:{minute}" : $"tollgate:{{{tenantId}}}:k:{keyId}:r:{minute}";

    private static RedisValue[] ScopeArguments(bool on, int? rpm, int? tpm, long? maxTokens, decimal? maxCostUsd)
    {
        var (whole, pico) = maxCostUsd is { } max ? Split(Money.RoundToPico(max)) : (0, 0);
        return
        [
            Flag(on), Optional(rpm), Optional(tpm), Optional(maxTokens),
            maxCostUsd is null ? RedisValue.EmptyString : whole, maxCostUsd is null ? RedisValue.EmptyString : pico,
        ];
    }

    private static RedisValue Flag(bool on) => on ? "1" : "0";

    private static RedisValue Optional(long? value) => value is { } v ? v : RedisValue.EmptyString;

    /// <summary>An amount in USD (whole picodollars) as whole dollars and the picodollars below one dollar.</summary>
    private static (long Whole, long Pico) Split(decimal usd) => SplitPico(usd * PicoPerUsd);

    private static (long Whole, long Pico) SplitPico(decimal pico)
    {
        var whole = decimal.Floor(pico / PicoPerUsd);
        return ((long)whole, (long)(pico - (whole * PicoPerUsd)));
    }

    private static void Read(RedisResult[] result, ref int index, LimitCounters counters)
    {
        counters.MonthTokens = Long(result[index]);
        counters.MonthCostUsd = Usd(result[index + 1], result[index + 2]);
        counters.MinuteRequests = Long(result[index + 3]);
        counters.MinuteTokens = Long(result[index + 4]);
        counters.ReservedTokens = Long(result[index + 5]);
        counters.ReservedCostUsd = Usd(result[index + 6], result[index + 7]);
        index += 8;
    }

    private static long Long(RedisResult value) => long.Parse((string)value!, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);

    private static decimal Usd(RedisResult whole, RedisResult pico) => Long(whole) + (Long(pico) / (decimal)PicoPerUsd);

    private sealed class Hold(ApiKeyRecord key, PlanOptions? plan, long tokens, decimal cost, long minute, long month, string id)
        : Reservation(key, plan, tokens, cost, minute, month)
    {
        public string Id { get; } = id;

        /// <summary>The tenant has a plan: its scope keeps counters.</summary>
        public bool TenantLimited => Plan is not null;
    }
}
