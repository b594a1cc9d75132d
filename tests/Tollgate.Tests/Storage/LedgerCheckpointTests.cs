using Microsoft.Data.Sqlite;
using Tollgate.Metering;
using Tollgate.Storage.Sqlite;
using static Tollgate.Tests.Billing.BillingRig;

namespace Tollgate.Tests.Storage;

/// <summary>
/// The ledger's WAL is checkpointed beside the commits, never inside one (<see cref="WalCheckpointer"/>), on real
/// SQLite files. The file sizes are the evidence: a checkpoint is what copies WAL pages into the database file.
/// </summary>
public sealed class LedgerCheckpointTests
{
    private const int WalFrameBytes = 4096 + 24; // default page size plus the frame header

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Commits_PastSqlitesOwnThreshold_DoNotCheckpointOnTheCommitPath()
    {
        var database = await NewDatabaseAsync();
        var databaseBytes = new FileInfo(database.FilePath).Length;

        // Fewer commits than start a background pass, but far more pages than SQLite's automatic checkpoint
        // (1,000) would have let through: that one would have grown the database file inside some commit.
        await using (var ledger = new SqliteLedgerStore(database))
        {
            for (var commit = 0; commit < WalCheckpointer.CommitsPerPass - 1; commit++)
            {
                await ledger.AppendAsync(Rows(commit, 40), Ct);
            }

            Assert.True(new FileInfo(database.FilePath + "-wal").Length > 1000L * WalFrameBytes, "the WAL passed 1,000 pages");
            Assert.Equal(databaseBytes, new FileInfo(database.FilePath).Length);
            Assert.Equal(0, ledger.Checkpoints.BackgroundPasses);
            Assert.Equal(0, ledger.Checkpoints.WriterPasses);
        }

        Assert.Equal((WalCheckpointer.CommitsPerPass - 1) * 40L, await CountRowsAsync(database));
        SqliteConnection.ClearAllPools();
    }

    [Fact]
    public async Task ContinuousCommits_WalStaysBounded_AndEveryRowIsKept()
    {
        var database = await NewDatabaseAsync();
        const int Commits = 12_000;

        // Back-to-back single-row commits, as at concurrency 1: every background pass overlaps commits, so it
        // alone would never let the WAL start over (~3 pages a commit, ~36,000 pages in all).
        await using (var ledger = new SqliteLedgerStore(database))
        {
            for (var commit = 0; commit < Commits; commit++)
            {
                await ledger.AppendAsync(Rows(commit, 1), Ct);
            }

            await ledger.Checkpoints.DrainAsync();
            Assert.True(ledger.Checkpoints.BackgroundPasses > 0);
        }

        var walBytes = new FileInfo(database.FilePath + "-wal").Length;
        Assert.True(walBytes < 2 * WalCheckpointer.MaxWalFrames * WalFrameBytes, $"WAL of {walBytes} bytes");
        Assert.Equal(Commits, await CountRowsAsync(database));
        SqliteConnection.ClearAllPools();
    }

    [Fact]
    public async Task WriterConnection_BackInThePool_CheckpointsAgainLikeAnyOther()
    {
        var database = await NewDatabaseAsync();
        await using (var ledger = new SqliteLedgerStore(database))
        {
            await ledger.AppendAsync(Rows(0, 1), Ct);
        }

        // Take every idle connection of the pool at once (the migration's and the ledger writer's among them).
        var connections = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => database.OpenAsync(Ct)));
        foreach (var connection in connections)
        {
            await using var command = connection.CreateCommand();
            command.CommandText = "PRAGMA wal_autocheckpoint;";
            Assert.Equal(1000L, await command.ExecuteScalarAsync(Ct));
        }

        foreach (var connection in connections)
        {
            await connection.DisposeAsync();
        }

        SqliteConnection.ClearAllPools();
    }

    private static async Task<SqliteDatabase> NewDatabaseAsync()
    {
        var database = new SqliteDatabase(Directory.CreateTempSubdirectory("tollgate-wal-").FullName);
        await database.MigrateAsync(Ct);
        return database;
    }

    private static LedgerEntry[] Rows(int commit, int count) =>
        [.. Enumerable.Range(0, count).Select(i => Row("default", $"k{commit % 7}", "gpt-4o", "d0", "2026-10-05T10:00:00Z", 1000 + i, 500, 0.0125m))];

    private static async Task<long> CountRowsAsync(SqliteDatabase database)
    {
        await using var connection = await database.OpenAsync(Ct);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT count(*) FROM ledger";
        return (long)(await command.ExecuteScalarAsync(Ct))!;
    }
}
