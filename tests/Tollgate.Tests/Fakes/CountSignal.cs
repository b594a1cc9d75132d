namespace Tollgate.Tests.Fakes;

/// <summary>
/// A monotonically increasing counter that tests can await ("at least N"), completing waiters from
/// <see cref="Increment"/> itself so nothing ever polls.
/// </summary>
internal sealed class CountSignal
{
    private readonly Lock _gate = new();
    private readonly List<(int Target, TaskCompletionSource Waiter)> _waiters = [];
    private int _count;
    private Exception? _failure;

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _count;
            }
        }
    }

    public void Increment()
    {
        lock (_gate)
        {
            _count++;
            // RunContinuationsAsynchronously (below) keeps test continuations off this lock and off Kestrel's thread.
            _waiters.RemoveAll(entry => entry.Target <= _count && entry.Waiter.TrySetResult());
        }
    }

    public Task WaitAsync(int target, CancellationToken cancellationToken)
    {
        TaskCompletionSource waiter;
        lock (_gate)
        {
            if (_count >= target)
            {
                return Task.CompletedTask;
            }

            if (_failure is not null)
            {
                return Task.FromException(_failure);
            }

            waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((target, waiter));
        }

        return waiter.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Fails every pending and future wait that is not already satisfied (used on dispose).</summary>
    public void Fail(Exception failure)
    {
        lock (_gate)
        {
            _failure = failure;
            foreach (var (_, waiter) in _waiters)
            {
                waiter.TrySetException(failure);
            }

            _waiters.Clear();
        }
    }
}
