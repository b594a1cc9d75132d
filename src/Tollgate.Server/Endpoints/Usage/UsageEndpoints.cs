using System.Globalization;
using System.Text;
using Tollgate.Configuration;
using Tollgate.Metering;
using Tollgate.Server.Auth;
using Tollgate.Server.Errors;
using Tollgate.Server.Json;
using Tollgate.Tenancy;

namespace Tollgate.Server.Endpoints.Usage;

/// <summary>
/// Usage reports from the ledger: <c>GET /admin/usage</c> for any tenant or all, <c>GET /v1/usage</c> for the
/// calling key's own tenant only (with its limits). Same query parameters, JSON or <c>format=csv</c>.
/// </summary>
internal static class UsageEndpoints
{
    private static readonly string[] GroupNames = ["day", "model", "provider", "tenant", "key"];

    public static RouteGroupBuilder MapUsageAdmin(this RouteGroupBuilder admin)
    {
        admin.MapGet("/usage", AdminUsageAsync);
        return admin;
    }

    public static RouteGroupBuilder MapUsageV1(this RouteGroupBuilder v1)
    {
        v1.MapGet("/usage", TenantUsageAsync);
        return v1;
    }

    /// <summary>Parses <c>from</c>, <c>to</c> and <c>groupBy</c>; null and an error message when invalid.</summary>
    public static UsageQuery? Parse(string? tenant, string? from, string? to, string? groupBy, DateTimeOffset now, out string? error)
    {
        if (!ReportRange.TryParse(from, to, now, out var start, out var end, out error))
        {
            return null;
        }

        var grouping = UsageGrouping.None;
        foreach (var name in (groupBy ?? "day").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var flag = name.ToLowerInvariant() switch
            {
                "day" => UsageGrouping.Day,
                "model" => UsageGrouping.Model,
                "provider" => UsageGrouping.Provider,
                "tenant" => UsageGrouping.Tenant,
                "key" => UsageGrouping.Key,
                _ => (UsageGrouping?)null,
            };
            if (flag is null)
            {
                error = $"Unknown groupBy '{name}' (expected any of: {string.Join(", ", GroupNames)}).";
                return null;
            }

            grouping |= flag.Value;
        }

        return new UsageQuery(start, end, string.IsNullOrEmpty(tenant) ? null : tenant, grouping);
    }

    /// <summary>CSV with a header line; group columns first, then the measures. Money in USD, invariant culture.</summary>
    public static string ToCsv(UsageQuery query, IReadOnlyList<UsageRow> rows)
    {
        var csv = new StringBuilder();
        var groups = GroupNames.Where(g => (query.GroupBy & Flag(g)) != 0).ToArray();
        csv.Append(string.Join(',', groups)).Append(groups.Length > 0 ? "," : string.Empty)
            .Append("requests,errors,input_tokens,cached_input_tokens,cache_write_tokens,output_tokens,reasoning_tokens,total_tokens,cost_usd,unknown_cost_requests,price_usd")
            .Append(",provider_reported_cost_usd,provider_reported_cost_requests,cost_usd_where_provider_reported\n");
        foreach (var row in rows)
        {
            foreach (var g in groups)
            {
                csv.Append(Escape(g switch { "day" => row.Day, "model" => row.Model, "provider" => row.Provider, "tenant" => row.Tenant, _ => row.Key })).Append(',');
            }

            // An empty cell, not 0, where no provider reported a cost or ours of those rows is unknown.
            csv.Append(CultureInfo.InvariantCulture, $"{row.Requests},{row.Errors},{row.InputTokens},{row.CachedInputTokens},{row.CacheWriteTokens},{row.OutputTokens},{row.ReasoningTokens},{row.TotalTokens},{row.CostUsd},{row.UnknownCostRequests},{row.PriceUsd}")
                .Append(CultureInfo.InvariantCulture, $",{row.ProviderReportedCostUsd},{row.ProviderReportedCostRequests},{row.CostUsdWhereProviderReported}\n");
        }

        return csv.ToString();
    }

    public static UsageRow Total(IReadOnlyList<UsageRow> rows)
    {
        var total = new UsageRow();
        var reported = default(ReportedCostTotals);
        foreach (var r in rows)
        {
            reported.Add(r.ProviderReportedCostRequests, r.ProviderReportedCostUsd ?? 0m, r.CostUsdWhereProviderReported);
            total = total with
            {
                Requests = total.Requests + r.Requests,
                Errors = total.Errors + r.Errors,
                InputTokens = total.InputTokens + r.InputTokens,
                CachedInputTokens = total.CachedInputTokens + r.CachedInputTokens,
                CacheWriteTokens = total.CacheWriteTokens + r.CacheWriteTokens,
                OutputTokens = total.OutputTokens + r.OutputTokens,
                ReasoningTokens = total.ReasoningTokens + r.ReasoningTokens,
                CostUsd = total.CostUsd + r.CostUsd,
                UnknownCostRequests = total.UnknownCostRequests + r.UnknownCostRequests,
                PriceUsd = total.PriceUsd + r.PriceUsd,
            };
        }

        return total with
        {
            ProviderReportedCostUsd = reported.ReportedUsd,
            ProviderReportedCostRequests = reported.Rows,
            CostUsdWhereProviderReported = reported.CostUsd,
        };
    }

