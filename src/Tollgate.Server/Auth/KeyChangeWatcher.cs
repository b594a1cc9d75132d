using Tollgate.Keys;

namespace Tollgate.Server.Auth;

/// <summary>
/// Polls SQLite's <c>data_version</c> once a second and clears the key cache when another connection
/// or process (the <c>tollgate keys</c> CLI) committed a change, so a key revoked from the CLI stops
/// working on a running server within a second.
/// </summary>
internal sealed class KeyChangeWatcher(IKeyStore store, ClientKeyCache cache, TimeProvider time) : BackgroundService
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
            }
        }
    }
}
