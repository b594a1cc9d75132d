using System.Diagnostics;
using Tollgate.Metering;
using Tollgate.Routing;

namespace Tollgate.Server.Diagnostics;

/// <summary>
/// What the gateway adds to a request's trace span (ASP.NET Core's server span) when tracing is on: the route,
/// the deployment that answered, the attempts, tokens (OpenTelemetry's <c>gen_ai.*</c> names) and cost.
/// Names, codes and numbers only: no key, prompt or completion.
/// </summary>
internal static class RequestSpan
{
    public static void Describe(Activity span, string requestId, string model, string? route, Deployment? served, int attempts, int status, string? errorCode, MeteredUsage? usage, decimal? costUsd)
    {
        // The ledger row's key (and the x-request-id header): joins a trace to what was billed.
        span.SetTag("tollgate.request_id", requestId);
        span.SetTag("gen_ai.request.model", model);
        span.SetTag("tollgate.route", route);
        span.SetTag("tollgate.attempts", attempts);
        span.SetTag("tollgate.status", status);
        if (errorCode is not null)
        {
            span.SetTag("error.type", errorCode);
        }

        if (served is null)
        {
            return;
        }

        span.SetTag("gen_ai.provider.name", served.Provider.Name);
        span.SetTag("gen_ai.response.model", served.UpstreamModel);
        span.SetTag("tollgate.deployment", served.Id);
        if (usage is not null)
        {
            span.SetTag("gen_ai.usage.input_tokens", usage.Buckets.InputTotal);
            span.SetTag("gen_ai.usage.output_tokens", usage.Buckets.OutputTotal);
            span.SetTag("tollgate.usage.source", usage.Source.ToString());
            if (costUsd is { } cost)
            {
                // A string keeps the decimal exact; a span attribute has no decimal type.
                span.SetTag("tollgate.cost_usd", cost.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
        }
    }
}
