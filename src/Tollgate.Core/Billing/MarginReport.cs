namespace Tollgate.Billing;

/// <summary>Revenue against provider cost for resellers (<c>GET /admin/reports/margin</c>).</summary>
/// <param name="From">Start of the first whole month covered.</param>
/// <param name="To">End (exclusive) of the last whole month covered.</param>
public sealed record MarginReport(
    string Report,
    DateTimeOffset From,
    DateTimeOffset To,
    string? Tenant,
    List<string> GroupBy,
    List<MarginReportRow> Rows,
    MarginReportRow Totals);

/// <summary>
/// One group's margin. Revenue is what tenants were invoiced (<see cref="Invoice.TotalDueUsd"/> of each month's
/// latest issued version) or, for a month without one, what a draft computed the same way would say
/// (counted in <see cref="DraftInvoices"/>). Provider cost comes from the same invoices.
/// </summary>
public sealed record MarginReportRow : GroupedRow
{
    public decimal RevenueUsd { get; init; }

    public decimal ProviderCostUsd { get; init; }

    /// <summary><see cref="RevenueUsd"/> − <see cref="ProviderCostUsd"/>.</summary>
    public decimal MarginUsd { get; init; }

    /// <summary><see cref="MarginUsd"/> / <see cref="RevenueUsd"/> × 100, rounded half away from zero to 2 decimals; 0 without revenue.</summary>
    public decimal MarginPercent { get; init; }

    public int IssuedInvoices { get; init; }

    /// <summary>Tenant-months without an issued invoice, priced as drafts.</summary>
    public int DraftInvoices { get; init; }

    /// <summary>Rows with usage but an unknown provider cost (not in <see cref="ProviderCostUsd"/>).</summary>
    public long UnknownCostRequests { get; init; }
}

/// <summary>Builds margin reports from invoices (issued, or drafts where none was issued).</summary>
public static class MarginReports
{
    /// <summary>Dimensions a margin report can group by.</summary>
    public static readonly IReadOnlyList<ReportDimension> Allowed = [ReportDimension.Tenant, ReportDimension.Month];

    public static MarginReport Build(ReportQuery query, IReadOnlyList<Invoice> invoices)
    {
        static string ValueOf(Invoice invoice, ReportDimension dimension) =>
            dimension == ReportDimension.Month ? invoice.Month : invoice.Tenant;

        var groups = ReportGrouping.Group<Invoice, Totals>(invoices, query.GroupBy, ValueOf, (t, i) => t.Add(i));
        var total = new Totals();
        foreach (var invoice in invoices)
        {
            total.Add(invoice);
        }

        return new MarginReport(
            "margin",
            query.From,
            query.To,
            query.TenantId,
            ReportGrouping.Names(query.GroupBy),
            [.. groups.Select(g => ReportGrouping.WithGroup(g.Accumulator.ToRow(), query.GroupBy, g.Values))],
            total.ToRow());
    }

    private sealed class Totals
    {
        private decimal _revenue;
        private decimal _cost;
        private int _issued;
        private int _drafts;
        private long _unknown;

        public void Add(Invoice invoice)
        {
            _revenue += invoice.TotalDueUsd;
            _cost += invoice.ProviderCostUsd;
            _unknown += invoice.UnknownCostRequests;
            if (invoice.Version > 0)
            {
                _issued++;
            }
            else
            {
                _drafts++;
            }
        }

        public MarginReportRow ToRow() => new()
        {
            RevenueUsd = _revenue,
            ProviderCostUsd = _cost,
            MarginUsd = _revenue - _cost,
            MarginPercent = ReportGrouping.Percent(_revenue - _cost, _revenue),
            IssuedInvoices = _issued,
            DraftInvoices = _drafts,
            UnknownCostRequests = _unknown,
        };
    }
}
