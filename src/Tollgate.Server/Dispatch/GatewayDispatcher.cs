using System.Collections.Frozen;
using System.Globalization;
using Microsoft.AspNetCore.Http.Features;
using Tollgate.Configuration;
using Tollgate.Metering;
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
    private readonly AnswerVerifier _verifier;
    private readonly TaskClassifier _classifier;

    public GatewayDispatcher(
        Catalog catalog,
        IEnumerable<IProviderAdapter> adapters,
        TollgateOptions options,
        UsageLimiter limiter,
        LedgerWriter ledger,
        AnswerVerifier verifier,
        TimeProvider time,
        ILogger<GatewayDispatcher> logger)
    {
        _catalog = catalog;
        _limiter = limiter;
        _ledger = ledger;
        _verifier = verifier;
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
                SetRoutingHeaders(context, null, new AttemptLog(plan));
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

    /// <summary>
    /// Tries the plan's candidates in order until one answers. A hedged route races the next candidate against
    /// a slow one; a verified request checks each answer against its schema and moves up a tier when it fails.
    /// </summary>
    private async Task DispatchAsync(HttpContext context, ParsedRequest request, RoutePlan plan, RequestAccounting accounting)
    {
        var log = new AttemptLog(plan);
        UpstreamFailure? last = null;
        var failures = new List<string>(plan.Candidates.Length);
        var candidates = plan.Candidates;
        Attempt? unverified = null;
        var escalatedPast = 0;

        try
        {
            for (var i = 0; i < candidates.Length; i++)
            {
                var deployment = candidates[i].Deployment;
                if (plan.Verify && deployment.Tier <= escalatedPast)
                {
                    // An answer from this tier already failed its check: only a stronger tier is worth paying for.
                    log.Add(deployment, "skipped_same_tier");
                    continue;
                }

                if (!TryBegin(deployment, log, out var adapter))
                {
                    continue;
                }

                var attempt = new Attempt(deployment, _time, context.RequestAborted);
                var running = attempt.RunAsync(adapter, request, _streamIdleTimeout);
                if (plan.Route.Hedge && !plan.Verify && i + 1 < candidates.Length)
                {
                    (var raced, i) = await HedgeAsync(context, request, plan, log, accounting, attempt, running, i, failures).ConfigureAwait(false);
                    if (raced is null)
                    {
                        return; // The request ended while racing (the client left, or an error that must not fail over).
                    }

                    attempt = raced;
                }
                else
                {
                    await running.ConfigureAwait(false);
                }

                var keptAsFallback = false;
                try
                {
                    accounting.Attempts = log.Count + 1;
                    if (attempt.Result.Response is { } response)
                    {
                        if (plan.Verify && response is BufferedResponse answer && request.ResponseSchema is { } schema)
                        {
                            var problem = await _verifier.CheckAsync(request.Body[schema], answer.Body).ConfigureAwait(false);
                            if (problem is not null && HasHigherTier(candidates, i, deployment.Tier))
                            {
                                // The provider answered; that its answer failed the request's schema says nothing about its health.
                                deployment.Health.RecordSuccess(attempt.FirstByte);
                                deployment.Health.RecordCompletion(attempt.FirstByte, attempt.FirstByte, OutputTokens(answer.Usage), streamed: false);
                                log.Add(deployment, problem);
                                log.Escalations++;
                                accounting.Escalations = log.Escalations;
                                if (unverified is not null)
                                {
                                    await RecordExtraAsync(accounting, unverified, LedgerAttemptKind.Escalated, request).ConfigureAwait(false);
                                    unverified.Dispose();
                                }

                                Log.Escalated(_logger, context.TraceIdentifier, deployment.Id, problem);

                                // Kept as the fallback answer; disposed when a better one replaces it or it is delivered.
                                unverified = attempt;
                                keptAsFallback = true;
                                escalatedPast = deployment.Tier;
                                continue;
                            }

                            context.Response.Headers["x-tollgate-verified"] = problem is null ? "true" : "false";
                        }

                        if (unverified is not null)
                        {
                            await RecordExtraAsync(accounting, unverified, LedgerAttemptKind.Escalated, request).ConfigureAwait(false);
                            unverified.Dispose();
                            unverified = null;
                        }

                        await DeliverAsync(context, request, plan, log, accounting, attempt, response).ConfigureAwait(false);
                        return;
                    }

                    var failure = attempt.Result.Failure!;
                    last = failure;
                    if (unverified is not null && !failure.ShouldFailOver && failure.Kind != FailureKind.ClientAborted)
                    {
                        // A stronger tier refused the request itself; the answer already in hand is still better than an error.
                        deployment.Health.RecordNeutral();
                        log.Add(deployment, failure.Code);
                        continue;
                    }

                    if (!await HandleFailureAsync(context, log, accounting, attempt, failure, failures).ConfigureAwait(false))
                    {
                        return;
                    }
                }
                finally
                {
                    if (!keptAsFallback)
                    {
                        attempt.Dispose();
                    }
                }
            }

            if (unverified is not null)
            {
                // Every stronger tier failed or none was left: the last answer is better than none. The header says it failed its check.
                context.Response.Headers["x-tollgate-verified"] = "false";
                var answer = unverified;
                unverified = null;
                using (answer)
                {
                    accounting.Attempts = log.Count;
                    await DeliverAsync(context, request, plan, log, accounting, answer, answer.Result.Response!, healthRecorded: true).ConfigureAwait(false);
                }

                return;
            }
        }
        finally
        {
            unverified?.Dispose();
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

    private static bool HasHigherTier(PlannedCandidate[] candidates, int index, int tier)
    {
        for (var j = index + 1; j < candidates.Length; j++)
        {
            if (candidates[j].Deployment.Tier > tier)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Claims an attempt on the deployment (breaker permitting) and finds its adapter.</summary>
    private bool TryBegin(Deployment deployment, AttemptLog log, out IProviderAdapter adapter)
    {
        if (!deployment.Health.TryBeginAttempt())
        {
            // Another request holds the half-open probe, or a cooldown started since planning.
            log.Add(deployment, "skipped_circuit_open");
            adapter = null!;
            return false;
        }

        if (!_adapters.TryGetValue(deployment.Provider.Type, out adapter!))
        {
            deployment.Health.RecordNeutral();
            log.Add(deployment, "no_adapter");
            return false;
        }

        return true;
    }

    /// <summary>
    /// Races the next candidate against <paramref name="primary"/> once the primary has been slower than its p95 to the
    /// first token: the first to answer wins, the other is cancelled and its known usage metered as an extra ledger row.
    /// Returns the attempt to continue with (the winner, or a failure when both failed; null when the request is
    /// over) and the index of the last candidate consumed.
    /// </summary>
    private async Task<(Attempt? Attempt, int Index)> HedgeAsync(
        HttpContext context, ParsedRequest request, RoutePlan plan, AttemptLog log, RequestAccounting accounting,
        Attempt primary, Task<Attempt> running, int index, List<string> failures)
    {
        var delay = HedgeDelay(primary.Deployment, plan.Route, request.Stream);
        using (var stopDelay = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted))
        {
            var first = await Task.WhenAny(running, Task.Delay(delay, _time, stopDelay.Token)).ConfigureAwait(false);
            await stopDelay.CancelAsync().ConfigureAwait(false);
            if (first == running || context.RequestAborted.IsCancellationRequested)
            {
                await running.ConfigureAwait(false);
                return (primary, index);
            }
        }

        var candidates = plan.Candidates;
        Attempt? secondary = null;
        Task<Attempt>? secondaryRunning = null;
        var j = index + 1;
        for (; j < candidates.Length; j++)
        {
            if (TryBegin(candidates[j].Deployment, log, out var adapter))
            {
                secondary = new Attempt(candidates[j].Deployment, _time, context.RequestAborted);
                secondaryRunning = secondary.RunAsync(adapter, request, _streamIdleTimeout);
                break;
            }
        }

        if (secondaryRunning is null)
        {
            await running.ConfigureAwait(false);
            return (primary, j - 1);
        }

        Log.Hedged(_logger, context.TraceIdentifier, primary.Deployment.Id, secondary!.Deployment.Id, (long)delay.TotalMilliseconds);
        var done = await Task.WhenAny(running, secondaryRunning).ConfigureAwait(false);
        var winner = await done.ConfigureAwait(false);
        var other = ReferenceEquals(winner, primary) ? secondary : primary;
        var otherRunning = ReferenceEquals(winner, primary) ? secondaryRunning : running;

        if (winner.Result.Response is null)
        {
            // The first to finish failed: record it and let the other run on; it may still answer.
            var failure = winner.Result.Failure!;
            bool goOn;
            using (winner)
            {
                goOn = await HandleFailureAsync(context, log, accounting, winner, failure, failures).ConfigureAwait(false);
            }

            if (!goOn)
            {
                other.Cancellation.Cancel();
            }

            await otherRunning.ConfigureAwait(false);
            if (!goOn)
            {
                if (other.Result.Response is { } orphan)
                {
                    await orphan.DisposeAsync().ConfigureAwait(false);
                }

                other.Deployment.Health.RecordNeutral();
                other.Dispose();
                return (null, j);
            }

            return (other, j);
        }

        other.LostHedge = true;
        other.Cancellation.Cancel();
        using (other)
        {
            await otherRunning.ConfigureAwait(false);
            log.Add(other.Deployment, "hedge_lost");
            if (other.Result.Response is { } late)
            {
                // Both answered at once: the loser's answer is discarded, its usage is what the provider bills.
                other.Deployment.Health.RecordSuccess(other.FirstByte, late is StreamingResponse);
                await RecordExtraAsync(accounting, other, LedgerAttemptKind.Hedge, request).ConfigureAwait(false);
                await late.DisposeAsync().ConfigureAwait(false);
            }
            else if (other.Result.Failure is { Kind: FailureKind.Timeout or FailureKind.ClientAborted })
            {
                // Cancelled in flight: the provider may bill the prompt it already read. Record that estimate.
                other.Deployment.Health.RecordNeutral();
                await RecordExtraAsync(accounting, other, LedgerAttemptKind.Hedge, request).ConfigureAwait(false);
            }
            else if (other.Result.Failure is { CountsAgainstProvider: true } failed)
            {
                // It failed on its own before it was cancelled: that is the provider's failure, and nothing was billed.
                other.Deployment.Health.RecordFailure(failed.Message, failed.Kind == FailureKind.RateLimited, failed.RetryAfter);
            }
            else
            {
                other.Deployment.Health.RecordNeutral();
            }
        }

        return (winner, j);
    }

    /// <summary>How long to wait for the first token before hedging: the deployment's p95, or the route's delay while unmeasured.</summary>
    private static TimeSpan HedgeDelay(Deployment deployment, Route route, bool stream)
    {
        const int MinimumSamples = 20;
        var latency = deployment.Health.Latency();
        var (samples, p95) = stream ? (latency.FirstTokenSamples, latency.FirstTokenP95Ms) : (latency.ResponseSamples, latency.ResponseP95Ms);
        return samples >= MinimumSamples && p95 is { } ms ? TimeSpan.FromMilliseconds(ms) : route.HedgeDelay;
    }

    /// <summary>Meters an attempt that used tokens but did not give the answer: a hedge that lost, an answer that failed its check.</summary>
    private static Task RecordExtraAsync(RequestAccounting accounting, Attempt attempt, LedgerAttemptKind kind, ParsedRequest request)
    {
        var usage = attempt.Result.Response switch
        {
            BufferedResponse buffered => buffered.Usage,
            StreamingResponse stream => stream.Usage,
            _ => TokenEstimator.Estimate(request.Body.Span, []),
        };
        return accounting.CommitExtraAsync(attempt.Deployment, usage, kind, (long)attempt.FirstByte.TotalMilliseconds);
    }

    /// <summary>Records a failed attempt. False when the request is over (client gone, or an error that must not fail over).</summary>
    private async Task<bool> HandleFailureAsync(HttpContext context, AttemptLog log, RequestAccounting accounting, Attempt attempt, UpstreamFailure failure, List<string> failures)
    {
        var deployment = attempt.Deployment;
        log.Add(deployment, failure.Code);
        if (failure.Kind == FailureKind.ClientAborted)
        {
            deployment.Health.RecordNeutral();
            await accounting.CommitAsync(ClientClosedRequest, "client_aborted", usage: null).ConfigureAwait(false);
            return false;
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
            return false;
        }

        return true;
    }

    /// <param name="healthRecorded">The attempt's success is already in its deployment's health (a verified answer kept as the fallback).</param>
    private async Task DeliverAsync(HttpContext context, ParsedRequest request, RoutePlan plan, AttemptLog log, RequestAccounting accounting, Attempt attempt, UpstreamResponse response, bool healthRecorded = false)
    {
        var deployment = attempt.Deployment;
        await using (response.ConfigureAwait(false))
        {
            log.Add(deployment, "ok");
            log.Chosen = deployment;
            accounting.Answered(deployment);
            SetRoutingHeaders(context, deployment, log);
            if (plan.Verify)
            {
                context.Response.Headers["x-tollgate-escalations"] = log.Escalations.ToString(CultureInfo.InvariantCulture);
            }

            if (response is StreamingResponse stream)
            {
                deployment.Health.RecordSuccess(attempt.FirstByte, streamed: true);
                await RelayStreamAsync(context, request, deployment, stream, attempt.Cancellation, accounting).ConfigureAwait(false);
                deployment.Health.RecordCompletion(_time.GetElapsedTime(attempt.Started), attempt.FirstByte, OutputTokens(stream.Usage), streamed: true);
            }
            else
            {
                var buffered = (BufferedResponse)response;
                if (!healthRecorded)
                {
                    deployment.Health.RecordSuccess(attempt.FirstByte);
                    deployment.Health.RecordCompletion(attempt.FirstByte, attempt.FirstByte, OutputTokens(buffered.Usage), streamed: false);
                }

                await WriteBufferedAsync(context, buffered, accounting).ConfigureAwait(false);
            }
        }
    }

    private static long OutputTokens(MeteredUsage usage) => usage.Buckets.OutputText + usage.Buckets.OutputReasoning;

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
