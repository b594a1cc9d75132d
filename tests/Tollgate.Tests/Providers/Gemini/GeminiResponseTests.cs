using System.Text;
using System.Text.Json.Nodes;
using Tollgate.Metering;
using Tollgate.Providers;
using static Tollgate.Tests.Providers.Gemini.GeminiRequestTranslationTests;
using static Tollgate.Tests.Providers.Gemini.GeminiWire;

namespace Tollgate.Tests.Providers.Gemini;

/// <summary>Gemini answers, whole and streamed, as the OpenAI shapes the client receives.</summary>
public sealed class GeminiResponseTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task CompleteAsync_TextAnswer_IsAnOpenAIChatCompletion()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        fake.Enqueue(GeminiReply.Json(Response([Candidate(0, [Thought("Let me think."), Text("Hello"), Text(" there.")], "STOP")], Usage(12, 3, thoughts: 20)).ToJsonString()));

        var (body, usage) = await harness.CompleteAsync(GeminiHarness.Chat());

        AssertJson(
            $$$"""
            {"id":"chatcmpl-{{{ResponseId}}}","object":"chat.completion","created":{{{GeminiHarness.Now.ToUnixTimeSeconds()}}},"model":"gemini-2.5-flash",
             "choices":[{"index":0,"message":{"role":"assistant","content":"Hello there.","refusal":null},"logprobs":null,"finish_reason":"stop"}],
             "usage":{"prompt_tokens":12,"completion_tokens":23,"total_tokens":35,
                      "prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":20} } }
            """,
            body);
        Assert.Equal(new UsageBuckets(12, 0, 0, 0, 3, 20), usage.Buckets);
        Assert.Equal(UsageSource.Reported, usage.Source);
    }

    [Fact]
    public async Task CompleteAsync_FunctionCalls_BecomeToolCallsWithJsonStringArguments()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        var args = new JsonObject { ["city"] = "Zürich", ["days"] = 2 };
        fake.Enqueue(GeminiReply.Json(Response(
            [Candidate(0, [Call("get_weather", args), Call("get_time", new JsonObject())], "STOP")], Usage(30, 12)).ToJsonString()));

        var (body, _) = await harness.CompleteAsync(GeminiHarness.Chat());

        var choice = body["choices"]![0]!;
        Assert.Equal("tool_calls", (string?)choice["finish_reason"]);
        Assert.Null(choice["message"]!["content"]);
        AssertJson(
            """
            [{"id":"call_0","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Zürich\",\"days\":2}"}},
             {"id":"call_1","type":"function","function":{"name":"get_time","arguments":"{}"}}]
            """,
            choice["message"]!["tool_calls"]);
    }

    [Theory]
    [InlineData("STOP", "stop")]
    [InlineData("MAX_TOKENS", "length")]
    [InlineData("SAFETY", "content_filter")]
    [InlineData("RECITATION", "content_filter")]
    [InlineData("BLOCKLIST", "content_filter")]
    [InlineData("PROHIBITED_CONTENT", "content_filter")]
    [InlineData("SPII", "content_filter")]
    [InlineData("OTHER", "stop")]
    public async Task CompleteAndStream_FinishReason_MapsToOpenAIs(string gemini, string openAi)
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        var answer = Response([Candidate(0, [Text("Partial")], gemini)], Usage(5, 1)).ToJsonString();
        fake.Enqueue(GeminiReply.Json(answer), GeminiReply.Stream([answer]));

        var (body, _) = await harness.CompleteAsync(GeminiHarness.Chat());
        var stream = await harness.StreamAsync(GeminiHarness.Chat());

        Assert.Equal(openAi, (string?)body["choices"]![0]!["finish_reason"]);
        Assert.Equal([openAi], stream.FinishReasons);
    }

    [Fact]
    public async Task CompleteAsync_PromptBlocked_IsContentFilterWithEmptyContent()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        var blocked = new JsonObject
        {
            ["promptFeedback"] = new JsonObject { ["blockReason"] = "PROHIBITED_CONTENT" },
            ["usageMetadata"] = Usage(9, 0),
            ["modelVersion"] = ModelVersion,
        }.ToJsonString();
        fake.Enqueue(GeminiReply.Json(blocked), GeminiReply.Stream([blocked]));

        var (body, usage) = await harness.CompleteAsync(GeminiHarness.Chat());
        var stream = await harness.StreamAsync(GeminiHarness.Chat());

        var choice = body["choices"]![0]!;
        Assert.Equal("content_filter", (string?)choice["finish_reason"]);
        Assert.Equal(string.Empty, (string?)choice["message"]!["content"]);
        Assert.Equal(new UsageBuckets(9, 0, 0, 0, 0, 0), usage.Buckets);
        Assert.Null(stream.Broken);
        Assert.Equal(["content_filter"], stream.FinishReasons);
        Assert.Equal(usage.Buckets, stream.Usage.Buckets);
    }

    [Fact]
    public async Task CompleteAsync_TwoCandidates_AreTwoChoices()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        fake.Enqueue(GeminiReply.Json(Response([Candidate(0, [Text("Yes.")], "STOP"), Candidate(1, [Text("No.")], "STOP")], Usage(4, 2)).ToJsonString()));
        var body = GeminiHarness.Chat();
        body["n"] = 2;

        var (answer, _) = await harness.CompleteAsync(body);

        var choices = answer["choices"]!.AsArray();
        Assert.Equal([0, 1], choices.Select(c => (int)c!["index"]!));
        Assert.Equal(["Yes.", "No."], choices.Select(c => (string?)c!["message"]!["content"]));
    }

    [Fact]
    public async Task StreamAsync_TextAnswer_RoleChunkThenContentThenFinishThenUsageOnlyChunk()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        fake.Enqueue(GeminiReply.Stream(AnswerEvents(["Hel", "lo ", "world."], promptTokens: 10, candidateTokens: 4)));

        var run = await harness.StreamAsync(GeminiHarness.Chat());

        Assert.Null(run.Broken);
        var first = run.Chunks[0];
        Assert.Equal("chat.completion.chunk", (string?)first["object"]);
        Assert.Equal("chatcmpl-" + ResponseId, (string?)first["id"]);
        Assert.Equal("assistant", (string?)first["choices"]![0]!["delta"]!["role"]);
        Assert.Equal("Hello world.", run.Text);
        Assert.Equal(["stop"], run.FinishReasons);
        Assert.All(run.Chunks, c => Assert.Equal((string?)first["id"], (string?)c["id"]));

        // Exactly one usage-only chunk, last, flagged; cumulative usage taken from the last event, never summed.
        Assert.Equal([false, false, false, false, false, true], run.Raw.Select(c => c.UsageOnly));
        var usageChunk = run.Chunks[^1];
        Assert.Empty(usageChunk["choices"]!.AsArray());
        Assert.Equal(14, (int)usageChunk["usage"]!["total_tokens"]!);
        Assert.Equal(new UsageBuckets(10, 0, 0, 0, 4, 0), run.Usage.Buckets);
    }

    [Fact]
    public async Task StreamAsync_FunctionCall_IsOneToolCallDeltaWithIdNameAndArguments()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        fake.Enqueue(GeminiReply.Stream([
            Response([Candidate(0, [Text("Checking.")], null)], Usage(20, 2)).ToJsonString(),
            Response([Candidate(0, [Call("get_weather", new JsonObject { ["city"] = "Paris" }), Call("get_time", new JsonObject())], "STOP")], Usage(20, 9)).ToJsonString(),
        ]));

        var run = await harness.StreamAsync(GeminiHarness.Chat());

        var calls = run.Chunks.Single(c => c["choices"]!.AsArray().Count > 0 && c["choices"]![0]!["delta"]!["tool_calls"] is not null);
        AssertJson(
            """
            [{"index":0,"id":"call_0","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
             {"index":1,"id":"call_1","type":"function","function":{"name":"get_time","arguments":"{}"}}]
            """,
            calls["choices"]![0]!["delta"]!["tool_calls"]);
        Assert.Equal("Checking.", run.Text);
        Assert.Equal(["tool_calls"], run.FinishReasons);
    }

    [Fact]
    public async Task StreamAsync_CutBeforeAFinishReason_BreaksAndEstimatesFromWhatWasRelayed()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        var noUsage = new[] { "One two", " three" }.Select(t => Response([Candidate(0, [Text(t)], null)], null).ToJsonString()).ToList();
        fake.Enqueue(GeminiReply.CutStream(noUsage, tail: "data: {\"candidates\": [{\"content\""));

        var run = await harness.StreamAsync(GeminiHarness.Chat("Count."));

        Assert.Equal(FailureKind.StreamBroken, run.Broken?.Failure.Kind);
        Assert.Equal("One two three", run.Text);
        Assert.DoesNotContain(run.Raw, c => c.UsageOnly);
        Assert.Equal(UsageSource.Estimated, run.Usage.Source);
        Assert.Equal(TokenEstimator.Estimate(GeminiHarness.Parse(GeminiHarness.Chat("Count.")).Body.Span, Encoding.UTF8.GetBytes("One two three")).Buckets, run.Usage.Buckets);
    }

    [Fact]
    public async Task StreamAsync_EndsCleanlyWithoutAFinishReason_IsABrokenStream()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        fake.Enqueue(GeminiReply.Stream([Response([Candidate(0, [Text("Half")], null)], Usage(3, 1)).ToJsonString()]));

        var run = await harness.StreamAsync(GeminiHarness.Chat());

        Assert.Equal(FailureKind.StreamBroken, run.Broken?.Failure.Kind);
        Assert.Equal(UsageSource.Reported, run.Usage.Source);
    }

    [Fact]
    public async Task StreamAsync_ErrorEventMidStream_IsABrokenStream()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        fake.Enqueue(GeminiReply.Stream([
            Response([Candidate(0, [Text("Start")], null)], null).ToJsonString(),
            Error(503, "UNAVAILABLE", "The model is overloaded."),
        ]));

        var run = await harness.StreamAsync(GeminiHarness.Chat());

        Assert.Equal(FailureKind.StreamBroken, run.Broken?.Failure.Kind);
        Assert.Contains("overloaded", run.Broken!.Failure.Message, StringComparison.Ordinal);
        Assert.Equal("Start", run.Text);
    }

    [Theory]
    [InlineData("not json at all")]
    [InlineData("[1,2,3]")]
    public async Task SendAsync_StreamWhoseFirstEventIsInvalid_FailsBeforeTheFirstByteSoTheDispatcherCanFailOver(string firstEvent)
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        fake.Enqueue(GeminiReply.Stream([firstEvent]));

        var result = await harness.SendAsync(GeminiHarness.Chat(stream: true));

        Assert.Equal(FailureKind.InvalidResponse, result.Failure?.Kind);
        Assert.True(result.Failure!.ShouldFailOver);
    }

    [Fact]
    public async Task SendAsync_NonStreamingBodyWithoutCandidates_IsAnInvalidResponse()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        fake.Enqueue(GeminiReply.Json("""{"modelVersion":"gemini-2.5-flash"}"""));

        var result = await harness.SendAsync(GeminiHarness.Chat());

        Assert.Equal(FailureKind.InvalidResponse, result.Failure?.Kind);
    }

    [Fact]
    public async Task ToolCallRoundTrip_CallThenResult_SendsTheCallBackAndAnswers()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        fake.Enqueue(
            GeminiReply.Json(Response([Candidate(0, [Call("get_weather", new JsonObject { ["city"] = "Paris" })], "STOP")], Usage(40, 8)).ToJsonString()),
            GeminiReply.Json(GeminiWire.Answer("18°C and sunny in Paris.", promptTokens: 60, candidateTokens: 9)));
        var body = GeminiHarness.Chat("Weather in Paris?");
        body["tools"] = new JsonArray(Tool("get_weather", "Weather.", """{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"""));

        var (first, _) = await harness.CompleteAsync(body);
        var call = first["choices"]![0]!["message"]!["tool_calls"]![0]!;
        var messages = body["messages"]!.AsArray();
        messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = null, ["tool_calls"] = new JsonArray(call.DeepClone()) });
        messages.Add(new JsonObject { ["role"] = "tool", ["tool_call_id"] = call["id"]!.DeepClone(), ["content"] = """{"temp_c":18}""" });
        var (second, _) = await harness.CompleteAsync(body);

        Assert.Equal("18°C and sunny in Paris.", (string?)second["choices"]![0]!["message"]!["content"]);
        AssertJson(
            """
            [
              {"role":"user","parts":[{"text":"Weather in Paris?"}]},
              {"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}}]},
              {"role":"user","parts":[{"functionResponse":{"name":"get_weather","response":{"content":{"temp_c":18}}}}]}
            ]
            """,
            fake.Requests[1].Json!["contents"]);
    }
}
