using Tollgate.Metering;
using Tollgate.Routing;

namespace Tollgate.Billing;

/// <summary>What requests cost against what the same tokens would have cost on a baseline (<c>GET /admin/reports/savings</c>).</summary>
/// <param name="Baseline"><c>route-max</c> (each request's route's most expensive candidate, as recorded) or the named deployment/route.</param>
public sealed record SavingsReport(
    string Report,
    DateTimeOffset From,
    DateTimeOffset To,
    string? Tenant,
    List<string> GroupBy,
    string Baseline,
    List<SavingsReportRow> Rows,
    SavingsReportRow Totals);

/// <summary>
/// One group's savings. Only requests whose cost and baseline are both known are compared; the others are
/// counted in <see cref="UnknownCostRequests"/> and left out of both sums (an unknown price is never 0).
/// <see cref="CostUsd"/> also includes extra billed attempts (hedges, escalated answers): the routing spent them,
/// and a single call to the baseline would not have, so they add to the cost and nothing to the baseline.
/// </summary>
public sealed record SavingsReportRow : GroupedRow
{
    public long Requests { get; init; }

    public decimal CostUsd { get; init; }

    public decimal BaselineCostUsd { get; init; }

    /// <summary><see cref="BaselineCostUsd"/> − <see cref="CostUsd"/>; negative when routing cost more.</summary>
    public decimal SavedUsd { get; init; }

    /// <summary><see cref="SavedUsd"/> / <see cref="BaselineCostUsd"/> × 100, rounded half away from zero to 2 decimals; 0 when the baseline is 0.</summary>
    public decimal SavedPercent { get; init; }

    /// <summary>Rows with usage whose cost (or, for requests, baseline) is unknown.</summary>
    public long UnknownCostRequests { get; init; }
}

/// <summary>How a savings report prices the baseline.</summary>
public sealed class SavingsBaseline
{
    /// <summary>The default baseline's name in reports.</summary>
    public const string RouteMax = "route-max";

    private readonly Deployment[]? _candidates;

    private SavingsBaseline(string name, Deployment[]? candidates)
    {
        Name = name;
        _candidates = candidates;
    }

    public static SavingsBaseline Default { get; } = new(RouteMax, null);

    public string Name { get; }

    /// <summary>
    /// A deployment id or route name from the catalog (route names win when both exist, as in requests); a route
    /// prices with its most expensive candidate for the tokens at hand. Null when the catalog has no such name.
    /// </summary>
    public static SavingsBaseline? Named(string name, Catalog catalog) =>
        string.Equals(name, RouteMax, StringComparison.OrdinalIgnoreCase) ? Default
        : catalog.Routes.TryGetValue(name, out var route) ? new SavingsBaseline(route.Name, route.Candidates)
        : null;

    /// <summary>
    /// The baseline of a fact's requests in USD; null when unknown. A named baseline prices the fact's summed
    /// buckets: cost is linear in tokens, so that equals the sum of per-request prices for one deployment.
    /// </summary>
    public decimal? Of(LedgerFact fact) =>
        _candidates is null
            ? fact.BaselineKnown ? fact.BaselineUsd : null
            : CostCalculator.Baseline(_candidates, fact.Usage);
}

/// <summary>Builds savings reports from ledger facts.</summary>
public static class SavingsReports
{
    public static SavingsReport Build(ReportQuery query, SavingsBaseline baseline, IReadOnlyList<LedgerFact> facts)
    {
        var groups = ReportGrouping.Group<LedgerFact, Totals>(facts, query.GroupBy, ReportGrouping.ValueOf, (t, f) => t.Add(f, baseline));
        var total = new Totals();
        foreach (var fact in facts)
        {
            total.Add(fact, baseline);
        }

        return new SavingsReport(
            "savings",
            query.From,
            query.To,
            query.TenantId,
            ReportGrouping.Names(query.GroupBy),
            baseline.Name,
            [.. groups.Select(g => ReportGrouping.WithGroup(g.Accumulator.ToRow(), query.GroupBy, g.Values))],
            total.ToRow());
    }

    private sealed class Totals
    {
        private long _requests;
        private decimal _cost;
        private decimal _baseline;
        private long _unknown;

        public void Add(LedgerFact f, SavingsBaseline baseline)
        {
            if (f.IsRequest)
            {
                _requests += f.Rows;
            }

            if (!f.HasUsage)
            {
                return;
            }

            if (!f.CostKnown)
            {
                _unknown += f.Rows;
                return;
            }

            if (!f.IsRequest)
            {
                _cost += f.CostUsd;
                return;
            }

            if (baseline.Of(f) is not { } baselineUsd)
            {
                _unknown += f.Rows;
                return;
            }

            _cost += f.CostUsd;
            _baseline += baselineUsd;
        }

        public SavingsReportRow ToRow() => new()
        {
            Requests = _requests,
            CostUsd = _cost,
            BaselineCostUsd = _baseline,
            SavedUsd = _baseline - _cost,
            SavedPercent = ReportGrouping.Percent(_baseline - _cost, _baseline),
            UnknownCostRequests = _unknown,
        };
    }
}
