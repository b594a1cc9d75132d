using System.Globalization;
using System.Text;
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
        var text = new StringBuilder(192);
        text.Append(plan.Route.Name).Append("; strategy=").Append(plan.Route.Strategy switch
        {
            RouteStrategy.Cheapest => "cheapest",
            RouteStrategy.Ordered => "ordered",
            _ => "task",
        });
        if (plan.Task is { } task)
        {
            text.Append("; task=").Append(task.Task.Name()).Append('(')
                .Append(task.Source == TaskSource.Stated ? "stated" : "classified");
            if (task.Source == TaskSource.Classified)
            {
                text.Append(',').Append(task.Confidence.ToString("0.00", CultureInfo.InvariantCulture));
            }

            text.Append("); min_tier=").Append(task.MinimumTier);
        }

        if (plan.Verify)
        {
            text.Append("; verify=true; escalations=").Append(Escalations);
        }

        if (plan.TierFallback)
        {
            text.Append("; tier_fallback=true");
        }

        if (plan.BestEffort)
        {
            text.Append("; best_effort=true");
        }

        string? chosenCost = null;
        if (plan.Candidates.Length > 0)
        {
            text.Append("; candidates=");
            for (var i = 0; i < plan.Candidates.Length; i++)
            {
                var candidate = plan.Candidates[i];
                var cost = Cost(candidate.ExpectedCostUsd);
                if (ReferenceEquals(candidate.Deployment, Chosen) && candidate.ExpectedCostUsd is not null)
                {
                    chosenCost = cost;
                }

                text.Append(i == 0 ? string.Empty : ",").Append(candidate.Deployment.Id).Append(candidate.ExpectedCostUsd is null ? ":" : ":$").Append(cost);
            }
        }

        if (plan.Skipped.Length > 0)
        {
            text.Append("; skipped=");
            for (var i = 0; i < plan.Skipped.Length; i++)
            {
                text.Append(i == 0 ? string.Empty : ",").Append(plan.Skipped[i].Deployment.Id).Append(':').Append(plan.Skipped[i].Reason.Name());
            }
        }

        if (_attempts.Count > 0)
        {
            text.Append("; tried=");
            for (var i = 0; i < _attempts.Count; i++)
            {
                text.Append(i == 0 ? string.Empty : ",").Append(_attempts[i].Deployment).Append(':').Append(_attempts[i].Outcome);
            }
        }

        if (Chosen is { } chosen)
        {
            text.Append("; chosen=").Append(chosen.Id);
            if (chosenCost is not null)
            {
                text.Append("; expected_cost_usd=").Append(chosenCost);
            }
        }

        return HeaderValue.Ascii(text.ToString());
    }

    private static string Cost(decimal? usd) => usd is { } c ? c.ToString("0.##########", CultureInfo.InvariantCulture) : "price_unknown";
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
