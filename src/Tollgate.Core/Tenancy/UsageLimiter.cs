using System.Collections.Concurrent;
using Tollgate.Configuration;
using Tollgate.Keys;
using Tollgate.Metering;

namespace Tollgate.Tenancy;

/// <summary>Which limit refused a request.</summary>
public enum LimitKind
{
    None,

    /// <summary>Requests or tokens per minute (429 <c>rate_limit_exceeded</c>, with Retry-After).</summary>
    RateLimit,

    /// <summary>A hard monthly token quota (429 <c>monthly_token_quota_exceeded</c>).</summary>
    MonthlyTokenQuota,

    /// <summary>A monthly dollar budget (429 <c>budget_exceeded</c>).</summary>
    Budget,

    /// <summary>A dollar budget applies and the request's price is unknown: refused, fail closed.</summary>
    UnknownPrice,
}

/// <summary>The answer to a reservation: a refusal says which limit, of which scope, and when to retry.</summary>
public readonly record struct LimitDecision(LimitKind Kind, string Message, TimeSpan? RetryAfter)
{
    public bool Allowed => Kind == LimitKind.None;
}

/// <summary>Worst-case tokens and cost held for one in-flight request until it is settled or released.</summary>
public sealed class Reservation
{
    internal Reservation(UsageLimiter.TenantCounters tenant, UsageLimiter.Counters key, PlanOptions? plan, long tokens, decimal costUsd, long minute, long month)
    {
        Tenant = tenant;
        Key = key;
        Plan = plan;
        Tokens = tokens;
        CostUsd = costUsd;
        Minute = minute;
        Month = month;
    }

    internal UsageLimiter.TenantCounters Tenant { get; }

    internal UsageLimiter.Counters Key { get; }

    internal PlanOptions? Plan { get; }

    internal long Tokens { get; }

    /// <summary>Reserved provider cost, in USD rounded to whole picodollars like the ledger's.</summary>
    internal decimal CostUsd { get; }

    internal long Minute { get; }

    internal long Month { get; }

    internal bool Done { get; set; }
}

/// <summary>
/// Hard limits in memory: per tenant and per key, per calendar month (tokens, provider cost) and per minute
/// (requests, tokens). A request reserves its worst case before dispatch; the check and the reservation are
/// one step under the tenant's lock, so concurrent requests can never all see the same headroom. Afterwards
/// the reservation is settled to the real usage, or released when nothing was used.
/// </summary>
/// <remarks>
/// Spend can pass a limit only by what a request's real usage exceeds its reservation (a provider counting
/// more input tokens than the gateway's tokenizer). The counters are per process: several instances need a
/// shared store (Redis), which comes later. Month counters are seeded from the ledger at start.
/// </remarks>
public sealed class UsageLimiter(TimeProvider time)
{
    private readonly ConcurrentDictionary<string, TenantCounters> _tenants = new(StringComparer.Ordinal);

    /// <summary>Loads month-to-date totals (from the ledger) so a restart does not reset budgets.</summary>
    public void Seed(IEnumerable<KeyMonthTotals> totals)
    {
        var month = MonthOf(time.GetUtcNow());
        foreach (var total in totals)
        {
            var tenant = _tenants.GetOrAdd(total.TenantId, static _ => new TenantCounters());
            lock (tenant)
            {
                tenant.Roll(month, 0);
                var key = tenant.KeyCounters(total.KeyId);
                key.Roll(month, 0);
                tenant.MonthTokens += total.Tokens;
                tenant.MonthCostUsd += total.CostUsd;
                key.MonthTokens += total.Tokens;
                key.MonthCostUsd += total.CostUsd;
            }
        }
    }

