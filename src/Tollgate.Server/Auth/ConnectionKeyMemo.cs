using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Connections.Features;
using Tollgate.Keys;

namespace Tollgate.Server.Auth;

/// <summary>
/// The client key an HTTP/1.x connection last authenticated with. A keep-alive client sends the same
/// <c>Authorization</c> header on every request, so a repeat is recognised by comparing the header with the one
/// remembered, instead of hashing the key (SHA-256) and looking the hash up again. The comparison is constant-time:
/// a reverse proxy in front of the gateway may carry several clients' requests on one connection. A memo is stale
/// as soon as the key table may have changed (<see cref="ClientKeyCache.Generation"/>), so a revoked key is refused
/// at once on connections that used it. HTTP/2 is left out: its requests share a connection concurrently, and the
/// connection's item store is not made for that.
/// </summary>
internal sealed class ConnectionKeyMemo
{
    private static readonly object Slot = new();

    private readonly string _authorization;
    private readonly long _generation;
    private readonly ApiKeyRecord _key;

    private ConnectionKeyMemo(string authorization, long generation, ApiKeyRecord key)
    {
        _authorization = authorization;
        _generation = generation;
        _key = key;
    }

    /// <summary>The key remembered for this exact header, or null (none, another header, or stale).</summary>
    public static ApiKeyRecord? Recall(HttpContext context, string authorization, long generation)
    {
        if (authorization.Length == 0 || ItemsOf(context) is not { } items || !items.TryGetValue(Slot, out var value)
            || value is not ConnectionKeyMemo memo || memo._generation != generation)
        {
            return null;
        }

        var same = CryptographicOperations.FixedTimeEquals(
            MemoryMarshal.AsBytes(memo._authorization.AsSpan()), MemoryMarshal.AsBytes(authorization.AsSpan()));
        return same ? memo._key : null;
    }

    /// <summary>Remembers the key this header authenticated; <paramref name="generation"/> is the cache's, read before the lookup.</summary>
    public static void Remember(HttpContext context, string authorization, long generation, ApiKeyRecord key)
    {
        if (ItemsOf(context) is { } items)
        {
            items[Slot] = new ConnectionKeyMemo(authorization, generation, key);
        }
    }

    private static IDictionary<object, object?>? ItemsOf(HttpContext context) =>
        HttpProtocol.IsHttp11(context.Request.Protocol) || HttpProtocol.IsHttp10(context.Request.Protocol)
            ? context.Features.Get<IConnectionItemsFeature>()?.Items
            : null;
}
