using System.Text.Json.Nodes;
using Tollgate.Providers;

namespace Tollgate.Tests.Providers.Anthropic;

/// <summary>What the Anthropic API receives for a given OpenAI request (as recorded by the fake).</summary>
public sealed class AnthropicRequestTranslationTests
{
    private static JsonObject Msg(string role, JsonNode? content) => new() { ["role"] = role, ["content"] = content };

    private static JsonObject Body(params JsonObject[] messages) => new() { ["model"] = "claude", ["messages"] = new JsonArray(messages) };

    private static void AssertJson(string expected, JsonNode? actual) =>
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(expected), actual), $"expected {expected}\nactual   {actual?.ToJsonString()}");

    [Fact]
    public async Task Send_PlainRequest_PostsToMessagesWithProviderKeyAndVersion()
    {
        await using var rig = await AnthropicRig.StartAsync();

        var sent = await rig.TranslateAsync(AnthropicRig.Body("Hi"));

        var request = rig.Fake.Requests.Single();
        Assert.Equal("/v1/messages", request.Path);
        Assert.Equal(FakeAnthropic.ApiKey, request.Header("x-api-key"));
        Assert.Equal("2023-06-01", request.Header("anthropic-version"));
        Assert.StartsWith("application/json", request.Header("content-type"), StringComparison.Ordinal);
        Assert.Null(request.Authorization);
        AssertJson("""{"model":"claude-sonnet-4-5","max_tokens":8192,"messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]}]}""", sent);
    }

    [Fact]
    public async Task Send_SystemAndDeveloperMessages_GoToTopLevelSystemInOrder()
    {
        await using var rig = await AnthropicRig.StartAsync();
        var body = Body(
            Msg("system", "Be brief."),
            Msg("user", "Hi"),
            Msg("developer", new JsonArray(new JsonObject { ["type"] = "text", ["text"] = "Answer in French." })));

        var sent = await rig.TranslateAsync(body);

        AssertJson("""[{"type":"text","text":"Be brief."},{"type":"text","text":"Answer in French."}]""", sent["system"]);
        AssertJson("""[{"role":"user","content":[{"type":"text","text":"Hi"}]}]""", sent["messages"]);
    }

    [Fact]
    public async Task Send_ConsecutiveSameRoleTurns_AreMergedToAlternate()
    {
        await using var rig = await AnthropicRig.StartAsync();
        var body = Body(
            Msg("user", "One."),
            Msg("user", "Two."),
            Msg("assistant", "Three."),
            Msg("assistant", ""),
            Msg("assistant", "Four."),
            Msg("user", "Five."));

        var sent = await rig.TranslateAsync(body);

        AssertJson(
            """
            [{"role":"user","content":[{"type":"text","text":"One."},{"type":"text","text":"Two."}]},
             {"role":"assistant","content":[{"type":"text","text":"Three."},{"type":"text","text":"Four."}]},
             {"role":"user","content":[{"type":"text","text":"Five."}]}]
            """,
            sent["messages"]);
    }

    [Fact]
    public async Task Send_ImageParts_BecomeBase64AndUrlSources()
    {
        await using var rig = await AnthropicRig.StartAsync();
        var content = new JsonArray(
            new JsonObject { ["type"] = "text", ["text"] = "What is in these?" },
            new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = "data:image/png;base64,iVBORw0KGgo=", ["detail"] = "high" } },
            new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = "https://example.com/cat.jpg" } });

        var sent = await rig.TranslateAsync(Body(Msg("user", content)));

        AssertJson(
            """
            [{"type":"text","text":"What is in these?"},
             {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
             {"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}}]
            """,
            sent["messages"]![0]!["content"]);
    }

    [Fact]
    public async Task Send_ToolsAndToolChoice_AreTranslated()
    {
        await using var rig = await AnthropicRig.StartAsync();
        var body = AnthropicRig.Body("Weather in Paris?");
        body["tools"] = new JsonArray(
            new JsonObject
            {
                ["type"] = "function",
                ["function"] = new JsonObject
                {
                    ["name"] = "get_weather",
                    ["description"] = "Current weather.",
                    ["parameters"] = JsonNode.Parse("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"""),
                },
            },
            new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = "now" } });
        body["tool_choice"] = "required";
        body["parallel_tool_calls"] = false;

        var sent = await rig.TranslateAsync(body);

        AssertJson(
            """
            [{"name":"get_weather","description":"Current weather.","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}},
             {"name":"now","input_schema":{"type":"object","properties":{}}}]
            """,
            sent["tools"]);
        AssertJson("""{"type":"any","disable_parallel_tool_use":true}""", sent["tool_choice"]);
    }

    [Theory]
    [InlineData("\"auto\"", """{"type":"auto"}""")]
    [InlineData("\"none\"", """{"type":"none"}""")]
    [InlineData("\"required\"", """{"type":"any"}""")]
    [InlineData("""{"type":"function","function":{"name":"get_weather"}}""", """{"type":"tool","name":"get_weather"}""")]
    public async Task Send_ToolChoice_MapsToAnthropicChoice(string openAi, string anthropic)
    {
        await using var rig = await AnthropicRig.StartAsync();
        var body = AnthropicRig.Body();
        body["tools"] = new JsonArray(new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = "get_weather" } });
        body["tool_choice"] = JsonNode.Parse(openAi);

        var sent = await rig.TranslateAsync(body);

        AssertJson(anthropic, sent["tool_choice"]);
    }

    [Fact]
    public async Task Send_AssistantToolCallsAndToolResults_BecomeToolUseAndToolResultBlocks()
    {
        await using var rig = await AnthropicRig.StartAsync();
        var assistant = new JsonObject
        {
            ["role"] = "assistant",
            ["content"] = null,
            ["tool_calls"] = new JsonArray(
                new JsonObject { ["id"] = "call_1", ["type"] = "function", ["function"] = new JsonObject { ["name"] = "get_weather", ["arguments"] = """{"city":"Paris"}""" } },
                new JsonObject { ["id"] = "call.2", ["type"] = "function", ["function"] = new JsonObject { ["name"] = "now", ["arguments"] = "" } }),
        };
        var body = Body(
            Msg("user", "Weather and time?"),
            assistant,
            new JsonObject { ["role"] = "tool", ["tool_call_id"] = "call_1", ["content"] = "18°C, sunny" },
            new JsonObject { ["role"] = "tool", ["tool_call_id"] = "call.2", ["content"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = "12:00" }) },
            Msg("user", "Thanks. Summarise."));

        var sent = await rig.TranslateAsync(body);

        // Parallel tool calls in one assistant turn; their results (and the next user text) in one user turn,
        // results first. An id Anthropic would refuse ("call.2") is rewritten the same way on both sides.
        AssertJson(
            """
            [{"role":"user","content":[{"type":"text","text":"Weather and time?"}]},
             {"role":"assistant","content":[
               {"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}},
               {"type":"tool_use","id":"call_2","name":"now","input":{}}]},
             {"role":"user","content":[
               {"type":"tool_result","tool_use_id":"call_1","content":"18°C, sunny"},
               {"type":"tool_result","tool_use_id":"call_2","content":[{"type":"text","text":"12:00"}]},
               {"type":"text","text":"Thanks. Summarise."}]}]
            """,
            sent["messages"]);
    }

    [Fact]
    public async Task Send_UserTextBetweenToolCallAndResult_ToolResultComesFirst()
    {
        await using var rig = await AnthropicRig.StartAsync();
        var assistant = new JsonObject
        {
            ["role"] = "assistant",
            ["tool_calls"] = new JsonArray(new JsonObject { ["id"] = "call_1", ["type"] = "function", ["function"] = new JsonObject { ["name"] = "f", ["arguments"] = "{}" } }),
        };
        var body = Body(Msg("user", "Go."), assistant, Msg("user", "Hurry."), new JsonObject { ["role"] = "tool", ["tool_call_id"] = "call_1", ["content"] = "done" });

        var sent = await rig.TranslateAsync(body);

        AssertJson(
            """[{"type":"tool_result","tool_use_id":"call_1","content":"done"},{"type":"text","text":"Hurry."}]""",
            sent["messages"]![2]!["content"]);
    }

    [Fact]
    public async Task Send_StopAndSampling_AreMapped()
    {
        await using var rig = await AnthropicRig.StartAsync();
        var body = AnthropicRig.Body();
        body["stop"] = new JsonArray("END", "\n", "STOP");
        body["temperature"] = 1.5;
        body["top_p"] = 0.9;
        body["max_completion_tokens"] = 300;
        body["user"] = "user-42";
        body["seed"] = 7;
        body["presence_penalty"] = 0.5;
        body["logprobs"] = false;

        var sent = await rig.TranslateAsync(body);

        AssertJson("""["END","STOP"]""", sent["stop_sequences"]);
        Assert.Equal(1.0, (double)sent["temperature"]!);
        Assert.Equal(0.9, (double)sent["top_p"]!);
        Assert.Equal(300, (int)sent["max_tokens"]!);
        AssertJson("""{"user_id":"user-42"}""", sent["metadata"]);
        Assert.False(sent.ContainsKey("seed"));
        Assert.False(sent.ContainsKey("presence_penalty"));
        Assert.False(sent.ContainsKey("logprobs"));
    }

    [Fact]
    public async Task Send_StopAsString_BecomesOneStopSequence()
    {
        await using var rig = await AnthropicRig.StartAsync();
        var body = AnthropicRig.Body();
        body["stop"] = "###";
        body["max_tokens"] = 50;

        var sent = await rig.TranslateAsync(body);

        AssertJson("""["###"]""", sent["stop_sequences"]);
        Assert.Equal(50, (int)sent["max_tokens"]!);
    }

    [Fact]
    public async Task Send_NoMaxTokens_UsesDeploymentMaxOutputTokens()
    {
        await using var rig = await AnthropicRig.StartAsync(maxOutputTokens: 1_234);

        var sent = await rig.TranslateAsync(AnthropicRig.Body());

        Assert.Equal(1_234, (int)sent["max_tokens"]!);
    }

    [Fact]
    public async Task Send_Streaming_AsksForStream()
    {
        await using var rig = await AnthropicRig.StartAsync();

        var read = await rig.StreamAsync(AnthropicRig.Body());

        Assert.Null(read.Broken);
        Assert.True((bool)rig.Fake.SingleBody["stream"]!);
        Assert.Equal("text/event-stream", rig.Fake.Requests.Single().Header("accept"));
    }

    [Fact]
    public async Task Send_JsonObjectFormat_AddsSystemInstruction()
    {
        await using var rig = await AnthropicRig.StartAsync();
        var body = Body(Msg("system", "You list fruit."), Msg("user", "Three fruits as JSON."));
        body["response_format"] = new JsonObject { ["type"] = "json_object" };

        var sent = await rig.TranslateAsync(body);

        var system = sent["system"]!.AsArray();
        Assert.Equal(2, system.Count);
        Assert.Equal("You list fruit.", (string?)system[0]!["text"]);
        Assert.Contains("single valid JSON object", (string?)system[1]!["text"], StringComparison.Ordinal);
        Assert.False(sent.ContainsKey("tools"));
    }

    [Fact]
    public async Task Send_JsonSchemaFormat_ForcesAnswerTool()
    {
        await using var rig = await AnthropicRig.StartAsync();
        var body = AnthropicRig.Body("A fruit.");
        var schema = JsonNode.Parse("""{"type":"object","properties":{"name":{"type":"string"}},"required":["name"],"additionalProperties":false}""");
        body["response_format"] = new JsonObject
        {
            ["type"] = "json_schema",
            ["json_schema"] = new JsonObject { ["name"] = "fruit", ["strict"] = true, ["schema"] = schema },
        };

        var sent = await rig.TranslateAsync(body);

        AssertJson(
            $$"""[{"name":"json_response","description":"Give the final answer as JSON matching this schema.","input_schema":{{schema!.ToJsonString()}}}]""",
            sent["tools"]);
        AssertJson("""{"type":"tool","name":"json_response"}""", sent["tool_choice"]);
    }

    [Fact]
    public async Task Send_JsonSchemaWithClientTools_LetsModelChooseAnyTool()
    {
        await using var rig = await AnthropicRig.StartAsync();
        var body = AnthropicRig.Body();
        body["tools"] = new JsonArray(new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = "lookup" } });
        body["response_format"] = JsonNode.Parse("""{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}}""");

        var sent = await rig.TranslateAsync(body);

        Assert.Equal(["lookup", "json_response"], sent["tools"]!.AsArray().Select(t => (string)t!["name"]!));
        AssertJson("""{"type":"any"}""", sent["tool_choice"]);
        Assert.Contains("json_response", (string?)sent["system"]![0]!["text"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Send_CacheControlOnContentPart_PassesThrough()
    {
        await using var rig = await AnthropicRig.StartAsync();
        var system = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = "A long manual.", ["cache_control"] = new JsonObject { ["type"] = "ephemeral", ["ttl"] = "1h" } });

        var sent = await rig.TranslateAsync(Body(Msg("system", system), Msg("user", "Q?")));

        AssertJson("""[{"type":"text","text":"A long manual.","cache_control":{"type":"ephemeral","ttl":"1h"}}]""", sent["system"]);
    }

    [Fact]
    public async Task Send_DeeplyNestedToolSchema_IsForwardedWhole()
    {
        await using var rig = await AnthropicRig.StartAsync();
        JsonNode schema = new JsonObject { ["type"] = "string" };
        for (var i = 0; i < 40; i++)
        {
            schema = new JsonObject { ["type"] = "object", ["properties"] = new JsonObject { ["x"] = schema } };
        }

        var body = AnthropicRig.Body();
        body["tools"] = new JsonArray(new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = "deep", ["parameters"] = schema.DeepClone() } });

        var sent = await rig.TranslateAsync(body);

        Assert.True(JsonNode.DeepEquals(schema, sent["tools"]![0]!["input_schema"]));
    }

    [Fact]
    public async Task Send_NGreaterThanOne_FailsAsBadRequestWithoutCallingAnthropic()
    {
        await using var rig = await AnthropicRig.StartAsync();
        var body = AnthropicRig.Body();
        body["n"] = 2;

        var result = await rig.SendAsync(body);

        var failure = Assert.IsType<UpstreamFailure>(result.Failure);
        Assert.Equal(FailureKind.BadRequest, failure.Kind);
        Assert.Equal(400, failure.Status);
        Assert.False(failure.ShouldFailOver);
        Assert.Contains("Anthropic does not support n>1", failure.Message, StringComparison.Ordinal);
        Assert.Empty(rig.Fake.Requests);
    }

    [Theory]
    [InlineData("""{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}""", "audio")]
    [InlineData("""{"type":"image_url","image_url":{"url":"ftp://example.com/a.png"}}""", "http(s) URL")]
    [InlineData("""{"type":"file","file":{"file_id":"file-123"}}""", "file_id")]
    public async Task Send_UntranslatableContent_FailsAsBadRequest(string part, string expected)
    {
        await using var rig = await AnthropicRig.StartAsync();

        var result = await rig.SendAsync(Body(Msg("user", new JsonArray(JsonNode.Parse(part)))));

        Assert.Equal(FailureKind.BadRequest, result.Failure?.Kind);
        Assert.Contains(expected, result.Failure!.Message, StringComparison.Ordinal);
        Assert.Empty(rig.Fake.Requests);
    }
}
