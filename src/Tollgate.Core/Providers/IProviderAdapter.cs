using Tollgate.Requests;
using Tollgate.Routing;

namespace Tollgate.Providers;

/// <summary>
/// Speaks one provider API. Sends an OpenAI-shaped request to a deployment and returns an OpenAI-shaped
/// answer (buffered, or a started stream), or a failure value. Adapters never throw for upstream
/// problems and never decide about failover: that is the dispatcher's job.
/// </summary>
public interface IProviderAdapter
{
    /// <summary>The provider <c>type</c> this adapter serves (<c>openai</c>, ...).</summary>
    string Type { get; }

    /// <summary>
    /// Starts one attempt. For streams, returns once the first chunk has arrived. <paramref name="cancellation"/>
    /// is already armed with the attempt timeout; a stream re-arms it with <paramref name="streamIdleTimeout"/> per chunk.
    /// </summary>
    Task<AttemptResult> SendAsync(Deployment deployment, ParsedRequest request, AttemptCancellation cancellation, TimeSpan streamIdleTimeout);
}
