namespace Tollgate.Metering;

/// <summary>
/// One request in the usage ledger, success or failure. Never holds a prompt or a completion: ids, names,
/// token counts, money, timings and codes only. Money is exact: integer picodollars (see <see cref="Money"/>).
/// </summary>
public sealed record LedgerEntry
{
    public required string RequestId { get; init; }

    /// <summary>When the request arrived, in Unix milliseconds (UTC).</summary>
    public required long TimestampMs { get; init; }

    public required string TenantId { get; init; }

    public required string KeyId { get; init; }

    /// <summary>The model name the client asked for; empty when the body had none.</summary>
    public required string Model { get; init; }

    /// <summary>The route that served (or would have served) it; null when none was found.</summary>
    public string? Route { get; init; }

    public string? Provider { get; init; }

    public string? Deployment { get; init; }

    public int Attempts { get; init; }

    public UsageBuckets Usage { get; init; }

    /// <summary>Null when no usage was recorded (the request never got an answer).</summary>
    public UsageSource? UsageSource { get; init; }

    /// <summary>What the provider charges, in picodollars; null when a needed price is unknown.</summary>
    public long? CostPicoUsd { get; init; }

    /// <summary>What the tenant is charged for this request beyond its plan's included tokens, in picodollars.</summary>
    public long PricePicoUsd { get; init; }

    /// <summary>Milliseconds until the upstream's first byte (the first event for streams); null without an answer.</summary>
    public long? FirstByteMs { get; init; }

    public long TotalMs { get; init; }

    /// <summary>The HTTP status the client got (499 when the client went away).</summary>
    public int Status { get; init; }

    /// <summary>The OpenAI error <c>code</c> given to the client, or a reason such as <c>client_aborted</c>.</summary>
    public string? ErrorCode { get; init; }

    /// <summary>The task the request was routed as (classified or stated); null when the route does not route by task.</summary>
    public string? Task { get; init; }

    /// <summary>
    /// What the same usage would have cost on the route's most expensive candidate, in picodollars: the
    /// default savings baseline. Null when nothing was used or no candidate's price is known.
    /// </summary>
    public long? BaselineCostPicoUsd { get; init; }

    /// <summary>
    /// <see cref="LedgerAttemptKind.Answer"/> for the request's own row; otherwise the row meters an extra attempt
    /// of the same request that used tokens but did not give the answer (counted in tokens and cost, not as a request).
    /// </summary>
    public LedgerAttemptKind AttemptKind { get; init; }

    /// <summary>How many times the answer was escalated to a stronger tier after failing its check.</summary>
    public int Escalations { get; init; }

    /// <summary>
    /// What the provider itself said this attempt cost (OpenRouter's <c>usage.cost</c>), in picodollars, rounded as
    /// <see cref="Money.ToPico(decimal)"/> rounds <see cref="CostPicoUsd"/>. Null when the provider said nothing, which
    /// is most providers: unknown is not zero. Kept beside <see cref="CostPicoUsd"/> and never used instead of it, so a
    /// stale price table shows as a difference between the two.
    /// </summary>
    public long? ProviderReportedCostPicoUsd { get; init; }
}

/// <summary>What a ledger row meters.</summary>
public enum LedgerAttemptKind
{
    /// <summary>The request itself: exactly one such row per request.</summary>
    Answer,

    /// <summary>A hedged attempt that lost the race and was cancelled.</summary>
    Hedge,

    /// <summary>An answer that failed its check (e.g. its JSON schema) and was escalated to a stronger tier.</summary>
    Escalated,
}

/// <summary>Exact money: USD as integer picodollars (10⁻¹² USD) in storage, <see cref="decimal"/> in code.</summary>
/// <remarks>
/// A per-1M-token rate with up to 6 decimals gives a per-token cost with at most 12, so a cost is an exact
/// number of picodollars; finer rates are rounded to the nearest picodollar (banker's rounding). One row's
/// amount fits a 64-bit integer with room to spare; a sum of many may not (see <see cref="SumSplitBits"/>),
/// so sums are <see cref="decimal"/>.
/// </remarks>
public static class Money
{
    /// <summary>
    /// How a store sums a picodollar column exactly. A 64-bit sum of picodollars ends at 9.2 × 10¹⁸, USD 9.2
    /// million, which a year of a busy deployment passes; SQLite then fails the query. So the column is summed
    /// in two parts, <c>value &gt;&gt; 24</c> and <c>value &amp; (2²⁴ − 1)</c>, joined by <see cref="SumToUsd"/>. Each
    /// row's low part is under 2²⁴, so that sum stays in range for 2³⁹ rows, and the high part's sum is
    /// 2²⁴ times smaller than the amount.
    /// </summary>
    public const int SumSplitBits = 24;

    private const decimal PicoPerUsd = 1_000_000_000_000m;

    private const decimal SplitFactor = 1L << SumSplitBits;

    /// <summary>
    /// The largest amount one row holds: <see cref="long.MaxValue"/> picodollars, about USD 9.2 million. Anything
    /// at most this rounds to a picodollar count that still fits 64 bits.
    /// </summary>
    public const decimal MaxRowUsd = long.MaxValue / PicoPerUsd;

