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

    private readonly ConcurrentDictionary<string, ApiKeyRecord?> _byHash = new(StringComparer.Ordinal);
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
        if (!_byHash.TryGetValue(hash, out var record))
        {
            var generation = Generation;
            record = await Task.Run(() => store.FindByHashAsync(hash, cancellationToken), cancellationToken).ConfigureAwait(false);
            if (_byHash.Count >= MaxEntries)
            {
                _byHash.Clear();
            }

            // A change noticed while the row was read (a revocation, say) may postdate what was read: such a row
            // answers this request, which began before the change was seen, but is not kept. Invalidate moves the
            // generation before it clears, so an entry stored after that clear sees the new generation here.
            _byHash[hash] = record;
            if (Interlocked.Read(ref _generation) != generation)
            {
                _byHash.TryRemove(hash, out _);
            }
        }

        return record is { IsActive: true } ? record : null;
    }

    public void Invalidate()
    {
        Interlocked.Increment(ref _generation);
        _byHash.Clear();
    }
}
