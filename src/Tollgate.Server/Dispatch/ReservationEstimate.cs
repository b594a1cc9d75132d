using Tollgate.Metering;
using Tollgate.Requests;
using Tollgate.Routing;

namespace Tollgate.Server.Dispatch;

/// <summary>The worst case a request can use before it is sent: what a reservation holds.</summary>
internal static class ReservationEstimate
{
    /// <summary>
    /// Input tokens counted from the body with the tokenizer, plus output at <c>max_tokens</c> (else the
    /// deployment's maximum), at the most expensive candidate of the plan. The cost is null when any
    /// candidate's price is unknown: the worst case is then unknown too.
    /// </summary>
    public static (long Tokens, decimal? CostUsd) Of(ParsedRequest request, RoutePlan plan)
    {
        var input = TokenEstimator.CountRequest(request.Body.Span);
        long tokens = 0;
        decimal? cost = 0m;
        foreach (var candidate in plan.Candidates)
        {
            var output = Router.ExpectedOutputTokens(candidate.Deployment, request);
            tokens = Math.Max(tokens, input + output);
            var expected = CostCalculator.Expected(candidate.Deployment.Prices, input, output);
            cost = expected is { } e && cost is { } c ? Math.Max(c, e) : null;
        }

        return (tokens, cost);
    }
}
