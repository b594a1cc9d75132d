using System.Text.Json.Nodes;
using Tollgate.Metering;

namespace Tollgate.Tests.Providers.Anthropic;

/// <summary>Anthropic answers, buffered and streamed, as the OpenAI client receives them.</summary>
public sealed class AnthropicResponseTests
{
    private static readonly long Created = AnthropicRig.Now.ToUnixTimeSeconds();

    private static AnthropicAnswer WeatherCalls() => new(
        [
            new TextBlock("Let me check."),
            new ToolUseBlock("toolu_01A", "get_weather", """{"city":"Paris","unit":"celsius"}""", Fragments: 4),
            new ToolUseBlock("toolu_01B", "get_time", """{"zone":"Europe/Paris"}""", Fragments: 2),
        ],
        StopReason: "tool_use",
        Usage: new JsonObject { ["input_tokens"] = 300, ["output_tokens"] = 60 });

    [Fact]
    public async Task Complete_TextAnswer_IsOpenAIChatCompletion()
    {
        await using var rig = await AnthropicRig.StartAsync();
        rig.Fake.Enqueue(AnthropicBehavior.Text("Bonjour !", new JsonObject { ["input_tokens"] = 25, ["output_tokens"] = 15 }));

        var (json, response) = await rig.CompleteAsync(AnthropicRig.Body());

        Assert.Equal(200, response.Status);
        var expected = JsonNode.Parse($$"""
            {"id":"chatcmpl-01FakeAnswer","object":"chat.completion","created":{{Created}},"model":"claude-sonnet-4-5",
             "choices":[{"index":0,"message":{"role":"assistant","content":"Bonjour !","refusal":null},"logprobs":null,"finish_reason":"stop"}],
             "usage":{"prompt_tokens":25,"completion_tokens":15,"total_tokens":40,
                      "prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}
                     }
            }
            """);
        Assert.True(JsonNode.DeepEquals(expected, json), json.ToJsonString());
        Assert.Equal(new UsageBuckets(25, 0, 0, 0, 15, 0), response.Usage.Buckets);
        Assert.Equal(UsageSource.Reported, response.Usage.Source);
    }

