using System.Globalization;
using System.Text;
using Tollgate.Billing;
using Tollgate.Server.Endpoints.Usage;

namespace Tollgate.Server.Billing;

/// <summary>
/// CSV for the reports: a header line, then one line per row (no totals line); group columns first in
/// <c>groupBy</c> order, then the measures, snake_case as in <c>/admin/usage</c>. Numbers in invariant culture,
/// money in USD unrounded.
/// </summary>
internal static class BillingCsv
{
    public static string Usage(UsageReport report) => Write(report.GroupBy, report.Rows,
    [
        ("requests", r => Number(r.Requests)),
        ("errors", r => Number(r.Errors)),
        ("failovers", r => Number(r.Failovers)),
        ("escalations", r => Number(r.Escalations)),
        ("extra_attempts", r => Number(r.ExtraAttempts)),
        ("input_tokens", r => Number(r.InputTokens)),
        ("cached_input_tokens", r => Number(r.CachedInputTokens)),
        ("cache_write_tokens", r => Number(r.CacheWriteTokens)),
        ("output_tokens", r => Number(r.OutputTokens)),
        ("reasoning_tokens", r => Number(r.ReasoningTokens)),
        ("total_tokens", r => Number(r.TotalTokens)),
        ("cost_usd", r => Money(r.CostUsd)),
        ("unknown_cost_requests", r => Number(r.UnknownCostRequests)),
        ("price_usd", r => Money(r.PriceUsd)),
        ("margin_usd", r => Money(r.MarginUsd)),
        ("provider_reported_cost_usd", r => Money(r.ProviderReportedCostUsd)),
        ("provider_reported_cost_requests", r => Number(r.ProviderReportedCostRequests)),
        ("cost_usd_where_provider_reported", r => Money(r.CostUsdWhereProviderReported)),
    ]);

    public static string Savings(SavingsReport report) => Write(report.GroupBy, report.Rows,
    [
        ("requests", r => Number(r.Requests)),
        ("cost_usd", r => Money(r.CostUsd)),
        ("baseline_cost_usd", r => Money(r.BaselineCostUsd)),
        ("saved_usd", r => Money(r.SavedUsd)),
        ("saved_percent", r => Percent(r.SavedPercent)),
        ("unknown_cost_requests", r => Number(r.UnknownCostRequests)),
    ]);

    public static string Margin(MarginReport report) => Write(report.GroupBy, report.Rows,
    [
        ("revenue_usd", r => Money(r.RevenueUsd)),
        ("provider_cost_usd", r => Money(r.ProviderCostUsd)),
        ("margin_usd", r => Money(r.MarginUsd)),
        ("margin_percent", r => Percent(r.MarginPercent)),
        ("issued_invoices", r => Number(r.IssuedInvoices)),
        ("draft_invoices", r => Number(r.DraftInvoices)),
    ]);

    public static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    public static string Money(decimal value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>An amount that may be unknown: an empty cell then, never 0.</summary>
    public static string Money(decimal? value) => value is { } known ? Money(known) : string.Empty;

    /// <summary>Percentages are already rounded to 2 decimals; always written with 2.</summary>
    public static string Percent(decimal value) => value.ToString("0.00", CultureInfo.InvariantCulture);

    /// <summary>The value of a named dimension column of a row.</summary>
    public static string? GroupValue(GroupedRow row, string dimension) => dimension switch
    {
        "day" => row.Day,
        "week" => row.Week,
        "month" => row.Month,
        "tenant" => row.Tenant,
        "key" => row.Key,
        "model" => row.Model,
        "provider" => row.Provider,
        "deployment" => row.Deployment,
        _ => row.Status,
    };

    private static string Write<T>(List<string> groupBy, List<T> rows, (string Name, Func<T, string> Value)[] measures)
        where T : GroupedRow
    {
        var csv = new StringBuilder();
        csv.AppendJoin(',', groupBy.Concat(measures.Select(m => m.Name))).Append('\n');
        foreach (var row in rows)
        {
            csv.AppendJoin(',', groupBy.Select(g => UsageEndpoints.Escape(GroupValue(row, g))).Concat(measures.Select(m => m.Value(row)))).Append('\n');
        }

        return csv.ToString();
    }
}
