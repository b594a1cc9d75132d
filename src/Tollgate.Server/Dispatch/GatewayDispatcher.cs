using System.Collections.Frozen;
using System.Globalization;
using Microsoft.AspNetCore.Http.Features;
using Tollgate.Configuration;
using Tollgate.Metering;
using Tollgate.Providers;
using Tollgate.Requests;
using Tollgate.Routing;
using Tollgate.Server.Diagnostics;
using Tollgate.Server.Errors;

namespace Tollgate.Server.Dispatch;

/// <summary>
/// The request path of <c>/v1/chat/completions</c> and <c>/v1/embeddings</c>: read and validate the
/// body once, resolve the route, plan the candidates, then try them in order until one answers.
/// Failover is allowed until the first byte goes to the client; for streams that is the upstream's
/// first event. After that a broken stream ends with an SSE error event instead of another provider's text.
/// </summary>
internal sealed class GatewayDispatcher
{
    private readonly Catalog _catalog;
    private readonly FrozenDictionary<string, IProviderAdapter> _adapters;
    private readonly TimeProvider _time;
    private readonly ILogger<GatewayDispatcher> _logger;
    private readonly long _maxBodyBytes;
    private readonly TimeSpan _streamIdleTimeout;

    public GatewayDispatcher(Catalog catalog, IEnumerable<IProviderAdapter> adapters, TollgateOptions options, TimeProvider time, ILogger<GatewayDispatcher> logger)
    {
        _catalog = catalog;
        _adapters = adapters.ToFrozenDictionary(a => a.Type, StringComparer.OrdinalIgnoreCase);
        _time = time;
        _logger = logger;
        _maxBodyBytes = options.Server.MaxRequestBodyBytes;
        _streamIdleTimeout = TimeSpan.FromMilliseconds(options.Routing.StreamIdleTimeoutMs);
    }

    public async Task HandleAsync(HttpContext context, RequestKind kind)
    {
        if (!IsJson(context.Request.ContentType))
        {
            await OpenAIError.WriteAsync(context, StatusCodes.Status415UnsupportedMediaType,
                "Unsupported content type: send the body as 'Content-Type: application/json'.", OpenAIError.InvalidRequest, null, "unsupported_media_type").ConfigureAwait(false);
            return;
        }

        var (outcome, body) = await RequestBodyReader.ReadAsync(context.Request, _maxBodyBytes, context.RequestAborted).ConfigureAwait(false);
        if (outcome == RequestBodyReader.Outcome.TooLarge)
        {
            await WriteTooLargeAsync(context, _maxBodyBytes).ConfigureAwait(false);
            return;
        }

        using (body)
        {
            if (!RequestParser.TryParse(kind, body!.Memory, out var request, out var error))
            {
                await OpenAIError.WriteAsync(context, StatusCodes.Status400BadRequest, error!.Message, OpenAIError.InvalidRequest, error.Param, error.Code).ConfigureAwait(false);
                return;
            }

            if (!_catalog.Routes.TryGetValue(request!.Model, out var route))
            {
                await OpenAIError.WriteAsync(context, StatusCodes.Status404NotFound,
                    $"The model '{request.Model}' does not exist or you do not have access to it. GET /v1/models lists the models this gateway serves.",
                    OpenAIError.InvalidRequest, "model", "model_not_found").ConfigureAwait(false);
                return;
            }

            await DispatchAsync(context, request, Router.Plan(route, request)).ConfigureAwait(false);
        }
    }

    public static Task WriteTooLargeAsync(HttpContext context, long limit) =>
        OpenAIError.WriteAsync(context, StatusCodes.Status413RequestEntityTooLarge,
            $"The request body is larger than the gateway's limit of {limit} bytes (server.maxRequestBodyBytes).",
            OpenAIError.InvalidRequest, null, "request_too_large");

