using System.Globalization;
using Tollgate.Requests;
using Tollgate.Routing;
using Tollgate.Routing.Classification;

namespace Tollgate.Server.Dispatch;

/// <summary>
/// Reads the per-request routing constraints a client sends as headers. They lie over the body's
/// <c>tollgate</c> object field by field (a proxy in front of an application can add or tighten them without
/// touching bodies). A malformed value is a 400 naming the header, never silently ignored.
/// </summary>
internal static class ConstraintHeaders
{
    public const string Task = "x-tollgate-task";
    public const string MaxLatencyMs = "x-tollgate-max-latency-ms";
    public const string MaxCostUsd = "x-tollgate-max-cost-usd";
    public const string MinTier = "x-tollgate-min-tier";
    public const string Providers = "x-tollgate-providers";
    public const string ExcludeProviders = "x-tollgate-exclude-providers";
    public const string BestEffort = "x-tollgate-best-effort";
    public const string Verify = "x-tollgate-verify";

    public static bool TryRead(IHeaderDictionary headers, out RequestConstraints constraints, out RequestError? error)
    {
        constraints = RequestConstraints.None;
        error = null;

        // The common case, no routing headers at all, costs one lookup per name and allocates nothing.
        if (!Has(headers, Task) && !Has(headers, MaxLatencyMs) && !Has(headers, MaxCostUsd) && !Has(headers, MinTier)
            && !Has(headers, Providers) && !Has(headers, ExcludeProviders) && !Has(headers, BestEffort) && !Has(headers, Verify))
        {
            return true;
        }

        var result = new RequestConstraints();
        if (Value(headers, Task) is { } task)
        {
            if (!TaskKinds.TryParse(task, out var kind))
            {
                return Fail(out error, Task, $"must be one of: {string.Join(", ", TaskKinds.All.Select(t => t.Name()))}");
            }

            result = result with { Task = kind };
        }

        if (Value(headers, MaxLatencyMs) is { } latency)
        {
            if (!int.TryParse(latency, NumberStyles.None, CultureInfo.InvariantCulture, out var ms) || ms <= 0)
            {
                return Fail(out error, MaxLatencyMs, "must be a positive whole number of milliseconds");
            }

            result = result with { MaxLatencyMs = ms };
        }

        if (Value(headers, MaxCostUsd) is { } cost)
        {
            if (!decimal.TryParse(cost, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var usd))
            {
                return Fail(out error, MaxCostUsd, "must be a non-negative number of US dollars, such as 0.01");
            }

            result = result with { MaxCostUsd = usd };
        }

        if (Value(headers, MinTier) is { } tier)
        {
            if (!int.TryParse(tier, NumberStyles.None, CultureInfo.InvariantCulture, out var t) || t is < 1 or > 5)
            {
                return Fail(out error, MinTier, "must be a tier from 1 (small or local) to 5");
            }

            result = result with { MinTier = t };
        }

        if (Value(headers, Providers) is { } allowed)
        {
            result = result with { Providers = Names(allowed) };
        }

        if (Value(headers, ExcludeProviders) is { } excluded)
        {
            result = result with { ExcludeProviders = Names(excluded) };
        }

        if (Value(headers, BestEffort) is { } bestEffort)
        {
            if (!bool.TryParse(bestEffort, out var b))
            {
                return Fail(out error, BestEffort, "must be true or false");
            }

            result = result with { BestEffort = b };
        }

        if (Value(headers, Verify) is { } verify)
        {
            if (!bool.TryParse(verify, out var v))
            {
                return Fail(out error, Verify, "must be true or false");
            }

            result = result with { Verify = v };
        }

        constraints = result;
        return true;
    }

    private static bool Has(IHeaderDictionary headers, string name) => headers.ContainsKey(name);

    private static string? Value(IHeaderDictionary headers, string name) =>
        headers.TryGetValue(name, out var values) && values.Count > 0 && !string.IsNullOrWhiteSpace(values[0]) ? values[0]!.Trim() : null;

    private static string[] Names(string list) => list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static bool Fail(out RequestError? error, string header, string rule)
    {
        error = new RequestError($"The header '{header}' {rule}.", header, "invalid_header");
        return false;
    }
}
