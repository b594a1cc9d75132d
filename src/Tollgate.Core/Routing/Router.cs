using Tollgate.Configuration;
using Tollgate.Health;
using Tollgate.Metering;
using Tollgate.Requests;
using Tollgate.Routing.Classification;

namespace Tollgate.Routing;

/// <summary>Why a candidate of a route was not tried.</summary>
public enum SkipReason
{
    NotConfigured,
    CircuitOpen,
    CoolingDown,
    MissingCapability,
    ContextTooSmall,

    /// <summary>Below the tier the task needs, or below the request's <c>min-tier</c>.</summary>
    TierTooLow,

    /// <summary>Not in the request's provider allow-list.</summary>
    ProviderNotAllowed,

    /// <summary>In the request's provider exclude-list.</summary>
    ProviderExcluded,

    /// <summary>Expected latency over the request's budget.</summary>
    TooSlow,

    /// <summary>Expected cost over the request's ceiling (or unknown, with a ceiling set).</summary>
    TooExpensive,
}

/// <summary>How the task of a request was decided.</summary>
public enum TaskSource
{
    /// <summary>The route does not route by task.</summary>
    None,

    /// <summary>The caller said so (<c>x-tollgate-task</c> or <c>tollgate.task</c>).</summary>
    Stated,

    /// <summary>The classifier read the messages.</summary>
    Classified,
}

/// <summary>The task a request is routed as, and the tier it needs.</summary>
public readonly record struct TaskDecision(TaskKind Task, TaskSource Source, float Confidence, int MinimumTier);

/// <summary>A candidate the router will try, with the cost and latency it expects.</summary>
public readonly record struct PlannedCandidate(Deployment Deployment, decimal? ExpectedCostUsd, double? ExpectedLatencyMs = null);

/// <summary>A candidate left out of the plan, and why.</summary>
public readonly record struct SkippedCandidate(Deployment Deployment, SkipReason Reason, string Detail);

/// <summary>The ordered attempts for one request, and what decided them.</summary>
public sealed record RoutePlan(Route Route, PlannedCandidate[] Candidates, SkippedCandidate[] Skipped)
{
    /// <summary>The task decision when the route routes by task (or the request verifies).</summary>
    public TaskDecision? Task { get; init; }

    /// <summary>No candidate met the task's tier, so the best tier available serves it.</summary>
    public bool TierFallback { get; init; }

    /// <summary>No candidate met the latency or cost budget; the request allowed best effort, so the budgets were dropped.</summary>
    public bool BestEffort { get; init; }

    /// <summary>Verify-then-escalate: candidates are in tier order and an answer that fails its schema moves to a higher tier.</summary>
    public bool Verify { get; init; }
}

/// <summary>
/// Orders a route's candidates for one request: drops those that cannot serve it (not configured, outside
/// the request's provider lists, missing a capability, context too small, below the tier, circuit open,
/// cooling down after a 429, over the latency or cost budget), then sorts the rest by expected cost
/// (<c>cheapest</c> and <c>task</c>), keeps the configured order (<c>ordered</c>), or goes up the tiers
/// cheapest-first (verify-then-escalate).
/// </summary>
public static class Router
{
    /// <summary>Plans a route with no constraints and no task (the strategy alone decides).</summary>
    public static RoutePlan Plan(Route route, ParsedRequest request) => Plan(route, request, RequestConstraints.None, task: null, verify: false);

    /// <param name="task">The task decision for task routing; null for routes that do not route by task.</param>
    /// <param name="verify">Whether the request runs verify-then-escalate (the caller checked it is verifiable).</param>
    public static RoutePlan Plan(Route route, ParsedRequest request, RequestConstraints constraints, TaskDecision? task, bool verify)
    {
        var plan = Plan(route, request, constraints, task, verify, budgets: true);
        if (plan.Candidates.Length == 0 && constraints.BestEffort && Array.Exists(plan.Skipped, s => s.Reason is SkipReason.TooSlow or SkipReason.TooExpensive))
        {
            plan = Plan(route, request, constraints, task, verify, budgets: false) with { BestEffort = true };
        }

        return plan;
    }