    private static async Task<IResult> AdminUsageAsync(
        string? tenant, string? from, string? to, string? groupBy, string? format, ILedgerStore ledger, TimeProvider time, CancellationToken cancellationToken)
    {
        var query = Parse(tenant, from, to, groupBy, time.GetUtcNow(), out var error);
        if (query is null)
        {
            return TypedResults.Problem(statusCode: 400, title: "Invalid usage query", detail: error);
        }

        var rows = await ledger.QueryAsync(query, cancellationToken).ConfigureAwait(false);
        return Render(query, rows, format, limits: null);
    }

    private static async Task TenantUsageAsync(
        HttpContext context, string? tenant, string? from, string? to, string? groupBy, string? format, ILedgerStore ledger, IUsageLimiter limiter, TimeProvider time, CancellationToken cancellationToken)
    {
        var caller = context.Features.Get<ClientKeyFeature>()!;
        if (tenant is not null && tenant != caller.Tenant.Id)
        {
            // A key reads its own tenant's usage and nobody else's.
            await OpenAIError.WriteAsync(context, StatusCodes.Status403Forbidden, "A key can read only its own tenant's usage; leave out 'tenant'.", OpenAIError.Permission, "tenant", "permission_denied").ConfigureAwait(false);
            return;
        }

        var query = Parse(caller.Tenant.Id, from, to, groupBy, time.GetUtcNow(), out var error);
        if (query is null)
        {
            await OpenAIError.WriteAsync(context, StatusCodes.Status400BadRequest, error!, OpenAIError.InvalidRequest, null, "invalid_value").ConfigureAwait(false);
            return;
        }

        query = query with { GroupBy = query.GroupBy & ~UsageGrouping.Tenant };
        var rows = await ledger.QueryAsync(query, cancellationToken).ConfigureAwait(false);
        var (tokens, cost, keyTokens, keyCost) = await limiter.MonthToDateAsync(caller.Tenant.Id, caller.Key.Id, cancellationToken).ConfigureAwait(false);
        var limits = new CallerLimits(caller.Tenant.Id, caller.Tenant.Plan, caller.Plan, tokens, cost, caller.Key.Id, Endpoints.Admin.LimitsDto.From(caller.Key.Limits), caller.Key.ExpiresAt, keyTokens, keyCost);
        await Render(query, rows, format, limits).ExecuteAsync(context).ConfigureAwait(false);
    }

    private static IResult Render(UsageQuery query, IReadOnlyList<UsageRow> rows, string? format, CallerLimits? limits)
    {
        if (string.Equals(format, "csv", StringComparison.OrdinalIgnoreCase))
        {
            return TypedResults.Text(ToCsv(query, rows), "text/csv; charset=utf-8");
        }

        var report = new UsageReportResponse(query.TenantId, query.From, query.To, GroupNamesOf(query), [.. rows], Total(rows), limits);
        return TypedResults.Json(report, ServerJsonContext.Default.UsageReportResponse);
    }

    public static List<string> GroupNamesOf(UsageQuery query) => [.. GroupNames.Where(g => (query.GroupBy & Flag(g)) != 0)];

    private static UsageGrouping Flag(string name) => name switch
    {
        "day" => UsageGrouping.Day,
        "model" => UsageGrouping.Model,
        "provider" => UsageGrouping.Provider,
        "tenant" => UsageGrouping.Tenant,
        _ => UsageGrouping.Key,
    };

    internal static string Escape(string? value) =>
        value is null ? string.Empty : value.AsSpan().IndexOfAny(",\"\n") >= 0 ? "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : value;
}

/// <summary>What a key may use and has used this month: its tenant's plan and its own limits.</summary>
internal sealed record CallerLimits(
    string Tenant,
    string? Plan,
    PlanOptions? PlanLimits,
    long TenantMonthTokens,
    decimal TenantMonthCostUsd,
    string Key,
    Endpoints.Admin.LimitsDto? KeyLimits,
    DateTimeOffset? KeyExpiresAt,
    long KeyMonthTokens,
    decimal KeyMonthCostUsd);

internal sealed record UsageReportResponse(string? Tenant, DateTimeOffset From, DateTimeOffset To, List<string> GroupBy, List<UsageRow> Data, UsageRow Totals, CallerLimits? Limits);
