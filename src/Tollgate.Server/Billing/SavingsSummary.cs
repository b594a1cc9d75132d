using System.Text;
using Tollgate.Billing;
using Tollgate.Server.Cli;

namespace Tollgate.Server.Billing;

/// <summary>
/// The savings summary of <c>tollgate report savings</c>: requests per provider and model (count and share of all
/// requests), cost per provider, the total cost against the baseline and the saving. Built from two savings reports
/// (by provider and model, by provider), so its numbers are the API's.
/// </summary>
internal sealed record SavingsSummary(
    DateTimeOffset From,
    DateTimeOffset To,
    string? Tenant,
    string Baseline,
    long Requests,
    List<SavingsSummaryModel> Models,
    List<SavingsSummaryProvider> Providers,
    decimal CostUsd,
    decimal BaselineCostUsd,
    decimal SavedUsd,
    decimal SavedPercent,
    long UnknownCostRequests);

/// <param name="SharePercent">This model's requests as a percentage of all requests (2 decimals).</param>
internal sealed record SavingsSummaryModel(string Provider, string Model, long Requests, decimal SharePercent, decimal CostUsd);

internal sealed record SavingsSummaryProvider(string Provider, long Requests, decimal SharePercent, decimal CostUsd);

internal static class SavingsSummaries
{
    public static async Task<SavingsSummary> BuildAsync(BillingService billing, ReportQuery query, SavingsBaseline baseline, CancellationToken cancellationToken)
    {
        var byModel = await billing.SavingsAsync(query with { GroupBy = [ReportDimension.Provider, ReportDimension.Model] }, baseline, cancellationToken).ConfigureAwait(false);
        var byProvider = await billing.SavingsAsync(query with { GroupBy = [ReportDimension.Provider] }, baseline, cancellationToken).ConfigureAwait(false);
        var total = byModel.Totals;
        return new SavingsSummary(
            query.From,
            query.To,
            query.TenantId,
            baseline.Name,
            total.Requests,
            [.. byModel.Rows.Select(r => new SavingsSummaryModel(r.Provider!, r.Model!, r.Requests, ReportGrouping.Percent(r.Requests, total.Requests), r.CostUsd))],
            [.. byProvider.Rows.Select(r => new SavingsSummaryProvider(r.Provider!, r.Requests, ReportGrouping.Percent(r.Requests, total.Requests), r.CostUsd))],
            total.CostUsd,
            total.BaselineCostUsd,
            total.SavedUsd,
            total.SavedPercent,
            total.UnknownCostRequests);
    }

    public static string Table(SavingsSummary s)
    {
        var text = new StringBuilder();
        text.Append(System.Globalization.CultureInfo.InvariantCulture, $"Savings {s.From:yyyy-MM-dd HH:mm} to {s.To:yyyy-MM-dd HH:mm} UTC{(s.Tenant is null ? string.Empty : ", tenant " + s.Tenant)}, baseline {s.Baseline}\n\n");
        text.Append(TextTable.Render(
            ["PROVIDER", "MODEL", "REQUESTS", "SHARE %", "COST"],
            s.Models.Select(m => new[] { m.Provider.Length == 0 ? "(none)" : m.Provider, m.Model, BillingCommands.Number(m.Requests), BillingCsv.Percent(m.SharePercent), BillingCommands.Usd(m.CostUsd) })));
        text.Append('\n');
        text.Append(TextTable.Render(
            ["PROVIDER", "REQUESTS", "SHARE %", "COST"],
            s.Providers.Select(p => new[] { p.Provider.Length == 0 ? "(none)" : p.Provider, BillingCommands.Number(p.Requests), BillingCsv.Percent(p.SharePercent), BillingCommands.Usd(p.CostUsd) })));
        text.Append('\n');
        text.Append(TextTable.Render(
            ["TOTAL", "USD"],
            [
                ["Requests", BillingCommands.Number(s.Requests)],
                ["Cost", BillingCommands.Usd(s.CostUsd)],
                ["Baseline cost", BillingCommands.Usd(s.BaselineCostUsd)],
                ["Saved", BillingCommands.Usd(s.SavedUsd)],
                ["Saved %", BillingCsv.Percent(s.SavedPercent)],
                ["Unknown cost", BillingCommands.Number(s.UnknownCostRequests)],
            ]));
        return text.ToString();
    }
}
