using Tollgate.Configuration;
using Tollgate.Health;
using Tollgate.Metering;
using Tollgate.Requests;

namespace Tollgate.Routing;

/// <summary>Why a candidate of a route was not tried.</summary>
public enum SkipReason
{
    NotConfigured,
    CircuitOpen,
    CoolingDown,
    MissingCapability,
    ContextTooSmall,
}

/// <summary>A candidate the router will try, with the cost it expects.</summary>
public readonly record struct PlannedCandidate(Deployment Deployment, decimal? ExpectedCostUsd);

/// <summary>A candidate left out of the plan, and why.</summary>
public readonly record struct SkippedCandidate(Deployment Deployment, SkipReason Reason, string Detail);

/// <summary>The ordered attempts for one request.</summary>
public sealed record RoutePlan(Route Route, PlannedCandidate[] Candidates, SkippedCandidate[] Skipped);

/// <summary>
/// Orders a route's candidates for one request: drops those that cannot serve it (not configured,
/// circuit open, cooling down after a 429, missing a capability, context too small), then sorts
/// the rest by expected cost (strategy <c>cheapest</c>) or keeps the configured order (<c>ordered</c>).
/// </summary>
public static class Router
{
    public static RoutePlan Plan(Route route, ParsedRequest request)
    {
        var candidates = route.Candidates;
        var planned = new List<PlannedCandidate>(candidates.Length);
        List<SkippedCandidate>? skipped = null;

        foreach (var deployment in candidates)
        {
            var reason = Check(deployment, request, out var detail);
            if (reason is { } r)
            {
                (skipped ??= []).Add(new SkippedCandidate(deployment, r, detail!));
                continue;
            }

            var output = ExpectedOutputTokens(deployment, request);
            planned.Add(new PlannedCandidate(deployment, CostCalculator.Expected(deployment.Prices, request.EstimatedInputTokens, output)));
        }

        var ordered = planned.ToArray();
        if (route.Strategy == RouteStrategy.Cheapest && ordered.Length > 1)
        {
            // Stable: equal costs keep the configured order. Unknown prices go last.
            var keys = new (decimal Cost, int Index)[ordered.Length];
            for (var i = 0; i < ordered.Length; i++)
            {
                keys[i] = (ordered[i].ExpectedCostUsd ?? decimal.MaxValue, i);
            }

            Array.Sort(keys, ordered);
        }

        return new RoutePlan(route, ordered, skipped?.ToArray() ?? []);
    }

    /// <summary>Output tokens to expect: the request's cap, else the deployment's maximum (worst case).</summary>
    public static long ExpectedOutputTokens(Deployment deployment, ParsedRequest request) =>
        request.Kind == RequestKind.Embedding ? 0 : (long)(request.MaxTokens ?? deployment.MaxOutputTokens) * request.Choices;

    private static SkipReason? Check(Deployment deployment, ParsedRequest request, out string? detail)
    {
        if (!deployment.Provider.IsConfigured)
        {
            detail = deployment.Provider.IsKeyless
                ? $"provider '{deployment.Provider.Name}' is not reachable"
                : $"provider '{deployment.Provider.Name}' has no API key (set {deployment.Provider.ApiKeyEnv})";
            return SkipReason.NotConfigured;
        }

        var missing = request.Needs & ~deployment.Capabilities;
        if (missing != Capability.None)
        {
            detail = $"does not support {Describe(missing)}";
            return SkipReason.MissingCapability;
        }

        if (request.Kind == RequestKind.ChatCompletion)
        {
            var needed = (long)request.EstimatedInputTokens + (request.MaxTokens ?? 0);
            if (needed > deployment.ContextWindow)
            {
                detail = $"needs about {needed} tokens, context window is {deployment.ContextWindow}";
                return SkipReason.ContextTooSmall;
            }
        }

        switch (deployment.Health.Check())
        {
            case Availability.CircuitOpen:
                detail = "circuit open";
                return SkipReason.CircuitOpen;
            case Availability.CoolingDown:
                detail = "cooling down after a rate limit";
                return SkipReason.CoolingDown;
        }

        detail = null;
        return null;
    }

    private static string Describe(Capability missing)
    {
        var names = new List<string>(4);
        foreach (var flag in (Capability[])[Capability.Tools, Capability.Vision, Capability.Json, Capability.Embeddings])
        {
            if ((missing & flag) != 0)
            {
                names.Add(Capabilities.Describe(flag));
            }
        }

        return string.Join(", ", names);
    }

    public static string Name(this SkipReason reason) => reason switch
    {
        SkipReason.NotConfigured => "not_configured",
        SkipReason.CircuitOpen => "circuit_open",
        SkipReason.CoolingDown => "cooling_down",
        SkipReason.MissingCapability => "missing_capability",
        SkipReason.ContextTooSmall => "context_too_small",
        _ => "unknown",
    };
}
