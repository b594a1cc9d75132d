using Tollgate.Metering;
using Tollgate.Providers.OpenAI;
using Tollgate.Routing;

namespace Tollgate.Tests.Metering;

public sealed class CostCalculatorTests
{
    [Fact]
    public void Cost_PricesEachBucketAtItsOwnRate_Exactly()
    {
        var prices = DeploymentPrices.Of(2.50m, 1.25m, 10.00m);

        // 1,000 prompt tokens of which 400 cached; 300 completion tokens (of which 100 reasoning, already inside).
        var cost = CostCalculator.Cost(prices, new OpenAIWireUsage(1_000, 300, 400, 100).ToBuckets());

        Assert.Equal((600 * 2.50m + 400 * 1.25m + 300 * 10.00m) / 1_000_000m, cost);
        Assert.Equal(0.005m, cost);
    }

    [Fact]
    public void Bound_EveryRateListed_IsTheCostItself()
    {
        var prices = DeploymentPrices.Of(2.50m, 1.25m, 10.00m);
        var usage = new OpenAIWireUsage(1_000, 300, 400, 100).ToBuckets();

        Assert.Equal(CostCalculator.Cost(prices, usage), CostCalculator.Bound(prices, usage));
    }

    [Fact]
    public void Bound_ABucketWithoutARate_IsCountedAtTheDearestListedRate()
    {
        // Cached input and 1-hour cache writes have no rate; output ($15/M) is the dearest listed.
        var prices = new DeploymentPrices(3m, null, 3.75m, null, 15m);
        var usage = new UsageBuckets(100, 200, 300, 400, 50, 0);

        Assert.Null(CostCalculator.Cost(prices, usage));
        Assert.Equal((100 * 3m + 200 * 15m + 300 * 3.75m + 400 * 15m + 50 * 15m) / 1_000_000m, CostCalculator.Bound(prices, usage));
    }

    [Fact]
    public void Bound_NoRateListedAtAll_IsUnknown()
    {
        Assert.Null(CostCalculator.Bound(new DeploymentPrices(null, null, null, null, null), new UsageBuckets(10, 0, 0, 0, 5, 0)));
    }

    [Fact]
    public void Cost_CachedTokensWithoutCachedPrice_IsUnknownNotZero()
    {
        var prices = DeploymentPrices.Of(1m, null, 2m);

        Assert.Null(CostCalculator.Cost(prices, new OpenAIWireUsage(100, 10, 50, 0).ToBuckets()));
        Assert.Equal(0.00012m, CostCalculator.Cost(prices, new OpenAIWireUsage(100, 10, 0, 0).ToBuckets()));
    }

    [Fact]
    public void Cost_MissingOutputPrice_IsUnknown()
    {
        Assert.Null(CostCalculator.Cost(DeploymentPrices.Of(1m, null, null), new OpenAIWireUsage(10, 1, 0, 0).ToBuckets()));
    }

    [Fact]
    public void Cost_ManySmallRequests_SumWithoutDrift()
    {
        var prices = DeploymentPrices.Of(0.15m, 0.075m, 0.60m);
        var total = 0m;
        for (var i = 0; i < 100_000; i++)
        {
            total += CostCalculator.Cost(prices, new UsageBuckets(7, 0, 0, 0, 3, 0))!.Value;
        }

        Assert.Equal(100_000 * (7 * 0.15m + 3 * 0.60m) / 1_000_000m, total);
    }
}