    /// <summary>
    /// Checks every limit of the key and its tenant's plan and, when all fit, reserves <paramref name="tokens"/>
    /// and <paramref name="costUsd"/> (null: unknown price) against all of them at once.
    /// </summary>
    public LimitDecision TryReserve(ApiKeyRecord key, PlanOptions? plan, long tokens, decimal? costUsd, out Reservation? reservation)
    {
        reservation = null;
        var now = time.GetUtcNow();
        var minute = now.ToUnixTimeSeconds() / 60;
        var month = MonthOf(now);
        var limits = key.EffectiveLimits;
        var tenant = _tenants.GetOrAdd(key.TenantId, static _ => new TenantCounters());
        var budgeted = limits.MonthlyBudgetUsd is not null || plan?.MonthlyBudgetUsd is not null;
        if (budgeted && costUsd is null)
        {
            return new LimitDecision(LimitKind.UnknownPrice, "This key has a dollar budget and the price of this model is not known to the gateway, so the request is refused (a budget cannot be enforced without a price).", null);
        }

        var cost = costUsd is { } c ? Money.RoundToPico(c) : 0m;
        lock (tenant)
        {
            tenant.Roll(month, minute);
            var counters = tenant.KeyCounters(key.Id);
            counters.Roll(month, minute);
            var retry = TimeSpan.FromSeconds(60 - (now.ToUnixTimeSeconds() % 60));

            if (plan?.Rpm is { } tenantRpm && tenant.MinuteRequests + 1 > tenantRpm)
            {
                return new LimitDecision(LimitKind.RateLimit, $"Rate limit reached: the tenant's plan allows {tenantRpm} requests per minute.", retry);
            }

            if (limits.Rpm is { } keyRpm && counters.MinuteRequests + 1 > keyRpm)
            {
                return new LimitDecision(LimitKind.RateLimit, $"Rate limit reached: this key allows {keyRpm} requests per minute.", retry);
            }

            // A request larger than a whole minute's allowance still runs in an empty window, or it never could.
            if (plan?.Tpm is { } tenantTpm && tenant.MinuteTokens > 0 && tenant.MinuteTokens + tokens > tenantTpm)
            {
                return new LimitDecision(LimitKind.RateLimit, $"Rate limit reached: the tenant's plan allows {tenantTpm} tokens per minute; this request may use up to {tokens}.", retry);
            }

            if (limits.Tpm is { } keyTpm && counters.MinuteTokens > 0 && counters.MinuteTokens + tokens > keyTpm)
            {
                return new LimitDecision(LimitKind.RateLimit, $"Rate limit reached: this key allows {keyTpm} tokens per minute; this request may use up to {tokens}.", retry);
            }

            if (plan is { HardQuota: true } && tenant.MonthTokens + tenant.ReservedTokens + tokens > plan.IncludedTokens)
            {
                return new LimitDecision(LimitKind.MonthlyTokenQuota, $"Monthly token quota reached: the tenant's plan includes {plan.IncludedTokens} tokens per month ({tenant.MonthTokens} used, {tenant.ReservedTokens} in flight; this request may use up to {tokens}).", null);
            }

            if (limits.MonthlyTokens is { } keyTokens && counters.MonthTokens + counters.ReservedTokens + tokens > keyTokens)
            {
                return new LimitDecision(LimitKind.MonthlyTokenQuota, $"Monthly token quota reached: this key allows {keyTokens} tokens per month ({counters.MonthTokens} used, {counters.ReservedTokens} in flight; this request may use up to {tokens}).", null);
            }

            if (plan?.MonthlyBudgetUsd is { } tenantBudget && tenant.MonthCostUsd + tenant.ReservedCostUsd + cost > tenantBudget)
            {
                return new LimitDecision(LimitKind.Budget, $"Monthly budget reached: the tenant's plan allows USD {tenantBudget} per month; this request may cost up to USD {cost}.", null);
            }

            if (limits.MonthlyBudgetUsd is { } keyBudget && counters.MonthCostUsd + counters.ReservedCostUsd + cost > keyBudget)
            {
                return new LimitDecision(LimitKind.Budget, $"Monthly budget reached: this key allows USD {keyBudget} per month; this request may cost up to USD {cost}.", null);
            }

            foreach (var scope in (Counters[])[tenant, counters])
            {
                scope.MinuteRequests++;
                scope.MinuteTokens += tokens;
                scope.ReservedTokens += tokens;
                scope.ReservedCostUsd += cost;
            }

            reservation = new Reservation(tenant, counters, plan, tokens, cost, minute, month);
            return new LimitDecision(LimitKind.None, string.Empty, null);
        }
    }

    /// <summary>
    /// Adds the provider cost of an extra attempt of a reserved request (a hedge that lost, an escalated answer)
    /// to the month-to-date spend of its tenant and key. Tokens are not added: extra attempts are the gateway's
    /// routing overhead, never counted against the tenant's token quota or sold to it.
    /// </summary>
    public void AddExtraCost(Reservation reservation, decimal costUsd)
    {
        var tenant = reservation.Tenant;
        var now = time.GetUtcNow();
        lock (tenant)
        {
            foreach (var scope in (Counters[])[tenant, reservation.Key])
            {
                scope.Roll(MonthOf(now), now.ToUnixTimeSeconds() / 60);
                if (scope.Month == reservation.Month)
                {
                    scope.MonthCostUsd += Money.RoundToPico(costUsd);
                }
            }
        }
    }

