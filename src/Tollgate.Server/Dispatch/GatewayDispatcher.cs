using System.Collections.Frozen;
using System.Globalization;
using Tollgate.Configuration;
using Tollgate.Health;
using Tollgate.Providers;
using Tollgate.Requests;
using Tollgate.Routing;
using Tollgate.Routing.Classification;
using Tollgate.Server.Auth;
using Tollgate.Server.Diagnostics;
using Tollgate.Server.Errors;
using Tollgate.Server.Metering;
using Tollgate.Tenancy;
using Route = Tollgate.Routing.Route;

namespace Tollgate.Server.Dispatch;

/// <summary>
/// The request path of <c>/v1/chat/completions</c> and <c>/v1/embeddings</c>: read and validate the
/// body once, resolve the route, plan the candidates, then try them in order until one answers.
/// Failover is allowed until the first byte goes to the client; for streams that is the upstream's
/// first event. After that a broken stream ends with an SSE error event instead of another provider's text.
/// Before dispatch the request's worst case is reserved against the caller's limits; every request ends with
/// its ledger row committed before its last byte is written (<see cref="RequestAccounting"/>).
/// This file reads, validates and plans; the attempt loop is in <c>GatewayDispatcher.Attempts.cs</c>, hedging in
/// <c>GatewayDispatcher.Hedging.cs</c>, and writing answers to the client in <c>GatewayDispatcher.Relay.cs</c>.
/// </summary>
internal sealed partial class GatewayDispatcher
{
    /// <summary>The status recorded for a client that went away (nginx's convention; never sent).</summary>
    private const int ClientClosedRequest = 499;

    private readonly Catalog _catalog;
    private readonly FrozenDictionary<string, IProviderAdapter> _adapters;
    private readonly TimeProvider _time;
    private readonly ILogger<GatewayDispatcher> _logger;
    private readonly long _maxBodyBytes;
    private readonly TimeSpan _streamIdleTimeout;
    private readonly IUsageLimiter _limiter;
    private readonly LedgerWriter _ledger;
    private readonly AnswerVerifier _verifier;
    private readonly TaskClassifier _classifier;
    private readonly GatewayMetrics _metrics;
    private readonly IHealthBroadcast _health;

    public GatewayDispatcher(
        Catalog catalog,
        IEnumerable<IProviderAdapter> adapters,
        TollgateOptions options,
        IUsageLimiter limiter,
        LedgerWriter ledger,
        AnswerVerifier verifier,
        GatewayMetrics metrics,
        IHealthBroadcast health,
        TimeProvider time,
        ILogger<GatewayDispatcher> logger)
    {
        _health = health;
        _catalog = catalog;
        _limiter = limiter;
        _ledger = ledger;
        _verifier = verifier;
        _metrics = metrics;
        _classifier = catalog.Classifier;
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
        var accounting = new RequestAccounting(context, caller, _limiter, _ledger, _metrics, _time, _logger);
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

            if (!ConstraintHeaders.TryRead(context.Request.Headers, out var headerConstraints, out var headerError))
            {
                await FailAsync(context, accounting, StatusCodes.Status400BadRequest, headerError!.Message, OpenAIError.InvalidRequest, headerError.Param, headerError.Code).ConfigureAwait(false);
                return;
            }

            var constraints = headerConstraints.Over(request.Constraints);
            var verify = request.Kind == RequestKind.ChatCompletion && !request.Stream && request.ResponseSchema is not null && (constraints.Verify ?? route.Verify);
            var task = DecideTask(route, request, constraints);
            accounting.Task = (task?.Task ?? constraints.Task)?.Name();
            var plan = Router.Plan(route, request, constraints, task, verify);
            if (plan.Candidates.Length == 0 && Array.Exists(plan.Skipped, s => s.Reason.IsConstraint()))
            {
                SetRoutingHeaders(context, null, new AttemptLog(plan, _metrics));
                await FailAsync(context, accounting, StatusCodes.Status422UnprocessableEntity, UnsatisfiableMessage(request, plan),
                    OpenAIError.InvalidRequest, null, "constraints_unsatisfiable").ConfigureAwait(false);
                return;
            }

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
                await accounting.ReleaseIfUncommittedAsync().ConfigureAwait(false);
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
        LimitOutcome outcome;
        try
        {
            outcome = await _limiter.TryReserveAsync(caller.Key, caller.Plan, tokens, cost, context.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception ex) when (RequestAccounting.IsStorageFailure(ex) && !context.RequestAborted.IsCancellationRequested)
        {
            // Limits kept in a database that cannot be reached: fail closed, the request reaches no provider.
            Log.LimitsUnavailable(_logger, context.TraceIdentifier, "reserve", ex.Message);
            await FailAsync(context, accounting, StatusCodes.Status503ServiceUnavailable,
                "The gateway cannot check this key's limits right now (its database is unreachable). Try again shortly.",
                OpenAIError.Api, null, "limits_unavailable").ConfigureAwait(false);
            return false;
        }

        var (decision, reservation) = outcome;
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

    /// <summary>The task of a request on a task route: the caller's word, else the classifier's.</summary>
    private TaskDecision? DecideTask(Route route, ParsedRequest request, RequestConstraints constraints)
    {
        if (route.Strategy != RouteStrategy.Task || request.Kind != RequestKind.ChatCompletion)
        {
            return null;
        }

        if (constraints.Task is { } stated)
        {
            return new TaskDecision(stated, TaskSource.Stated, 1f, _catalog.TaskTiers[stated]);
        }

        TaskClassification classified;
        try
        {
            classified = _classifier.Classify(request);
        }
        catch (Exception ex) when (ex is IndexOutOfRangeException or ArgumentException or InvalidOperationException)
        {
            // A classifier bug must not cost the client its answer: route as chat (tier 2) and say so in the log.
            Log.ClassifierFailed(_logger, ex, request.Model);
            classified = new TaskClassification(TaskKind.Chat, 0f);
        }

        return new TaskDecision(classified.Task, TaskSource.Classified, classified.Confidence, _catalog.TaskTiers[classified.Task]);
    }

    private static string UnsatisfiableMessage(ParsedRequest request, RoutePlan plan)
    {
        var constraintSkips = plan.Skipped.Where(s => s.Reason.IsConstraint()).Select(s => $"{s.Deployment.Id}: {s.Reason.Name()} ({s.Detail})");
        var others = plan.Skipped.Where(s => !s.Reason.IsConstraint()).Select(s => $"{s.Deployment.Id}: {s.Detail}").ToList();
        return $"No deployment of model '{request.Model}' meets this request's routing constraints: {string.Join("; ", constraintSkips)}."
            + (others.Count > 0 ? $" Also unavailable: {string.Join("; ", others)}." : string.Empty)
            + " Relax the constraint, or allow best effort with 'x-tollgate-best-effort: true'.";
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