    private async Task DispatchAsync(HttpContext context, ParsedRequest request, RoutePlan plan)
    {
        var log = new AttemptLog(plan);
        UpstreamFailure? last = null;
        var failures = new List<string>(plan.Candidates.Length);

        foreach (var candidate in plan.Candidates)
        {
            var deployment = candidate.Deployment;
            if (!deployment.Health.TryBeginAttempt())
            {
                // Another request holds the half-open probe, or a cooldown started since planning.
                log.Add(deployment, "skipped_circuit_open");
                continue;
            }

            if (!_adapters.TryGetValue(deployment.Provider.Type, out var adapter))
            {
                deployment.Health.RecordNeutral();
                log.Add(deployment, "no_adapter");
                continue;
            }

            using var cancellation = new AttemptCancellation(context.RequestAborted);
            cancellation.Arm(deployment.Provider.AttemptTimeout);
            var started = _time.GetTimestamp();
            var result = await adapter.SendAsync(deployment, request, cancellation, _streamIdleTimeout).ConfigureAwait(false);

            if (result.Response is { } response)
            {
                await using (response.ConfigureAwait(false))
                {
                    log.Add(deployment, "ok");
                    SetRoutingHeaders(context, deployment, log);
                    if (response is StreamingResponse stream)
                    {
                        deployment.Health.RecordSuccess(_time.GetElapsedTime(started));
                        await RelayStreamAsync(context, request, deployment, stream).ConfigureAwait(false);
                    }
                    else
                    {
                        var buffered = (BufferedResponse)response;
                        deployment.Health.RecordSuccess(_time.GetElapsedTime(started));
                        await WriteBufferedAsync(context, deployment, buffered).ConfigureAwait(false);
                    }
                }

                return;
            }

            var failure = result.Failure!;
            last = failure;
            log.Add(deployment, failure.Code);
            if (failure.Kind == FailureKind.ClientAborted)
            {
                deployment.Health.RecordNeutral();
                return;
            }

            if (failure.CountsAgainstProvider)
            {
                deployment.Health.RecordFailure(failure.Message, failure.Kind == FailureKind.RateLimited, failure.RetryAfter);
            }
            else
            {
                deployment.Health.RecordNeutral();
            }

            failures.Add($"{deployment.Id}: {failure.Message}");
            Log.AttemptFailed(_logger, context.TraceIdentifier, log.Count, deployment.Id, failure.Code, failure.ShouldFailOver ? "trying the next candidate" : "not retrying");
            if (!failure.ShouldFailOver)
            {
                SetRoutingHeaders(context, null, log);
                await OpenAIError.WriteAsync(context, failure.Status ?? StatusCodes.Status400BadRequest, failure.Message, OpenAIError.InvalidRequest, null, "upstream_rejected_request").ConfigureAwait(false);
                return;
            }
        }

        SetRoutingHeaders(context, null, log);
        if (last is not null)
        {
            await OpenAIError.WriteAsync(context, StatusCodes.Status502BadGateway,
                $"All {failures.Count} provider attempt(s) for model '{request.Model}' failed. " + string.Join(" ", failures),
                OpenAIError.Upstream, null, "all_providers_failed").ConfigureAwait(false);
            return;
        }

        await WriteNoCandidateAsync(context, request, plan).ConfigureAwait(false);
    }

    private Task WriteNoCandidateAsync(HttpContext context, ParsedRequest request, RoutePlan plan)
    {
        Log.NoCandidate(_logger, context.TraceIdentifier, plan.Route.Name);
        var reasons = string.Join("; ", plan.Skipped.Select(s => $"{s.Deployment.Id}: {s.Detail}"));

        // When every candidate is ruled out by the request itself, no amount of waiting helps: that is a 400.
        var requestProblem = plan.Skipped.Length > 0 && plan.Skipped.All(s => s.Reason is SkipReason.MissingCapability or SkipReason.ContextTooSmall);
        return requestProblem
            ? OpenAIError.WriteAsync(context, StatusCodes.Status400BadRequest,
                $"No deployment of model '{request.Model}' can serve this request: {reasons}.", OpenAIError.InvalidRequest, null, "unsupported_by_model")
            : OpenAIError.WriteAsync(context, StatusCodes.Status503ServiceUnavailable,
                $"No provider is available for model '{request.Model}' right now: {(reasons.Length > 0 ? reasons : "every candidate is busy")}.",
                OpenAIError.Upstream, null, "no_provider_available");
    }

