namespace Tollgate.Providers;

/// <summary>
/// One cancellation source per upstream attempt, linked to the client's abort token. Its timer is
/// re-armed per phase: the attempt timeout until the first byte, then the idle timeout before each
/// stream event. Cancellation is attributed afterwards: client abort, or our own timer.
/// </summary>
public sealed class AttemptCancellation : IDisposable
{
    private readonly CancellationTokenSource _source;
    private readonly CancellationToken _client;

    public AttemptCancellation(CancellationToken clientAborted)
    {
        _client = clientAborted;
        _source = CancellationTokenSource.CreateLinkedTokenSource(clientAborted);
    }

    public CancellationToken Token => _source.Token;

    public bool ClientAborted => _client.IsCancellationRequested;

    /// <summary>(Re)starts the timer: the attempt is cancelled unless the next step finishes within <paramref name="timeout"/>.</summary>
    public void Arm(TimeSpan timeout) => _source.CancelAfter(timeout);

    /// <summary>
    /// Stops the timer while the gateway itself is busy (writing to a slow client must not count as
    /// upstream silence); the next <see cref="Arm"/> restarts it.
    /// </summary>
    public void Disarm() => _source.CancelAfter(Timeout.InfiniteTimeSpan);

    /// <summary>Cancels the upstream work now (the other side of a hedge, or cleanup).</summary>
    public void Cancel() => _source.Cancel();

    public void Dispose() => _source.Dispose();
}
