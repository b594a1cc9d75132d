using System.Collections.Concurrent;
using Tollgate.Keys;

namespace Tollgate.Server.Auth;

/// <summary>
/// Resolves a presented client key to its record without touching the database on the hot path.
/// Both hits and misses are cached by hash; the cache is cleared whenever the key table may have
/// changed (an admin call here, or any commit by another process, seen through <see cref="KeyChangeWatcher"/>).
/// A miss reads the database on the thread pool: the caller may be a socket I/O thread (<c>server.inlineIo</c>),
/// and a flood of unknown keys must not make that thread, and every connection it serves, wait on SQLite.
/// </summary>
internal sealed class ClientKeyCache(IKeyStore store)
{
    // Bounds memory under a flood of random keys: the negative entries are simply forgotten.
    private const int MaxEntries = 50_000;

    private readonly ConcurrentDictionary<string, Entry> _byHash = new(StringComparer.Ordinal);
    private long _generation;

    /// <summary>Moves on every <see cref="Invalidate"/>: what was looked up under an older value may be out of date.</summary>
    public long Generation => Volatile.Read(ref _generation);

    public ValueTask<ApiKeyRecord?> FindActiveAsync(string presentedKey, CancellationToken cancellationToken) =>
        !presentedKey.StartsWith(ApiKeys.ClientPrefix, StringComparison.Ordinal) || presentedKey.Length > 200
            ? ValueTask.FromResult<ApiKeyRecord?>(null)
            : FindActiveByHashAsync(ApiKeys.Hash(presentedKey), cancellationToken);

    /// <summary>As <see cref="FindActiveAsync"/> for a key already hashed: a dashboard session keeps only the hash.</summary>
    public async ValueTask<ApiKeyRecord?> FindActiveByHashAsync(string hash, CancellationToken cancellationToken)
    {
        // An entry counts only in the generation it was read in. Invalidate moves the generation and then clears;
        // in between, a request that already sees the new generation must not take the old entry (it would remember
        // it on its connection under the new generation, and a revoked key would stay accepted there until the next
        // change). Equally, a row read before a change and stored after it is never taken.
        var generation = Generation;
        if (!_byHash.TryGetValue(hash, out var entry) || entry.Generation != generation)
        {
            var record = await Task.Run(() => store.FindByHashAsync(hash, cancellationToken), cancellationToken).ConfigureAwait(false);
            if (_byHash.Count >= MaxEntries)
            {
                _byHash.Clear();
            }

            entry = new Entry(record, generation);
            _byHash[hash] = entry;
        }

        return entry.Record is { IsActive: true } active ? active : null;
    }

    public void Invalidate()
    {
        Interlocked.Increment(ref _generation);
        _byHash.Clear();
    }

    /// <summary>A looked-up row (null: no such key) and the generation it was read in.</summary>
    private readonly record struct Entry(ApiKeyRecord? Record, long Generation);
}
