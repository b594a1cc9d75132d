using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Tollgate.Configuration;
using Tollgate.Keys;
using Tollgate.Server.Auth;
using Tollgate.Storage;

namespace Tollgate.Tests.Gateway;

/// <summary>
/// The watcher that makes a revocation from the CLI or from another instance take effect on a running server. Its
/// baseline is taken before the server serves, and a counter it cannot read drops the caches instead of ending the watch.
/// </summary>
public sealed class KeyChangeWatcherTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("tollgate-watcher-").FullName;
    private readonly FakeTimeProvider _time = new();
    private GatewayStorage _storage = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _storage = GatewayStorage.Sqlite(_directory, TimeProvider.System);
        await _storage.MigrateAsync(Ct);
    }

    public async ValueTask DisposeAsync()
    {
        await _storage.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task Start_ReadsTheBaselineBeforeItReturns_SoARevocationRightAfterIsSeen()
    {
        var created = await _storage.Keys.CreateAsync("ci", Ct);
        var keys = new GatedStampStore(_storage.Keys);
        var cache = new ClientKeyCache(keys);
        using var tenants = new TenantDirectory(_storage.Tenants, new TollgateOptions());
        using var watcher = new KeyChangeWatcher(keys, cache, tenants, _time, NullLogger<KeyChangeWatcher>.Instance);
        Assert.NotNull(await cache.FindActiveAsync(created.Key, Ct));

        // Until the baseline is read, the host is not told the watcher has started (and does not start serving).
        var start = watcher.StartAsync(Ct);
        await keys.FirstRead.Task.WaitAsync(Ct);
        Assert.False(start.IsCompleted);
        keys.Gate.SetResult();
        await start;

        Assert.True(await _storage.Keys.RevokeAsync(created.Record.Id, Ct));
        await TickUntilAsync(async () => await cache.FindActiveAsync(created.Key, Ct) is null);
        await watcher.StopAsync(Ct);
    }

    [Fact]
    public async Task UnreadableCounter_DropsTheCaches_AndTheWatchGoesOn()
    {
        var created = await _storage.Keys.CreateAsync("ci", Ct);
        var keys = new GatedStampStore(_storage.Keys);
        keys.Gate.SetResult();
        var cache = new ClientKeyCache(keys);
        using var tenants = new TenantDirectory(_storage.Tenants, new TollgateOptions());
        using var watcher = new KeyChangeWatcher(keys, cache, tenants, _time, NullLogger<KeyChangeWatcher>.Instance);
        await watcher.StartAsync(Ct);

        // The database is unreachable for a while: every tick drops the caches, nothing ends the watch.
        keys.Failing = true;
        var generation = cache.Generation;
        await TickUntilAsync(() => Task.FromResult(cache.Generation > generation + 1));

        // Back: the watcher reads the counter again (two reads, so at least one has finished since) and, with a
        // baseline again, sees a revocation made after it.
        keys.Failing = false;
        var reads = keys.Reads;
        await TickUntilAsync(() => Task.FromResult(keys.Reads > reads + 1));
        Assert.NotNull(await cache.FindActiveAsync(created.Key, Ct));
        Assert.True(await _storage.Keys.RevokeAsync(created.Record.Id, Ct));
        await TickUntilAsync(async () => await cache.FindActiveAsync(created.Key, Ct) is null);
        await watcher.StopAsync(Ct);
    }

    /// <summary>
    /// Moves the fake clock a second at a time until <paramref name="condition"/> holds. The watcher's timer is made on
    /// the thread pool after start, so one advance alone could come before the timer exists.
    /// </summary>
    private async Task TickUntilAsync(Func<Task<bool>> condition)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        deadline.CancelAfter(TimeSpan.FromSeconds(20));
        while (!await condition())
        {
            _time.Advance(TimeSpan.FromSeconds(1));
            await Task.Delay(TimeSpan.FromMilliseconds(5), deadline.Token);
        }
    }

    /// <summary>Holds the first counter read until the test opens the gate; can make reads fail as a lost database would.</summary>
    private sealed class GatedStampStore(IKeyStore inner) : IKeyStore
    {
        private int _reads;

        public TaskCompletionSource FirstRead { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public volatile bool Failing;

        public int Reads => Volatile.Read(ref _reads);

        public async Task<long> GetChangeStampAsync(CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _reads);
            FirstRead.TrySetResult();
            await Gate.Task.WaitAsync(cancellationToken);
            return Failing ? throw new IOException("The database server is unreachable.") : await inner.GetChangeStampAsync(cancellationToken);
        }

        public Task<ApiKeyRecord?> FindByHashAsync(string hash, CancellationToken cancellationToken) => inner.FindByHashAsync(hash, cancellationToken);

        public Task<CreatedApiKey> CreateAsync(string name, CancellationToken cancellationToken) => inner.CreateAsync(name, cancellationToken);

        public Task<CreatedApiKey> CreateAsync(NewApiKey spec, CancellationToken cancellationToken) => inner.CreateAsync(spec, cancellationToken);

        public Task<CreatedApiKey?> RotateAsync(string id, CancellationToken cancellationToken) => inner.RotateAsync(id, cancellationToken);

        public Task<ApiKeyRecord?> UpdateLimitsAsync(string id, KeyLimits limits, DateTimeOffset? expiresAt, CancellationToken cancellationToken) =>
            inner.UpdateLimitsAsync(id, limits, expiresAt, cancellationToken);

        public Task<IReadOnlyList<ApiKeyRecord>> ListAsync(CancellationToken cancellationToken) => inner.ListAsync(cancellationToken);

        public Task<bool> RevokeAsync(string id, CancellationToken cancellationToken) => inner.RevokeAsync(id, cancellationToken);

        public Task<string?> GetAdminKeyHashAsync(CancellationToken cancellationToken) => inner.GetAdminKeyHashAsync(cancellationToken);

        public Task SetAdminKeyHashAsync(string hash, CancellationToken cancellationToken) => inner.SetAdminKeyHashAsync(hash, cancellationToken);

        public Task<bool> TryInitializeAdminKeyHashAsync(string hash, CancellationToken cancellationToken) => inner.TryInitializeAdminKeyHashAsync(hash, cancellationToken);
    }
}
