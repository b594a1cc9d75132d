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

    private sealed class RecordingKeyStore(IKeyStore inner) : IKeyStore
    {
        public List<bool> LookupsOnPool { get; } = [];

        public Task<ApiKeyRecord?> FindByHashAsync(string hash, CancellationToken cancellationToken)
        {
            LookupsOnPool.Add(Thread.CurrentThread.IsThreadPoolThread);
            return inner.FindByHashAsync(hash, cancellationToken);
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

        public Task<long> GetChangeStampAsync(CancellationToken cancellationToken) => inner.GetChangeStampAsync(cancellationToken);
    }

    private sealed class RecordingTenantStore(ITenantStore inner) : ITenantStore
    {
        public List<bool> LoadsOnPool { get; } = [];

        public Task<IReadOnlyList<Tenant>> ListAsync(CancellationToken cancellationToken)
        {
            LoadsOnPool.Add(Thread.CurrentThread.IsThreadPoolThread);
            return inner.ListAsync(cancellationToken);
        }

        public Task<Tenant> CreateAsync(string name, string? plan, CancellationToken cancellationToken) => inner.CreateAsync(name, plan, cancellationToken);

        public Task<Tenant?> UpdateAsync(string id, string? plan, bool clearPlan, bool? suspended, CancellationToken cancellationToken) =>
            inner.UpdateAsync(id, plan, clearPlan, suspended, cancellationToken);
    }
}
