using System.ClientModel;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Embeddings;
using Tollgate.Tests.Fakes;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Providers.Gemini;

/// <summary>
/// The real gateway with a Gemini deployment beside an OpenAI-compatible one in route <c>chat</c> (Gemini
/// first), driven by the official OpenAI SDK: the client never notices which API answered.
/// </summary>
public sealed class GeminiGatewayTests : IAsyncLifetime
{
    private FakeGemini _gemini = null!;
    private FakeUpstream _openAi = null!;
    private TestGateway _gateway = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _gemini = await FakeGemini.StartAsync(Ct);
        _openAi = await FakeUpstream.StartAsync("sk-openai", Ct);
        var config = new JsonObject
        {
            ["providers"] = new JsonObject
            {
                ["google"] = GeminiHarness.Provider(_gemini.BaseUrl),
                ["openai"] = Configs.Provider(_openAi.BaseUrl, "OPENAI_KEY"),
            },
            ["models"] = new JsonObject
            {
                ["flash"] = Configs.Model("google", "gemini-2.5-flash", 0.30m, 2.50m, cachedInput: 0.03m),
                ["gpt"] = Configs.Model("openai", "gpt-4o", 2.50m, 10m),
                ["embed"] = Configs.Model("google", "gemini-embedding-001", 0.15m, 0m, capabilities: ["embeddings"]),
            },
            ["routes"] = new JsonObject { ["chat"] = Configs.Route("ordered", "flash", "gpt") },
        };
        var secrets = new Dictionary<string, string> { ["GEMINI_API_KEY"] = FakeGemini.ApiKey, ["OPENAI_KEY"] = "sk-openai" };
        _gateway = await TestGateway.StartAsync(config, secrets, cancellationToken: Ct);
    }

    public async ValueTask DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _openAi.DisposeAsync();
        await _gemini.DisposeAsync();
    }

    [Fact]
    public async Task CompleteChat_GeminiFirstInRoute_SdkReadsTheAnswerAndUsage()
    {
        ChatCompletion completion = await Chat().CompleteChatAsync([new SystemChatMessage("Be nice."), new UserChatMessage("hello")], cancellationToken: Ct);

        Assert.Equal(FakeGemini.DefaultText, completion.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal("gemini-2.5-flash", completion.Model);
        Assert.Equal(12, completion.Usage.InputTokenCount);
        Assert.Equal(5, completion.Usage.OutputTokenCount);
        var upstream = Assert.Single(_gemini.Requests);
        Assert.Equal("Be nice.", (string?)upstream.Json!["systemInstruction"]!["parts"]![0]!["text"]);
        Assert.DoesNotContain(upstream.Headers, h => h.Value.Contains(_gateway.ClientKey, StringComparison.Ordinal));
        Assert.Equal(0, _openAi.RequestCount);
    }

    [Fact]
    public async Task Post_LoneSurrogateEscapeInContent_IsNeverA500()
    {
        const string Body = """{"model":"chat","messages":[{"role":"user","content":"half a pair \ud800 here"}]}""";

        using var response = await _gateway.Client.PostAsync("v1/chat/completions", new StringContent(Body, System.Text.Encoding.UTF8, "application/json"), Ct);

        // The translation must read the text: the client's error, told as such.
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("surrogate", await response.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Post_NonStreaming_RoutingAndCostHeadersNameTheGeminiDeployment()
    {
        using var response = await PostAsync(new JsonObject
        {
            ["model"] = "chat",
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" }),
        });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("google", response.Headers.GetValues("x-tollgate-provider").Single());
        Assert.Equal("flash", response.Headers.GetValues("x-tollgate-deployment").Single());
        Assert.Equal("reported", response.Headers.GetValues("x-tollgate-usage").Single());

        // Default answer: 12 prompt, 5 candidates → 12×0.30 + 5×2.50 = 16.1 µ$.
        Assert.Equal(0.0000161m, decimal.Parse(response.Headers.GetValues("x-tollgate-cost-usd").Single(), CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task CompleteChatStreaming_Gemini_SdkAssemblesTextFinishAndUsage()
    {
        var text = new StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        await foreach (var update in Chat().CompleteChatStreamingAsync([new UserChatMessage("hello")], cancellationToken: Ct))
        {
            text.Append(string.Concat(update.ContentUpdate.Select(part => part.Text)));
            usage ??= update.Usage;
            finish ??= update.FinishReason;
        }

        Assert.Equal(FakeGemini.DefaultText, text.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.Equal(17, usage?.TotalTokenCount);
        Assert.Equal("?alt=sse", Assert.Single(_gemini.Requests).QueryString);
    }

    [Fact]
    public async Task CompleteChatStreaming_GeminiFunctionCall_SdkAssemblesTheToolCall()
    {
        _gemini.Enqueue(GeminiReply.Stream([
            GeminiWire.Response([GeminiWire.Candidate(0, [GeminiWire.Call("get_weather", new JsonObject { ["city"] = "Paris" })], "STOP")], GeminiWire.Usage(30, 7)).ToJsonString(),
        ]));
        var options = new ChatCompletionOptions
        {
            Tools = { ChatTool.CreateFunctionTool("get_weather", "Weather.", BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}}}""")) },
        };

        string? id = null, name = null;
        var arguments = new StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in Chat().CompleteChatStreamingAsync([new UserChatMessage("Weather in Paris?")], options, Ct))
        {
            foreach (var call in update.ToolCallUpdates)
            {
                id ??= call.ToolCallId;
                name ??= call.FunctionName;
                arguments.Append(call.FunctionArgumentsUpdate?.ToString());
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal("call_0", id);
        Assert.Equal("get_weather", name);
        Assert.Equal("""{"city":"Paris"}""", arguments.ToString());
        Assert.Equal(ChatFinishReason.ToolCalls, finish);

        // The client answers the call: Gemini receives the call and a named function response.
        ChatCompletion final = await Chat().CompleteChatAsync(
            [
                new UserChatMessage("Weather in Paris?"),
                new AssistantChatMessage([ChatToolCall.CreateFunctionToolCall(id!, name!, BinaryData.FromString(arguments.ToString()))]),
                new ToolChatMessage(id!, "18C and sunny"),
            ],
            options,
            Ct);

        Assert.Equal(FakeGemini.DefaultText, final.Content[0].Text);
        var contents = _gemini.Requests[1].Json!["contents"]!.AsArray();
        Assert.Equal("get_weather", (string?)contents[1]!["parts"]![0]!["functionCall"]!["name"]);
        Assert.Equal("get_weather", (string?)contents[2]!["parts"]![0]!["functionResponse"]!["name"]);
        Assert.Equal("18C and sunny", (string?)contents[2]!["parts"]![0]!["functionResponse"]!["response"]!["content"]);
    }

    [Fact]
    public async Task CompleteChat_GeminiUnavailable_FailsOverToTheOpenAICompatibleDeployment()
    {
        _gemini.Enqueue(GeminiReply.Error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."));

        using var response = await PostAsync(new JsonObject
        {
            ["model"] = "chat",
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" }),
        });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("openai", response.Headers.GetValues("x-tollgate-provider").Single());
        Assert.Contains("flash:upstream_503", response.Headers.GetValues("x-tollgate-route").Single(), StringComparison.Ordinal);
        Assert.Equal(1, _openAi.RequestCount);
    }

    [Fact]
    public async Task GenerateEmbeddings_GeminiEmbeddingModel_SdkGetsOneVectorPerInput()
    {
        var client = new EmbeddingClient("embed", new ApiKeyCredential(_gateway.ClientKey), Options());

        OpenAIEmbeddingCollection embeddings = await client.GenerateEmbeddingsAsync(["first", "second"], cancellationToken: Ct);

        Assert.Equal(2, embeddings.Count);
        Assert.Equal([0, 1], embeddings.Select(e => e.Index));
        Assert.Equal(0.2f, embeddings[1].ToFloats().Span[0], 0.0001f);
        Assert.True(embeddings.Usage.InputTokenCount > 0);
        Assert.Equal("/v1beta/models/gemini-embedding-001:batchEmbedContents", Assert.Single(_gemini.Requests).Path);
    }

    private ChatClient Chat() => new("chat", new ApiKeyCredential(_gateway.ClientKey), Options());

    private OpenAIClientOptions Options() => new() { Endpoint = new Uri(_gateway.BaseAddress, "v1") };

    private Task<HttpResponseMessage> PostAsync(JsonObject body) =>
        _gateway.Client.PostAsync("v1/chat/completions", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"), Ct);
}
