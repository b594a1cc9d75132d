using System.Globalization;
using System.Runtime.CompilerServices;
using Tollgate.Routing;
using Tollgate.Routing.Classification;
using Tollgate.Server.Diagnostics;

namespace Tollgate.Server.Dispatch;

/// <summary>
/// What the router decided and the dispatcher did for one request, rendered into the <c>x-tollgate-route</c>
/// header: the route and strategy, the task (and how it was decided), the candidates in planned order with
/// their expected cost, the ones skipped and why, each attempt's outcome, and the chosen deployment's expected cost.
/// </summary>
internal sealed class AttemptLog(RoutePlan plan, GatewayMetrics metrics)
{
    private readonly List<(string Deployment, string Outcome)> _attempts = new(2);

    public int Count => _attempts.Count;

    public IReadOnlyList<(string Deployment, string Outcome)> Attempts => _attempts;

    /// <summary>The deployment whose answer the client got.</summary>
    public Deployment? Chosen { get; set; }

    public int Escalations { get; set; }

    public void Add(Deployment deployment, string outcome)
    {
        _attempts.Add((deployment.Id, outcome));
        metrics.Attempt(deployment, outcome);
    }

    /// <summary>
    /// E.g. <c>auto; strategy=task; task=reasoning(classified,0.93); min_tier=3;
    /// candidates=deepseek/deepseek-reasoner:$0.0275,openai/gpt-4o:$0.1640; skipped=ollama/llama3.2:tier_too_low;
    /// tried=deepseek/deepseek-reasoner:ok; chosen=deepseek/deepseek-reasoner; expected_cost_usd=0.0275</c>.
    /// </summary>
    public string ToHeader()
    {
        // Every answer carries this header, so it is formatted into a stack buffer (the handler rents a larger
        // one only for a long plan) and the costs straight into it: one string allocated, the header itself.
        var text = new DefaultInterpolatedStringHandler(0, 0, CultureInfo.InvariantCulture, stackalloc char[256]);
        text.AppendFormatted(plan.Route.Name);
        text.AppendLiteral(plan.Route.Strategy switch
        {
            RouteStrategy.Cheapest => "; strategy=cheapest",
            RouteStrategy.Ordered => "; strategy=ordered",
            _ => "; strategy=task",
        });
        if (plan.Task is { } task)
        {
            text.AppendLiteral("; task=");
            text.AppendFormatted(task.Task.Name());
            text.AppendLiteral(task.Source == TaskSource.Stated ? "(stated" : "(classified");
            if (task.Source == TaskSource.Classified)
            {
                text.AppendLiteral(",");
                text.AppendFormatted(task.Confidence, "0.00");
            }

            text.AppendLiteral("); min_tier=");
            text.AppendFormatted(task.MinimumTier);
        }

        if (plan.Verify)
        {
            text.AppendLiteral("; verify=true; escalations=");
            text.AppendFormatted(Escalations);
        }

        if (plan.TierFallback)
        {
            text.AppendLiteral("; tier_fallback=true");
        }

        if (plan.BestEffort)
        {
            text.AppendLiteral("; best_effort=true");
        }

        decimal? chosenCost = null;
        for (var i = 0; i < plan.Candidates.Length; i++)
        {
            var candidate = plan.Candidates[i];
            if (ReferenceEquals(candidate.Deployment, Chosen))
            {
                chosenCost = candidate.ExpectedCostUsd;
            }

            text.AppendLiteral(i == 0 ? "; candidates=" : ",");
            text.AppendFormatted(candidate.Deployment.Id);
            AppendCost(ref text, candidate.ExpectedCostUsd, ":$", ":price_unknown");
        }

        for (var i = 0; i < plan.Skipped.Length; i++)
        {
            text.AppendLiteral(i == 0 ? "; skipped=" : ",");
            text.AppendFormatted(plan.Skipped[i].Deployment.Id);
            text.AppendLiteral(":");
            text.AppendFormatted(plan.Skipped[i].Reason.Name());
        }

        for (var i = 0; i < _attempts.Count; i++)
        {
            text.AppendLiteral(i == 0 ? "; tried=" : ",");
            text.AppendFormatted(_attempts[i].Deployment);
            text.AppendLiteral(":");
            text.AppendFormatted(_attempts[i].Outcome);
        }

        if (Chosen is { } chosen)
        {
            text.AppendLiteral("; chosen=");
            text.AppendFormatted(chosen.Id);
            AppendCost(ref text, chosenCost, "; expected_cost_usd=", null);
        }

        return HeaderValue.Ascii(text.ToStringAndClear());
    }

    /// <summary>A cost in USD after <paramref name="prefix"/>, or <paramref name="unknown"/> when it is not known.</summary>
    private static void AppendCost(ref DefaultInterpolatedStringHandler text, decimal? usd, string prefix, string? unknown)
    {
        if (usd is { } cost)
        {
            text.AppendLiteral(prefix);
            text.AppendFormatted(cost, "0.##########");
        }
        else if (unknown is not null)
        {
            text.AppendLiteral(unknown);
        }
    }
}

/// <summary>Header values must be ASCII; configuration names may not be.</summary>
internal static class HeaderValue
{
    public static string Ascii(string value)
    {
        foreach (var c in value)
        {
            if (c is < ' ' or > '~')
            {
                return Uri.EscapeDataString(value);
            }
        }

        return value;
    }
}
