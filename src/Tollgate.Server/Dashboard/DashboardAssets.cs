using System.Collections.Frozen;
using System.Security.Cryptography;
using Microsoft.Net.Http.Headers;

namespace Tollgate.Server.Dashboard;

/// <summary>One file of the dashboard's client app.</summary>
internal sealed record DashboardAsset(string Name, byte[] Content, string ContentType, string ETag);

/// <summary>
/// The dashboard's page, script and style sheet, embedded in the server assembly (<c>Dashboard/Assets/</c>).
/// Embedded rather than a wwwroot folder because the content root is wherever the user starts the gateway,
/// so a folder on disk would be found only from the project directory; embedded files also make a published
/// single binary carry its dashboard. There is no build step: the files are served exactly as written.
/// </summary>
internal sealed class DashboardAssets
{
    /// <summary>Prefix of the assets' manifest resource names (set by <c>LogicalName</c> in the project file).</summary>
    public const string ResourcePrefix = "dashboard/";

    private static readonly FrozenDictionary<string, string> ContentTypes = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
    {
        [".html"] = "text/html; charset=utf-8",
        [".js"] = "text/javascript; charset=utf-8",
        [".css"] = "text/css; charset=utf-8",
        [".svg"] = "image/svg+xml",
    }.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);

    private readonly FrozenDictionary<string, DashboardAsset> _byName;

    public DashboardAssets()
    {
        var assembly = typeof(DashboardAssets).Assembly;
        var assets = new Dictionary<string, DashboardAsset>(StringComparer.Ordinal);
        foreach (var resource in assembly.GetManifestResourceNames())
        {
            if (!resource.StartsWith(ResourcePrefix, StringComparison.Ordinal)
                || !ContentTypes.TryGetValue(Path.GetExtension(resource), out var contentType))
            {
                continue;
            }

            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            var content = copy.ToArray();
            var name = resource[ResourcePrefix.Length..];
            assets[name] = new DashboardAsset(name, content, contentType, $"\"{Convert.ToHexStringLower(SHA256.HashData(content))[..16]}\"");
        }

        _byName = assets.ToFrozenDictionary(StringComparer.Ordinal);
    }

    public DashboardAsset? Find(string name) => _byName.GetValueOrDefault(name);

    /// <summary>
    /// Writes the asset. <c>no-cache</c> with an ETag: the browser revalidates each time (a cheap 304), so
    /// after an upgrade it never runs an old script against a new API.
    /// </summary>
    public static Task WriteAsync(HttpContext context, DashboardAsset asset)
    {
        var response = context.Response;
        DashboardHeaders.Apply(response);
        response.Headers.CacheControl = "no-cache";
        response.Headers.ETag = asset.ETag;
        var ifNoneMatch = context.Request.Headers[HeaderNames.IfNoneMatch].ToString();
        if (ifNoneMatch.Length > 0 && ifNoneMatch.Contains(asset.ETag, StringComparison.Ordinal))
        {
            response.StatusCode = StatusCodes.Status304NotModified;
            return Task.CompletedTask;
        }

        response.ContentType = asset.ContentType;
        response.ContentLength = asset.Content.Length;
        return HttpMethods.IsHead(context.Request.Method)
            ? Task.CompletedTask
            : response.Body.WriteAsync(asset.Content, context.RequestAborted).AsTask();
    }
}

/// <summary>Security headers on every dashboard response.</summary>
internal static class DashboardHeaders
{
    /// <summary>
    /// No inline script or style and nothing from another origin: the page runs only its own script file,
    /// so data that slipped into the DOM as markup still could not execute. Charts are SVG built with DOM
    /// calls and colored by CSS classes, so no <c>style</c> attribute is needed either.
    /// </summary>
    public const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

    public static void Apply(HttpResponse response)
    {
        response.Headers.ContentSecurityPolicy = ContentSecurityPolicy;
        response.Headers.XContentTypeOptions = "nosniff";
        response.Headers.XFrameOptions = "DENY";
        response.Headers["Referrer-Policy"] = "no-referrer";
    }
}
