using Tollgate.Keys;

namespace Tollgate.Server.Auth;

/// <summary>The admin key's hash; presented keys are compared in constant time.</summary>
internal sealed class AdminKey(string hash)
{
    public bool Matches(string? presented) => presented is { Length: > 0 and <= 200 } && ApiKeys.Matches(presented, hash);
}

/// <summary>Reads a bearer token from the <c>Authorization</c> header.</summary>
internal static class BearerToken
{
    public static string? From(Microsoft.AspNetCore.Http.HttpRequest request) => From(request.Headers.Authorization.ToString());

    /// <summary>The token of an <c>Authorization</c> header value; null unless it is <c>Bearer</c> with a token.</summary>
    public static string? From(string header)
    {
        const string Scheme = "Bearer ";
        return header.Length > Scheme.Length && header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase)
            ? header[Scheme.Length..].Trim()
            : null;
    }
}
