using Tollgate.Metering;

namespace Tollgate.Billing;

/// <summary>Usage and spend per group (<c>GET /admin/reports/usage</c>, <c>tollgate report usage</c>).</summary>
public sealed record UsageReport(
    string Report,
    DateTimeOffset From,
    DateTimeOffset To,
    string? Tenant,
    List<string> GroupBy,
    List<UsageReportRow> Rows,
    UsageReportRow Totals);

/// <summary>
/// One group's usage. <see cref="Requests"/>, <see cref="Errors"/> and <see cref="Failovers"/> count requests'
/// own rows only; tokens and money include extra billed attempts (hedges, escalated answers).
/// </summary>
public sealed record UsageReportRow : GroupedRow
{
    public long Requests { get; init; }

    /// <summary>Requests whose status was not 2xx.</summary>
    public long Errors { get; init; }

    /// <summary>Requests that needed more than one attempt.</summary>
    public long Failovers { get; init; }

    /// <summary>Escalations to a stronger tier after a failed answer check.</summary>
    public long Escalations { get; init; }

    /// <summary>Extra billed attempt rows (hedges, escalated answers): in tokens and cost, not in requests.</summary>
    public long ExtraAttempts { get; init; }

    public long InputTokens { get; init; }

    public long CachedInputTokens { get; init; }

    public long CacheWriteTokens { get; init; }

    public long OutputTokens { get; init; }

    public long ReasoningTokens { get; init; }

    public long TotalTokens { get; init; }

    /// <summary>Provider cost of the rows whose cost is known.</summary>
    public decimal CostUsd { get; init; }

    /// <summary>Rows with usage but an unknown cost (a price is missing): not in <see cref="CostUsd"/>, never counted as 0.</summary>
    public long UnknownCostRequests { get; init; }

    /// <summary>What the tenant is charged beyond its plan's included tokens (ledger <c>price_pusd</c>).</summary>
    public decimal PriceUsd { get; init; }

    /// <summary><see cref="PriceUsd"/> − <see cref="CostUsd"/>.</summary>
    public decimal MarginUsd { get; init; }

    /// <summary>
    /// What the providers themselves said the rows cost (OpenRouter's <c>usage.cost</c>), summed over the
    /// <see cref="ProviderReportedCostRequests"/> rows that carried one; null (left out of JSON) when none did.
    /// </summary>
    public decimal? ProviderReportedCostUsd { get; init; }

    /// <summary>Rows (extra attempts included) whose provider reported its cost.</summary>
    public long ProviderReportedCostRequests { get; init; }

    /// <summary>
    /// <see cref="CostUsd"/> over exactly those rows, to compare with <see cref="ProviderReportedCostUsd"/>; null when
    /// there are none or our cost of any of them is unknown (see <see cref="ReportedCostTotals"/>).
    /// </summary>
    public decimal? CostUsdWhereProviderReported { get; init; }
}

/// <summary>Builds usage reports from ledger facts.</summary>
public static class UsageReports
{
    public static UsageReport Build(ReportQuery query, IReadOnlyList<LedgerFact> facts)
    {
        var groups = ReportGrouping.Group<LedgerFact, Totals>(facts, query.GroupBy, ReportGrouping.ValueOf, (t, f) => t.Add(f));
        var total = new Totals();
        foreach (var fact in facts)
        {
            total.Add(fact);
        }

        return new UsageReport(
            "usage",
            query.From,
            query.To,
            query.TenantId,
            ReportGrouping.Names(query.GroupBy),
            [.. groups.Select(g => ReportGrouping.WithGroup(g.Accumulator.ToRow(), query.GroupBy, g.Values))],
            total.ToRow());
    }

    private sealed class Totals
    {
        private long _requests;
        private long _errors;
        private long _failovers;
        private long _escalations;
        private long _extra;
        private long _input;
        private long _cached;
        private long _cacheWrite;
        private long _output;
        private long _reasoning;
        private decimal _cost;
        private long _unknown;
        private decimal _price;
        private ReportedCostTotals _reported;

        public void Add(LedgerFact f)
        {
            if (f.IsRequest)
            {
                _requests += f.Rows;
                _errors += f.Status is < 200 or >= 300 ? f.Rows : 0;
                _failovers += f.Failovers;
                _escalations += f.Escalations;
            }
            else
            {
                _extra += f.Rows;
            }

            _input += f.Usage.InputUncached;
            _cached += f.Usage.InputCached;
            _cacheWrite += f.Usage.CacheWrite5m + f.Usage.CacheWrite1h;
            _output += f.Usage.OutputText;
            _reasoning += f.Usage.OutputReasoning;
            _cost += f.CostUsd;
            _unknown += f.HasUsage && !f.CostKnown ? f.Rows : 0;
            _price += f.PriceUsd;
            if (f.ProviderCostReported)
            {
                _reported.Add(f.Rows, f.ProviderReportedCostUsd, f.CostKnown ? f.CostUsd : null);
            }
        }

        public UsageReportRow ToRow() => new()
        {
            Requests = _requests,
            Errors = _errors,
            Failovers = _failovers,
            Escalations = _escalations,
            ExtraAttempts = _extra,
            InputTokens = _input,
            CachedInputTokens = _cached,
            CacheWriteTokens = _cacheWrite,
            OutputTokens = _output,
            ReasoningTokens = _reasoning,
            TotalTokens = _input + _cached + _cacheWrite + _output + _reasoning,
            CostUsd = _cost,
            UnknownCostRequests = _unknown,
            PriceUsd = _price,
            MarginUsd = _price - _cost,
            ProviderReportedCostUsd = _reported.ReportedUsd,
            ProviderReportedCostRequests = _reported.Rows,
            CostUsdWhereProviderReported = _reported.CostUsd,
        };
    }
}
