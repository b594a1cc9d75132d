using Microsoft.AspNetCore.Http.HttpResults;
using Tollgate.Keys;
using Tollgate.Server.Auth;
using Tollgate.Server.Diagnostics;

namespace Tollgate.Server.Dashboard;

/// <summary>
/// The dashboard at <c>/dashboard</c>: a small client app (plain JavaScript drawing its own SVG charts, no
/// npm and no build step, so <c>dotnet run</c> serves it as is) that reads the same JSON report endpoints
/// an operator would call with curl. The server side is only the page, its assets and the login:
/// <c>POST /dashboard/login</c> turns a key typed into a form into a session cookie, so the key is never
/// in a URL, in browser storage or in script reach. Every number shown comes from the API unchanged.
/// </summary>
internal static class DashboardEndpoints
{
    public static IEndpointRouteBuilder MapDashboard(this IEndpointRouteBuilder app)
    {
        app.MapGet("/dashboard", ServePage);
        app.MapGet("/dashboard/assets/{name}", ServeAsset);
        app.MapGet("/dashboard/session", CurrentSessionAsync);
        app.MapPost("/dashboard/login", LoginAsync);
        app.MapPost("/dashboard/logout", LogoutAsync);
        return app;
    }

    private static Task ServePage(HttpContext context, DashboardAssets assets) =>
        DashboardAssets.WriteAsync(context, assets.Find("index.html")!);

    private static Task ServeAsset(HttpContext context, string name, DashboardAssets assets)
    {
        if (name == "index.html" || assets.Find(name) is not { } asset)
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        }

