using System.Text.Json.Nodes;
using Tollgate.Providers;

namespace Tollgate.Tests.Providers.Gemini;

/// <summary>What the fake Gemini receives for a given OpenAI request: the wire format of the translation.</summary>
public sealed class GeminiRequestTranslationTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task SendAsync_NonStreaming_PostsGenerateContentWithTheProviderKeyInAHeader()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);

        await harness.CompleteAsync(GeminiHarness.Chat());

        var request = Assert.Single(fake.Requests);
        Assert.Equal("/v1beta/models/gemini-2.5-flash:generateContent", request.Path);
        Assert.Equal(string.Empty, request.QueryString);
        Assert.Equal(FakeGemini.ApiKey, request.Header("x-goog-api-key"));
        Assert.Null(request.Authorization);
        Assert.StartsWith("application/json", request.Header("Content-Type"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SendAsync_Streaming_PostsStreamGenerateContentWithAltSse()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);

        await harness.StreamAsync(GeminiHarness.Chat());

        var request = Assert.Single(fake.Requests);
        Assert.Equal("/v1beta/models/gemini-2.5-flash:streamGenerateContent", request.Path);
        Assert.Equal("?alt=sse", request.QueryString);
        Assert.DoesNotContain("key=", request.QueryString, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SendAsync_SystemDeveloperUserAssistant_MapsRolesAndMergesConsecutiveTurns()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        var body = GeminiHarness.Chat();
        body["messages"] = new JsonArray(
            Message("system", "Be brief."),
            Message("user", "First."),
            Message("developer", "Answer in French."),
            Message("user", "Second."),
            Message("assistant", "Premier."),
            Message("assistant", "Deuxième."),
            Message("user", "Merci."));

        await harness.CompleteAsync(body);

        var sent = fake.Requests.Single().Json!;
        AssertJson("""{"parts":[{"text":"Be brief."},{"text":"Answer in French."}]}""", sent["systemInstruction"]);
        AssertJson(
            """
            [
              {"role":"user","parts":[{"text":"First."},{"text":"Second."}]},
              {"role":"model","parts":[{"text":"Premier."},{"text":"Deuxième."}]},
              {"role":"user","parts":[{"text":"Merci."}]}
            ]
            """,
            sent["contents"]);
        Assert.Null(sent["generationConfig"]);
        Assert.Null(sent["tools"]);
    }

    [Fact]
    public async Task SendAsync_OnlyASystemMessage_SendsItAsTheUserTurn()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        var body = GeminiHarness.Chat();
        body["messages"] = new JsonArray(Message("system", "Tell a joke."));

        await harness.CompleteAsync(body);

        var sent = fake.Requests.Single().Json!;
        AssertJson("""[{"role":"user","parts":[{"text":"Tell a joke."}]}]""", sent["contents"]);
        Assert.Null(sent["systemInstruction"]);
    }

    [Fact]
    public async Task SendAsync_ImageParts_DataUrlsBecomeInlineDataAndUrlsBecomeFileData()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        var body = GeminiHarness.Chat();
        body["messages"] = new JsonArray(new JsonObject
        {
            ["role"] = "user",
            ["content"] = new JsonArray(
                new JsonObject { ["type"] = "text", ["text"] = "Compare these." },
                Image("data:image/png;base64,iVBORw0KGgo="),
                Image("https://example.com/images/cat.webp?size=large"),
                Image("https://example.com/render/12345")),
        });

        await harness.CompleteAsync(body);

        AssertJson(
            """
            [{"role":"user","parts":[
              {"text":"Compare these."},
              {"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}},
              {"fileData":{"mimeType":"image/webp","fileUri":"https://example.com/images/cat.webp?size=large"}},
              {"fileData":{"mimeType":"image/jpeg","fileUri":"https://example.com/render/12345"}}
            ]}]
            """,
            fake.Requests.Single().Json!["contents"]);
    }

    [Fact]
    public async Task SendAsync_SamplingParameters_BecomeGenerationConfig()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        var body = GeminiHarness.Chat();
        body["max_tokens"] = 100;
        body["max_completion_tokens"] = 256;
        body["temperature"] = 0.2;
        body["top_p"] = 0.9;
        body["top_k"] = 40;
        body["stop"] = new JsonArray("END", "STOP");
        body["seed"] = 7;
        body["n"] = 2;
        body["presence_penalty"] = 0;
        body["frequency_penalty"] = 0.5;
        body["response_format"] = new JsonObject { ["type"] = "json_object" };
        body["user"] = "u-1";
        body["logit_bias"] = new JsonObject { ["50256"] = -100 };

        await harness.CompleteAsync(body);

        AssertJson(
            """
            {"maxOutputTokens":256,"temperature":0.2,"topP":0.9,"topK":40,"candidateCount":2,"seed":7,"frequencyPenalty":0.5,
             "stopSequences":["END","STOP"],"responseMimeType":"application/json"}
            """,
            fake.Requests.Single().Json!["generationConfig"]);
    }

    [Fact]
    public async Task SendAsync_StopStringAndReasoningEffort_BecomeStopSequencesAndThinkingBudget()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        var body = GeminiHarness.Chat();
        body["stop"] = "\n\n";
        body["reasoning_effort"] = "low";

        await harness.CompleteAsync(body);

        AssertJson("""{"stopSequences":["\n\n"],"thinkingConfig":{"thinkingBudget":1024}}""", fake.Requests.Single().Json!["generationConfig"]);
    }

    [Fact]
    public async Task SendAsync_JsonSchemaResponseFormat_SendsTheSchemaAsResponseJsonSchema()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        var schema = JsonNode.Parse("""
            {"type":"object","properties":{"city":{"type":"string"},"temp":{"type":["number","null"]}},
             "required":["city","temp"],"additionalProperties":false}
            """)!;
        var body = GeminiHarness.Chat();
        body["response_format"] = new JsonObject
        {
            ["type"] = "json_schema",
            ["json_schema"] = new JsonObject { ["name"] = "weather", ["strict"] = true, ["schema"] = schema.DeepClone() },
        };

        await harness.CompleteAsync(body);

        var config = fake.Requests.Single().Json!["generationConfig"]!;
        Assert.Equal("application/json", (string?)config["responseMimeType"]);
        AssertJson(schema.ToJsonString(), config["responseJsonSchema"]);
        Assert.Null(config["responseSchema"]);
    }

    [Fact]
    public async Task SendAsync_FunctionTools_BecomeDeclarationsWithSchemasInGeminisSubset()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        var body = GeminiHarness.Chat();
        body["tools"] = new JsonArray(
            Tool("get_weather", "Current weather.", """
                {"$schema":"http://json-schema.org/draft-07/schema#","type":"object","additionalProperties":false,
                 "properties":{
                   "city":{"type":"string","description":"City name","format":"email","minLength":1},
                   "unit":{"type":["string","null"],"enum":["C","F"]},
                   "when":{"type":"string","format":"date-time"},
                   "place":{"$ref":"#/$defs/Place"},
                   "tags":{"type":"array","items":{"type":"string"},"maxItems":3},
                   "kind":{"const":"point"}},
                 "required":["city","ghost"],
                 "$defs":{"Place":{"type":"object","properties":{"lat":{"type":"number"},"lon":{"type":"number"}},"required":["lat","lon"]}}}
                """),
            Tool("ping", null, """{"type":"object","properties":{}}"""),
            new JsonObject { ["type"] = "web_search" });

        await harness.CompleteAsync(body);

        AssertJson(
            """
            [{"functionDeclarations":[
              {"name":"get_weather","description":"Current weather.","parameters":{
                "type":"OBJECT",
                "properties":{
                  "city":{"type":"STRING","description":"City name","minLength":1},
                  "unit":{"type":"STRING","nullable":true,"enum":["C","F"]},
                  "when":{"type":"STRING","format":"date-time"},
                  "place":{"type":"OBJECT","properties":{"lat":{"type":"NUMBER"},"lon":{"type":"NUMBER"}},"required":["lat","lon"]},
                  "tags":{"type":"ARRAY","items":{"type":"STRING"},"maxItems":3},
                  "kind":{"type":"STRING","enum":["point"]}},
                "required":["city"]}},
              {"name":"ping"}
            ]}]
            """,
            fake.Requests.Single().Json!["tools"]);
    }

    [Theory]
    [InlineData("\"auto\"", """{"mode":"AUTO"}""")]
    [InlineData("\"none\"", """{"mode":"NONE"}""")]
    [InlineData("\"required\"", """{"mode":"ANY"}""")]
    [InlineData("""{"type":"function","function":{"name":"get_weather"}}""", """{"mode":"ANY","allowedFunctionNames":["get_weather"]}""")]
    public async Task SendAsync_ToolChoice_BecomesFunctionCallingConfig(string toolChoice, string expected)
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        var body = GeminiHarness.Chat();
        body["tools"] = new JsonArray(Tool("get_weather", "Weather.", """{"type":"object","properties":{"city":{"type":"string"}}}"""));
        body["tool_choice"] = JsonNode.Parse(toolChoice);

        await harness.CompleteAsync(body);

        AssertJson(expected, fake.Requests.Single().Json!["toolConfig"]!["functionCallingConfig"]);
    }

    [Fact]
    public async Task SendAsync_ToolCallsAndResults_BecomeFunctionCallsAndNamedFunctionResponses()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        var body = GeminiHarness.Chat();
        body["messages"] = new JsonArray(
            Message("user", "Weather and time in Paris?"),
            new JsonObject
            {
                ["role"] = "assistant",
                ["content"] = null,
                ["tool_calls"] = new JsonArray(
                    ToolCall("call_0", "get_weather", """{"city":"Paris"}"""),
                    ToolCall("call_1", "get_time", """{"tz":"Europe/Paris"}""")),
            },
            new JsonObject { ["role"] = "tool", ["tool_call_id"] = "call_0", ["content"] = """{"temp":18,"sky":"sunny"}""" },
            new JsonObject { ["role"] = "tool", ["tool_call_id"] = "call_1", ["content"] = "12:00" },
            Message("user", "Thanks, and tomorrow?"));

        await harness.CompleteAsync(body);

        AssertJson(
            """
            [
              {"role":"user","parts":[{"text":"Weather and time in Paris?"}]},
              {"role":"model","parts":[
                {"functionCall":{"name":"get_weather","args":{"city":"Paris"}}},
                {"functionCall":{"name":"get_time","args":{"tz":"Europe/Paris"}}}]},
              {"role":"user","parts":[
                {"functionResponse":{"name":"get_weather","response":{"content":{"temp":18,"sky":"sunny"}}}},
                {"functionResponse":{"name":"get_time","response":{"content":"12:00"}}},
                {"text":"Thanks, and tomorrow?"}]}
            ]
            """,
            fake.Requests.Single().Json!["contents"]);
    }

    [Fact]
    public async Task SendAsync_RepeatedToolCallIds_MatchTheNearestEarlierCall()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        var body = GeminiHarness.Chat();
        body["messages"] = new JsonArray(
            Message("user", "Go."),
            new JsonObject { ["role"] = "assistant", ["tool_calls"] = new JsonArray(ToolCall("call_0", "first", "{}")) },
            new JsonObject { ["role"] = "tool", ["tool_call_id"] = "call_0", ["content"] = "one" },
            new JsonObject { ["role"] = "assistant", ["tool_calls"] = new JsonArray(ToolCall("call_0", "second", "")) },
            new JsonObject { ["role"] = "tool", ["tool_call_id"] = "call_0", ["content"] = "two" });

        await harness.CompleteAsync(body);

        var contents = fake.Requests.Single().Json!["contents"]!.AsArray();
        Assert.Equal("first", (string?)contents[2]!["parts"]![0]!["functionResponse"]!["name"]);
        Assert.Equal("second", (string?)contents[3]!["parts"]![0]!["functionCall"]!["name"]);
        AssertJson("{}", contents[3]!["parts"]![0]!["functionCall"]!["args"]);
        Assert.Equal("second", (string?)contents[4]!["parts"]![0]!["functionResponse"]!["name"]);
    }

    [Fact]
    public async Task SendAsync_ToolResultWithUnknownCallId_IsABadRequestThatReachesNoProvider()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        var body = GeminiHarness.Chat();
        body["messages"] = new JsonArray(Message("user", "Hi"), new JsonObject { ["role"] = "tool", ["tool_call_id"] = "call_x", ["content"] = "?" });

        var result = await harness.SendAsync(body);

        Assert.Equal(FailureKind.BadRequest, result.Failure?.Kind);
        Assert.False(result.Failure!.ShouldFailOver);
        Assert.Contains("call_x", result.Failure.Message, StringComparison.Ordinal);
        Assert.Empty(fake.Requests);
    }

    internal static JsonObject Message(string role, string content) => new() { ["role"] = role, ["content"] = content };

    internal static JsonObject ToolCall(string id, string name, string arguments) => new()
    {
        ["id"] = id,
        ["type"] = "function",
        ["function"] = new JsonObject { ["name"] = name, ["arguments"] = arguments },
    };

    internal static JsonObject Tool(string name, string? description, string parameters)
    {
        var function = new JsonObject { ["name"] = name };
        if (description is not null)
        {
            function["description"] = description;
        }

        function["parameters"] = JsonNode.Parse(parameters);
        return new JsonObject { ["type"] = "function", ["function"] = function };
    }

    private static JsonObject Image(string url) => new() { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = url } };

    internal static void AssertJson(string expected, JsonNode? actual)
    {
        var expectedNode = JsonNode.Parse(expected);
        Assert.True(JsonNode.DeepEquals(expectedNode, actual), $"Expected {expectedNode?.ToJsonString()}\nActual   {actual?.ToJsonString()}");
    }
}
