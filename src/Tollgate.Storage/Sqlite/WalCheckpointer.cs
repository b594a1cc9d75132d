using Microsoft.Data.Sqlite;

namespace Tollgate.Storage.Sqlite;

/// <summary>
/// Keeps WAL checkpoints off the ledger's commit path.
/// </summary>
/// <remarks>
/// <para>
/// SQLite's automatic checkpoint runs inside the commit that takes the WAL past 1,000 pages. With
/// <c>synchronous = NORMAL</c> or <c>FULL</c> that checkpoint fsyncs the WAL and then the database file. Every
/// request waiting for its ledger row waited for both: ~4 ms on the development VM every ~250 commits, which was
/// most of the gateway's p99 at low concurrency. On a network disk it is worse.
/// </para>
/// <para>
/// Here the writer connection never checkpoints by itself. Every <see cref="CommitsPerPass"/> commits, a passive
/// checkpoint runs on another connection, on a thread of its own, while commits go on. Not on the thread pool: a
/// gateway given one core has one pool worker, and a worker blocked in fsync held up the writer's next batch
/// just as before. A passive checkpoint copies what is in the WAL but cannot rewind it while commits keep
/// arriving, because each commit appends after what it copied. So when a pass finds more than
/// <see cref="MaxWalFrames"/> frames in the WAL, the writer runs one pass itself between two batches. By then
/// most pages are already copied and synced, so that pass is short, and the next commit starts the WAL over.
/// Under bursty traffic the background passes usually finish between commits and the WAL rewinds without one.
/// </para>
/// </remarks>
internal sealed class WalCheckpointer(SqliteDatabase database) : IDisposable
{
    /// <summary>Commits between background passes: about 1,000 WAL pages when each commit carries one row.</summary>
    internal const int CommitsPerPass = 256;

    /// <summary>WAL size (pages, 4 KiB by default) at which the writer checkpoints between two batches.</summary>
    internal const long MaxWalFrames = 8192;

    private readonly SemaphoreSlim _wake = new(0);
    private Thread? _thread;
    private volatile bool _stopping;
    private int _commits;
    private Task _pass = Task.CompletedTask;
    private TaskCompletionSource? _passDone;
    private volatile bool _writerPassDue;
    private int _backgroundPasses;
    private int _writerPasses;

    /// <summary>Background passes completed (tests).</summary>
    internal int BackgroundPasses => Volatile.Read(ref _backgroundPasses);

    /// <summary>Passes the writer ran between batches because the WAL had grown past <see cref="MaxWalFrames"/> (tests).</summary>
    internal int WriterPasses => Volatile.Read(ref _writerPasses);

    /// <summary>Turns off the connection's own checkpoints; called once on the writer connection.</summary>
    public static async Task DisableAutomaticAsync(SqliteConnection writer, CancellationToken cancellationToken)
    {
        using var pragma = writer.CreateCommand();
        pragma.CommandText = "PRAGMA wal_autocheckpoint = 0;";
        await pragma.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Gives a connection SQLite's default checkpoints back before it returns to the pool; best effort.</summary>
    public static async Task RestoreAutomaticAsync(SqliteConnection writer)
    {
        try
        {
            using var pragma = writer.CreateCommand();
            pragma.CommandText = "PRAGMA wal_autocheckpoint = 1000;";
            await pragma.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (SqliteException)
        {
            // A connection that cannot take a pragma is not worth keeping right.
        }
    }

    /// <summary>
    /// Called by the writer after each commit, while it still holds the write gate (so no commit runs beside a
    /// writer pass). Starts a background pass when one is due; runs the writer pass when the WAL is too long.
    /// Never throws for a failed checkpoint: the rows are committed, and a broken disk shows at the next commit.
    /// </summary>
    public async ValueTask CommittedAsync(SqliteConnection writer)
    {
        if (_writerPassDue)
        {
            _writerPassDue = false;
            await _pass.ConfigureAwait(false);
            if (TryPass(writer) is not null)
            {
                Interlocked.Increment(ref _writerPasses);
            }

            _commits = 0;
            return;
        }

        if (++_commits >= CommitsPerPass && _pass.IsCompleted)
        {
            _commits = 0;
            StartBackgroundPass();
        }
    }

    /// <summary>Waits for a background pass in flight (the store is closing, or a test looks).</summary>
    public Task DrainAsync() => _pass;

    public void Dispose()
    {
        _stopping = true;
        _wake.Release();
        _thread?.Join();
        _wake.Dispose();
    }

    private void StartBackgroundPass()
    {
        _passDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _pass = _passDone.Task;
        if (_thread is null)
        {
            _thread = new Thread(Run) { IsBackground = true, Name = "Tollgate WAL checkpoint" };
            _thread.Start();
        }

        _wake.Release();
    }

    private void Run()
    {
        while (true)
        {
            _wake.Wait();
            if (_stopping)
            {
                _passDone?.TrySetResult();
                return;
            }

            BackgroundPass();
            _passDone!.TrySetResult();
        }
    }

    private void BackgroundPass()
    {
        SqliteConnection connection;
        try
        {
            // This thread exists to block: Microsoft.Data.Sqlite completes its async calls synchronously anyway.
            connection = database.OpenAsync(CancellationToken.None).GetAwaiter().GetResult();
        }
        catch (SqliteException)
        {
            return; // the next pass tries again
        }

        using (connection)
        {
            if (TryPass(connection) is { } walFrames)
            {
                Interlocked.Increment(ref _backgroundPasses);
                if (walFrames > MaxWalFrames)
                {
                    _writerPassDue = true;
                }
            }
        }
    }

    /// <summary>One passive checkpoint; the WAL's length in frames, or null when it failed.</summary>
    private static long? TryPass(SqliteConnection connection)
    {
        try
        {
            using var command = connection.CreateCommand();
            command.CommandText = "PRAGMA wal_checkpoint(PASSIVE);";
            using var reader = command.ExecuteReader();

            // One row: busy flag, frames in the WAL, frames copied into the database file.
            return reader.Read() ? reader.GetInt64(1) : null;
        }
        catch (SqliteException)
        {
            return null;
        }
    }
}
