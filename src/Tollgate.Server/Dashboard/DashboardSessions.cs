using System.Security.Cryptography;
using System.Text;
using Tollgate.Keys;

namespace Tollgate.Server.Dashboard;

/// <summary>
/// Dashboard sessions. The cookie carries an opaque random id, not the key: the key then crosses the wire once (the
/// login form) instead of with every request, and a stolen cookie dies with its session. The sessions live in the
/// storage's <see cref="IDashboardSessionStore"/> under the hash of their id: in this process beside the embedded
/// database, or in the shared database, where a login on one instance is good on all of them.
/// </summary>
internal sealed class DashboardSessions(IDashboardSessionStore store, TimeProvider time)
{
    /// <summary>Name of the session cookie.</summary>
    public const string CookieName = "tollgate_dashboard";

    /// <summary>Absolute lifetime of a session: a working day, then log in again. Not sliding, so an
    /// open tab that polls <c>/providers</c> does not keep a session alive forever.</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromHours(8);

    /// <summary>Starts a session and returns its id, the cookie's value.</summary>
    public async Task<string> CreateAsync(DashboardRole role, string? keyHash, string? tenantId, CancellationToken cancellationToken)
    {
        // A security token, so the OS CSPRNG and not an injectable random source: 256 bits, URL-safe.
        var id = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        await store.AddAsync(Hash(id), new DashboardSession(role, keyHash, tenantId, time.GetUtcNow() + Lifetime), cancellationToken).ConfigureAwait(false);
        return id;
    }

    /// <summary>The live session the request's cookie names, whatever the request; null when none.</summary>
    public async Task<DashboardSession?> FindAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        if (!request.Cookies.TryGetValue(CookieName, out var id) || string.IsNullOrEmpty(id) || id.Length > 100)
        {
            return null;
        }

        var idHash = Hash(id);
        if (await store.FindAsync(idHash, cancellationToken).ConfigureAwait(false) is not { } session)
        {
            return null;
        }

        if (session.ExpiresAt <= time.GetUtcNow())
        {
            await store.RemoveAsync(idHash, cancellationToken).ConfigureAwait(false);
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
    public Task<DashboardSession?> ForReadAsync(HttpRequest request, CancellationToken cancellationToken) =>
        (HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method)) && IsDashboardRead(request.Path) && request.Cookies.ContainsKey(CookieName)
            ? FindAsync(request, cancellationToken)
            : Task.FromResult<DashboardSession?>(null);

    /// <summary>Ends the request's session, if any (on every instance, when sessions are shared).</summary>
    public async Task RemoveAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        if (request.Cookies.TryGetValue(CookieName, out var id) && !string.IsNullOrEmpty(id) && id.Length <= 100)
        {
            await store.RemoveAsync(Hash(id), cancellationToken).ConfigureAwait(false);
        }
    }

    private static string Hash(string id) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(id)));

    private static bool IsDashboardRead(PathString path) =>
        path.StartsWithSegments("/admin/reports")
        || path.StartsWithSegments("/admin/invoices")
        || path.StartsWithSegments("/admin/tenants")
        || path.StartsWithSegments("/providers")
        || path.StartsWithSegments("/v1/usage")
        || path.StartsWithSegments("/v1/invoices");
}
