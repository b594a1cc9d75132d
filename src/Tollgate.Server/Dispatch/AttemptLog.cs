using System.Globalization;
using System.Text;
using Tollgate.Routing;

namespace Tollgate.Server.Dispatch;

/// <summary>
/// What the dispatcher did for one request, rendered into the <c>x-tollgate-route</c> header:
/// the route and strategy, each attempt's outcome in order, and the candidates skipped with their reason.
/// </summary>
internal sealed class AttemptLog(RoutePlan plan)
{
    private readonly List<(string Deployment, string Outcome)> _attempts = new(2);

    public int Count => _attempts.Count;

    public IReadOnlyList<(string Deployment, string Outcome)> Attempts => _attempts;

    public void Add(Deployment deployment, string outcome) => _attempts.Add((deployment.Id, outcome));

    /// <summary>E.g. <c>gpt-4o; strategy=cheapest; tried=openai/gpt-4o:upstream_500,deepseek/deepseek-chat:ok; skipped=openrouter/gpt-4o:not_configured</c>.</summary>
    public string ToHeader()
    {
        var text = new StringBuilder(128);
        text.Append(plan.Route.Name).Append("; strategy=").Append(plan.Route.Strategy == RouteStrategy.Cheapest ? "cheapest" : "ordered");
        if (_attempts.Count > 0)
        {
            text.Append("; tried=");
            for (var i = 0; i < _attempts.Count; i++)
            {
                text.Append(i == 0 ? string.Empty : ",").Append(_attempts[i].Deployment).Append(':').Append(_attempts[i].Outcome);
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

        if (plan.Candidates.Length > 0 && plan.Candidates[0].ExpectedCostUsd is { } expected)
        {
            text.Append("; expected_cost_usd=").Append(expected.ToString("0.########", CultureInfo.InvariantCulture));
        }

        return HeaderValue.Ascii(text.ToString());
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
