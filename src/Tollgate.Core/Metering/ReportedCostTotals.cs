namespace Tollgate.Metering;

/// <summary>
/// The provider-reported cost of a group of ledger rows beside our own cost of exactly those rows: the one rule every
/// usage report (the stores' <see cref="UsageRow"/>, the billing reports, their totals) adds them up by, so that an
/// operator reading "the provider says X, our price table says Y" compares like for like.
/// </summary>
/// <remarks>
/// Rows without a reported cost are not part of it at all. Our cost of the group is unknown as soon as one of its rows
/// has an unknown cost (a missing price), rather than a partial sum that would look like a cheaper price table.
/// </remarks>
public struct ReportedCostTotals
{
    private decimal _reportedUsd;
    private decimal _costUsd;
    private bool _costUnknown;

    /// <summary>Rows that carried a provider-reported cost.</summary>
    public long Rows { get; private set; }

    /// <summary>The sum of the reported costs; null when no row had one (unknown, not zero).</summary>
    public readonly decimal? ReportedUsd => Rows > 0 ? _reportedUsd : null;

    /// <summary>Our cost of the same rows; null when there are none or when any of theirs is unknown.</summary>
    public readonly decimal? CostUsd => Rows > 0 && !_costUnknown ? _costUsd : null;

    /// <summary>
    /// Adds <paramref name="rows"/> rows that carried a reported cost, summing to <paramref name="reportedUsd"/>, whose
    /// own cost sums to <paramref name="costUsd"/> (null: unknown for at least one of them). Nothing when no rows.
    /// </summary>
    public void Add(long rows, decimal reportedUsd, decimal? costUsd)
    {
        if (rows == 0)
        {
            return;
        }

        Rows += rows;
        _reportedUsd += reportedUsd;
        if (costUsd is { } cost)
        {
            _costUsd += cost;
        }
        else
        {
            _costUnknown = true;
        }
    }
}