    public static decimal FromPico(long picoUsd) => picoUsd / PicoPerUsd;

    public static long ToPico(decimal usd) => (long)decimal.Round(usd * PicoPerUsd, 0, MidpointRounding.ToEven);

    public static long? ToPico(decimal? usd) => usd is { } value ? ToPico(value) : null;

    /// <summary>
    /// An amount a provider stated (its own <c>usage.cost</c>) in picodollars, rounded as <see cref="ToPico(decimal)"/>;
    /// null when there is none, or when it is too large for one row (beyond ±<see cref="MaxRowUsd"/>). The number
    /// comes from an upstream's JSON, so it is not trusted to fit: a garbled one is dropped rather than failing the
    /// row that meters a real request.
    /// </summary>
    public static long? ReportedToPico(decimal? usd) =>
        usd is { } value && Math.Abs(value) <= MaxRowUsd ? ToPico(value) : null;

    /// <summary>The amount rounded to whole picodollars, as a ledger row stores it.</summary>
    public static decimal RoundToPico(decimal usd) => decimal.Round(usd, 12, MidpointRounding.ToEven);

    public static decimal ToUsd(long pico) => pico / PicoPerUsd;

    /// <summary>The exact USD amount of a picodollar column summed in two parts (see <see cref="SumSplitBits"/>).</summary>
    public static decimal SumToUsd(long highSum, long lowSum) => ((highSum * SplitFactor) + lowSum) / PicoPerUsd;

    /// <summary>An exact sum of picodollars (a database's arbitrary-precision <c>sum()</c>) in USD.</summary>
    public static decimal PicoSumToUsd(decimal picoSum) => picoSum / PicoPerUsd;
}

/// <summary>Dimensions a usage report can be grouped by.</summary>
[Flags]
public enum UsageGrouping
{
    None = 0,
    Day = 1,
    Model = 2,
    Provider = 4,
    Tenant = 8,
    Key = 16,
}

/// <summary>A usage report request: [From, To) in UTC, optionally one tenant, grouped by some dimensions.</summary>
public sealed record UsageQuery(DateTimeOffset From, DateTimeOffset To, string? TenantId, UsageGrouping GroupBy);

/// <summary>One group of a usage report. Group columns not asked for are null.</summary>
public sealed record UsageRow
{
    public string? Day { get; init; }

    public string? Model { get; init; }

    public string? Provider { get; init; }

    public string? Tenant { get; init; }

    public string? Key { get; init; }

    public long Requests { get; init; }

    /// <summary>Requests whose status was not 2xx.</summary>
    public long Errors { get; init; }

    public long InputTokens { get; init; }

    public long CachedInputTokens { get; init; }

    public long CacheWriteTokens { get; init; }

    public long OutputTokens { get; init; }

    public long ReasoningTokens { get; init; }

    public long TotalTokens => InputTokens + CachedInputTokens + CacheWriteTokens + OutputTokens + ReasoningTokens;

    /// <summary>Provider cost of the requests whose cost is known.</summary>
    public decimal CostUsd { get; init; }

    /// <summary>Requests with usage but an unknown cost (a price is missing); not included in <see cref="CostUsd"/>.</summary>
    public long UnknownCostRequests { get; init; }

    /// <summary>What the tenant is charged beyond included tokens.</summary>
    public decimal PriceUsd { get; init; }

    /// <summary>
    /// What the providers themselves said the rows cost (OpenRouter's <c>usage.cost</c>), summed over the
    /// <see cref="ProviderReportedCostRequests"/> rows that carried such a cost; null when none did.
    /// </summary>
    public decimal? ProviderReportedCostUsd { get; init; }

    /// <summary>Rows (extra attempt rows included, as in <see cref="UnknownCostRequests"/>) whose provider reported a cost.</summary>
    public long ProviderReportedCostRequests { get; init; }

    /// <summary>
    /// <see cref="CostUsd"/> over exactly the rows in <see cref="ProviderReportedCostUsd"/>, so the two compare like for
    /// like. Null when no row had a reported cost, or when our cost of any of them is unknown (a missing price: that
    /// row is in <see cref="UnknownCostRequests"/>, and a partial sum would not compare).
    /// </summary>
    public decimal? CostUsdWhereProviderReported { get; init; }
}

/// <summary>Month-to-date totals of one key, used to seed the in-memory limit counters at start.</summary>
public readonly record struct KeyMonthTotals(string TenantId, string KeyId, long Tokens, decimal CostUsd);

/// <summary>Where ledger rows live. The request path only appends, in batches; reports read.</summary>
public interface ILedgerStore
{
    /// <summary>Appends rows in one transaction; returns once it is committed.</summary>
    Task AppendAsync(IReadOnlyList<LedgerEntry> entries, CancellationToken cancellationToken);

    Task<IReadOnlyList<UsageRow>> QueryAsync(UsageQuery query, CancellationToken cancellationToken);

    /// <summary>Tokens and known cost per key since <paramref name="monthStart"/>.</summary>
    Task<IReadOnlyList<KeyMonthTotals>> MonthTotalsAsync(DateTimeOffset monthStart, CancellationToken cancellationToken);
}
