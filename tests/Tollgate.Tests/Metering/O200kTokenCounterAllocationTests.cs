using System.Text;
using System.Text.Json;
using Tollgate.Metering;

namespace Tollgate.Tests.Metering;

/// <summary>
/// Runs alone: the counter's regex caches one runner, and while a test elsewhere holds it, a call here makes its
/// own, which would be counted as this thread's allocation.
/// </summary>
[CollectionDefinition(nameof(AllocationMeasurements), DisableParallelization = true)]
public sealed class AllocationMeasurements;

[Collection(nameof(AllocationMeasurements))]
public sealed class O200kTokenCounterAllocationTests
{
    [Fact]
    public void Count_InSteadyState_AllocatesNothing()
    {
        var text = string.Concat(Enumerable.Repeat("Hello, world! The gateway's reservation estimate — naïve café, 東京, привет 😀.\r\n\tcount(42) ", 40));
        var body = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new { model = "m", messages = new[] { new { role = "user", content = text } } }));
        var counter = O200kTokenCounter.Shared;
        var expected = counter.Count(text) + TokenEstimator.CountRequest(body);

        var total = 0L;
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 500; i++)
        {
            total += counter.Count(text) + TokenEstimator.CountRequest(body);
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(500 * expected, total);

        // Zero per call; the slack is for one runner should the first call of the loop still make it.
        Assert.InRange(allocated, 0, 8 * 1024);
    }
}
