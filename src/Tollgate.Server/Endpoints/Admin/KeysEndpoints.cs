using Microsoft.AspNetCore.Http.HttpResults;
using Tollgate.Keys;
using Tollgate.Server.Auth;
using Tollgate.Server.Diagnostics;
using Tollgate.Server.Json;
using Tollgate.Tenancy;

namespace Tollgate.Server.Endpoints.Admin;

/// <summary>
/// Client key management: create for a tenant with limits (the key is returned once), list (by prefix),
/// change limits, rotate (a new secret, same id), revoke (effective at once).
/// </summary>
internal static class KeysEndpoints
{
    /// <summary>
    /// Set on a successful answer whose change is saved but not yet in effect everywhere; the body is the same as
    /// without it.
    /// </summary>
    public const string WarningHeader = "x-tollgate-warning";

    /// <summary>What <see cref="WarningHeader"/> says of a change whose counters could not be reset.</summary>
    public const string CountersOwedWarning =
        "Saved, but Redis could not be reached to reset this scope's limit counters; this instance resets them as soon as Redis answers again.";

    public static RouteGroupBuilder MapKeys(this RouteGroupBuilder admin)
    {
        admin.MapPost("/keys", CreateAsync);
        admin.MapGet("/keys", ListAsync);
        admin.MapPatch("/keys/{id}", UpdateAsync);
        admin.MapPost("/keys/{id}/rotate", RotateAsync);
        admin.MapDelete("/keys/{id}", RevokeAsync);
        return admin;
    }

    public static CreatedKeyResponse ToCreated(CreatedApiKey created)
    {
        var r = created.Record;
        return new CreatedKeyResponse(r.Id, created.Key, r.Prefix, r.Name, r.CreatedAt, r.TenantId, LimitsDto.From(r.Limits), r.ExpiresAt);
    }

    public static KeyEntry ToEntry(ApiKeyRecord k) =>
        new(k.Id, k.Name, k.Prefix, k.CreatedAt, k.RevokedAt, k.IsActive, k.TenantId, LimitsDto.From(k.Limits), k.ExpiresAt);

    /// <summary>
    /// Says so when a saved change of a scope's limits (<paramref name="keyId"/> null: the tenant's plan) still owes the
    /// reset of its counters because Redis could not be reached: logged, and told to the caller in
    /// <see cref="WarningHeader"/>.
    /// </summary>
    public static void WarnIfCountersOwed(HttpResponse response, IUsageLimiter limiter, ILogger logger, string tenantId, string? keyId)
    {
        if (!limiter.OwesCounterReset(tenantId, keyId))
        {
            return;
        }

        Log.CounterResetOwed(logger, keyId is null ? $"tenant {tenantId}" : $"key {keyId}");
        response.Headers[WarningHeader] = CountersOwedWarning;
    }

    /// <summary>Null when the limits are valid; else the problem.</summary>
    public static string? Check(LimitsDto? limits)
    {
        if (limits is null)
        {
            return null;
        }

        if (limits.MonthlyTokens is < 0 || limits.MonthlyBudgetUsd is < 0)
        {
            return "'monthlyTokens' and 'monthlyBudgetUsd' must not be negative.";
        }

        if (limits.Rpm is <= 0 || limits.Tpm is <= 0)
        {
            return "'rpm' and 'tpm' must be positive when set.";
        }

        return limits.Models?.Any(string.IsNullOrWhiteSpace) == true ? "'models' must list model names." : null;
    }

    private static async Task<Results<Created<CreatedKeyResponse>, ProblemHttpResult>> CreateAsync(
        HttpRequest request, IKeyStore store, ITenantStore tenants, ClientKeyCache cache, ILogger<KeysLog> logger, CancellationToken cancellationToken)
    {
        var body = await TenantsEndpoints.ReadAsync(request, ServerJsonContext.Default.CreateKeyRequest, cancellationToken).ConfigureAwait(false);
        if (body is null)
        {
            return TypedResults.Problem(statusCode: 400, title: "Invalid request body", detail: "Send a JSON object such as {\"name\": \"ci-pipeline\", \"tenant\": \"ten_...\"}.");
        }

        var name = body.Name?.Trim();
        if (string.IsNullOrEmpty(name) || name.Length > 200)
        {
            return TypedResults.Problem(statusCode: 400, title: "Invalid key name", detail: "'name' is required (1 to 200 characters).");
        }

        if (Check(body.Limits) is { } problem)
        {
            return TypedResults.Problem(statusCode: 400, title: "Invalid limits", detail: problem);
        }

        var tenantId = body.Tenant ?? Tenant.DefaultId;
        var all = await tenants.ListAsync(cancellationToken).ConfigureAwait(false);
        if (!all.Any(t => t.Id == tenantId))
        {
            return TypedResults.Problem(statusCode: 400, title: "Unknown tenant", detail: $"No tenant has id '{tenantId}' (GET /admin/tenants lists them).");
        }

        var created = await store.CreateAsync(new NewApiKey(name, tenantId, body.Limits?.ToLimits(), body.ExpiresAt), cancellationToken).ConfigureAwait(false);
        cache.Invalidate();
        Log.KeyCreated(logger, created.Record.Id, created.Record.Prefix);
        return TypedResults.Created($"/admin/keys/{created.Record.Id}", ToCreated(created));
    }

