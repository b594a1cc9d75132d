using System.Diagnostics;
using System.Net;

namespace Tollgate.Providers;

/// <summary>
/// One long-lived <see cref="SocketsHttpHandler"/> per provider: connections are pooled and reused
/// across requests, recycled every few minutes so DNS changes are picked up.
/// </summary>
internal static class ProviderHttpClientFactory
{
    /// <param name="attemptTimeout">Caps the connect timeout.</param>
    /// <param name="traced">
    /// Each upstream call gets its own trace span (a child of the request's). Off, the handler has no diagnostics
    /// stage at all: no per-request activity work on the hot path.
    /// </param>
    public static HttpMessageInvoker Create(TimeSpan attemptTimeout, bool traced = false)
    {
        var handler = new SocketsHttpHandler
        {
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
            ConnectTimeout = attemptTimeout < TimeSpan.FromSeconds(10) ? attemptTimeout : TimeSpan.FromSeconds(10),
            EnableMultipleHttp2Connections = true,
            AllowAutoRedirect = false,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.None,
            MaxConnectionsPerServer = int.MaxValue,

            // Providers are third parties: the gateway's trace context (traceparent) is not theirs to see. A null
            // propagator also leaves the diagnostics stage out of the handler, which is what spans need: traced,
            // the stage is kept with a propagator that writes no header.
            ActivityHeadersPropagator = traced ? DistributedContextPropagator.CreateNoOutputPropagator() : null,
        };

        // HttpMessageInvoker rather than HttpClient: no default timeout or header merging on the hot path;
        // timeouts are owned by the dispatcher (per attempt, up to the first byte).
        return new HttpMessageInvoker(handler, disposeHandler: true);
    }
}
