using Tollgate.Billing;
using Tollgate.Health;
using Tollgate.Keys;
using Tollgate.Metering;
using Tollgate.Storage.Postgres;
using Tollgate.Storage.Redis;
using Tollgate.Storage.Sqlite;
using Tollgate.Tenancy;

namespace Tollgate.Storage;

/// <summary>
/// The stores of one database, opened together: the embedded SQLite file (one instance) or a PostgreSQL
/// database (several instances sharing keys, tenants, the ledger and invoices). Everything above this class
/// sees only the store interfaces. Disposing it disposes the stores; disposing a store twice is harmless.
/// </summary>
public sealed class GatewayStorage : IAsyncDisposable
{
    /// <summary>How long a readiness probe waits for each server.</summary>
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(2);

    private readonly Func<CancellationToken, Task> _migrate;
    private readonly Func<CancellationToken, Task<StorageHealth>> _check;
    private readonly IAsyncDisposable? _database;
    private bool _disposed;

    private GatewayStorage(string description, bool shared, IKeyStore keys, ITenantStore tenants, ILedgerStore ledger, IBillingStore billing, IUsageLimiter limiter, IDashboardSessionStore sessions, IHealthBroadcast health, Func<CancellationToken, Task> migrate, Func<CancellationToken, Task<StorageHealth>> check, IAsyncDisposable? database)
    {
        _check = check;
        HealthBroadcast = health;
        Sessions = sessions;
        Limiter = limiter;
        Description = description;
        IsShared = shared;
        Keys = keys;
        Tenants = tenants;
        Ledger = ledger;
        Billing = billing;
        _migrate = migrate;
        _database = database;
    }

    /// <summary>Where the data is, for start-up messages; never contains credentials.</summary>
    public string Description { get; }

    /// <summary>True when other instances may use the same database (PostgreSQL).</summary>
    public bool IsShared { get; }

    public IKeyStore Keys { get; }

    public ITenantStore Tenants { get; }

    public ILedgerStore Ledger { get; }

    public IBillingStore Billing { get; }

    /// <summary>Where limit counters live: in this process beside the embedded file, in the database (or Redis) when it is shared.</summary>
    public IUsageLimiter Limiter { get; }

    /// <summary>Dashboard logins: in this process beside the embedded file, in the database when it is shared.</summary>
    public IDashboardSessionStore Sessions { get; }

    /// <summary>Rate limits told between instances: nobody to tell with the embedded file, NOTIFY with PostgreSQL.</summary>
    public IHealthBroadcast HealthBroadcast { get; }

    public static GatewayStorage Sqlite(string dataDirectory, TimeProvider time, bool ledgerFsync = false)
    {
        var database = new SqliteDatabase(dataDirectory);
        return new GatewayStorage(
            $"SQLite file {database.FilePath}",
            shared: false,
            new SqliteKeyStore(database, time),
            new SqliteTenantStore(database, time),
            new SqliteLedgerStore(database, ledgerFsync),
            new SqliteBillingStore(database),
            new InMemoryUsageLimiter(time),
            new InMemoryDashboardSessionStore(time),
            new SingleInstanceHealth(),
            database.MigrateAsync,
            async cancellationToken => new StorageHealth(await ReachableAsync(async ct =>
            {
                await using var connection = await database.OpenAsync(ct).ConfigureAwait(false);
                await using var command = connection.CreateCommand();
                command.CommandText = "SELECT 1";
                await command.ExecuteScalarAsync(ct).ConfigureAwait(false);
            }, cancellationToken).ConfigureAwait(false), null),
            database: null);
    }

    /// <summary>
    /// A PostgreSQL database several instances share; the limit counters in it, or in the Redis that
    /// <paramref name="redisConnectionString"/> names (throws <see cref="FormatException"/> when it cannot be read).
    /// </summary>
    public static GatewayStorage Postgres(string connectionString, TimeProvider time, string? redisConnectionString = null)
    {
        var redis = redisConnectionString is null ? null : new RedisConnection(redisConnectionString);
        var database = new PostgresDatabase(connectionString);
        if (redis is null)
        {
            return new GatewayStorage(
                database.Description,
                shared: true,
                new PostgresKeyStore(database, time),
                new PostgresTenantStore(database, time),
                new PostgresLedgerStore(database),
                new PostgresBillingStore(database),
                new PostgresUsageLimiter(database, time),
                new PostgresDashboardSessionStore(database, time),
                new PostgresHealthBroadcast(database),
                database.MigrateAsync,
                async cancellationToken => new StorageHealth(await ReachableAsync(database.PingAsync, cancellationToken).ConfigureAwait(false), null),
                database);
        }

        var limiter = new RedisUsageLimiter(redis, database, time);
        return new GatewayStorage(
            $"{database.Description}, limit counters in {redis.Description}",
            shared: true,
            new PostgresKeyStore(database, time, limiter.ForgetAsync),
            new PostgresTenantStore(database, time, limiter.ForgetAsync),
            new PostgresLedgerStore(database),
            new PostgresBillingStore(database),
            limiter,
            new PostgresDashboardSessionStore(database, time),
            new PostgresHealthBroadcast(database),
            async cancellationToken =>
            {
                await database.MigrateAsync(cancellationToken).ConfigureAwait(false);
                await redis.PingAsync().ConfigureAwait(false);
            },
            async cancellationToken => new StorageHealth(
                await ReachableAsync(database.PingAsync, cancellationToken).ConfigureAwait(false),
                await ReachableAsync(_ => redis.PingAsync(), cancellationToken).ConfigureAwait(false)),
            new CombinedDisposable(database, redis));
    }

    /// <summary>
    /// Whether the database (and the Redis of the limit counters, when used) answer now, each within a couple of
    /// seconds: what a load balancer's readiness probe asks.
    /// </summary>
    public Task<StorageHealth> CheckAsync(CancellationToken cancellationToken) => _check(cancellationToken);

    /// <summary>Creates or upgrades the schema. Safe to run from several instances at once.</summary>
    public Task MigrateAsync(CancellationToken cancellationToken) => _migrate(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var store in new object[] { Keys, Tenants, Ledger, Billing, Limiter })
        {
            switch (store)
            {
                case IAsyncDisposable asyncDisposable:
                    await asyncDisposable.DisposeAsync().ConfigureAwait(false);
                    break;
                case IDisposable disposable:
                    disposable.Dispose();
                    break;
            }
        }

        if (_database is not null)
        {
            await _database.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static async Task<bool> ReachableAsync(Func<CancellationToken, Task> probe, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(ProbeTimeout);
        try
        {
            await probe(deadline.Token).WaitAsync(deadline.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (ex is System.Data.Common.DbException or IOException or TimeoutException or InvalidOperationException
            || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return false;
        }
    }

    private sealed class CombinedDisposable(params IAsyncDisposable[] parts) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            foreach (var part in parts)
            {
                await part.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}

/// <summary>What a readiness probe learns of the storage.</summary>
/// <param name="DatabaseReachable">The database answered (SQLite: the file opened and answered).</param>
/// <param name="CountersReachable">The Redis of the limit counters answered; null when the counters live in the database or in memory.</param>
public readonly record struct StorageHealth(bool DatabaseReachable, bool? CountersReachable);
