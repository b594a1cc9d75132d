using Microsoft.Data.Sqlite;
using Tollgate.Keys;
using Tollgate.Storage.Sqlite;
using Tollgate.Tenancy;

namespace Tollgate.Tests.Tenancy;

public sealed class MigrationTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Migration 1 exactly as shipped in the first release: the database a user upgrades from.</summary>
    private const string Version1 = """
        PRAGMA journal_mode = WAL;
        CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);
        CREATE TABLE api_keys (
            id          TEXT PRIMARY KEY,
            name        TEXT NOT NULL,
            prefix      TEXT NOT NULL,
            hash        TEXT NOT NULL UNIQUE,
            created_at  TEXT NOT NULL,
            revoked_at  TEXT NULL
        );
        CREATE TABLE settings (
            name   TEXT PRIMARY KEY,
            value  TEXT NOT NULL
        );
        INSERT INTO schema_migrations VALUES (1, 'api keys and settings', '2025-01-01T00:00:00.0000000+00:00');
        INSERT INTO api_keys VALUES ('key_live', 'ci', 'tg-AbCdEfG', $live, '2025-01-02T00:00:00.0000000+00:00', NULL);
        INSERT INTO api_keys VALUES ('key_gone', 'old', 'tg-XyZxYzX', $gone, '2025-01-03T00:00:00.0000000+00:00', '2025-01-04T00:00:00.0000000+00:00');
        INSERT INTO settings VALUES ('admin_key_hash', 'abc123');
        """;

    [Fact]
    public async Task Migrate_FromVersion1_MovesKeysToDefaultTenantAndLosesNothing()
    {
        var directory = Directory.CreateTempSubdirectory("tollgate-migrate-").FullName;
        var database = new SqliteDatabase(directory);
        var liveHash = ApiKeys.Hash("tg-live-secret");
        await using (var connection = new SqliteConnection(database.ConnectionString))
        {
            await connection.OpenAsync(Ct);
            await using var command = connection.CreateCommand();
            command.CommandText = Version1;
            command.Parameters.AddWithValue("$live", liveHash);
            command.Parameters.AddWithValue("$gone", ApiKeys.Hash("tg-gone-secret"));
            await command.ExecuteNonQueryAsync(Ct);
        }

        await database.MigrateAsync(Ct);
        await database.MigrateAsync(Ct); // idempotent: a second start changes nothing
        using var keys = new SqliteKeyStore(database, TimeProvider.System);
        var all = await keys.ListAsync(Ct);
        var live = await keys.FindByHashAsync(liveHash, Ct);
        var tenants = await new SqliteTenantStore(database, TimeProvider.System).ListAsync(Ct);

        Assert.Equal(["key_live", "key_gone"], all.Select(k => k.Id));
        Assert.All(all, k => Assert.Equal(Tenant.DefaultId, k.TenantId));
        Assert.Equal("ci", live!.Name);
        Assert.Equal("tg-AbCdEfG", live.Prefix);
        Assert.True(live.IsActive);
        Assert.Null(live.Limits);
        Assert.False(all[1].IsActive);
        Assert.Equal("abc123", await keys.GetAdminKeyHashAsync(Ct));
        var tenant = Assert.Single(tenants);
        Assert.Equal(Tenant.DefaultId, tenant.Id);
        Assert.Null(tenant.Plan);
        Assert.False(tenant.Suspended);
        SqliteConnection.ClearAllPools();
    }

    [Fact]
    public async Task ChangeStamp_MovesOnKeyAndTenantChanges_NotOnLedgerWrites()
    {
        var database = new SqliteDatabase(Directory.CreateTempSubdirectory("tollgate-stamp-").FullName);
        await database.MigrateAsync(Ct);
        using var keys = new SqliteKeyStore(database, TimeProvider.System);
        await using var ledger = new SqliteLedgerStore(database);

        var start = await keys.GetChangeStampAsync(Ct);
        await ledger.AppendAsync([new Tollgate.Metering.LedgerEntry { RequestId = "r", TimestampMs = 1, TenantId = "default", KeyId = "k", Model = "m", Status = 200 }], Ct);
        var afterLedger = await keys.GetChangeStampAsync(Ct);
        await keys.CreateAsync("a", Ct);
        var afterKey = await keys.GetChangeStampAsync(Ct);
        await new SqliteTenantStore(database, TimeProvider.System).CreateAsync("t", "free", Ct);
        var afterTenant = await keys.GetChangeStampAsync(Ct);

        Assert.Equal(start, afterLedger);
        Assert.True(afterKey > afterLedger);
        Assert.True(afterTenant > afterKey);
        SqliteConnection.ClearAllPools();
    }
}
