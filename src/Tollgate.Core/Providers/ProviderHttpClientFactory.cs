using System.Net;

namespace Tollgate.Providers;

/// <summary>
/// One long-lived <see cref="SocketsHttpHandler"/> per provider: connections are pooled and reused
/// across requests, recycled every few minutes so DNS changes are picked up.
/// </summary>
internal static class ProviderHttpClientFactory
{
    public static HttpMessageInvoker Create(TimeSpan attemptTimeout)
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

            // Providers are third parties: the gateway's trace context (traceparent) is not theirs to see,
            // and skipping the per-request propagation work keeps the hot path lighter.
            ActivityHeadersPropagator = null,
        };

        // HttpMessageInvoker rather than HttpClient: no default timeout or header merging on the hot path;
        // timeouts are owned by the dispatcher (per attempt, up to the first byte).
        return new HttpMessageInvoker(handler, disposeHandler: true);
    }
}
