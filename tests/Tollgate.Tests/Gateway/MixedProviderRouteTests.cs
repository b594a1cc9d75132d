using System.ClientModel;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using Tollgate.Tests.Fakes;
using Tollgate.Tests.Infrastructure;
using Tollgate.Tests.Providers.Anthropic;
using Tollgate.Tests.Providers.Gemini;

namespace Tollgate.Tests.Gateway;

/// <summary>
/// One route across three wire formats: an OpenAI-compatible deployment, Anthropic's Messages API and
/// Gemini's REST API. The official OpenAI SDK is the client and cannot tell which one answered.
/// </summary>
public sealed class MixedProviderRouteTests : IAsyncLifetime
{
    private FakeUpstream _openAi = null!;
    private FakeAnthropic _anthropic = null!;
    private FakeGemini _gemini = null!;
    private TestGateway _gateway = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _openAi = await FakeUpstream.StartAsync("sk-openai", Ct);
        _anthropic = await FakeAnthropic.StartAsync(Ct);
        _gemini = await FakeGemini.StartAsync(Ct);
        var anthropic = Configs.Provider(_anthropic.BaseUrl, "ANTHROPIC_API_KEY");
        anthropic["type"] = "anthropic";
        var config = new JsonObject
        {
            ["providers"] = new JsonObject
            {
                ["openai"] = Configs.Provider(_openAi.BaseUrl, "OPENAI_KEY"),
                ["anthropic"] = anthropic,
                ["gemini"] = GeminiHarness.Provider(_gemini.BaseUrl),
            },
            ["models"] = new JsonObject
            {
                ["openai/gpt-4o"] = Configs.Model("openai", "gpt-4o", 2.5m, 10m),
                ["anthropic/haiku"] = Configs.Model("anthropic", "claude-haiku-4-5", 1m, 5m),
                ["gemini/flash"] = Configs.Model("gemini", "gemini-2.5-flash", 0.3m, 2.5m),
            },
            ["routes"] = new JsonObject { ["smart"] = Configs.Route("ordered", "openai/gpt-4o", "anthropic/haiku", "gemini/flash") },
        };
        var secrets = new Dictionary<string, string>
        {
            ["OPENAI_KEY"] = "sk-openai",
            ["ANTHROPIC_API_KEY"] = FakeAnthropic.ApiKey,
            ["GEMINI_API_KEY"] = FakeGemini.ApiKey,
        };
        _gateway = await TestGateway.StartAsync(config, secrets, cancellationToken: Ct);
    }

    public async ValueTask DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _openAi.DisposeAsync();
        await _anthropic.DisposeAsync();
        await _gemini.DisposeAsync();
    }

    private ChatClient Client() => new("smart", new ApiKeyCredential(_gateway.ClientKey), new OpenAIClientOptions { Endpoint = new Uri(_gateway.BaseAddress, "v1") });

    [Fact]
    public async Task OpenAIDeploymentDown_AnthropicAnswers()
    {
        _openAi.Default = FakeBehavior.Status(503);
        _anthropic.Default = AnthropicBehavior.Text("Claude here.");

        ChatCompletion completion = await Client().CompleteChatAsync([new UserChatMessage("Who are you?")], cancellationToken: Ct);

        Assert.Equal("Claude here.", completion.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Single(_openAi.Requests);
        Assert.Single(_anthropic.Requests);
        Assert.Empty(_gemini.Requests);
    }

    [Fact]
    public async Task OpenAIAndAnthropicDown_GeminiAnswers()
    {
        _openAi.Default = FakeBehavior.Status(500);
        _anthropic.Default = AnthropicBehavior.Error(529, "overloaded_error", "Overloaded");

        ChatCompletion completion = await Client().CompleteChatAsync([new UserChatMessage("Who are you?")], cancellationToken: Ct);

        Assert.Equal(FakeGemini.DefaultText, completion.Content[0].Text);
        Assert.Single(_openAi.Requests);
        Assert.Single(_anthropic.Requests);
        Assert.Single(_gemini.Requests);
    }

    [Fact]
    public async Task Streaming_FailsOverAcrossFormatsBeforeTheFirstToken()
    {
        _openAi.Default = FakeBehavior.DropConnection();
        _anthropic.Default = AnthropicBehavior.Error(529, "overloaded_error", "Overloaded");
        var text = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;

        await foreach (var update in Client().CompleteChatStreamingAsync([new UserChatMessage("Stream please.")], cancellationToken: Ct))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal(FakeGemini.DefaultText, text.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.Single(_anthropic.Requests);
        Assert.Single(_gemini.Requests);
    }
}
