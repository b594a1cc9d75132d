using System.Collections.Frozen;
using System.Globalization;
using Microsoft.AspNetCore.Http.Features;
using Tollgate.Configuration;
using Tollgate.Metering;
using Tollgate.Providers;
using Tollgate.Requests;
using Tollgate.Routing;
using Tollgate.Server.Auth;
using Tollgate.Server.Diagnostics;
using Tollgate.Server.Errors;
using Tollgate.Server.Metering;
using Tollgate.Tenancy;

namespace Tollgate.Server.Dispatch;

/// <summary>
/// The request path of <c>/v1/chat/completions</c> and <c>/v1/embeddings</c>: read and validate the
/// body once, resolve the route, plan the candidates, then try them in order until one answers.
/// Failover is allowed until the first byte goes to the client; for streams that is the upstream's
/// first event. After that a broken stream ends with an SSE error event instead of another provider's text.
/// Before dispatch the request's worst case is reserved against the caller's limits; every request ends with
/// its ledger row committed before its last byte is written (<see cref="RequestAccounting"/>).
/// </summary>
internal sealed class GatewayDispatcher
{
    /// <summary>The status recorded for a client that went away (nginx's convention; never sent).</summary>
    private const int ClientClosedRequest = 499;

    private readonly Catalog _catalog;
    private readonly FrozenDictionary<string, IProviderAdapter> _adapters;
    private readonly TimeProvider _time;
    private readonly ILogger<GatewayDispatcher> _logger;
    private readonly long _maxBodyBytes;
    private readonly TimeSpan _streamIdleTimeout;
    private readonly UsageLimiter _limiter;
    private readonly LedgerWriter _ledger;

    public GatewayDispatcher(
        Catalog catalog,
        IEnumerable<IProviderAdapter> adapters,
        TollgateOptions options,
        UsageLimiter limiter,
        LedgerWriter ledger,
        TimeProvider time,
        ILogger<GatewayDispatcher> logger)
    {
        _catalog = catalog;
        _limiter = limiter;
        _ledger = ledger;
        _adapters = adapters.ToFrozenDictionary(a => a.Type, StringComparer.OrdinalIgnoreCase);
        _time = time;
        _logger = logger;
        _maxBodyBytes = options.Server.MaxRequestBodyBytes;
        _streamIdleTimeout = TimeSpan.FromMilliseconds(options.Routing.StreamIdleTimeoutMs);
    }

    public async Task HandleAsync(HttpContext context, RequestKind kind)
    {
        var caller = context.Features.Get<ClientKeyFeature>()
            ?? throw new InvalidOperationException("The dispatcher runs only behind AuthMiddleware.");
        var accounting = new RequestAccounting(context, caller, _limiter, _ledger, _time);
        if (!IsJson(context.Request.ContentType))
        {
            await FailAsync(context, accounting, StatusCodes.Status415UnsupportedMediaType,
                "Unsupported content type: send the body as 'Content-Type: application/json'.", OpenAIError.InvalidRequest, null, "unsupported_media_type").ConfigureAwait(false);
            return;
        }

        var (outcome, body) = await RequestBodyReader.ReadAsync(context.Request, _maxBodyBytes, context.RequestAborted).ConfigureAwait(false);
        if (outcome == RequestBodyReader.Outcome.TooLarge)
        {
            await FailAsync(context, accounting, StatusCodes.Status413RequestEntityTooLarge, TooLargeMessage(_maxBodyBytes), OpenAIError.InvalidRequest, null, "request_too_large").ConfigureAwait(false);
            return;
        }

        using (body)
        {
            if (!RequestParser.TryParse(kind, body!.Memory, out var request, out var error))
            {
                await FailAsync(context, accounting, StatusCodes.Status400BadRequest, error!.Message, OpenAIError.InvalidRequest, error.Param, error.Code).ConfigureAwait(false);
                return;
            }

            accounting.Model = request!.Model;
            if (!_catalog.Routes.TryGetValue(request.Model, out var route))
            {
                await FailAsync(context, accounting, StatusCodes.Status404NotFound,
                    $"The model '{request.Model}' does not exist or you do not have access to it. GET /v1/models lists the models this gateway serves.",
                    OpenAIError.InvalidRequest, "model", "model_not_found").ConfigureAwait(false);
                return;
            }

            accounting.Route = route.Name;
            accounting.RouteCandidates = route.Candidates;
            if (!caller.Key.EffectiveLimits.AllowsModel(request.Model))
            {
                await FailAsync(context, accounting, StatusCodes.Status403Forbidden,
                    $"This API key may not use the model '{request.Model}' (allowed: {string.Join(", ", caller.Key.EffectiveLimits.Models!)}).",
                    OpenAIError.Permission, "model", "model_not_allowed").ConfigureAwait(false);
                return;
            }

            var plan = Router.Plan(route, request);
            if (plan.Candidates.Length > 0 && !await TryReserveAsync(context, accounting, request, plan).ConfigureAwait(false))
            {
                return;
            }

            try
            {
                await DispatchAsync(context, request, plan, accounting).ConfigureAwait(false);
            }
            finally
            {
                accounting.ReleaseIfUncommitted();
            }
        }
    }

