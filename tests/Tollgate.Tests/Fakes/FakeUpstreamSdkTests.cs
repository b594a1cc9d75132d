using System.ClientModel;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Embeddings;
using static Tollgate.Tests.Fakes.FakeHttp;

namespace Tollgate.Tests.Fakes;

/// <summary>
/// The official OpenAI SDK parses what the fake sends: proof that the wire format is right, not just
/// self-consistent.
/// </summary>
[SuppressMessage("Naming", "CA1707:Identifiers should not contain underscores", Justification = "Test names follow Method_Scenario_Expected.")]
public sealed class FakeUpstreamSdkTests
{
    private const int TimeoutMs = 15_000;

    [Fact(Timeout = TimeoutMs)]
    public async Task CompleteChat_OkWithDetails_SdkReadsContentAndUsage()
    {
        await using var upstream = await FakeUpstream.StartAsync("sk-sdk", Ct);
        upstream.Enqueue(FakeBehavior.Ok("Hi there.", promptTokens: 30, completionTokens: 5, cachedTokens: 10, reasoningTokens: 2));

        ChatCompletion completion = await Chat(upstream).CompleteChatAsync([new UserChatMessage("hello")], cancellationToken: Ct);

        Assert.Equal("Hi there.", completion.Content[0].Text);
        Assert.Equal("gpt-sdk", completion.Model);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal(30, completion.Usage.InputTokenCount);
        Assert.Equal(5, completion.Usage.OutputTokenCount);
        Assert.Equal(35, completion.Usage.TotalTokenCount);
        Assert.Equal(10, completion.Usage.InputTokenDetails.CachedTokenCount);
        Assert.Equal(2, completion.Usage.OutputTokenDetails.ReasoningTokenCount);
        Assert.Equal("Bearer sk-sdk", Assert.Single(upstream.Requests).Authorization);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task CompleteChatStreaming_Ok_SdkAssemblesContentAndUsage()
    {
        await using var upstream = await FakeUpstream.StartAsync("sk-sdk", Ct);
        upstream.Enqueue(FakeBehavior.Ok("Streaming works fine.", promptTokens: 8, completionTokens: 4));

        var text = new StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        await foreach (var update in Chat(upstream).CompleteChatStreamingAsync([new UserChatMessage("hello")], cancellationToken: Ct))
        {
            text.Append(string.Concat(update.ContentUpdate.Select(part => part.Text)));
            usage ??= update.Usage;
            finish ??= update.FinishReason;
        }

        Assert.Equal("Streaming works fine.", text.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.Equal(12, usage?.TotalTokenCount);
        Assert.Equal("""{"include_usage":true}""", Assert.Single(upstream.Requests).Json?["stream_options"]?.ToJsonString());
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task CompleteChatStreaming_ToolCall_SdkAssemblesArguments()
    {
        await using var upstream = await FakeUpstream.StartAsync("sk-sdk", Ct);
        const string Arguments = """{"city":"Paris","unit":"celsius"}""";
        upstream.Enqueue(FakeBehavior.ToolCall("get_weather", Arguments));

        var name = new StringBuilder();
        var arguments = new StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in Chat(upstream).CompleteChatStreamingAsync([new UserChatMessage("weather?")], cancellationToken: Ct))
        {
            foreach (var call in update.ToolCallUpdates)
            {
                name.Append(call.FunctionName);
                arguments.Append(call.FunctionArgumentsUpdate?.ToString());
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal("get_weather", name.ToString());
        Assert.Equal(Arguments, arguments.ToString());
        Assert.Equal(ChatFinishReason.ToolCalls, finish);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task GenerateEmbeddings_TwoInputs_SdkDecodesVectors()
    {
        await using var upstream = await FakeUpstream.StartAsync("sk-sdk", Ct);
        var client = new EmbeddingClient("emb-sdk", new ApiKeyCredential("sk-sdk"), Options(upstream));

        OpenAIEmbeddingCollection embeddings = await client.GenerateEmbeddingsAsync(["one two", "three"], cancellationToken: Ct);

        Assert.Equal(2, embeddings.Count);
        Assert.Equal(FakeEmbedding.Vector("one two", FakeEmbedding.DefaultDimensions), embeddings[0].ToFloats().ToArray());
        Assert.Equal(FakeEmbedding.Vector("three", FakeEmbedding.DefaultDimensions), embeddings[1].ToFloats().ToArray());
        Assert.Equal(3, embeddings.Usage.InputTokenCount);
        // The SDK asks for base64 by default, so the fake's base64 path is the one exercised here.
        Assert.Equal("base64", Assert.Single(upstream.Requests).Json?["encoding_format"]?.GetValue<string>());
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task CompleteChat_Status429_SdkSurfacesClientResultException()
    {
        await using var upstream = await FakeUpstream.StartAsync("sk-sdk", Ct);
        upstream.Default = FakeBehavior.Status(429, retryAfter: "0", message: "slow down");
        var options = Options(upstream);
        options.RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(maxRetries: 0);
        var client = new ChatClient("gpt-sdk", new ApiKeyCredential("sk-sdk"), options);

        var error = await Assert.ThrowsAsync<ClientResultException>(() => client.CompleteChatAsync([new UserChatMessage("hello")], cancellationToken: Ct));

        Assert.Equal(429, error.Status);
        Assert.Contains("slow down", error.Message, StringComparison.Ordinal);
    }

    private static OpenAIClientOptions Options(FakeUpstream upstream) => new() { Endpoint = upstream.BaseUrl };

    private static ChatClient Chat(FakeUpstream upstream) =>
        new("gpt-sdk", new ApiKeyCredential("sk-sdk"), Options(upstream));
}
