using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Tollgate.Configuration;
using Tollgate.Server.Auth;
using Tollgate.Server.Diagnostics;
using Tollgate.Server.Json;
using Tollgate.Tenancy;

namespace Tollgate.Server.Endpoints.Admin;

/// <summary>Tenants: create, list, read (with plan and month-to-date usage), change plan, suspend or resume.</summary>
internal static class TenantsEndpoints
{
    /// <summary>The plan value that removes a tenant's plan (no fee, no quota, no limits).</summary>
    public const string NoPlan = "none";

    public static RouteGroupBuilder MapTenants(this RouteGroupBuilder admin)
    {
        admin.MapPost("/tenants", CreateAsync);
        admin.MapGet("/tenants", ListAsync);
        admin.MapGet("/tenants/{id}", GetAsync);
        admin.MapPatch("/tenants/{id}", UpdateAsync);
        return admin;
    }

    public static TenantResponse ToResponse(Tenant t, TollgateOptions options) =>
        new(t.Id, t.Name, t.Plan, t.Suspended, t.CreatedAt, t.Plan is { } p && options.Plans.TryGetValue(p, out var plan) ? plan : null);

    /// <summary>Null when the name is a configured plan; else the problem to return.</summary>
    public static string? CheckPlan(string plan, TollgateOptions options) =>
        options.Plans.ContainsKey(plan) ? null : $"Unknown plan '{plan}' (configured: {string.Join(", ", options.Plans.Keys.Order(StringComparer.Ordinal))}; '{NoPlan}' removes the plan).";

    private static async Task<Results<Created<TenantResponse>, ProblemHttpResult>> CreateAsync(
        HttpRequest request, ITenantStore store, TenantDirectory directory, TollgateOptions options, ILogger<KeysLog> logger, CancellationToken cancellationToken)
    {
        var body = await ReadAsync(request, ServerJsonContext.Default.CreateTenantRequest, cancellationToken).ConfigureAwait(false);
        var name = body?.Name?.Trim();
        if (string.IsNullOrEmpty(name) || name.Length > 200)
        {
            return TypedResults.Problem(statusCode: 400, title: "Invalid tenant", detail: "Send {\"name\": \"acme\", \"plan\": \"pro\"}: 'name' is required (1 to 200 characters).");
        }

        var plan = body!.Plan ?? "free";
        if (CheckPlan(plan, options) is { } problem)
        {
            return TypedResults.Problem(statusCode: 400, title: "Invalid plan", detail: problem);
        }

        var tenant = await store.CreateAsync(name, plan, cancellationToken).ConfigureAwait(false);
        directory.Invalidate();
        Log.TenantChanged(logger, tenant.Id, plan, tenant.Suspended);
        return TypedResults.Created($"/admin/tenants/{tenant.Id}", ToResponse(tenant, options));
    }

    private static async Task<Ok<TenantListResponse>> ListAsync(ITenantStore store, TollgateOptions options, CancellationToken cancellationToken)
    {
        var tenants = await store.ListAsync(cancellationToken).ConfigureAwait(false);
        return TypedResults.Ok(new TenantListResponse([.. tenants.Select(t => ToResponse(t, options))]));
    }

    private static async Task<Results<Ok<TenantDetailResponse>, ProblemHttpResult>> GetAsync(
        string id, ITenantStore store, IUsageLimiter limiter, TollgateOptions options, CancellationToken cancellationToken)
    {
        var tenant = (await store.ListAsync(cancellationToken).ConfigureAwait(false)).FirstOrDefault(t => t.Id == id);
        if (tenant is null)
        {
            return TypedResults.Problem(statusCode: 404, title: "Tenant not found", detail: $"No tenant has id '{id}'.");
        }

        var (tokens, cost, _, _) = await limiter.MonthToDateAsync(id, string.Empty, cancellationToken).ConfigureAwait(false);
        return TypedResults.Ok(new TenantDetailResponse(ToResponse(tenant, options), tokens, cost));
    }

    private static async Task<Results<Ok<TenantResponse>, ProblemHttpResult>> UpdateAsync(
        string id, HttpContext context, ITenantStore store, IUsageLimiter limiter, TenantDirectory directory, TollgateOptions options, ILogger<KeysLog> logger, CancellationToken cancellationToken)
    {
        var request = context.Request;
        var body = await ReadAsync(request, ServerJsonContext.Default.UpdateTenantRequest, cancellationToken).ConfigureAwait(false);
        if (body is null || (body.Plan is null && body.Suspended is null))
        {
            return TypedResults.Problem(statusCode: 400, title: "Nothing to change", detail: "Send {\"plan\": \"pro\"} and/or {\"suspended\": true}.");
        }

        var clear = string.Equals(body.Plan, NoPlan, StringComparison.OrdinalIgnoreCase);
        if (body.Plan is { } plan && !clear && CheckPlan(plan, options) is { } problem)
        {
            return TypedResults.Problem(statusCode: 400, title: "Invalid plan", detail: problem);
        }

        var tenant = await store.UpdateAsync(id, clear ? null : body.Plan, clear, body.Suspended, cancellationToken).ConfigureAwait(false);
        if (tenant is null)
        {
            return TypedResults.Problem(statusCode: 404, title: "Tenant not found", detail: $"No tenant has id '{id}'.");
        }

        directory.Invalidate();
        Log.TenantChanged(logger, tenant.Id, tenant.Plan ?? NoPlan, tenant.Suspended);
        if (body.Plan is not null)
        {
            KeysEndpoints.WarnIfCountersOwed(context.Response, limiter, logger, tenant.Id, keyId: null);
        }

        return TypedResults.Ok(ToResponse(tenant, options));
    }

    internal static async Task<T?> ReadAsync<T>(HttpRequest request, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, CancellationToken cancellationToken)
        where T : class
    {
        try
        {
            return await request.ReadFromJsonAsync(type, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or BadHttpRequestException)
        {
            return null;
        }
    }
}

internal sealed record CreateTenantRequest(string? Name, string? Plan);

internal sealed record UpdateTenantRequest(string? Plan, bool? Suspended);

internal sealed record TenantResponse(string Id, string Name, string? Plan, bool Suspended, DateTimeOffset CreatedAt, PlanOptions? Limits);

internal sealed record TenantListResponse(List<TenantResponse> Data);

internal sealed record TenantDetailResponse(TenantResponse Tenant, long MonthTokens, decimal MonthCostUsd);