    private static RoutePlan Plan(Route route, ParsedRequest request, RequestConstraints constraints, TaskDecision? task, bool verify, bool budgets)
    {
        var candidates = route.Candidates;
        var planned = new List<PlannedCandidate>(candidates.Length);
        List<SkippedCandidate>? skipped = null;
        List<PlannedCandidate>? belowTaskTier = null;

        foreach (var deployment in candidates)
        {
            var reason = Check(deployment, request, constraints, out var detail);
            var output = ExpectedOutputTokens(deployment, request);
            var cost = CostCalculator.Expected(deployment.Prices, request.EstimatedInputTokens, output);
            double? latency = null;
            if (reason is null && budgets)
            {
                reason = CheckBudgets(deployment, request, constraints, cost, out latency, out detail);
            }

            if (reason is { } r)
            {
                (skipped ??= []).Add(new SkippedCandidate(deployment, r, detail!));
                continue;
            }

            var candidate = new PlannedCandidate(deployment, cost, latency);

            // The task's tier is a preference the verifier makes safe to undercut: with verify-then-escalate the
            // cheapest capable deployment goes first whatever its tier.
            if (task is { } t && !verify && !deployment.Serves(t.Task, t.MinimumTier))
            {
                (belowTaskTier ??= []).Add(candidate);
                continue;
            }

            planned.Add(candidate);
        }

        var tierFallback = false;
        if (planned.Count == 0 && belowTaskTier is not null)
        {
            // Nothing at the task's tier can serve: the best tier available is better than no answer.
            planned.AddRange(belowTaskTier);
            tierFallback = true;
        }
        else if (belowTaskTier is not null)
        {
            foreach (var below in belowTaskTier)
            {
                (skipped ??= []).Add(new SkippedCandidate(below.Deployment, SkipReason.TierTooLow,
                    $"tier {below.Deployment.Tier}, {task!.Value.Task.Name()} needs {task.Value.MinimumTier}"));
            }
        }

        var ordered = planned.ToArray();
        if (ordered.Length > 1)
        {
            if (verify || tierFallback)
            {
                // Verify: cheapest tier first, escalating upwards. Fallback: the highest tier left first.
                Sort(ordered, c => (tierFallback ? -c.Deployment.Tier : c.Deployment.Tier, c.ExpectedCostUsd ?? decimal.MaxValue));
            }
            else if (route.Strategy != RouteStrategy.Ordered)
            {
                // Stable: equal costs keep the configured order. Unknown prices go last.
                Sort(ordered, c => (0, c.ExpectedCostUsd ?? decimal.MaxValue));
            }
        }

        return new RoutePlan(route, ordered, skipped?.ToArray() ?? [])
        {
            Task = task,
            TierFallback = tierFallback,
            Verify = verify,
        };
    }

    private static void Sort(PlannedCandidate[] candidates, Func<PlannedCandidate, (int Tier, decimal Cost)> key)
    {
        var keys = new (int Tier, decimal Cost, int Index)[candidates.Length];
        for (var i = 0; i < candidates.Length; i++)
        {
            var (tier, cost) = key(candidates[i]);
            keys[i] = (tier, cost, i);
        }

        Array.Sort(keys, candidates);
    }

    /// <summary>Output tokens to expect: the request's cap, else the deployment's maximum (worst case).</summary>
    public static long ExpectedOutputTokens(Deployment deployment, ParsedRequest request) =>
        request.Kind == RequestKind.Embedding ? 0 : (long)(request.MaxTokens ?? deployment.MaxOutputTokens) * request.Choices;

    private static SkipReason? Check(Deployment deployment, ParsedRequest request, RequestConstraints constraints, out string? detail)
    {
        if (!deployment.Provider.IsConfigured)
        {
            detail = deployment.Provider.IsKeyless
                ? $"provider '{deployment.Provider.Name}' is not reachable"
                : $"provider '{deployment.Provider.Name}' has no API key (set {deployment.Provider.ApiKeyEnv})";
            return SkipReason.NotConfigured;
        }

        if (constraints.Providers is { } allowed && !Contains(allowed, deployment.Provider.Name))
        {
            detail = $"provider '{deployment.Provider.Name}' is not in the allowed providers";
            return SkipReason.ProviderNotAllowed;
        }

        if (constraints.ExcludeProviders is { } excluded && Contains(excluded, deployment.Provider.Name))
        {
            detail = $"provider '{deployment.Provider.Name}' is excluded";
            return SkipReason.ProviderExcluded;
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

        if (constraints.MinTier is { } minTier && deployment.Tier < minTier)
        {
            detail = $"tier {deployment.Tier}, the request asks for at least {minTier}";
            return SkipReason.TierTooLow;
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

    private static SkipReason? CheckBudgets(Deployment deployment, ParsedRequest request, RequestConstraints constraints, decimal? cost, out double? latency, out string? detail)
    {
        latency = null;
        detail = null;
        if (constraints.MaxCostUsd is { } ceiling)
        {
            if (cost is not { } expected)
            {
                detail = "price unknown, the request sets a cost ceiling";
                return SkipReason.TooExpensive;
            }

            if (expected > ceiling)
            {
                detail = $"expected cost ${Format(expected)} over the ceiling ${Format(ceiling)}";
                return SkipReason.TooExpensive;
            }
        }

        if (constraints.MaxLatencyMs is { } budget)
        {
            // Unmeasured deployments are given the benefit of the doubt: the first requests measure them.
            latency = deployment.Health.Latency().Expected(request.Stream, request.MaxTokens);
            if (latency > budget)
            {
                detail = $"expected {Math.Round(latency.Value)} ms, budget {budget} ms";
                return SkipReason.TooSlow;
            }
        }

        return null;
    }

    private static bool Contains(IReadOnlyList<string> names, string name)
    {
        foreach (var n in names)
        {
            if (string.Equals(n, name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    private static string Format(decimal usd) => usd.ToString("0.##########", System.Globalization.CultureInfo.InvariantCulture);

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
        SkipReason.TierTooLow => "tier_too_low",
        SkipReason.ProviderNotAllowed => "provider_not_allowed",
        SkipReason.ProviderExcluded => "provider_excluded",
        SkipReason.TooSlow => "too_slow",
        SkipReason.TooExpensive => "too_expensive",
        _ => "unknown",
    };

    /// <summary>Whether the reason is one of the request's own constraints (as opposed to the deployment's state).</summary>
    public static bool IsConstraint(this SkipReason reason) =>
        reason is SkipReason.TierTooLow or SkipReason.ProviderNotAllowed or SkipReason.ProviderExcluded or SkipReason.TooSlow or SkipReason.TooExpensive;
}