    /// <summary>
    /// Reserves the request's worst case against every limit of the key and its tenant. Only a caller with
    /// limits pays for counting tokens; one without still goes through the limiter (with nothing reserved)
    /// so its month-to-date counters stay right if limits are added later.
    /// </summary>
    private async Task<bool> TryReserveAsync(HttpContext context, RequestAccounting accounting, ParsedRequest request, RoutePlan plan)
    {
        var caller = accounting.Caller;
        var limited = caller.Plan is not null || caller.Key.Limits is not null;
        var (tokens, cost) = limited ? ReservationEstimate.Of(request, plan) : (0L, 0m);
        var decision = _limiter.TryReserve(caller.Key, caller.Plan, tokens, cost, out var reservation);
        if (decision.Allowed)
        {
            accounting.Reservation = reservation;
            return true;
        }

        var (status, code) = decision.Kind switch
        {
            LimitKind.RateLimit => (StatusCodes.Status429TooManyRequests, "rate_limit_exceeded"),
            LimitKind.MonthlyTokenQuota => (StatusCodes.Status429TooManyRequests, "monthly_token_quota_exceeded"),
            LimitKind.Budget => (StatusCodes.Status429TooManyRequests, "budget_exceeded"),
            _ => (StatusCodes.Status403Forbidden, "price_unknown_with_budget"),
        };
        Log.LimitRefused(_logger, context.TraceIdentifier, code);
        if (decision.RetryAfter is { } retry)
        {
            context.Response.Headers.RetryAfter = ((int)Math.Ceiling(retry.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        }

        await FailAsync(context, accounting, status, decision.Message, status == StatusCodes.Status429TooManyRequests ? OpenAIError.RateLimit : OpenAIError.Permission, null, code).ConfigureAwait(false);
        return false;
    }

    /// <summary>Commits the request's ledger row, then writes the OpenAI error (a 500 instead when the ledger cannot be written).</summary>
    private static async Task FailAsync(HttpContext context, RequestAccounting accounting, int status, string message, string type, string? param, string? code)
    {
        if (!await accounting.CommitAsync(status, code, usage: null).ConfigureAwait(false))
        {
            await WriteLedgerUnavailableAsync(context).ConfigureAwait(false);
            return;
        }

        await OpenAIError.WriteAsync(context, status, message, type, param, code).ConfigureAwait(false);
    }

    private static Task WriteLedgerUnavailableAsync(HttpContext context) =>
        OpenAIError.WriteAsync(context, StatusCodes.Status500InternalServerError,
            "The gateway could not record this request in its usage ledger, so it is not answered. Try again; the operator has the error in the gateway's log.",
            OpenAIError.Api, null, "ledger_unavailable");

    public static Task WriteTooLargeAsync(HttpContext context, long limit) =>
        OpenAIError.WriteAsync(context, StatusCodes.Status413RequestEntityTooLarge, TooLargeMessage(limit), OpenAIError.InvalidRequest, null, "request_too_large");

    private static string TooLargeMessage(long limit) => $"The request body is larger than the gateway's limit of {limit} bytes (server.maxRequestBodyBytes).";

    private async Task DispatchAsync(HttpContext context, ParsedRequest request, RoutePlan plan, RequestAccounting accounting)
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
            cancellation.Disarm();
            accounting.Attempts = log.Count + 1;

            if (result.Response is { } response)
            {
                await using (response.ConfigureAwait(false))
                {
                    log.Add(deployment, "ok");
                    accounting.Answered(deployment);
                    SetRoutingHeaders(context, deployment, log);
                    if (response is StreamingResponse stream)
                    {
                        deployment.Health.RecordSuccess(_time.GetElapsedTime(started));
                        await RelayStreamAsync(context, request, deployment, stream, cancellation, accounting).ConfigureAwait(false);
                    }
                    else
                    {
                        var buffered = (BufferedResponse)response;
                        deployment.Health.RecordSuccess(_time.GetElapsedTime(started));
                        await WriteBufferedAsync(context, buffered, accounting).ConfigureAwait(false);
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
                await accounting.CommitAsync(ClientClosedRequest, "client_aborted", usage: null).ConfigureAwait(false);
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
                await FailAsync(context, accounting, failure.Status ?? StatusCodes.Status400BadRequest, failure.Message, OpenAIError.InvalidRequest, null, "upstream_rejected_request").ConfigureAwait(false);
                return;
            }
        }

        SetRoutingHeaders(context, null, log);
        accounting.Attempts = log.Count;
        if (last is not null)
        {
            await FailAsync(context, accounting, StatusCodes.Status502BadGateway,
                $"All {failures.Count} provider attempt(s) for model '{request.Model}' failed. " + string.Join(" ", failures),
                OpenAIError.Upstream, null, "all_providers_failed").ConfigureAwait(false);
            return;
        }

        await WriteNoCandidateAsync(context, request, plan, accounting).ConfigureAwait(false);
    }

    private Task WriteNoCandidateAsync(HttpContext context, ParsedRequest request, RoutePlan plan, RequestAccounting accounting)
    {
        Log.NoCandidate(_logger, context.TraceIdentifier, plan.Route.Name);
        var reasons = string.Join("; ", plan.Skipped.Select(s => $"{s.Deployment.Id}: {s.Detail}"));

        // When every candidate is ruled out by the request itself, no amount of waiting helps: that is a 400.
        var requestProblem = plan.Skipped.Length > 0 && plan.Skipped.All(s => s.Reason is SkipReason.MissingCapability or SkipReason.ContextTooSmall);
        return requestProblem
            ? FailAsync(context, accounting, StatusCodes.Status400BadRequest,
                $"No deployment of model '{request.Model}' can serve this request: {reasons}.", OpenAIError.InvalidRequest, null, "unsupported_by_model")
            : FailAsync(context, accounting, StatusCodes.Status503ServiceUnavailable,
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

    private static async Task WriteBufferedAsync(HttpContext context, BufferedResponse response, RequestAccounting accounting)
    {
        if (!await accounting.CommitAsync(response.Status, null, response.Usage).ConfigureAwait(false))
        {
            await WriteLedgerUnavailableAsync(context).ConfigureAwait(false);
            return;
        }

        var http = context.Response;
        http.StatusCode = response.Status;
        http.ContentType = "application/json";
        SetUsageHeaders(http, response.Usage, accounting.CostUsd);
        http.ContentLength = response.Body.Length;
        await http.Body.WriteAsync(response.Body, context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>The cost header shows exactly what the ledger row recorded (computed once, in <see cref="RequestAccounting"/>).</summary>
    private static void SetUsageHeaders(HttpResponse http, MeteredUsage usage, decimal? cost)
    {
        http.Headers["x-tollgate-cost-usd"] = cost is { } c ? c.ToString("0.##########", CultureInfo.InvariantCulture) : "unknown";
        http.Headers["x-tollgate-usage"] = usage.Estimated ? "estimated" : "reported";
    }

    private async Task RelayStreamAsync(HttpContext context, ParsedRequest request, Deployment deployment, StreamingResponse stream, AttemptCancellation cancellation, RequestAccounting accounting)
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
                        await accounting.CommitAsync(ClientClosedRequest, "client_aborted", stream.Usage).ConfigureAwait(false);
                        return;
                    }
                }

                // ReadAsync arms the idle timer for the upstream read; writing to the client is not upstream silence.
                chunk = await stream.ReadAsync().ConfigureAwait(false);
                cancellation.Disarm();
            }

            // The row first, then [DONE]: a client that saw the end of the stream always has its row.
            if (!await accounting.CommitAsync(StatusCodes.Status200OK, null, stream.Usage).ConfigureAwait(false))
            {
                await SseWriter.WriteErrorAsync(writer, "The gateway could not record this request in its usage ledger.", "ledger_unavailable", aborted).ConfigureAwait(false);
                return;
            }

            await SseWriter.WriteDoneAsync(writer, aborted).ConfigureAwait(false);
        }
        catch (UpstreamStreamException ex) when (ex.Failure.Kind == FailureKind.ClientAborted)
        {
            // The client went away; the upstream request was cancelled with it. Billed for what was relayed.
            await accounting.CommitAsync(ClientClosedRequest, "client_aborted", stream.Usage).ConfigureAwait(false);
        }
        catch (UpstreamStreamException ex)
        {
            deployment.Health.RecordFailure(ex.Failure.Message, rateLimited: false, cooldown: null);
            Log.StreamBroken(_logger, context.TraceIdentifier, deployment.Id, ex.Failure.Code);
            await accounting.CommitAsync(StatusCodes.Status200OK, "stream_truncated", stream.Usage).ConfigureAwait(false);
            await SseWriter.WriteErrorAsync(writer,
                $"The stream from the provider was interrupted ({ex.Failure.Message}) The answer above is incomplete.",
                "stream_truncated", aborted).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            // Client disconnected while we were writing. Billed for what was relayed.
            await accounting.CommitAsync(ClientClosedRequest, "client_aborted", stream.Usage).ConfigureAwait(false);
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
