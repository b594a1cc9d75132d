using System.Globalization;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Http.Features;
using Tollgate.Metering;
using Tollgate.Providers;
using Tollgate.Requests;
using Tollgate.Routing;
using Tollgate.Server.Diagnostics;

namespace Tollgate.Server.Dispatch;

/// <summary>
/// Writing an answer to the client: routing and usage headers, the buffered body, or the stream relayed event by event,
/// each after its ledger row is committed.
/// </summary>
internal sealed partial class GatewayDispatcher
{
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
                await RelayStreamAsync(context, request, attempt, stream, accounting).ConfigureAwait(false);
                deployment.Health.RecordCompletion(_time.GetElapsedTime(attempt.Started), attempt.FirstByte, OutputTokens(stream.Usage), streamed: true);
            }
            else
            {
                _metrics.FirstByte(deployment, attempt.FirstByte, stream: false);
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

    /// <summary>
    /// The cost header shows exactly what the ledger row recorded (computed once, in <see cref="RequestAccounting"/>); the
    /// provider's own figure, when it gave one, goes beside it as the row keeps it, and is left out rather than shown as 0
    /// when it gave none.
    /// </summary>
    private static void SetUsageHeaders(HttpResponse http, MeteredUsage usage, decimal? cost)
    {
        http.Headers["x-tollgate-cost-usd"] = cost is { } c ? c.ToString("0.##########", CultureInfo.InvariantCulture) : "unknown";
        http.Headers["x-tollgate-usage"] = usage.Estimated ? "estimated" : "reported";
        if (Money.ReportedToPico(usage.ProviderReportedCostUsd) is { } reported)
        {
            http.Headers["x-tollgate-provider-cost-usd"] = Money.ToUsd(reported).ToString("0.##########", CultureInfo.InvariantCulture);
        }
    }

    /// <summary>The most a burst of events waits in the response pipe before it is flushed (one socket buffer's worth).</summary>
    private const int BurstFlushBytes = 64 * 1024;

    private async Task RelayStreamAsync(HttpContext context, ParsedRequest request, Attempt attempt, StreamingResponse stream, RequestAccounting accounting)
    {
        var deployment = attempt.Deployment;
        var cancellation = attempt.Cancellation;
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
            var first = true;
            var unflushed = 0L;
            while (chunk is { } current)
            {
                if (!current.UsageOnly || request.ClientWantsUsage)
                {
                    SseWriter.WriteData(writer, current.Data.Span);
                    unflushed += current.Data.Length + SseWriter.EventOverhead;
                }

                if (first)
                {
                    // The first event (with the response's headers) goes out before anything else is done: the
                    // next read, the health record and the metric all wait until the client has it in flight.
                    var sent = unflushed == 0 || await FlushAsync(writer, aborted, cancellation: cancellation).ConfigureAwait(false);
                    unflushed = 0;
                    deployment.Health.RecordSuccess(attempt.FirstByte, streamed: true);
                    _metrics.FirstByte(deployment, attempt.FirstByte, stream: true);
                    if (!sent)
                    {
                        await accounting.CommitAsync(ClientClosedRequest, "client_aborted", stream.Usage).ConfigureAwait(false);
                        return;
                    }
                }

                // ReadAsync arms the idle timer for the upstream read. Events that already arrived are written
                // together and flushed once, before the relay would wait: no event ever waits for a later one,
                // and a burst costs one send instead of one per event. A burst that goes on (an upstream faster
                // than the relay) is also flushed every BurstFlushBytes, so it is never held in memory whole and a
                // slow client slows the relay down instead.
                var next = stream.ReadAsync();
                if (first)
                {
                    first = false;
                    if (next.IsCompleted && !Thread.CurrentThread.IsThreadPoolThread)
                    {
                        // More events came with the first (a fast or buffering upstream sends a whole answer in one
                        // read). Parsing and checking them is CPU work the socket I/O thread (server.inlineIo) would
                        // do before it serves any other connection, so the rest of this burst continues on the
                        // thread pool: one stream's tail never delays another request, or another stream's first
                        // event. Events that arrive one read at a time stay where they are.
                        await Task.Yield();
                    }
                }

                if (unflushed > 0 && (!next.IsCompleted || unflushed >= BurstFlushBytes))
                {
                    if (!await FlushAsync(writer, aborted, stream, cancellation).ConfigureAwait(false))
                    {
                        await AbandonAsync(next, cancellation).ConfigureAwait(false);
                        await accounting.CommitAsync(ClientClosedRequest, "client_aborted", stream.Usage).ConfigureAwait(false);
                        return;
                    }

                    unflushed = 0;
                }

                // The next ReadAsync re-arms the idle timer, and a flush that has to wait disarms it itself.
                chunk = await next.ConfigureAwait(false);
            }

            // The upstream is done: nothing is left for the idle timer to watch while the end goes out.
            cancellation.Disarm();

            // The row first, then [DONE]: a client that saw the end of the stream always has its row. Events that
            // arrived with the end of the stream (usually the last text, the finish reason and the usage) wait in
            // the pipe for the commit, and leave with [DONE] and the response's end in one send.
            if (!await accounting.CommitAsync(StatusCodes.Status200OK, null, stream.Usage).ConfigureAwait(false))
            {
                await SseWriter.WriteErrorAsync(writer, "The gateway could not record this request in its usage ledger.", "ledger_unavailable", aborted).ConfigureAwait(false);
                return;
            }

            SseWriter.WriteDone(writer);
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

    /// <summary>
    /// Flushes what was written; false when the client is gone. With a read in flight, a client slow to take the
    /// data stops that read's idle timer while it catches up: its wait is not upstream silence.
    /// </summary>
    private static async ValueTask<bool> FlushAsync(PipeWriter writer, CancellationToken aborted, StreamingResponse? reading = null, AttemptCancellation? cancellation = null)
    {
        try
        {
            var pending = writer.FlushAsync(aborted);
            if (!pending.IsCompleted)
            {
                cancellation?.Disarm();
                var caughtUp = await pending.ConfigureAwait(false);
                reading?.RestartIdleTimer();
                return !caughtUp.IsCanceled && !caughtUp.IsCompleted;
            }

            var flushed = await pending.ConfigureAwait(false);
            return !flushed.IsCanceled && !flushed.IsCompleted;
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>Cancels the upstream read that was started before the client left, and waits for it to end.</summary>
    private static async Task AbandonAsync(ValueTask<StreamChunk?> read, AttemptCancellation cancellation)
    {
        cancellation.Cancel();
        try
        {
            await read.ConfigureAwait(false);
        }
        catch (UpstreamStreamException)
        {
            // Cancelled with the client: nothing is left to relay.
        }
    }
}
