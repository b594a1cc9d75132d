using Tollgate.Routing;
using Tollgate.Server.Diagnostics;

namespace Tollgate.Server.Hosting;

/// <summary>
/// Keyless providers (a local Ollama) count as configured only while they answer. This probe asks each
/// one for <c>GET {baseUrl}/models</c> at start and every 30 seconds; any HTTP answer means reachable.
/// </summary>
internal sealed class ReachabilityProbe(Catalog catalog, TimeProvider time, ILogger<ReachabilityProbe> logger) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(3);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var keyless = catalog.Providers.Values.Where(p => p.IsKeyless).ToArray();
        if (keyless.Length == 0)
        {
            return;
        }

        using var timer = new PeriodicTimer(Interval, time);
        do
        {
            await Task.WhenAll(keyless.Select(p => ProbeAsync(p, stoppingToken))).ConfigureAwait(false);
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    private async Task ProbeAsync(Provider provider, CancellationToken stoppingToken)
    {
        bool reachable;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        timeout.CancelAfter(ProbeTimeout);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, provider.Endpoint("models"));
            using var response = await provider.Http.SendAsync(request, timeout.Token).ConfigureAwait(false);
            reachable = true;
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            return;
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException)
        {
            reachable = false;
        }

        if (provider.Reachable != reachable)
        {
            provider.Reachable = reachable;
            Log.ReachabilityChanged(logger, provider.Name, reachable);
        }
    }
}
