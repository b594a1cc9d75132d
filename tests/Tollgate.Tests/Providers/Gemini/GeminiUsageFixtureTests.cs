using System.Text.Json.Nodes;
using Tollgate.Metering;
using Tollgate.Routing;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Providers.Gemini;

/// <summary>
/// Golden fixtures: recorded-shape Gemini 2.5 Flash answers (Fixtures/*.json for generateContent, *.sse for
/// streamGenerateContent, usageMetadata repeated cumulatively on every event) run through the real adapter
/// over HTTP in both modes. Expected buckets and costs are written by hand from Gemini's inclusion rules:
/// promptTokenCount includes cachedContentTokenCount; thoughtsTokenCount is outside candidatesTokenCount;
/// toolUsePromptTokenCount is outside promptTokenCount and billed as input.
/// Prices (gemini-2.5-flash, USD per 1M): input 0.30, cached input 0.03, output (text and thinking) 2.50.
/// </summary>
public sealed class GeminiUsageFixtureTests
{
    private static readonly DeploymentPrices Flash = DeploymentPrices.Of(0.30m, 0.03m, 2.50m);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<string, UsageBuckets, decimal> Fixtures => new()
    {
        // No cache, no thinking: 12 in, 9 out → 12×0.30 + 9×2.50 = 26.1 µ$.
        { "flash-plain", new UsageBuckets(12, 0, 0, 0, 9, 0), 0.0000261m },

        // Thinking: 25 in, 48 visible out, 312 thoughts → 25×0.30 + 48×2.50 + 312×2.50 = 907.5 µ$.
        { "flash-thinking", new UsageBuckets(25, 0, 0, 0, 48, 312), 0.0009075m },

        // Cache + thinking: prompt 2310 of which 2048 cached → 262 uncached; 61 out, 140 thoughts.
        // 262×0.30 + 2048×0.03 + 61×2.50 + 140×2.50 = 78.6 + 61.44 + 152.5 + 350 = 642.54 µ$.
        { "flash-cached-thinking", new UsageBuckets(262, 2048, 0, 0, 61, 140), 0.00064254m },

        // Cache, no thinking: prompt 4200 of which 4096 cached; 35 out → 104×0.30 + 4096×0.03 + 35×2.50 = 241.58 µ$.
        { "flash-cached", new UsageBuckets(104, 4096, 0, 0, 35, 0), 0.00024158m },

        // Search grounding: 40 prompt + 512 tool-use prompt, both input; 120 out → 552×0.30 + 120×2.50 = 465.6 µ$.
        { "flash-tool-use", new UsageBuckets(552, 0, 0, 0, 120, 0), 0.0004656m },

        // Two function calls after thinking: 88 in, 18 out, 64 thoughts → 88×0.30 + 18×2.50 + 64×2.50 = 231.4 µ$.
        { "flash-function-call", new UsageBuckets(88, 0, 0, 0, 18, 64), 0.0002314m },
    };

    [Theory]
    [MemberData(nameof(Fixtures))]
    public async Task Adapter_NonStreamingAndStreaming_GiveIdenticalBucketsAndTheHandWrittenCost(string fixture, UsageBuckets expected, decimal expectedCost)
    {
        var (body, nonStreaming, streaming) = await RunBothAsync(fixture);

        Assert.Equal(expected, nonStreaming.Buckets);
        Assert.Equal(expected, streaming.Usage.Buckets);
        Assert.Equal(UsageSource.Reported, nonStreaming.Source);
        Assert.Equal(UsageSource.Reported, streaming.Usage.Source);
        Assert.Equal(expectedCost, CostCalculator.Cost(Flash, nonStreaming.Buckets));
        Assert.Equal(expectedCost, CostCalculator.Cost(Flash, streaming.Usage.Buckets));

        // What the client sees agrees with the buckets, in both modes.
        var openAi = expected.ToOpenAI();
        foreach (var usage in new[] { body["usage"]!, streaming.Chunks[^1]["usage"]! })
        {
            Assert.Equal(openAi.PromptTokens, (long)usage["prompt_tokens"]!);
            Assert.Equal(openAi.CompletionTokens, (long)usage["completion_tokens"]!);
            Assert.Equal(openAi.TotalTokens, (long)usage["total_tokens"]!);
            Assert.Equal(openAi.CachedTokens, (long)usage["prompt_tokens_details"]!["cached_tokens"]!);
            Assert.Equal(openAi.ReasoningTokens, (long)usage["completion_tokens_details"]!["reasoning_tokens"]!);
        }

        // And the same answer: text and tool calls.
        Assert.Equal((string?)body["choices"]![0]!["message"]!["content"] ?? string.Empty, streaming.Text);
        Assert.Equal((string?)body["choices"]![0]!["finish_reason"], Assert.Single(streaming.FinishReasons));
    }

    [Fact]
    public async Task Adapter_FunctionCallFixture_StreamsTheSameToolCallsAsTheWholeAnswer()
    {
        var (body, _, streaming) = await RunBothAsync("flash-function-call");

        var whole = body["choices"]![0]!["message"]!["tool_calls"]!.AsArray();
        var streamed = streaming.Chunks
            .Where(c => c["choices"]!.AsArray().Count > 0)
            .Select(c => c["choices"]![0]!["delta"]!["tool_calls"])
            .OfType<JsonArray>()
            .SelectMany(calls => calls)
            .ToList();
        Assert.Equal(2, whole.Count);
        Assert.Equal(whole.Select(c => ((string?)c!["id"], (string?)c["function"]!["name"], (string?)c["function"]!["arguments"])),
            streamed.Select(c => ((string?)c!["id"], (string?)c["function"]!["name"], (string?)c["function"]!["arguments"])));
        Assert.Equal("""{"city":"Paris","unit":"celsius"}""", (string?)whole[0]!["function"]!["arguments"]);
    }

    [Fact]
    public async Task Adapter_NoUsageReported_EstimatesWithTheTokenizerIdenticallyForBothModes()
    {
        var (_, nonStreaming, streaming) = await RunBothAsync("flash-no-usage");

        Assert.Equal(UsageSource.Estimated, nonStreaming.Source);
        Assert.Equal(UsageSource.Estimated, streaming.Usage.Source);
        Assert.Equal(nonStreaming.Buckets, streaming.Usage.Buckets);

        // o200k: "Hello there, how can I help you today?" is 10 tokens; the prompt counts as OpenAI's guide does:
        // every value of the message (role "user" and content "Say hi"), 3 framing tokens, 3 to prime the reply.
        Assert.Equal(10, nonStreaming.Buckets.OutputText);
        Assert.Equal(TokenEstimator.Count("user") + TokenEstimator.Count("Say hi") + 6, nonStreaming.Buckets.InputUncached);
    }

    private static async Task<(JsonObject Body, MeteredUsage Usage, StreamRun Stream)> RunBothAsync(string fixture)
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        fake.Enqueue(
            GeminiReply.Json(await File.ReadAllTextAsync(FixtureServer.PathOf($"Providers/Gemini/Fixtures/{fixture}.json"), Ct)),
            GeminiReply.Transcript(await File.ReadAllTextAsync(FixtureServer.PathOf($"Providers/Gemini/Fixtures/{fixture}.sse"), Ct)));

        var (body, usage) = await harness.CompleteAsync(GeminiHarness.Chat("Say hi"));
        var stream = await harness.StreamAsync(GeminiHarness.Chat("Say hi"));

        Assert.Null(stream.Broken);
        Assert.True(stream.Raw[^1].UsageOnly);
        return (body, usage, stream);
    }
}
