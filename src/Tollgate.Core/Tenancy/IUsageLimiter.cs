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
    public static LimitDecision Allow { get; } = new(LimitKind.None, string.Empty, null);

    public bool Allowed => Kind == LimitKind.None;
}

/// <summary>A decision and, when the request may go, what it holds.</summary>
public readonly record struct LimitOutcome(LimitDecision Decision, Reservation? Reservation);

/// <summary>Month-to-date tokens and provider cost of a tenant and of one of its keys.</summary>
public readonly record struct MonthToDate(long Tokens, decimal CostUsd, long KeyTokens, decimal KeyCostUsd);

/// <summary>
/// Worst-case tokens and cost held for one in-flight request until it is settled or released. Each limiter
/// subclasses it with what it needs to find its counters again.
/// </summary>
public abstract class Reservation(ApiKeyRecord key, PlanOptions? plan, long tokens, decimal costUsd, long minute, long month)
{
    public string TenantId { get; } = key.TenantId;

    public string KeyId { get; } = key.Id;

    /// <summary>True when the key has limits of its own (its counters are kept apart from the tenant's).</summary>
    public bool KeyLimited { get; } = key.Limits is not null;

    public PlanOptions? Plan { get; } = plan;

    public long Tokens { get; } = tokens;

    /// <summary>Reserved provider cost, in USD rounded to whole picodollars like the ledger's.</summary>
    public decimal CostUsd { get; } = costUsd;

    /// <summary>Unix minute of the reservation.</summary>
    public long Minute { get; } = minute;

    /// <summary>Calendar month of the reservation (year × 12 + month, UTC).</summary>
    public long Month { get; } = month;

    /// <summary>Settled or released: a second settle does nothing.</summary>
    public bool Done { get; set; }
}

/// <summary>
/// Hard limits per tenant and per key: per calendar month (tokens, provider cost) and per minute (requests,
/// tokens). A request reserves its worst case before dispatch, the check and the reservation in one atomic step,
/// so concurrent requests can never all see the same headroom; afterwards the reservation is settled to the real
/// usage, or released when nothing was used. Spend passes a limit only by what a request's real usage exceeds its
/// reservation. <see cref="InMemoryUsageLimiter"/> keeps the counters in the process (one instance); the shared
/// database's limiter keeps them where every instance sees them.
/// </summary>
public interface IUsageLimiter
{
    /// <summary>Loads what the counters need before the first request (month-to-date usage from the ledger).</summary>
    Task InitializeAsync(ILedgerStore ledger, CancellationToken cancellationToken);

    /// <summary>
    /// Checks every limit of the key and its tenant's plan and, when all fit, reserves <paramref name="tokens"/> and
    /// <paramref name="costUsd"/> (null: unknown price) against all of them at once.
    /// </summary>
    ValueTask<LimitOutcome> TryReserveAsync(ApiKeyRecord key, PlanOptions? plan, long tokens, decimal? costUsd, CancellationToken cancellationToken);

    /// <summary>
    /// Adds the provider cost of an extra attempt of a reserved request (a hedge that lost, an escalated answer) to
    /// the month-to-date spend of its tenant and key. Tokens are not added: extra attempts are the gateway's routing
    /// overhead, never counted against the tenant's token quota or sold to it.
    /// </summary>
    ValueTask AddExtraCostAsync(Reservation reservation, decimal costUsd);

    /// <summary>
    /// Replaces the reservation with what was used. A null cost keeps the reserved cost (the conservative choice when
    /// nothing better is known; the dispatcher passes an unknown cost's bound instead, see CostCalculator.Bound). Returns what the tenant is charged: tokens beyond the plan's included tokens this month at the plan's
    /// overage price, in picodollars.
    /// </summary>
    ValueTask<long> SettleAsync(Reservation reservation, long tokens, decimal? costUsd);

    /// <summary>Gives a reservation back unused (the request failed before any usage).</summary>
    ValueTask ReleaseAsync(Reservation reservation);

    /// <summary>Month-to-date settled tokens and cost of a tenant and of one of its keys.</summary>
    ValueTask<MonthToDate> MonthToDateAsync(string tenantId, string keyId, CancellationToken cancellationToken);

    /// <summary>
    /// Whether the counters of a scope (<paramref name="keyId"/> null: the tenant's) still owe the reset that a saved
    /// change of its limits or plan asked for, because the store that keeps them apart from the data (Redis) could not
    /// be reached. The limiter carries it out once that store answers again, before it reads those counters. Always
    /// false where the counters are reset with the change itself (in memory, in the database).
    /// </summary>
    bool OwesCounterReset(string tenantId, string? keyId) => false;
}
