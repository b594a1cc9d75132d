using System.Threading.Channels;
using Tollgate.Metering;
using Tollgate.Server.Diagnostics;
using Tollgate.Tenancy;

namespace Tollgate.Server.Metering;

/// <summary>
/// Group commit for the ledger: requests hand their row to <see cref="CommitAsync"/> and wait; one
/// background loop takes every row waiting (up to <see cref="MaxBatch"/>), writes them in one transaction,
/// and then completes all their waits. Under load one commit carries many requests, so durability costs
/// about one fsync per batch, not per request. A request writes its last byte only after its row is
/// committed, so a client that received a whole response always has its row, even if the process is killed.
/// </summary>
internal sealed class LedgerWriter(ILedgerStore store, IUsageLimiter limiter, GatewayMetrics metrics, TimeProvider time, ILogger<LedgerWriter> logger) : BackgroundService
{
    /// <summary>Rows per transaction at most; bounds the time one commit holds the writer.</summary>
    private const int MaxBatch = 1024;

    private readonly Channel<Pending> _queue = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = true });

    /// <summary>Queues the row and completes when it is committed. Throws when the ledger cannot be written.</summary>
    public Task CommitAsync(LedgerEntry entry)
    {
        var pending = new Pending(entry, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        if (!_queue.Writer.TryWrite(pending))
        {
            pending.Done.SetException(new InvalidOperationException("The ledger writer has stopped."));
        }

        return pending.Done.Task;
    }

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        // Month-to-date usage from the ledger, so a restart does not hand out a fresh budget.
        await limiter.InitializeAsync(store, cancellationToken).ConfigureAwait(false);
        await base.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _queue.Writer.TryComplete();
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var batch = new List<Pending>(MaxBatch);
        var entries = new List<LedgerEntry>(MaxBatch);

        // Not stoppingToken: on shutdown the queue is completed and drained, so no waiting request is dropped.
        while (await _queue.Reader.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            while (batch.Count < MaxBatch && _queue.Reader.TryRead(out var pending))
            {
                batch.Add(pending);
                entries.Add(pending.Entry);
            }

            var started = time.GetTimestamp();
            try
            {
                await store.AppendAsync(entries, CancellationToken.None).ConfigureAwait(false);
                metrics.LedgerBatch(batch.Count, time.GetElapsedTime(started), committed: true);
                foreach (var pending in batch)
                {
                    pending.Done.TrySetResult();
                }
            }
            catch (Exception ex) when (ex is System.Data.Common.DbException or IOException or InvalidOperationException or TimeoutException)
            {
                // Documented boundary: the failure goes to every waiting request, which answers 500 instead of an unrecorded 200.
                Log.LedgerWriteFailed(logger, ex, batch.Count);
                metrics.LedgerBatch(batch.Count, time.GetElapsedTime(started), committed: false);
                foreach (var pending in batch)
                {
                    pending.Done.TrySetException(ex);
                }
            }

            batch.Clear();
            entries.Clear();
        }
    }

    private sealed record Pending(LedgerEntry Entry, TaskCompletionSource Done);
}
