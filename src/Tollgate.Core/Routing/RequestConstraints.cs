using Tollgate.Routing.Classification;

namespace Tollgate.Routing;

/// <summary>
/// What one request asks of its route, from <c>x-tollgate-*</c> headers or the body's <c>tollgate</c> object
/// (headers win field by field). Candidates that cannot meet a constraint are skipped; when none can, the
/// request fails with the constraint named, unless <see cref="BestEffort"/> lets the budgets (latency and cost) go.
/// </summary>
public sealed record RequestConstraints
{
    public static RequestConstraints None { get; } = new();

    /// <summary>The task, stated by the caller: task routing skips classification.</summary>
    public TaskKind? Task { get; init; }

    /// <summary>Longest acceptable expected latency: to the first token for streams, to the whole answer otherwise.</summary>
    public int? MaxLatencyMs { get; init; }

    /// <summary>Highest acceptable expected cost of the request (worst case: estimated input plus the output cap).</summary>
    public decimal? MaxCostUsd { get; init; }

    /// <summary>Lowest acceptable deployment tier.</summary>
    public int? MinTier { get; init; }

    /// <summary>Only these providers may serve the request.</summary>
    public IReadOnlyList<string>? Providers { get; init; }

    /// <summary>These providers may not serve the request.</summary>
    public IReadOnlyList<string>? ExcludeProviders { get; init; }

    /// <summary>When no candidate meets the latency or cost budget, serve anyway with the best candidate there is.</summary>
    public bool BestEffort { get; init; }

    /// <summary>Ask for (or, with false, decline) verify-then-escalate on a JSON-schema request.</summary>
    public bool? Verify { get; init; }

    /// <summary>This request's values where set, <paramref name="fallback"/>'s elsewhere.</summary>
    public RequestConstraints Over(RequestConstraints fallback) => ReferenceEquals(fallback, None) ? this : new()
    {
        Task = Task ?? fallback.Task,
        MaxLatencyMs = MaxLatencyMs ?? fallback.MaxLatencyMs,
        MaxCostUsd = MaxCostUsd ?? fallback.MaxCostUsd,
        MinTier = MinTier ?? fallback.MinTier,
        Providers = Providers ?? fallback.Providers,
        ExcludeProviders = ExcludeProviders ?? fallback.ExcludeProviders,
        BestEffort = BestEffort || fallback.BestEffort,
        Verify = Verify ?? fallback.Verify,
    };
}
