using Tollgate.Health;
using Tollgate.Routing;
using Tollgate.Server.Diagnostics;

namespace Tollgate.Server.Hosting;

/// <summary>
/// Applies the rate limits other instances meet (<see cref="IHealthBroadcast"/>) to this instance's deployments: a
/// provider that answered another instance 429 is parked here too for the rest of its Retry-After, instead of each
/// instance asking it and being refused in turn. With the embedded database there are no other instances and this
/// ends at once.
/// </summary>
internal sealed class SharedRateLimits(IHealthBroadcast broadcast, Catalog catalog, ILogger<SharedRateLimits> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await foreach (var notice in broadcast.ListenAsync(stoppingToken).ConfigureAwait(false))
            {
                // Instances may run different configurations for a while (a rolling update): unknown ids are skipped.
                if (catalog.Deployments.TryGetValue(notice.DeploymentId, out var deployment))
                {
                    deployment.Health.CoolDown(notice.Remaining);
                    Log.SharedCooldown(logger, notice.DeploymentId, (long)notice.Remaining.TotalMilliseconds);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }
    }
}
