using Tollgate.Health;
using Tollgate.Metering;
using Tollgate.Providers;
using Tollgate.Requests;
using Tollgate.Routing;
using Tollgate.Server.Diagnostics;
using Tollgate.Server.Errors;

namespace Tollgate.Server.Dispatch;

/// <summary>
/// The dispatcher's attempt loop: candidates in plan order, failures recorded and failed over, verified answers
/// checked and escalated, extra billed attempts metered.
/// </summary>
internal sealed partial class GatewayDispatcher
{
    /// <summary>
    /// Tries the plan's candidates in order until one answers. A hedged route races the next candidate against
    /// a slow one; a verified request checks each answer against its schema and moves up a tier when it fails.
    /// </summary>
    private async Task DispatchAsync(HttpContext context, ParsedRequest request, RoutePlan plan, RequestAccounting accounting)
    {
        var log = new AttemptLog(plan, _metrics);
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
                    deployment = raced.Deployment; // the secondary, when it won the race
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
            RecordFailure(deployment, failure);
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

    /// <summary>Meters an attempt that used tokens but did not give the answer: a hedge that lost, an answer that failed its check.</summary>
    /// <summary>
    /// Records a provider's failure on its deployment; a rate limit is also told to the other instances, which share
    /// the provider's key and so its limit.
    /// </summary>
    private void RecordFailure(Deployment deployment, UpstreamFailure failure)
    {
        if (deployment.Health.RecordFailure(failure.Message, failure.Kind == FailureKind.RateLimited, failure.RetryAfter) is { } cooldown)
        {
            _health.Publish(new CooldownNotice(deployment.Id, cooldown));
        }
    }

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
}
