using Tollgate.Metering;
using Tollgate.Providers;
using Tollgate.Requests;
using Tollgate.Routing;
using Tollgate.Server.Diagnostics;
using Route = Tollgate.Routing.Route;

namespace Tollgate.Server.Dispatch;

/// <summary>
/// Hedging: racing the next candidate against one that is slow to its first token.
/// </summary>
internal sealed partial class GatewayDispatcher
{
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
                RecordFailure(other.Deployment, failed);
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
}
