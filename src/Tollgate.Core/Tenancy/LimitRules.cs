using Tollgate.Configuration;
using Tollgate.Keys;
using Tollgate.Metering;

namespace Tollgate.Tenancy;

/// <summary>One scope's counters (a tenant, or one key) as a limiter sees them at the moment of a check.</summary>
public class LimitCounters
{
    /// <summary>Calendar month the month counters belong to (year × 12 + month, UTC).</summary>
    public long Month { get; set; }

    public long MonthTokens { get; set; }

    public decimal MonthCostUsd { get; set; }

    public long ReservedTokens { get; set; }

    public decimal ReservedCostUsd { get; set; }

    /// <summary>Unix minute the minute counters belong to.</summary>
    public long Minute { get; set; }

    public long MinuteRequests { get; set; }

    public long MinuteTokens { get; set; }
}

/// <summary>
/// The limit rules, apart from where the counters live: every limiter asks <see cref="Check"/> with the counters it
/// holds locked, and prices overage with <see cref="OveragePicoUsd"/>, so the rules cannot drift between them.
/// </summary>
public static class LimitRules
{
    /// <summary>The first instant of the calendar month (UTC) of <paramref name="now"/>.</summary>
    public static DateTimeOffset MonthStart(DateTimeOffset now) => new(now.UtcDateTime.Year, now.UtcDateTime.Month, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>year × 12 + month (UTC): the key month counters are kept under.</summary>
    public static long MonthOf(DateTimeOffset now) => (now.UtcDateTime.Year * 12L) + now.UtcDateTime.Month;

    public static long MinuteOf(DateTimeOffset now) => now.ToUnixTimeSeconds() / 60;

    /// <summary>A budget applies and the price is unknown: refused before any counter is looked at.</summary>
    public static LimitDecision? RefuseUnknownPrice(ApiKeyRecord key, PlanOptions? plan, decimal? costUsd)
    {
        var budgeted = key.EffectiveLimits.MonthlyBudgetUsd is not null || plan?.MonthlyBudgetUsd is not null;
        return budgeted && costUsd is null
            ? new LimitDecision(LimitKind.UnknownPrice, "This key has a dollar budget and the price of this model is not known to the gateway, so the request is refused (a budget cannot be enforced without a price).", null)
            : null;
    }

    /// <summary>
    /// Whether a request that may use <paramref name="tokens"/> and cost <paramref name="cost"/> fits every limit, given
    /// the tenant's and the key's counters of this month and minute (reservations in flight included).
    /// </summary>
    public static LimitDecision Check(LimitCounters tenant, LimitCounters key, KeyLimits limits, PlanOptions? plan, long tokens, decimal cost, DateTimeOffset now)
    {
        var retry = TimeSpan.FromSeconds(60 - (now.ToUnixTimeSeconds() % 60));
        if (plan?.Rpm is { } tenantRpm && tenant.MinuteRequests + 1 > tenantRpm)
        {
            return new LimitDecision(LimitKind.RateLimit, $"Rate limit reached: the tenant's plan allows {tenantRpm} requests per minute.", retry);
        }

        if (limits.Rpm is { } keyRpm && key.MinuteRequests + 1 > keyRpm)
        {
            return new LimitDecision(LimitKind.RateLimit, $"Rate limit reached: this key allows {keyRpm} requests per minute.", retry);
        }

        // A request larger than a whole minute's allowance still runs in an empty window, or it never could.
        if (plan?.Tpm is { } tenantTpm && tenant.MinuteTokens > 0 && tenant.MinuteTokens + tokens > tenantTpm)
        {
            return new LimitDecision(LimitKind.RateLimit, $"Rate limit reached: the tenant's plan allows {tenantTpm} tokens per minute; this request may use up to {tokens}.", retry);
        }

        if (limits.Tpm is { } keyTpm && key.MinuteTokens > 0 && key.MinuteTokens + tokens > keyTpm)
        {
            return new LimitDecision(LimitKind.RateLimit, $"Rate limit reached: this key allows {keyTpm} tokens per minute; this request may use up to {tokens}.", retry);
        }

        if (plan is { HardQuota: true } && tenant.MonthTokens + tenant.ReservedTokens + tokens > plan.IncludedTokens)
        {
            return new LimitDecision(LimitKind.MonthlyTokenQuota, $"Monthly token quota reached: the tenant's plan includes {plan.IncludedTokens} tokens per month ({tenant.MonthTokens} used, {tenant.ReservedTokens} in flight; this request may use up to {tokens}).", null);
        }

        if (limits.MonthlyTokens is { } keyTokens && key.MonthTokens + key.ReservedTokens + tokens > keyTokens)
        {
            return new LimitDecision(LimitKind.MonthlyTokenQuota, $"Monthly token quota reached: this key allows {keyTokens} tokens per month ({key.MonthTokens} used, {key.ReservedTokens} in flight; this request may use up to {tokens}).", null);
        }

        if (plan?.MonthlyBudgetUsd is { } tenantBudget && tenant.MonthCostUsd + tenant.ReservedCostUsd + cost > tenantBudget)
        {
            return new LimitDecision(LimitKind.Budget, $"Monthly budget reached: the tenant's plan allows USD {tenantBudget} per month; this request may cost up to USD {cost}.", null);
        }

        if (limits.MonthlyBudgetUsd is { } keyBudget && key.MonthCostUsd + key.ReservedCostUsd + cost > keyBudget)
        {
            return new LimitDecision(LimitKind.Budget, $"Monthly budget reached: this key allows USD {keyBudget} per month; this request may cost up to USD {cost}.", null);
        }

        return LimitDecision.Allow;
    }

    /// <summary>
    /// What <paramref name="tokens"/> are charged when the tenant had used <paramref name="before"/> this month: the part
    /// past the plan's included tokens, at its overage price, in picodollars.
    /// </summary>
    public static long OveragePicoUsd(PlanOptions plan, long before, long tokens)
    {
        var over = Math.Max(0, before + tokens - Math.Max(before, plan.IncludedTokens));
        return Money.ToPico(over * plan.OveragePer1KTokensUsd / 1000m);
    }
}