    private static void SetRoutingHeaders(HttpContext context, Deployment? served, AttemptLog log)
    {
        var headers = context.Response.Headers;
        if (served is not null)
        {
            headers["x-tollgate-provider"] = HeaderValue.Ascii(served.Provider.Name);
            headers["x-tollgate-deployment"] = HeaderValue.Ascii(served.Id);
            headers["x-tollgate-model"] = HeaderValue.Ascii(served.UpstreamModel);
        }

        headers["x-tollgate-attempts"] = log.Count.ToString(CultureInfo.InvariantCulture);
        headers["x-tollgate-route"] = log.ToHeader();
    }

    private static async Task WriteBufferedAsync(HttpContext context, Deployment deployment, BufferedResponse response)
    {
        var http = context.Response;
        http.StatusCode = response.Status;
        http.ContentType = "application/json";
        SetUsageHeaders(http, deployment, response.Usage);
        http.ContentLength = response.Body.Length;
        await http.Body.WriteAsync(response.Body, context.RequestAborted).ConfigureAwait(false);
    }

    private static void SetUsageHeaders(HttpResponse http, Deployment deployment, MeteredUsage usage)
    {
        var cost = CostCalculator.Cost(deployment.Prices, usage.Buckets);
        http.Headers["x-tollgate-cost-usd"] = cost is { } c ? c.ToString("0.##########", CultureInfo.InvariantCulture) : "unknown";
        http.Headers["x-tollgate-usage"] = usage.Estimated ? "estimated" : "reported";
    }

    private async Task RelayStreamAsync(HttpContext context, ParsedRequest request, Deployment deployment, StreamingResponse stream)
    {
        var http = context.Response;
        http.StatusCode = StatusCodes.Status200OK;
        http.ContentType = "text/event-stream; charset=utf-8";
        http.Headers.CacheControl = "no-cache";
        http.Headers["X-Accel-Buffering"] = "no";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        var writer = http.BodyWriter;
        var aborted = context.RequestAborted;

        try
        {
            var chunk = (StreamChunk?)stream.First;
            while (chunk is { } current)
            {
                if (!current.UsageOnly || request.ClientWantsUsage)
                {
                    var flush = await SseWriter.WriteDataAsync(writer, current.Data.Span, aborted).ConfigureAwait(false);
                    if (flush.IsCanceled || flush.IsCompleted)
                    {
                        return;
                    }
                }

                chunk = await stream.ReadAsync().ConfigureAwait(false);
            }

            await SseWriter.WriteDoneAsync(writer, aborted).ConfigureAwait(false);
        }
        catch (UpstreamStreamException ex) when (ex.Failure.Kind == FailureKind.ClientAborted)
        {
            // The client went away; the upstream request was cancelled with it.
        }
        catch (UpstreamStreamException ex)
        {
            deployment.Health.RecordFailure(ex.Failure.Message, rateLimited: false, cooldown: null);
            Log.StreamBroken(_logger, context.TraceIdentifier, deployment.Id, ex.Failure.Code);
            await SseWriter.WriteErrorAsync(writer,
                $"The stream from the provider was interrupted ({ex.Failure.Message}) The answer above is incomplete.",
                "stream_truncated", aborted).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            // Client disconnected while we were writing.
        }
    }

    private static bool IsJson(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType))
        {
            return false;
        }

        var semicolon = contentType.IndexOf(';', StringComparison.Ordinal);
        var media = (semicolon >= 0 ? contentType.AsSpan(0, semicolon) : contentType.AsSpan()).Trim();
        return media.Equals("application/json", StringComparison.OrdinalIgnoreCase)
            || (media.EndsWith("+json", StringComparison.OrdinalIgnoreCase) && media.StartsWith("application/", StringComparison.OrdinalIgnoreCase));
    }
}
