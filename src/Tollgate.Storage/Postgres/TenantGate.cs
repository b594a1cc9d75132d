namespace Tollgate.Storage.Postgres;

/// <summary>
/// Lets a few of one tenant's reservations into the database at once and queues the rest, first come first served.
/// Unlike <see cref="SemaphoreSlim"/>, a freed slot is handed to the next waiter on the releasing thread: with inline
/// I/O that is the socket I/O thread that just read the database's reply, so the next reservation is sent at once
/// instead of waiting for a thread-pool worker to get the core the I/O thread is busy on.
/// </summary>
internal sealed class TenantGate(int slots)
{
    private readonly Queue<TaskCompletionSource> _waiters = new();
    private int _free = slots;

    public Task WaitAsync(CancellationToken cancellationToken)
    {
        TaskCompletionSource waiter;
        lock (_waiters)
        {
            if (_free > 0)
            {
                _free--;
                return Task.CompletedTask;
            }

            waiter = new TaskCompletionSource();
            _waiters.Enqueue(waiter);
        }

        return cancellationToken.CanBeCanceled ? WaitOrLeaveAsync(waiter, cancellationToken) : waiter.Task;
    }

    /// <summary>Frees a slot: the longest waiter still waiting takes it, or it stays free.</summary>
    public void Release()
    {
        while (true)
        {
            TaskCompletionSource next;
            lock (_waiters)
            {
                if (!_waiters.TryDequeue(out next!))
                {
                    _free++;
                    return;
                }
            }

            // Outside the lock: the waiter's reservation starts right here, on this thread. A waiter whose client has
            // left is skipped.
            if (next.TrySetResult())
            {
                return;
            }
        }
    }

    private static async Task WaitOrLeaveAsync(TaskCompletionSource waiter, CancellationToken cancellationToken)
    {
        // The callback only marks the waiter; Release skips it. Taking the slot and leaving cannot both win.
        await using (cancellationToken.UnsafeRegister(static (state, token) => ((TaskCompletionSource)state!).TrySetCanceled(token), waiter).ConfigureAwait(false))
        {
            await waiter.Task.ConfigureAwait(false);
        }
    }
}
