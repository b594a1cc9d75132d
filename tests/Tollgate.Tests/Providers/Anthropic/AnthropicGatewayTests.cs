using System.ClientModel;
using System.ClientModel.Primitives;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using Tollgate.Tests.Fakes;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Providers.Anthropic;

/// <summary>
/// A Claude deployment in a route beside an OpenAI-compatible one, through the real gateway, driven by the
/// official OpenAI SDK: the client cannot tell it is talking to Anthropic.
/// </summary>
public sealed class AnthropicGatewayTests : IAsyncLifetime
{
    private const string SecretName = "ANTHROPIC_API_KEY";

    private FakeAnthropic _claude = null!;
    private FakeUpstream _backup = null!;
    private TestGateway _gateway = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _claude = await FakeAnthropic.StartAsync(Ct);
        _backup = await FakeUpstream.StartAsync("sk-backup", Ct);
        var claudeProvider = new JsonObject { ["type"] = "anthropic", ["baseUrl"] = _claude.BaseUrl.ToString(), ["apiKeyEnv"] = SecretName };
        var claudeModel = Configs.Model("claude", "claude-sonnet-4-5", 3m, 15m, maxOutputTokens: 8_192, cachedInput: 0.30m);
        claudeModel["cacheWrite5mPerMillion"] = 3.75m;
        claudeModel["cacheWrite1hPerMillion"] = 6m;
        var config = new JsonObject
        {
            ["providers"] = new JsonObject { ["claude"] = claudeProvider, ["backup"] = Configs.Provider(_backup.BaseUrl, "BACKUP_KEY") },
            ["models"] = new JsonObject
            {
                ["claude-sonnet"] = claudeModel,
                ["gpt-backup"] = Configs.Model("backup", "gpt-backup-upstream", 5m, 20m),
            },
            ["routes"] = new JsonObject { ["smart"] = Configs.Route("ordered", "claude-sonnet", "gpt-backup") },
        };
        var secrets = new Dictionary<string, string> { [SecretName] = FakeAnthropic.ApiKey, ["BACKUP_KEY"] = "sk-backup" };
        _gateway = await TestGateway.StartAsync(config, secrets, cancellationToken: Ct);
    }

    public async ValueTask DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _claude.DisposeAsync();
        await _backup.DisposeAsync();
    }

    private ChatClient Chat()
    {
        var options = new OpenAIClientOptions { Endpoint = new Uri(_gateway.BaseAddress, "v1"), RetryPolicy = new ClientRetryPolicy(maxRetries: 0) };
        return new ChatClient("smart", new ApiKeyCredential(_gateway.ClientKey), options);
    }

    [Fact]
    public async Task CompleteChat_ViaSdk_AnswersFromClaude()
    {
        var usage = new JsonObject { ["input_tokens"] = 100, ["cache_read_input_tokens"] = 1_000, ["cache_creation_input_tokens"] = 0, ["output_tokens"] = 20 };
        _claude.Enqueue(AnthropicBehavior.Text("Bonjour from Claude.", usage));

        ChatCompletion completion = await Chat().CompleteChatAsync(
            [new SystemChatMessage("Answer in French."), new UserChatMessage("Hello")], new ChatCompletionOptions { MaxOutputTokenCount = 64 }, Ct);

        Assert.Equal("Bonjour from Claude.", completion.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal("claude-sonnet-4-5", completion.Model);
        Assert.Equal(1_100, completion.Usage.InputTokenCount);
        Assert.Equal(1_000, completion.Usage.InputTokenDetails.CachedTokenCount);
        Assert.Equal(20, completion.Usage.OutputTokenCount);

        var sent = _claude.Requests.Single();
        Assert.Equal(FakeAnthropic.ApiKey, sent.Header("x-api-key"));
        Assert.DoesNotContain(sent.Headers, h => h.Value.Contains(_gateway.ClientKey, StringComparison.Ordinal));
        Assert.Equal("Answer in French.", (string?)sent.Json!["system"]![0]!["text"]);
        Assert.Equal(64, (int)sent.Json["max_tokens"]!);
        Assert.Equal(0, _backup.RequestCount);
    }

    [Fact]
    public async Task CompleteChatStreaming_ViaSdk_AssemblesTextAndUsage()
    {
        _claude.Enqueue(AnthropicBehavior.Text("Streaming from Claude works.", new JsonObject { ["input_tokens"] = 12, ["output_tokens"] = 7 }));

        var text = new StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        await foreach (var update in Chat().CompleteChatStreamingAsync([new UserChatMessage("Stream please")], cancellationToken: Ct))
        {
            text.Append(string.Concat(update.ContentUpdate.Select(part => part.Text)));
            usage ??= update.Usage;
            finish ??= update.FinishReason;
        }

        Assert.Equal("Streaming from Claude works.", text.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.Equal(12, usage?.InputTokenCount);
        Assert.Equal(7, usage?.OutputTokenCount);
        Assert.True((bool)_claude.SingleBody["stream"]!);
    }

    [Fact]
    public async Task CompleteChatStreaming_ToolCalls_SdkAssemblesEachCall()
    {
        _claude.Enqueue(AnthropicBehavior.Reply(new AnthropicAnswer(
            [new ToolUseBlock("toolu_01", "get_weather", """{"city":"Paris"}"""), new ToolUseBlock("toolu_02", "get_weather", """{"city":"Oslo"}""")],
            StopReason: "tool_use")));
        var options = new ChatCompletionOptions { Tools = { ChatTool.CreateFunctionTool("get_weather", "Weather.", BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}}}""")) } };

        var ids = new Dictionary<int, string>();
        var arguments = new Dictionary<int, StringBuilder>();
        ChatFinishReason? finish = null;
        await foreach (var update in Chat().CompleteChatStreamingAsync([new UserChatMessage("Paris and Oslo?")], options, Ct))
        {
            foreach (var call in update.ToolCallUpdates)
            {
                if (call.ToolCallId is { } id)
                {
                    ids[call.Index] = id;
                }

                arguments.TryAdd(call.Index, new StringBuilder());
                arguments[call.Index].Append(call.FunctionArgumentsUpdate?.ToString());
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal(ChatFinishReason.ToolCalls, finish);
        Assert.Equal("toolu_01", ids[0]);
        Assert.Equal("toolu_02", ids[1]);
        Assert.Equal("""{"city":"Paris"}""", arguments[0].ToString());
        Assert.Equal("""{"city":"Oslo"}""", arguments[1].ToString());
        Assert.Equal("get_weather", (string?)_claude.SingleBody["tools"]![0]!["name"]);
    }

    [Fact]
    public async Task Post_ClaudeOverloaded_FailsOverToOpenAICompatibleBackup()
    {
        _claude.Enqueue(AnthropicBehavior.Error(529, "overloaded_error", "Overloaded"));
        _backup.Enqueue(FakeBehavior.Ok("Backup answer."));

        ChatCompletion completion = await Chat().CompleteChatAsync([new UserChatMessage("Hello")], cancellationToken: Ct);

        Assert.Equal("Backup answer.", completion.Content[0].Text);
        Assert.Single(_claude.Requests);
        Assert.Equal(1, _backup.RequestCount);
    }

    [Fact]
    public async Task Post_NGreaterThanOne_Is400WithoutFailover()
    {
        var body = new JsonObject
        {
            ["model"] = "smart",
            ["n"] = 2,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Two answers." }),
        };

        using var response = await _gateway.Client.PostAsync("v1/chat/completions", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"), Ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("Anthropic does not support n>1", await response.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        Assert.Empty(_claude.Requests);
        Assert.Equal(0, _backup.RequestCount);
    }

    [Fact]
    public async Task Post_LoneSurrogateEscapeInContent_IsNeverA500()
    {
        const string Body = """{"model":"smart","messages":[{"role":"user","content":"half a pair \ud800 here"}]}""";

        using var response = await _gateway.Client.PostAsync("v1/chat/completions", new StringContent(Body, Encoding.UTF8, "application/json"), Ct);

        // The translation must read the text; it is the client's error, told as such, and no provider is tried.
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("surrogate", await response.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        Assert.Empty(_claude.Requests);
        Assert.Equal(0, _backup.RequestCount);
    }

    [Fact]
    public async Task Post_NonStreaming_ReportsCostFromCacheBuckets()
    {
        var usage = JsonNode.Parse("""
            {"input_tokens":40,"cache_creation_input_tokens":3000,"cache_read_input_tokens":500,
             "cache_creation":{"ephemeral_5m_input_tokens":1000,"ephemeral_1h_input_tokens":2000},"output_tokens":120}
            """)!.AsObject();
        _claude.Enqueue(AnthropicBehavior.Text("Cached.", usage));
        var body = new JsonObject { ["model"] = "smart", ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi" }) };

        using var response = await _gateway.Client.PostAsync("v1/chat/completions", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("claude-sonnet", response.Headers.GetValues("x-tollgate-deployment").Single());
        Assert.Equal("reported", response.Headers.GetValues("x-tollgate-usage").Single());

        // 40×3 + 500×0.30 + 1000×3.75 + 2000×6 + 120×15 = 17820 per 1M.
        Assert.Equal(0.01782m, decimal.Parse(response.Headers.GetValues("x-tollgate-cost-usd").Single(), CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task PostStreaming_ErrorEventMidStream_EndsWithTruncationError()
    {
        _claude.Enqueue(new AnthropicBehavior { Answer = AnthropicAnswer.Text("One two three four"), ErrorEventAfter = 5 });
        var body = new JsonObject
        {
            ["model"] = "smart",
            ["stream"] = true,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Count." }),
        };
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };

        using var response = await _gateway.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
        var text = await response.Content.ReadAsStringAsync(Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("\"content\":\"One\"", text, StringComparison.Ordinal);
        Assert.Contains("stream_truncated", text, StringComparison.Ordinal);
        Assert.DoesNotContain("[DONE]", text, StringComparison.Ordinal);
        Assert.Equal(0, _backup.RequestCount);
    }
}
