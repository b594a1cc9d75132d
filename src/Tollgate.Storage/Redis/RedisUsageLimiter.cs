using System.Collections.Concurrent;
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
/// </remarks>
public sealed class RedisUsageLimiter(RedisConnection redis, PostgresDatabase database, TimeProvider time) : IUsageLimiter
{
    /// <summary>Longer than any request may run (attempts, hedges and a long stream); a hold older than this is a crashed instance's.</summary>
    public static readonly TimeSpan HoldLifetime = TimeSpan.FromMinutes(30);

    private const long PicoPerUsd = 1_000_000_000_000L;

    /// <summary>A script that meets an unseeded month counter is run again after seeding; twice is only a race with a reset.</summary>
    private const int SeedAttempts = 3;

    /// <summary>How long a repair waits after its settle: by then the request's ledger row has been committed.</summary>
    private static readonly TimeSpan RepairDelay = TimeSpan.FromSeconds(2);

    // What Redis missed while it could not be reached: holds of requests that ended (still counted there), and usage
    // or cost (not counted there). Once Redis answers again, each hold is released and, where usage was missed, its
    // scopes' month counters are made again from the ledger.
    private readonly ConcurrentQueue<Repair> _repairs = new();
    private int _repairing;

    public Task InitializeAsync(ILedgerStore ledger, CancellationToken cancellationToken) => Task.CompletedTask;

    public async ValueTask<LimitOutcome> TryReserveAsync(ApiKeyRecord key, PlanOptions? plan, long tokens, decimal? costUsd, CancellationToken cancellationToken)
    {
        if (LimitRules.RefuseUnknownPrice(key, plan, costUsd) is { } refused)
        {
            return new LimitOutcome(refused, null);
        }

        var now = time.GetUtcNow();
        if (!_repairs.IsEmpty)
        {
            await RepairAsync(now).ConfigureAwait(false);
        }

        var cost = costUsd is { } c ? Money.RoundToPico(c) : 0m;
        var hold = new Hold(key, plan, tokens, cost, LimitRules.MinuteOf(now), LimitRules.MonthOf(now), Guid.NewGuid().ToString("N"));
        if (!hold.TenantLimited && !hold.KeyLimited)
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
            _repairs.Enqueue(new Repair(hold, time.GetUtcNow() + RepairDelay, Release: false, Remake: true));
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
            _repairs.Enqueue(new Repair(hold, time.GetUtcNow() + RepairDelay, Release: true, Remake: true));
            if (hold.Plan is null)
            {
                return 0;
            }

            before = (await PostgresUsageLimiter.LedgerMonthUsageAsync(database, hold.TenantId, null, hold.Month, CancellationToken.None).ConfigureAwait(false)).Tokens;
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
            _repairs.Enqueue(new Repair(hold, time.GetUtcNow(), Release: true, Remake: false));
        }
    }

    public ValueTask<MonthToDate> MonthToDateAsync(string tenantId, string keyId, CancellationToken cancellationToken) =>
        PostgresUsageLimiter.LedgerMonthToDateAsync(database, tenantId, keyId, time.GetUtcNow(), cancellationToken);

    /// <summary>
    /// Makes a scope's counters again from the ledger on next use: called when a key's limits or a tenant's plan
    /// change, since a scope without limits keeps no counters and its usage meanwhile is only in the ledger.
    /// <paramref name="keyId"/> null: the tenant's scope.
    /// </summary>
    public async Task ForgetAsync(string tenantId, string? keyId)
    {
        var month = LimitRules.MonthOf(time.GetUtcNow());

        // Last month too: a request reserved before midnight on the 1st settles into it.
        RedisKey[] months = [MonthKey(tenantId, keyId, month), MonthKey(tenantId, keyId, month - 1)];
        var redisDatabase = await redis.DatabaseAsync().ConfigureAwait(false);
        try
        {
            await redisDatabase.ScriptEvaluateAsync(RedisLimitScripts.Forget, months).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw new RedisUnavailableException(redis.Description, ex);
        }
    }

    /// <summary>
    /// Repairs what settles without Redis left behind, once Redis answers again: releases each hold and forgets its
    /// scopes' month counters, so the next request makes them from the ledger, which has the request's row by then.
    /// One caller at a time; a Redis still unreachable leaves the rest for the next request.
    /// </summary>
    private async Task RepairAsync(DateTimeOffset now)
    {
        if (Interlocked.Exchange(ref _repairing, 1) == 1)
        {
            return;
        }

        try
        {
            while (_repairs.TryPeek(out var repair) && repair.ReadyAt <= now)
            {
                var hold = repair.Hold;
                if (repair.Release)
                {
                    await RunAsync(RedisLimitScripts.Release, hold, [hold.Id, hold.Tokens, Flag(hold.TenantLimited), Flag(hold.KeyLimited)], CancellationToken.None).ConfigureAwait(false);
                }

                if (repair.Remake && hold.TenantLimited)
                {
                    await ForgetAsync(hold.TenantId, null).ConfigureAwait(false);
                }

                if (repair.Remake && hold.KeyLimited)
                {
                    await ForgetAsync(hold.TenantId, hold.KeyId).ConfigureAwait(false);
                }

                _repairs.TryDequeue(out _);
            }
        }
        catch (RedisUnavailableException)
        {
            // Still unreachable: the request at hand finds out for itself, and the repairs wait for the next one.
        }
        finally
        {
            Volatile.Write(ref _repairing, 0);
        }
    }

    /// <summary>Runs a script over the hold's keys, seeding the month counters it asks for and running it again.</summary>
    private async Task<RedisResult[]> RunAsync(string script, Hold hold, RedisValue[] arguments, CancellationToken cancellationToken)
    {
        var redisDatabase = await redis.DatabaseAsync().ConfigureAwait(false);
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
                throw new RedisUnavailableException(redis.Description, ex);
            }

            if ((string?)result[0] != "seed")
            {
                return result;
            }

            if (attempt == SeedAttempts)
            {
                throw new RedisUnavailableException(redis.Description, new InvalidOperationException("its month counters were reset again each time they were made"));
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
            var (tokens, costPico) = await PostgresUsageLimiter.LedgerMonthUsageAsync(database, hold.TenantId, month == tenantMonth ? null : hold.KeyId, hold.Month, cancellationToken).ConfigureAwait(false);
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
            throw new RedisUnavailableException(redis.Description, ex);
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

    /// <summary>What to put right for one request once Redis answers again, from <paramref name="ReadyAt"/> on.</summary>
    /// <param name="Release">Take its hold off the held totals.</param>
    /// <param name="Remake">Make its scopes' month counters again from the ledger (usage or cost Redis missed).</param>
    private sealed record Repair(Hold Hold, DateTimeOffset ReadyAt, bool Release, bool Remake);

    private sealed class Hold(ApiKeyRecord key, PlanOptions? plan, long tokens, decimal cost, long minute, long month, string id)
        : Reservation(key, plan, tokens, cost, minute, month)
    {
        public string Id { get; } = id;

        /// <summary>The tenant has a plan: its scope keeps counters.</summary>
        public bool TenantLimited => Plan is not null;
    }
}