    private static async Task<Ok<KeyListResponse>> ListAsync(IKeyStore store, string? tenant, CancellationToken cancellationToken)
    {
        var keys = await store.ListAsync(cancellationToken).ConfigureAwait(false);
        return TypedResults.Ok(new KeyListResponse([.. keys.Where(k => tenant is null || k.TenantId == tenant).Select(ToEntry)]));
    }

    private static async Task<Results<Ok<KeyEntry>, ProblemHttpResult>> UpdateAsync(
        string id, HttpContext context, IKeyStore store, IUsageLimiter limiter, ClientKeyCache cache, ILogger<KeysLog> logger, CancellationToken cancellationToken)
    {
        var request = context.Request;
        var body = await TenantsEndpoints.ReadAsync(request, ServerJsonContext.Default.UpdateKeyRequest, cancellationToken).ConfigureAwait(false);
        if (body is null || Check(body.Limits) is not null)
        {
            return TypedResults.Problem(statusCode: 400, title: "Invalid limits", detail: Check(body?.Limits) ?? "Send {\"limits\": {...}, \"expiresAt\": \"...\"}.");
        }

        var updated = await store.UpdateLimitsAsync(id, body.Limits?.ToLimits() ?? KeyLimits.None, body.ExpiresAt, cancellationToken).ConfigureAwait(false);
        if (updated is null)
        {
            return TypedResults.Problem(statusCode: 404, title: "Key not found", detail: $"No active key has id '{id}'.");
        }

        cache.Invalidate();
        WarnIfCountersOwed(context.Response, limiter, logger, updated.TenantId, updated.Id);
        return TypedResults.Ok(ToEntry(updated));
    }

    private static async Task<Results<Ok<CreatedKeyResponse>, ProblemHttpResult>> RotateAsync(
        string id, IKeyStore store, ClientKeyCache cache, ILogger<KeysLog> logger, CancellationToken cancellationToken)
    {
        var rotated = await store.RotateAsync(id, cancellationToken).ConfigureAwait(false);
        if (rotated is null)
        {
            return TypedResults.Problem(statusCode: 404, title: "Key not found", detail: $"No active key has id '{id}'.");
        }

        cache.Invalidate();
        Log.KeyRotated(logger, id);
        return TypedResults.Ok(ToCreated(rotated));
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

/// <summary>Log category for key and tenant administration.</summary>
internal sealed class KeysLog;

/// <summary>A key's limits on the wire; every field optional.</summary>
internal sealed record LimitsDto(long? MonthlyTokens, decimal? MonthlyBudgetUsd, int? Rpm, int? Tpm, List<string>? Models)
{
    public static LimitsDto? From(KeyLimits? limits) =>
        limits is null ? null : new(limits.MonthlyTokens, limits.MonthlyBudgetUsd, limits.Rpm, limits.Tpm, limits.Models is { Count: > 0 } m ? [.. m] : null);

    public KeyLimits? ToLimits()
    {
        var limits = new KeyLimits(MonthlyTokens, MonthlyBudgetUsd, Rpm, Tpm, Models is { Count: > 0 } ? Models : null);
        return limits.MonthlyTokens is null && limits.MonthlyBudgetUsd is null && limits.Rpm is null && limits.Tpm is null && limits.Models is null ? null : limits;
    }
}

internal sealed record CreateKeyRequest(string? Name, string? Tenant, LimitsDto? Limits, DateTimeOffset? ExpiresAt);

internal sealed record UpdateKeyRequest(LimitsDto? Limits, DateTimeOffset? ExpiresAt);

/// <summary>The one response that contains the key itself.</summary>
internal sealed record CreatedKeyResponse(string Id, string Key, string Prefix, string Name, DateTimeOffset CreatedAt, string Tenant, LimitsDto? Limits, DateTimeOffset? ExpiresAt);

internal sealed record KeyEntry(string Id, string Name, string Prefix, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt, bool Active, string Tenant, LimitsDto? Limits, DateTimeOffset? ExpiresAt);

internal sealed record KeyListResponse(List<KeyEntry> Data);
