using Tollgate.Keys;
using Tollgate.Server.Diagnostics;

namespace Tollgate.Server.Auth;

/// <summary>
/// Polls the database's key-and-tenant change counter once a second and clears the key and tenant caches
/// when it moved (a change made by the <c>tollgate keys</c> / <c>tollgate tenants</c> CLI, by another instance
/// sharing the database, or here), so a revoked key or a suspended tenant stops working within a second.
/// </summary>
internal sealed class KeyChangeWatcher(IKeyStore store, ClientKeyCache cache, TenantDirectory tenants, TimeProvider time, ILogger<KeyChangeWatcher> logger) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    private long? _last;

    /// <summary>
    /// Reads the counter before the host starts serving. Since .NET 10 all of <see cref="ExecuteAsync"/> runs later,
    /// on the thread pool; a first read taken there, on a busy machine, could postdate a revocation and take the
    /// revoked state as the baseline, so that change would never be seen.
    /// </summary>
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        _last = await ReadAsync(cancellationToken).ConfigureAwait(false);
        await base.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            // Unknown (unreadable, now or at start) counts as changed: dropping the caches costs a re-read, keeping a
            // revoked key does not bear thinking about.
            var stamp = await ReadAsync(stoppingToken).ConfigureAwait(false);
            if (stamp is null || stamp != _last)
            {
                _last = stamp;
                cache.Invalidate();
                tenants.Invalidate();
                if (stamp is { } seen)
                {
                    Log.KeysChanged(logger, seen);
                }
            }
        }
    }

    /// <summary>The counter, or null when the database cannot be read (a network database's blip must not end the watch).</summary>
    private async Task<long?> ReadAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await store.GetChangeStampAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is System.Data.Common.DbException or IOException or TimeoutException or InvalidOperationException)
        {
            Log.ChangeStampUnreadable(logger, ex);
            return null;
        }
    }
}
