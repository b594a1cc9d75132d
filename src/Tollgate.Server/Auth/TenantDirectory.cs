using System.Collections.Frozen;
using Tollgate.Configuration;
using Tollgate.Tenancy;

namespace Tollgate.Server.Auth;

/// <summary>
/// Every tenant in memory, as an immutable snapshot swapped whole: the request path reads a frozen
/// dictionary and never the database. A change to tenants (here or by the CLI, seen by
/// <see cref="KeyChangeWatcher"/>) drops the snapshot; the next request reloads it once, on the thread pool
/// (that request may be running on a socket I/O thread, which must not wait on the database).
/// </summary>
internal sealed class TenantDirectory(ITenantStore store, TollgateOptions options) : IDisposable
{
    private readonly SemaphoreSlim _loadGate = new(1, 1);
    private volatile FrozenDictionary<string, Tenant>? _snapshot;
    private long _generation;

    public FrozenDictionary<string, PlanOptions> Plans { get; } = options.Plans.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);

    public async ValueTask<Tenant?> FindAsync(string id, CancellationToken cancellationToken)
    {
        var snapshot = _snapshot ?? await LoadAsync(cancellationToken).ConfigureAwait(false);
        if (snapshot.TryGetValue(id, out var tenant))
        {
            return tenant;
        }

        // The id comes from a key just read from the database, so the tenant exists: it was made after this snapshot,
        // by the CLI or another instance, before the watcher's next poll. Read the tenants again, once.
        Interlocked.CompareExchange(ref _snapshot, null, snapshot);
        return (await LoadAsync(cancellationToken).ConfigureAwait(false)).GetValueOrDefault(id);
    }

    /// <summary>The tenant's plan; null when it has none (or names a plan removed from the configuration, which then limits nothing).</summary>
    public PlanOptions? PlanOf(Tenant tenant) => tenant.Plan is { } name ? Plans.GetValueOrDefault(name) : null;

    public void Invalidate()
    {
        Interlocked.Increment(ref _generation);
        _snapshot = null;
    }

    public void Dispose() => _loadGate.Dispose();

    private async Task<FrozenDictionary<string, Tenant>> LoadAsync(CancellationToken cancellationToken)
    {
        await _loadGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_snapshot is { } loaded)
            {
                return loaded;
            }

            var generation = Interlocked.Read(ref _generation);
            var tenants = await Task.Run(() => store.ListAsync(cancellationToken), cancellationToken).ConfigureAwait(false);
            var snapshot = tenants.ToFrozenDictionary(t => t.Id, StringComparer.Ordinal);

            // A change noticed while the tenants were read (a suspension, say) may postdate this copy: it answers
            // this request but is not kept, so the next request reads again (same ordering as ClientKeyCache).
            _snapshot = snapshot;
            if (Interlocked.Read(ref _generation) != generation)
            {
                _snapshot = null;
            }

            return snapshot;
        }
        finally
        {
            _loadGate.Release();
        }
    }
}
