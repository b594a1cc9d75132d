using Tollgate.Metering;
using Tollgate.Requests;
using Tollgate.Routing;

namespace Tollgate.Server.Dispatch;

/// <summary>The worst case a request can use before it is sent: what a reservation holds.</summary>
internal static class ReservationEstimate
{
    /// <summary>
    /// Input tokens counted from the body with the tokenizer, plus output at <c>max_tokens</c> (else the
    /// deployment's maximum). Tokens: the largest candidate's (extra attempts never count against the tenant's
    /// tokens). Cost: the most expensive candidate's, and when a request can pay for more than one answer, the
    /// sum of those it can pay for: one per tier with verify-then-escalate (each tier may be tried once), the two
    /// dearest with hedging (two attempts race at a time). The cost is null when any candidate's price is
    /// unknown: the worst case is then unknown too.
    /// </summary>
    public static (long Tokens, decimal? CostUsd) Of(ParsedRequest request, RoutePlan plan)
    {
        var input = TokenEstimator.CountRequest(request.Body.Span);
        long tokens = 0;
        var costs = new decimal[plan.Candidates.Length];
        for (var i = 0; i < plan.Candidates.Length; i++)
        {
            var deployment = plan.Candidates[i].Deployment;
            var output = Router.ExpectedOutputTokens(deployment, request);
            tokens = Math.Max(tokens, input + output);
            if (CostCalculator.Expected(deployment.Prices, input, output) is not { } expected)
            {
                return (tokens, null);
            }

            costs[i] = expected;
        }

        if (costs.Length == 0)
        {
            return (tokens, 0m);
        }

        if (plan.Verify)
        {
            // The dearest candidate of each tier: escalation tries each tier at most once.
            var perTier = new Dictionary<int, decimal>();
            for (var i = 0; i < costs.Length; i++)
            {
                var tier = plan.Candidates[i].Deployment.Tier;
                perTier[tier] = Math.Max(perTier.GetValueOrDefault(tier), costs[i]);
            }

            return (tokens, perTier.Values.Sum());
        }

        Array.Sort(costs);
        var cost = costs[^1];
        if (plan.Route.Hedge && costs.Length > 1)
        {
            cost += costs[^2];
        }

        return (tokens, cost);
    }
}
