using Tollgate.Routing;

namespace Tollgate.Metering;

/// <summary>
/// Prices usage in decimal USD. Each disjoint bucket is multiplied by its own per-1M rate and the
/// products are added; nothing is subtracted. A bucket that occurred without a price makes the
/// whole cost unknown (null), never zero.
/// </summary>
public static class CostCalculator
{
    private const decimal Million = 1_000_000m;

    public static decimal? Cost(DeploymentPrices prices, UsageBuckets usage)
    {
        var total = 0m;
        return TryAdd(ref total, usage.InputUncached, prices.InputPerMillion)
            && TryAdd(ref total, usage.InputCached, prices.CachedInputPerMillion)
            && TryAdd(ref total, usage.CacheWrite5m, prices.CacheWrite5mPerMillion)
            && TryAdd(ref total, usage.CacheWrite1h, prices.CacheWrite1hPerMillion)
            && TryAdd(ref total, usage.OutputText, prices.OutputPerMillion)
            && TryAdd(ref total, usage.OutputReasoning, prices.ReasoningOutputPerMillion ?? prices.OutputPerMillion)
            ? total
            : null;
    }

    /// <summary>
    /// What a budget counts for usage whose <see cref="Cost"/> is unknown: each bucket at its own rate, and each bucket
    /// without one at the dearest rate the deployment lists. It assumes no missing rate is dearer than every listed one
    /// (cache reads and writes cost less than output at every provider Tollgate knows), which is what makes it safe to
    /// count against a limit where 0 would let the budget be overspent. The ledger keeps the cost unknown; this figure
    /// is for limits only. Null when the deployment lists no rate at all.
    /// </summary>
    public static decimal? Bound(DeploymentPrices prices, UsageBuckets usage)
    {
        decimal? dearest = null;
        foreach (var rate in (ReadOnlySpan<decimal?>)[prices.InputPerMillion, prices.CachedInputPerMillion, prices.CacheWrite5mPerMillion,
                     prices.CacheWrite1hPerMillion, prices.OutputPerMillion, prices.ReasoningOutputPerMillion])
        {
            if (rate is { } r && (dearest is null || r > dearest))
            {
                dearest = r;
            }
        }

        if (dearest is null)
        {
            return null;
        }

        var total = 0m;
        TryAdd(ref total, usage.InputUncached, prices.InputPerMillion ?? dearest);
        TryAdd(ref total, usage.InputCached, prices.CachedInputPerMillion ?? dearest);
        TryAdd(ref total, usage.CacheWrite5m, prices.CacheWrite5mPerMillion ?? dearest);
        TryAdd(ref total, usage.CacheWrite1h, prices.CacheWrite1hPerMillion ?? dearest);
        TryAdd(ref total, usage.OutputText, prices.OutputPerMillion ?? dearest);
        TryAdd(ref total, usage.OutputReasoning, prices.ReasoningOutputPerMillion ?? prices.OutputPerMillion ?? dearest);
        return total;
    }

    /// <summary>
    /// The default savings baseline: what <paramref name="usage"/> would have cost on the most expensive of
    /// <paramref name="candidates"/> (the route's premium choice). Candidates whose price for these buckets is
    /// unknown are left out; null when none is known.
    /// </summary>
    public static decimal? Baseline(ReadOnlySpan<Deployment> candidates, UsageBuckets usage)
    {
        decimal? highest = null;
        foreach (var candidate in candidates)
        {
            if (Cost(candidate.Prices, usage) is { } cost && (highest is null || cost > highest))
            {
                highest = cost;
            }
        }

        return highest;
    }

    /// <summary>
    /// Expected cost of a request before it is sent, for ordering candidates: estimated input at the
    /// input rate plus expected output at the output rate. Null when a needed price is unknown.
    /// </summary>
    public static decimal? Expected(DeploymentPrices prices, long inputTokens, long outputTokens)
    {
        var total = 0m;
        return TryAdd(ref total, inputTokens, prices.InputPerMillion) && TryAdd(ref total, outputTokens, prices.OutputPerMillion)
            ? total
            : null;
    }

    private static bool TryAdd(ref decimal total, long tokens, decimal? perMillion)
    {
        if (tokens == 0)
        {
            return true;
        }

        if (perMillion is not { } rate)
        {
            return false;
        }

        total += tokens * rate / Million;
        return true;
    }
}
