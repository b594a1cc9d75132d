using Tollgate.Keys;

namespace Tollgate.Server.Auth;

/// <summary>
/// Polls the database's key-and-tenant change counter once a second and clears the key and tenant caches
/// when it moved (a change made by the <c>tollgate keys</c> / <c>tollgate tenants</c> CLI, or here), so a key
/// revoked or a tenant suspended from the CLI stops working on a running server within a second.
/// </summary>
internal sealed class KeyChangeWatcher(IKeyStore store, ClientKeyCache cache, TenantDirectory tenants, TimeProvider time) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var last = await store.GetChangeStampAsync(stoppingToken).ConfigureAwait(false);
        using var timer = new PeriodicTimer(Interval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            var stamp = await store.GetChangeStampAsync(stoppingToken).ConfigureAwait(false);
            if (stamp != last)
            {
                last = stamp;
                cache.Invalidate();
                tenants.Invalidate();
            }
        }
    }
}
