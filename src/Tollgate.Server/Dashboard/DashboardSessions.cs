using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace Tollgate.Server.Dashboard;

/// <summary>Who a dashboard session speaks for.</summary>
internal enum DashboardRole
{
    Admin,
    Tenant,
}

/// <summary>One logged-in browser.</summary>
/// <param name="KeyHash">For a tenant session, the hash of the client key it logged in with (never the key itself):
/// every request re-resolves it, so revoking or expiring the key, or suspending its tenant, ends the session's access at once.</param>
internal sealed record DashboardSession(DashboardRole Role, string? KeyHash, string? TenantId, DateTimeOffset ExpiresAt);

/// <summary>
/// Dashboard sessions, held in memory. The cookie carries an opaque random id, not the key: the key then
/// crosses the wire once (the login form) instead of with every request, and a stolen cookie dies with
/// its session. Sessions are lost on restart, which only means logging in again, and are not shared
/// between gateway processes (a second process behind a load balancer would ask for a new login).
/// </summary>
internal sealed class DashboardSessions(TimeProvider time)
{
    /// <summary>Name of the session cookie.</summary>
    public const string CookieName = "tollgate_dashboard";

    /// <summary>Absolute lifetime of a session: a working day, then log in again. Not sliding, so an
    /// open tab that polls <c>/providers</c> does not keep a session alive forever.</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromHours(8);

    // Only holders of a valid key can create sessions, so this bound is defensive, not a flood control.
    private const int MaxSessions = 10_000;

    private readonly ConcurrentDictionary<string, DashboardSession> _byId = new(StringComparer.Ordinal);

    /// <summary>Starts a session and returns its id, the cookie's value.</summary>
    public string Create(DashboardRole role, string? keyHash, string? tenantId)
    {
        if (_byId.Count >= MaxSessions)
        {
            RemoveExpired();
            if (_byId.Count >= MaxSessions)
            {
                // Still full of live sessions: forget the one closest to its end rather than refuse a valid login.
                var oldest = _byId.MinBy(pair => pair.Value.ExpiresAt);
                _byId.TryRemove(oldest.Key, out _);
            }
        }

        // A security token, so the OS CSPRNG and not an injectable random source: 256 bits, URL-safe.
        var id = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        _byId[id] = new DashboardSession(role, keyHash, tenantId, time.GetUtcNow() + Lifetime);
        return id;
    }

    /// <summary>The live session the request's cookie names, whatever the request; null when none.</summary>
    public DashboardSession? Find(HttpRequest request)
    {
        if (!request.Cookies.TryGetValue(CookieName, out var id) || string.IsNullOrEmpty(id) || id.Length > 100
            || !_byId.TryGetValue(id, out var session))
        {
            return null;
        }

        if (session.ExpiresAt <= time.GetUtcNow())
        {
            _byId.TryRemove(id, out _);
            return null;
        }

        return session;
    }

    /// <summary>
    /// The session that may stand in for an <c>Authorization</c> header on this request, or null. Only safe
    /// methods (GET, HEAD) on the read endpoints the dashboard uses qualify. Together with the cookie's
    /// SameSite=Strict this keeps cross-site request forgery out: another site can neither send the cookie
    /// nor reach a state-changing endpoint with it, and those still demand the header.
    /// </summary>
    public DashboardSession? ForRead(HttpRequest request) =>
        (HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method)) && IsDashboardRead(request.Path) && request.Cookies.ContainsKey(CookieName)
            ? Find(request)
            : null;

    /// <summary>Ends the request's session, if any.</summary>
    public void Remove(HttpRequest request)
    {
        if (request.Cookies.TryGetValue(CookieName, out var id) && !string.IsNullOrEmpty(id))
        {
            _byId.TryRemove(id, out _);
        }
    }

    private static bool IsDashboardRead(PathString path) =>
        path.StartsWithSegments("/admin/reports")
        || path.StartsWithSegments("/admin/invoices")
        || path.StartsWithSegments("/admin/tenants")
        || path.StartsWithSegments("/providers")
        || path.StartsWithSegments("/v1/usage")
        || path.StartsWithSegments("/v1/invoices");

    private void RemoveExpired()
    {
        var now = time.GetUtcNow();
        foreach (var pair in _byId)
        {
            if (pair.Value.ExpiresAt <= now)
            {
                _byId.TryRemove(pair.Key, out _);
            }
        }
    }
}