    /// <summary>
    /// Replaces the reservation with what was used. An unknown real cost keeps the reserved cost (the
    /// conservative choice). Returns what the tenant is charged: tokens beyond the plan's included
    /// tokens this month at the plan's overage price, in picodollars.
    /// </summary>
    public long Settle(Reservation reservation, long tokens, decimal? costUsd)
    {
        var cost = costUsd is { } c ? Money.RoundToPico(c) : reservation.CostUsd;
        var tenant = reservation.Tenant;
        var now = time.GetUtcNow();
        lock (tenant)
        {
            if (reservation.Done)
            {
                return 0;
            }

            reservation.Done = true;
            tenant.Roll(MonthOf(now), now.ToUnixTimeSeconds() / 60);
            reservation.Key.Roll(MonthOf(now), now.ToUnixTimeSeconds() / 60);
            var price = 0L;
            if (reservation.Plan is { } plan && tenant.Month == reservation.Month)
            {
                var before = tenant.MonthTokens;
                var over = Math.Max(0, before + tokens - Math.Max(before, plan.IncludedTokens));
                price = Money.ToPico(over * plan.OveragePer1KTokensUsd / 1000m);
            }

            foreach (var scope in (Counters[])[tenant, reservation.Key])
            {
                if (scope.Month == reservation.Month)
                {
                    scope.ReservedTokens -= reservation.Tokens;
                    scope.ReservedCostUsd -= reservation.CostUsd;
                    scope.MonthTokens += tokens;
                    scope.MonthCostUsd += cost;
                }

                if (scope.Minute == reservation.Minute)
                {
                    scope.MinuteTokens = Math.Max(0, scope.MinuteTokens + tokens - reservation.Tokens);
                }
            }

            return price;
        }
    }

    /// <summary>Gives a reservation back unused (the request failed before any usage).</summary>
    public void Release(Reservation reservation) => Settle(reservation, 0, 0m);

    /// <summary>Month-to-date tokens and cost (settled, and reserved by requests in flight) of a tenant and of one of its keys.</summary>
    public (long Tokens, decimal CostUsd, long KeyTokens, decimal KeyCostUsd) MonthToDate(string tenantId, string keyId)
    {
        if (!_tenants.TryGetValue(tenantId, out var tenant))
        {
            return (0, 0m, 0, 0m);
        }

        lock (tenant)
        {
            tenant.Roll(MonthOf(time.GetUtcNow()), tenant.Minute);
            var key = tenant.KeyCounters(keyId);
            return (tenant.MonthTokens, tenant.MonthCostUsd, key.MonthTokens, key.MonthCostUsd);
        }
    }

    /// <summary>The first instant of the calendar month (UTC) of <paramref name="now"/>.</summary>
    public static DateTimeOffset MonthStart(DateTimeOffset now) => new(now.UtcDateTime.Year, now.UtcDateTime.Month, 1, 0, 0, 0, TimeSpan.Zero);

    private static long MonthOf(DateTimeOffset now) => (now.UtcDateTime.Year * 12L) + now.UtcDateTime.Month;

    /// <summary>The counters of one scope. Guarded by the owning tenant's lock.</summary>
    internal class Counters
    {
        public long Month { get; set; }

        public long MonthTokens { get; set; }

        public decimal MonthCostUsd { get; set; }

        public long ReservedTokens { get; set; }

        public decimal ReservedCostUsd { get; set; }

        public long Minute { get; set; }

        public long MinuteRequests { get; set; }

        public long MinuteTokens { get; set; }

        public void Roll(long month, long minute)
        {
            if (Month != month)
            {
                // Reservations in flight across the boundary settle into nothing: they belong to the old month.
                Month = month;
                MonthTokens = 0;
                MonthCostUsd = 0m;
                ReservedTokens = 0;
                ReservedCostUsd = 0m;
            }

            if (Minute != minute)
            {
                Minute = minute;
                MinuteRequests = 0;
                MinuteTokens = 0;
            }
        }
    }

    /// <summary>A tenant's counters and those of its keys; the object is the lock for all of them.</summary>
    internal sealed class TenantCounters : Counters
    {
        private readonly Dictionary<string, Counters> _keys = new(StringComparer.Ordinal);

        public Counters KeyCounters(string keyId)
        {
            if (!_keys.TryGetValue(keyId, out var counters))
            {
                counters = new Counters { Month = Month, Minute = Minute };
                _keys[keyId] = counters;
            }

            return counters;
        }
    }
}
