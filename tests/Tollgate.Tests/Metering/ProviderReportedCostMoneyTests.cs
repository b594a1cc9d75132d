using System.Globalization;
using Tollgate.Metering;

namespace Tollgate.Tests.Metering;

/// <summary>How a provider's own reported cost becomes ledger money, and how reports add it up beside ours.</summary>
public sealed class ProviderReportedCostMoneyTests
{
    [Theory]
    [InlineData("0.000687", 687_000_000L)]
    [InlineData("0.0000000000125", 12L)] // 12.5 picodollars: half to even, as our own cost is rounded
    [InlineData("0.0000000000135", 14L)]
    [InlineData("0", 0L)] // a free model's reported 0 is a known 0
    [InlineData("9223372.036854775807", long.MaxValue)]
    [InlineData("-0.000001", -1_000_000L)] // stored as said: the column is the provider's word, not ours
    public void ReportedToPico_RoundsToWholePicodollarsAsOurCostIs(string usd, long expected)
    {
        var value = decimal.Parse(usd, CultureInfo.InvariantCulture);

        var pico = Money.ReportedToPico(value);

        Assert.Equal(expected, pico);
        Assert.Equal(Money.ToPico(value), pico);
    }

    [Theory]
    [InlineData("9223372.036854775808")]
    [InlineData("-9223372.036854775808")]
    [InlineData("100000000000000000000")]
    public void ReportedToPico_MoreThanOneRowHolds_IsDroppedRatherThanFailingTheRow(string usd)
    {
        var value = decimal.Parse(usd, CultureInfo.InvariantCulture);

        Assert.Null(Money.ReportedToPico(value));
    }

    [Fact]
    public void ReportedToPico_NothingReported_IsNullNotZero()
    {
        Assert.Null(Money.ReportedToPico(null));
    }

    [Fact]
    public void ReportedCostTotals_OnlyRowsWithAReportedCost_AndOurCostUnknownOnceOneIs()
    {
        var totals = default(ReportedCostTotals);
        var empty = (totals.ReportedUsd, totals.Rows, totals.CostUsd);

        totals.Add(0, 5m, 5m);
        var afterNoRows = (totals.ReportedUsd, totals.Rows, totals.CostUsd);
        totals.Add(2, 0.001m, 0.0008m);
        var afterPriced = (totals.ReportedUsd, totals.Rows, totals.CostUsd);
        totals.Add(1, 0.002m, null);
        var afterUnpriced = (totals.ReportedUsd, totals.Rows, totals.CostUsd);

        Assert.Equal<(decimal?, long, decimal?)>((null, 0, null), empty);
        Assert.Equal<(decimal?, long, decimal?)>((null, 0, null), afterNoRows);
        Assert.Equal<(decimal?, long, decimal?)>((0.001m, 2, 0.0008m), afterPriced);
        Assert.Equal<(decimal?, long, decimal?)>((0.003m, 3, null), afterUnpriced);
    }
}
