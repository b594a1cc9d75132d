using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Tollgate.Keys;
using Tollgate.Server.Auth;
using Tollgate.Server.Diagnostics;
using Tollgate.Server.Json;

namespace Tollgate.Server.Endpoints.Admin;

/// <summary>Client key management: create (the key is returned once), list (by prefix), revoke (effective at once).</summary>
internal static class KeysEndpoints
{
    public static RouteGroupBuilder MapKeys(this RouteGroupBuilder admin)
    {
        admin.MapPost("/keys", CreateAsync);
        admin.MapGet("/keys", ListAsync);
        admin.MapDelete("/keys/{id}", RevokeAsync);
        return admin;
    }

    private static async Task<Results<Created<CreatedKeyResponse>, ProblemHttpResult>> CreateAsync(
        HttpRequest request, IKeyStore store, ClientKeyCache cache, ILogger<KeysLog> logger, CancellationToken cancellationToken)
    {
        CreateKeyRequest? body;
        try
        {
            body = await request.ReadFromJsonAsync(ServerJsonContext.Default.CreateKeyRequest, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or BadHttpRequestException)
        {
            return TypedResults.Problem(statusCode: 400, title: "Invalid request body", detail: "Send a JSON object such as {\"name\": \"ci-pipeline\"}.");
        }

        var name = body?.Name?.Trim();
        if (string.IsNullOrEmpty(name) || name.Length > 200)
        {
            return TypedResults.Problem(statusCode: 400, title: "Invalid key name", detail: "'name' is required (1 to 200 characters).");
        }

        var created = await store.CreateAsync(name, cancellationToken).ConfigureAwait(false);
        cache.Invalidate();
        Log.KeyCreated(logger, created.Record.Id, created.Record.Prefix);
        var r = created.Record;
        return TypedResults.Created($"/admin/keys/{r.Id}", new CreatedKeyResponse(r.Id, created.Key, r.Prefix, r.Name, r.CreatedAt));
    }

    private static async Task<Ok<KeyListResponse>> ListAsync(IKeyStore store, CancellationToken cancellationToken)
    {
        var keys = await store.ListAsync(cancellationToken).ConfigureAwait(false);
        return TypedResults.Ok(new KeyListResponse([.. keys.Select(k => new KeyEntry(k.Id, k.Name, k.Prefix, k.CreatedAt, k.RevokedAt, k.IsActive))]));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> RevokeAsync(
        string id, IKeyStore store, ClientKeyCache cache, ILogger<KeysLog> logger, CancellationToken cancellationToken)
    {
        if (!await store.RevokeAsync(id, cancellationToken).ConfigureAwait(false))
        {
            return TypedResults.Problem(statusCode: 404, title: "Key not found", detail: $"No active key has id '{id}'.");
        }

        cache.Invalidate();
        Log.KeyRevoked(logger, id);
        return TypedResults.NoContent();
    }
}

/// <summary>Log category for key administration.</summary>
internal sealed class KeysLog;

internal sealed record CreateKeyRequest(string? Name);

/// <summary>The one response that contains the key itself.</summary>
internal sealed record CreatedKeyResponse(string Id, string Key, string Prefix, string Name, DateTimeOffset CreatedAt);

internal sealed record KeyEntry(string Id, string Name, string Prefix, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt, bool Active);

internal sealed record KeyListResponse(List<KeyEntry> Data);
