using Tollgate.Configuration;
using Tollgate.Keys;
using Tollgate.Server.Auth;
using Tollgate.Storage.Sqlite;
using Tollgate.Tenancy;

namespace Tollgate.Tests.Gateway;

/// <summary>
/// The two database reads the <c>/v1</c> path can make (a key the cache has not seen, the tenant snapshot after a
/// change) run on the thread pool, also when the request arrives on a thread that is not the pool's: with
/// <c>server.inlineIo</c> that thread is a socket I/O thread, and every connection it serves would wait on SQLite.
/// And a change seen while such a read is in flight is not undone by the read's older copy being cached.
/// </summary>
public sealed class StoreLookupSchedulingTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task KeyCacheMissAndTenantReload_ReadTheDatabaseOnThePool()
    {
        var database = new SqliteDatabase(Directory.CreateTempSubdirectory("tollgate-lookup-").FullName);
        await database.MigrateAsync(Ct);
        using var sqliteKeys = new SqliteKeyStore(database, TimeProvider.System);
        var created = await sqliteKeys.CreateAsync("ci", Ct);
        var keys = new RecordingKeyStore(sqliteKeys);
        var tenants = new RecordingTenantStore(new SqliteTenantStore(database, TimeProvider.System));
        var cache = new ClientKeyCache(keys);
        using var directory = new TenantDirectory(tenants, new TollgateOptions());

        ApiKeyRecord? found = null;
        Tenant? tenant = null;
        Exception? failure = null;
        var caller = new Thread(() =>
        {
            try
            {
                found = cache.FindActiveAsync(created.Key, Ct).AsTask().GetAwaiter().GetResult();
                tenant = directory.FindAsync(found!.TenantId, Ct).AsTask().GetAwaiter().GetResult();
            }
            catch (Exception ex)
            {
                failure = ex; // an exception escaping a thread would end the test process
            }
        });
        caller.Start();

        Assert.True(caller.Join(TimeSpan.FromSeconds(30)), "The lookups did not finish.");
        Assert.Null(failure);
        Assert.Equal(created.Record.Id, found!.Id);
        Assert.Equal(Tenant.DefaultId, tenant!.Id);
        Assert.Equal([true], keys.LookupsOnPool);
        Assert.Equal([true], tenants.LoadsOnPool);

        // A hit is answered from memory: no second read.
        Assert.NotNull(await cache.FindActiveAsync(created.Key, Ct));
        Assert.Single(keys.LookupsOnPool);
    }

    [Fact]
    public async Task KeyRevokedWhileItsLookupIsInFlight_IsNotCachedAsActive()
    {
        var database = new SqliteDatabase(Directory.CreateTempSubdirectory("tollgate-lookup-").FullName);
        await database.MigrateAsync(Ct);
        using var sqliteKeys = new SqliteKeyStore(database, TimeProvider.System);
        var created = await sqliteKeys.CreateAsync("ci", Ct);
        var keys = new RecordingKeyStore(sqliteKeys) { Hold = new Hold() };
        var cache = new ClientKeyCache(keys);

        // The lookup has read the key, still active, and is held before it reaches the cache.
        var lookup = cache.FindActiveAsync(created.Key, Ct).AsTask();
        await keys.Hold.Read.Task.WaitAsync(Ct);
        Assert.True(await sqliteKeys.RevokeAsync(created.Record.Id, Ct));
        cache.Invalidate(); // what KeyChangeWatcher does when it sees the revocation
        keys.Hold.Release.SetResult();

        Assert.NotNull(await lookup); // the request that began before the change was seen
        keys.Hold = null;
        Assert.Null(await cache.FindActiveAsync(created.Key, Ct));
        Assert.Equal(2, keys.LookupsOnPool.Count);
    }

    [Fact]
    public async Task TenantSuspendedWhileTheSnapshotLoads_IsNotCachedAsActive()
    {
        var database = new SqliteDatabase(Directory.CreateTempSubdirectory("tollgate-lookup-").FullName);
        await database.MigrateAsync(Ct);
        var sqliteTenants = new SqliteTenantStore(database, TimeProvider.System);
        var tenants = new RecordingTenantStore(sqliteTenants) { Hold = new Hold() };
        using var directory = new TenantDirectory(tenants, new TollgateOptions());

        var lookup = directory.FindAsync(Tenant.DefaultId, Ct).AsTask();
        await tenants.Hold.Read.Task.WaitAsync(Ct);
        Assert.NotNull(await sqliteTenants.UpdateAsync(Tenant.DefaultId, null, clearPlan: false, suspended: true, Ct));
        directory.Invalidate();
        tenants.Hold.Release.SetResult();

        Assert.False((await lookup)!.Suspended);
        tenants.Hold = null;
        Assert.True((await directory.FindAsync(Tenant.DefaultId, Ct))!.Suspended);
        Assert.Equal(2, tenants.LoadsOnPool.Count);
    }

    [Fact]
    public async Task TenantMadeAfterTheSnapshot_IsFoundAtOnce_NotTakenForSuspended()
    {
        // Another process (the CLI, another instance) makes a tenant after this directory loaded its snapshot; a key
        // of that tenant arrives before the change watcher's next poll.
        var database = new SqliteDatabase(Directory.CreateTempSubdirectory("tollgate-lookup-").FullName);
        await database.MigrateAsync(Ct);
        var sqliteTenants = new SqliteTenantStore(database, TimeProvider.System);
        var tenants = new RecordingTenantStore(sqliteTenants);
        using var directory = new TenantDirectory(tenants, new TollgateOptions());
        Assert.NotNull(await directory.FindAsync(Tenant.DefaultId, Ct));
        var made = await sqliteTenants.CreateAsync("acme", null, Ct);

        Assert.Equal(made, await directory.FindAsync(made.Id, Ct));
        Assert.Null(await directory.FindAsync("ten_never_made", Ct));
        Assert.Equal(3, tenants.LoadsOnPool.Count); // the first load, one for the new tenant, one for the unknown id
    }

    /// <summary>Holds a store read after it has read, until the test releases it.</summary>
    private sealed class Hold
    {
        public TaskCompletionSource Read { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task<T> AfterAsync<T>(Task<T> read)
        {
            var result = await read;
            Read.SetResult();
            await Release.Task;
            return result;
        }
    }

    private sealed class RecordingKeyStore(IKeyStore inner) : IKeyStore
    {
        public List<bool> LookupsOnPool { get; } = [];

        public Hold? Hold { get; set; }

        public Task<ApiKeyRecord?> FindByHashAsync(string hash, CancellationToken cancellationToken)
        {
            LookupsOnPool.Add(Thread.CurrentThread.IsThreadPoolThread);
            var read = inner.FindByHashAsync(hash, cancellationToken);
            return Hold is { } hold ? hold.AfterAsync(read) : read;
        }

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

        public Task<long> GetChangeStampAsync(CancellationToken cancellationToken) => inner.GetChangeStampAsync(cancellationToken);
    }

    private sealed class RecordingTenantStore(ITenantStore inner) : ITenantStore
    {
        public List<bool> LoadsOnPool { get; } = [];

        public Hold? Hold { get; set; }

        public Task<IReadOnlyList<Tenant>> ListAsync(CancellationToken cancellationToken)
        {
            LoadsOnPool.Add(Thread.CurrentThread.IsThreadPoolThread);
            var read = inner.ListAsync(cancellationToken);
            return Hold is { } hold ? hold.AfterAsync(read) : read;
        }

        public Task<Tenant> CreateAsync(string name, string? plan, CancellationToken cancellationToken) => inner.CreateAsync(name, plan, cancellationToken);

        public Task<Tenant?> UpdateAsync(string id, string? plan, bool clearPlan, bool? suspended, CancellationToken cancellationToken) =>
            inner.UpdateAsync(id, plan, clearPlan, suspended, cancellationToken);
    }
}
