using Tollgate.Providers;
using Tollgate.Requests;
using Tollgate.Routing;

namespace Tollgate.Server.Dispatch;

/// <summary>
/// One upstream attempt: the deployment, its own cancellation (client abort, attempt timeout, or the
/// dispatcher cancelling the losing side of a hedge) and, once it has run, its result and time to first byte.
/// </summary>
internal sealed class Attempt : IDisposable
{
    private readonly TimeProvider _time;

    public Attempt(Deployment deployment, TimeProvider time, CancellationToken clientAborted)
    {
        Deployment = deployment;
        Cancellation = new AttemptCancellation(clientAborted);
        _time = time;
    }

    public Deployment Deployment { get; }

    public AttemptCancellation Cancellation { get; }

    public AttemptResult Result { get; private set; }

    /// <summary>When the attempt started (a <see cref="TimeProvider"/> timestamp).</summary>
    public long Started { get; private set; }

    /// <summary>Time to the first event of a stream, or to the whole buffered answer.</summary>
    public TimeSpan FirstByte { get; private set; }

    /// <summary>Set when the dispatcher cancelled it because the other side of a hedge answered first.</summary>
    public bool LostHedge { get; set; }

    public async Task<Attempt> RunAsync(IProviderAdapter adapter, ParsedRequest request, TimeSpan streamIdleTimeout)
    {
        Started = _time.GetTimestamp();
        Cancellation.Arm(Deployment.Provider.AttemptTimeout);
        Result = await adapter.SendAsync(Deployment, request, Cancellation, streamIdleTimeout).ConfigureAwait(false);
        Cancellation.Disarm();
        FirstByte = _time.GetElapsedTime(Started);
        return this;
    }

    public void Dispose() => Cancellation.Dispose();
}
