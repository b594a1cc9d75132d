using System.Collections.Concurrent;

namespace Tollgate.Keys;

/// <summary>Who a dashboard session speaks for.</summary>
public enum DashboardRole
{
    Admin,
    Tenant,
}

/// <summary>One logged-in browser.</summary>
/// <param name="KeyHash">For a tenant session, the hash of the client key it logged in with (never the key itself):
/// every request re-resolves it, so revoking or expiring the key, or suspending its tenant, ends the session's access at once.</param>
public sealed record DashboardSession(DashboardRole Role, string? KeyHash, string? TenantId, DateTimeOffset ExpiresAt);

/// <summary>
/// Where dashboard sessions are kept, under the SHA-256 hash of their id (the cookie's value), so whoever reads the
/// store cannot use what is in it: in this process beside the embedded database, or in the shared database, so that a
/// login on one instance is good on every instance and a logout on any instance ends it on all.
/// </summary>
public interface IDashboardSessionStore
{
    Task AddAsync(string idHash, DashboardSession session, CancellationToken cancellationToken);

    /// <summary>The session stored under <paramref name="idHash"/>, expired or not; null when there is none.</summary>
    Task<DashboardSession?> FindAsync(string idHash, CancellationToken cancellationToken);

    Task RemoveAsync(string idHash, CancellationToken cancellationToken);
}

/// <summary>Sessions held in memory, for one instance: lost on restart, which only means logging in again.</summary>
public sealed class InMemoryDashboardSessionStore(TimeProvider time) : IDashboardSessionStore
{
    // Only holders of a valid key can create sessions, so this bound is defensive, not a flood control.
    private const int MaxSessions = 10_000;

    private readonly ConcurrentDictionary<string, DashboardSession> _byIdHash = new(StringComparer.Ordinal);

    public Task AddAsync(string idHash, DashboardSession session, CancellationToken cancellationToken)
    {
        if (_byIdHash.Count >= MaxSessions)
        {
            RemoveExpired();
            if (_byIdHash.Count >= MaxSessions)
            {
                // Still full of live sessions: forget the one closest to its end rather than refuse a valid login.
                var oldest = _byIdHash.MinBy(pair => pair.Value.ExpiresAt);
                _byIdHash.TryRemove(oldest.Key, out _);
            }
        }

        _byIdHash[idHash] = session;
        return Task.CompletedTask;
    }

    public Task<DashboardSession?> FindAsync(string idHash, CancellationToken cancellationToken) =>
        Task.FromResult(_byIdHash.TryGetValue(idHash, out var session) ? session : null);

    public Task RemoveAsync(string idHash, CancellationToken cancellationToken)
    {
        _byIdHash.TryRemove(idHash, out _);
        return Task.CompletedTask;
    }

    private void RemoveExpired()
    {
        var now = time.GetUtcNow();
        foreach (var pair in _byIdHash)
        {
            if (pair.Value.ExpiresAt <= now)
            {
                _byIdHash.TryRemove(pair.Key, out _);
            }
        }
    }
}