    [Fact]
    public async Task Complete_ToolUse_BecomesToolCallsWithJsonStringArguments()
    {
        await using var rig = await AnthropicRig.StartAsync();
        rig.Fake.Enqueue(AnthropicBehavior.Reply(WeatherCalls()));

        var (json, _) = await rig.CompleteAsync(AnthropicRig.Body());

        var choice = json["choices"]![0]!;
        Assert.Equal("tool_calls", (string?)choice["finish_reason"]);
        Assert.Equal("Let me check.", (string?)choice["message"]!["content"]);
        var calls = choice["message"]!["tool_calls"]!.AsArray();
        Assert.Equal(2, calls.Count);
        Assert.Equal("toolu_01A", (string?)calls[0]!["id"]);
        Assert.Equal("function", (string?)calls[0]!["type"]);
        Assert.Equal("get_weather", (string?)calls[0]!["function"]!["name"]);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"city":"Paris","unit":"celsius"}"""), JsonNode.Parse((string)calls[0]!["function"]!["arguments"]!)));
        Assert.Equal("get_time", (string?)calls[1]!["function"]!["name"]);
    }

    [Theory]
    [InlineData("end_turn", "stop")]
    [InlineData("stop_sequence", "stop")]
    [InlineData("max_tokens", "length")]
    [InlineData("refusal", "content_filter")]
    public async Task Complete_StopReason_MapsToFinishReason(string stopReason, string finishReason)
    {
        await using var rig = await AnthropicRig.StartAsync();
        rig.Fake.Enqueue(AnthropicBehavior.Reply(new AnthropicAnswer([new TextBlock("Hm.")], StopReason: stopReason)));

        var (json, _) = await rig.CompleteAsync(AnthropicRig.Body());

        Assert.Equal(finishReason, (string?)json["choices"]![0]!["finish_reason"]);
    }

    [Theory]
    [InlineData("max_tokens", "length")]
    [InlineData("refusal", "content_filter")]
    [InlineData("tool_use", "tool_calls")]
    public async Task Stream_StopReason_MapsToFinishReason(string stopReason, string finishReason)
    {
        await using var rig = await AnthropicRig.StartAsync();
        AnthropicBlock block = stopReason == "tool_use" ? new ToolUseBlock("toolu_1", "f", "{}") : new TextBlock("Hm.");
        rig.Fake.Enqueue(AnthropicBehavior.Reply(new AnthropicAnswer([block], StopReason: stopReason)));

        var read = await rig.StreamAsync(AnthropicRig.Body());

        Assert.Equal(finishReason, (string?)read.Visible[^1]["choices"]![0]!["finish_reason"]);
    }

    [Fact]
    public async Task Stream_TextAnswer_RoleChunkThenContentThenFinishThenUsage()
    {
        await using var rig = await AnthropicRig.StartAsync();
        rig.Fake.Enqueue(AnthropicBehavior.Text("Hello there world", new JsonObject { ["input_tokens"] = 25, ["output_tokens"] = 15 }));

        var read = await rig.StreamAsync(AnthropicRig.Body());

        Assert.Null(read.Broken);
        var chunks = read.Json;
        Assert.All(chunks, c =>
        {
            Assert.Equal("chatcmpl-01FakeAnswer", (string?)c["id"]);
            Assert.Equal("chat.completion.chunk", (string?)c["object"]);
            Assert.Equal(Created, (long)c["created"]!);
            Assert.Equal("claude-sonnet-4-5", (string?)c["model"]);
        });
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"role":"assistant","content":""}"""), chunks[0]["choices"]![0]!["delta"]));
        Assert.Equal("Hello there world", read.Content);
        Assert.Equal(["Hello", " there", " world"], read.Visible.Skip(1).SkipLast(1).Select(c => (string?)c["choices"]![0]!["delta"]!["content"]));

        var finish = read.Visible[^1];
        Assert.Equal("stop", (string?)finish["choices"]![0]!["finish_reason"]);
        Assert.True(JsonNode.DeepEquals(new JsonObject(), finish["choices"]![0]!["delta"]));

        // The usage-only chunk comes last, flagged so the relay shows it only to clients that asked.
        Assert.True(read.Chunks[^1].UsageOnly);
        Assert.Single(read.Chunks, c => c.UsageOnly);
        Assert.Empty(chunks[^1]["choices"]!.AsArray());
        Assert.Equal(40, (int)chunks[^1]["usage"]!["total_tokens"]!);
        Assert.Equal(new UsageBuckets(25, 0, 0, 0, 15, 0), read.Usage.Buckets);
        Assert.Equal(UsageSource.Reported, read.Usage.Source);
    }

    [Fact]
    public async Task Stream_ParallelToolCalls_ArriveIncrementallyWithIndexesAndIds()
    {
        await using var rig = await AnthropicRig.StartAsync();
        rig.Fake.Enqueue(AnthropicBehavior.Reply(WeatherCalls()));

        var read = await rig.StreamAsync(AnthropicRig.Body());

        Assert.Null(read.Broken);
        Assert.Equal("Let me check.", read.Content);
        var calls = read.ToolCalls();
        Assert.Equal(2, calls.Count);
        Assert.Equal(("toolu_01A", "get_weather", """{"city":"Paris","unit":"celsius"}"""), calls[0]);
        Assert.Equal(("toolu_01B", "get_time", """{"zone":"Europe/Paris"}"""), calls[1]);

        // The first tool chunk carries id, type and name with empty arguments; the fragments follow without them.
        var toolChunks = read.Visible.Where(c => c["choices"]![0]!["delta"]!["tool_calls"] is not null).Select(c => c["choices"]![0]!["delta"]!["tool_calls"]![0]!).ToList();
        var first = toolChunks[0];
        Assert.Equal("function", (string?)first["type"]);
        Assert.Equal(string.Empty, (string?)first["function"]!["arguments"]);
        var fragments = toolChunks.Skip(1).TakeWhile(c => (int)c["index"]! == 0).ToList();
        Assert.Equal(4, fragments.Count);
        Assert.All(fragments, f => Assert.Null(f["id"]));
        Assert.Equal("tool_calls", (string?)read.Visible[^1]["choices"]![0]!["finish_reason"]);
    }

    [Fact]
    public async Task StreamAndComplete_ToolWithoutArguments_BothGiveEmptyObject()
    {
        await using var rig = await AnthropicRig.StartAsync();
        var answer = new AnthropicAnswer([new ToolUseBlock("toolu_1", "now", "", Fragments: 0)], StopReason: "tool_use");
        rig.Fake.Enqueue(AnthropicBehavior.Reply(answer with { Blocks = [new ToolUseBlock("toolu_1", "now", "{}")] }), AnthropicBehavior.Reply(answer));

        var (json, _) = await rig.CompleteAsync(AnthropicRig.Body());
        var read = await rig.StreamAsync(AnthropicRig.Body());

        Assert.Equal("{}", (string?)json["choices"]![0]!["message"]!["tool_calls"]![0]!["function"]!["arguments"]);
        Assert.Equal("{}", read.ToolCalls()[0].Arguments);
    }

    [Fact]
    public async Task StreamAndComplete_JsonSchemaAnswerTool_BecomesContentWithStop()
    {
        await using var rig = await AnthropicRig.StartAsync();
        var answer = new AnthropicAnswer([new ToolUseBlock("toolu_9", "json_response", """{"name":"apple"}""")], StopReason: "tool_use");
        rig.Fake.Enqueue(AnthropicBehavior.Reply(answer), AnthropicBehavior.Reply(answer));
        JsonObject Body()
        {
            var body = AnthropicRig.Body("A fruit.");
            body["response_format"] = JsonNode.Parse("""{"type":"json_schema","json_schema":{"name":"fruit","schema":{"type":"object"}}}""");
            return body;
        }

        var (json, _) = await rig.CompleteAsync(Body());
        var read = await rig.StreamAsync(Body());

        var message = json["choices"]![0]!["message"]!;
        Assert.Equal("""{"name":"apple"}""", (string?)message["content"]);
        Assert.Null(message["tool_calls"]);
        Assert.Equal("stop", (string?)json["choices"]![0]!["finish_reason"]);
        Assert.Equal("""{"name":"apple"}""", read.Content);
        Assert.Empty(read.ToolCalls());
        Assert.Equal("stop", (string?)read.Visible[^1]["choices"]![0]!["finish_reason"]);
    }

    [Fact]
    public async Task StreamAndComplete_Thinking_IsReasoningContentNotContent()
    {
        await using var rig = await AnthropicRig.StartAsync();
        var answer = new AnthropicAnswer([new ThinkingBlock("Two plus two is four."), new TextBlock("4")]);
        rig.Fake.Enqueue(AnthropicBehavior.Reply(answer), AnthropicBehavior.Reply(answer));

        var (json, _) = await rig.CompleteAsync(AnthropicRig.Body("2+2?"));
        var read = await rig.StreamAsync(AnthropicRig.Body("2+2?"));

        Assert.Equal("4", (string?)json["choices"]![0]!["message"]!["content"]);
        Assert.Equal("Two plus two is four.", (string?)json["choices"]![0]!["message"]!["reasoning_content"]);
        Assert.Equal("4", read.Content);
        Assert.Equal("Two plus two is four.", string.Concat(read.Visible.Select(c => (string?)c["choices"]![0]!["delta"]!["reasoning_content"])));
    }

    [Fact]
    public async Task Stream_UnknownEventTypes_AreIgnored()
    {
        await using var rig = await AnthropicRig.StartAsync();
        var events = AnthropicWire.Events(AnthropicAnswer.Text("Still fine"), AnthropicRig.UpstreamModel);
        const string Future = "event: something_new\ndata: {\"type\":\"something_new\",\"detail\":1}\n\n";
        events.Insert(0, Future);
        events.Insert(4, Future);
        rig.Fake.Enqueue(AnthropicBehavior.Raw(transcript: string.Concat(events)));

        var read = await rig.StreamAsync(AnthropicRig.Body());

        Assert.Null(read.Broken);
        Assert.Equal("Still fine", read.Content);
    }

    [Fact]
    public async Task Stream_MessageDeltaRepeatingInputCounts_IsNotDoubleCounted()
    {
        await using var rig = await AnthropicRig.StartAsync();
        var usage = new JsonObject { ["input_tokens"] = 100, ["cache_read_input_tokens"] = 50, ["output_tokens"] = 20 };
        rig.Fake.Enqueue(AnthropicBehavior.Reply(AnthropicAnswer.Text("Hi.", usage) with { DeltaRepeatsInput = true }));

        var read = await rig.StreamAsync(AnthropicRig.Body());

        Assert.Equal(new UsageBuckets(100, 50, 0, 0, 20, 0), read.Usage.Buckets);
    }
}