        return DashboardAssets.WriteAsync(context, asset);
    }

    /// <summary>Who is logged in, for the page to pick its view; 401 shows the login form.</summary>
    private static async Task<Results<JsonHttpResult<DashboardSessionResponse>, ProblemHttpResult>> CurrentSessionAsync(
        HttpContext context, DashboardSessions sessions, TenantDirectory tenants, CancellationToken cancellationToken)
    {
        NoStore(context.Response);
        var session = await sessions.FindAsync(context.Request, cancellationToken).ConfigureAwait(false);
        if (session is null)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status401Unauthorized, title: "Not logged in", detail: "Log in at /dashboard with an admin or tenant key.");
        }

        var tenant = session.TenantId is { } id ? await tenants.FindAsync(id, cancellationToken).ConfigureAwait(false) : null;
        var role = session.Role == DashboardRole.Admin ? "admin" : "tenant";
        return TypedResults.Json(new DashboardSessionResponse(role, session.TenantId, tenant?.Name, session.ExpiresAt), DashboardJsonContext.Default.DashboardSessionResponse);
    }

    /// <summary>
    /// Accepts the admin key or an active client key (not expired, tenant not suspended) from the form field
    /// <c>key</c>, starts a session and answers 303 to <c>/dashboard</c>. A refused key answers 303 to
    /// <c>/dashboard?login=failed</c> with no cookie (<c>?login=locked</c> while the address is locked out for too many
    /// wrong keys, see <see cref="KeyGuessLimiter"/>); the URL never carries the key.
    /// </summary>
    private static async Task<IResult> LoginAsync(
        HttpContext context, AdminKey adminKey, KeyGuessLimiter guesses, ClientKeyCache keys, TenantDirectory tenants, DashboardSessions sessions, GatewayMetrics metrics, TimeProvider time, CancellationToken cancellationToken)
    {
        NoStore(context.Response);
        if (!IsSameOrigin(context.Request))
        {
            return CrossSiteRefused();
        }

        if (!context.Request.HasFormContentType)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status415UnsupportedMediaType, title: "Form expected", detail: "Post the login form: application/x-www-form-urlencoded with a 'key' field.");
        }

        if (guesses.Blocked(context) is not null)
        {
            metrics.AuthRefused("dashboard", "too_many_wrong_keys");
            return new SeeOther("/dashboard?login=locked");
        }

        // Read by hand, not bound with [FromForm]: form binding would demand antiforgery tokens, which the
        // same-origin check above makes unnecessary here (a login form has no prior session to protect).
        var form = await context.Request.ReadFormAsync(cancellationToken).ConfigureAwait(false);
        var presented = form["key"].ToString().Trim();
        string? sessionId = null;
        if (adminKey.Matches(presented))
        {
            sessionId = await sessions.CreateAsync(DashboardRole.Admin, keyHash: null, tenantId: null, cancellationToken).ConfigureAwait(false);
        }
        else if (presented.Length > 0 && await keys.FindActiveAsync(presented, cancellationToken).ConfigureAwait(false) is { } key
            && !key.IsExpired(time.GetUtcNow())
            && await tenants.FindAsync(key.TenantId, cancellationToken).ConfigureAwait(false) is { Suspended: false } tenant)
        {
            sessionId = await sessions.CreateAsync(DashboardRole.Tenant, key.Hash, tenant.Id, cancellationToken).ConfigureAwait(false);
        }

        if (sessionId is null)
        {
            // One reason for every refused key (unknown, revoked, expired, suspended tenant): the page tells no more.
            metrics.AuthRefused("dashboard", "wrong_key");
            guesses.Failed(context);
            return new SeeOther("/dashboard?login=failed");
        }

        context.Response.Cookies.Append(DashboardSessions.CookieName, sessionId, CookieOptions(context.Request, DashboardSessions.Lifetime));
        return new SeeOther("/dashboard");
    }

    private static async Task<IResult> LogoutAsync(HttpContext context, DashboardSessions sessions, CancellationToken cancellationToken)
    {
        NoStore(context.Response);
        if (!IsSameOrigin(context.Request))
        {
            return CrossSiteRefused();
        }

        await sessions.RemoveAsync(context.Request, cancellationToken).ConfigureAwait(false);
        context.Response.Cookies.Delete(DashboardSessions.CookieName, CookieOptions(context.Request, maxAge: null));
        return new SeeOther("/dashboard");
    }

    /// <summary>HttpOnly (no script reads it), SameSite=Strict (no other site sends it), Secure over HTTPS
    /// (plain HTTP on loopback must still work), Path=/ (the API endpoints read it too).</summary>
    private static CookieOptions CookieOptions(HttpRequest request, TimeSpan? maxAge) => new()
    {
        HttpOnly = true,
        SameSite = SameSiteMode.Strict,
        Secure = request.IsHttps,
        Path = "/",
        MaxAge = maxAge,
        IsEssential = true,
    };

    /// <summary>
    /// Login and logout change state on a POST, which SameSite does not cover for the login itself (there is
    /// no cookie yet), so a browser's own word on the origin is checked: <c>Sec-Fetch-Site</c>, else
    /// <c>Origin</c>. A request with neither is not from a browser page, and so cannot be a forged one.
    /// </summary>
    private static bool IsSameOrigin(HttpRequest request)
    {
        var fetchSite = request.Headers["Sec-Fetch-Site"].ToString();
        if (fetchSite.Length > 0)
        {
            return fetchSite is "same-origin" or "none";
        }

        var origin = request.Headers.Origin.ToString();
        return origin.Length == 0
            || string.Equals(origin, $"{request.Scheme}://{request.Host}", StringComparison.OrdinalIgnoreCase);
    }

    private static ProblemHttpResult CrossSiteRefused() =>
        TypedResults.Problem(statusCode: StatusCodes.Status403Forbidden, title: "Cross-site request refused", detail: "Log in from the dashboard page itself.");

    private static void NoStore(HttpResponse response)
    {
        DashboardHeaders.Apply(response);
        response.Headers.CacheControl = "no-store";
    }

    /// <summary>303 See Other: after a form POST the browser follows with a GET (a 302 leaves the method to the client).</summary>
    private sealed class SeeOther(string location) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.StatusCode = StatusCodes.Status303SeeOther;
            httpContext.Response.Headers.Location = location;
            return Task.CompletedTask;
        }
    }
}

/// <param name="Role"><c>admin</c> or <c>tenant</c>.</param>
/// <param name="Tenant">The tenant's id, for a tenant session.</param>
internal sealed record DashboardSessionResponse(string Role, string? Tenant, string? TenantName, DateTimeOffset ExpiresAt);
