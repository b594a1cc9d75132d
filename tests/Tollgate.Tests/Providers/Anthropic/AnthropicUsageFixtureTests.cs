using System.Globalization;
using System.Text.Json.Nodes;
using Tollgate.Metering;

namespace Tollgate.Tests.Providers.Anthropic;

/// <summary>
/// Golden usage: recorded-shape Anthropic answers (Fixtures/NAME.json and the same answer streamed,
/// Fixtures/NAME.sse), with the expected buckets and cost worked out by hand. Prices are Anthropic-style
/// (<see cref="AnthropicRig.Prices"/>): input $3, output $15, cache read $0.30 (0.1×), 5-minute write
/// $3.75 (1.25×), 1-hour write $6 (2×), per 1M tokens.
/// </summary>
public sealed class AnthropicUsageFixtureTests
{
    // name, uncached input, cache read, 5m write, 1h write, output, cost in USD
    [Theory]
    [InlineData("no-cache", 25, 0, 0, 0, 15, "0.0003")]                   // 25×3 + 15×15 = 300
    [InlineData("cache-read", 12, 2048, 0, 0, 85, "0.0019254")]           // 12×3 + 2048×0.30 + 85×15 = 36 + 614.4 + 1275 = 1925.4
    [InlineData("cache-write-5m", 30, 0, 1500, 0, 40, "0.006315")]        // 30×3 + 1500×3.75 + 40×15 = 90 + 5625 + 600 = 6315
    [InlineData("cache-write-1h", 40, 500, 1000, 2000, 120, "0.01782")]   // 120 + 150 + 3750 + 12000 + 1800 = 17820
    [InlineData("cache-write-no-breakdown", 8, 0, 800, 0, 10, "0.003174")] // 24 + 800×3.75 + 150 = 3174: no TTL breakdown means 5m
    public async Task StreamAndComplete_Fixture_GiveIdenticalBucketsAndCost(
        string fixture, long uncached, long cached, long write5m, long write1h, long output, string cost)
    {
        await using var rig = await AnthropicRig.StartAsync();
        rig.Fake.Enqueue(AnthropicBehavior.Raw(body: Read(fixture + ".json")), AnthropicBehavior.Raw(transcript: Read(fixture + ".sse")));
        var expected = new UsageBuckets(uncached, cached, write5m, write1h, output, 0);

        var (json, buffered) = await rig.CompleteAsync(AnthropicRig.Body());
        var streamed = await rig.StreamAsync(AnthropicRig.Body());

        Assert.Null(streamed.Broken);
        Assert.Equal(expected, buffered.Usage.Buckets);
        Assert.Equal(expected, streamed.Usage.Buckets);
        Assert.Equal(UsageSource.Reported, buffered.Usage.Source);
        Assert.Equal(UsageSource.Reported, streamed.Usage.Source);
        Assert.Equal(decimal.Parse(cost, CultureInfo.InvariantCulture), CostCalculator.Cost(AnthropicRig.Prices, buffered.Usage.Buckets));

        // The client's usage says the same thing, in OpenAI's inclusive shape, streamed or not.
        var usage = json["usage"]!;
        Assert.Equal(expected.InputTotal, (long)usage["prompt_tokens"]!);
        Assert.Equal(output, (long)usage["completion_tokens"]!);
        Assert.Equal(expected.Total, (long)usage["total_tokens"]!);
        Assert.Equal(cached, (long)usage["prompt_tokens_details"]!["cached_tokens"]!);
        Assert.Equal(0, (long)usage["completion_tokens_details"]!["reasoning_tokens"]!);
        Assert.True(JsonNode.DeepEquals(usage, streamed.Json[^1]["usage"]), streamed.Json[^1].ToJsonString());

        // And the answer itself is the same.
        Assert.Equal((string?)json["choices"]![0]!["message"]!["content"], streamed.Content);
        Assert.Equal((string?)json["choices"]![0]!["finish_reason"], (string?)streamed.Visible[^1]["choices"]![0]!["finish_reason"]);
    }

    [Fact]
    public async Task StreamAndComplete_ToolUseFixture_GiveSameToolCall()
    {
        await using var rig = await AnthropicRig.StartAsync();
        rig.Fake.Enqueue(AnthropicBehavior.Raw(body: Read("cache-write-1h.json")), AnthropicBehavior.Raw(transcript: Read("cache-write-1h.sse")));

        var (json, _) = await rig.CompleteAsync(AnthropicRig.Body());
        var streamed = await rig.StreamAsync(AnthropicRig.Body());

        var call = json["choices"]![0]!["message"]!["tool_calls"]![0]!;
        var (id, name, arguments) = streamed.ToolCalls()[0];
        Assert.Equal((string?)call["id"], id);
        Assert.Equal((string?)call["function"]!["name"], name);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse((string)call["function"]!["arguments"]!), JsonNode.Parse(arguments)), arguments);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"order_id":"A-1042","include_items":true}"""), JsonNode.Parse(arguments)));
        Assert.Equal("tool_calls", (string?)json["choices"]![0]!["finish_reason"]);
    }

    /// <summary>Fixtures are copied next to the test assembly (Tollgate.Tests.csproj: Providers/**/Fixtures/**).</summary>
    private static string Read(string name) =>
        File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Providers", "Anthropic", "Fixtures", name));
}
