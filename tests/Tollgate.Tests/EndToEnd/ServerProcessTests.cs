using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Embeddings;
using Tollgate.Tests.Fakes;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.EndToEnd;

/// <summary>
/// The real <c>tollgate</c> process, configured by a tollgate.json and a .env file, driven by the
/// official OpenAI .NET package with only its endpoint changed, and managed with the CLI.
/// </summary>
public sealed partial class ServerProcessTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("tollgate-e2e-").FullName;
    private FakeUpstream _upstream = null!;
    private FakeUpstream _backup = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private string ConfigPath => Path.Combine(_directory, "tollgate.json");

    private string DataDirectory => Path.Combine(_directory, "data");

    public async ValueTask InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync("sk-primary", Ct);
        _backup = await FakeUpstream.StartAsync("sk-backup", Ct);
        var config = new JsonObject
        {
            ["useDefaults"] = false,
            ["providers"] = new JsonObject
            {
                ["primary"] = Configs.Provider(_upstream.BaseUrl, "PRIMARY_API_KEY"),
                ["backup"] = Configs.Provider(_backup.BaseUrl, "BACKUP_API_KEY"),
            },
            ["models"] = new JsonObject
            {
                ["primary/cheap"] = Configs.Model("primary", "cheap-model", 0.28m, 0.42m),
                ["backup/premium"] = Configs.Model("backup", "premium-model", 2.5m, 10m),
                ["primary/embed"] = Configs.Model("primary", "embed-model", 0.02m, 0m, capabilities: ["embeddings"]),
            },
            ["routes"] = new JsonObject
            {
                // The operator lets requests for the premium name be answered by the cheaper equivalent.
                ["gpt-4o"] = Configs.Route("cheapest", "backup/premium", "primary/cheap"),
                ["text-embedding-3-small"] = Configs.Route("cheapest", "primary/embed"),
            },
        };
        await File.WriteAllTextAsync(ConfigPath, config.ToJsonString(), Ct);

        // Provider keys come from a .env file beside the config, as a newcomer would write it.
        await File.WriteAllTextAsync(Path.Combine(_directory, ".env"), "PRIMARY_API_KEY=sk-primary\nBACKUP_API_KEY=\"sk-backup\"\n", Ct);
    }

    public async ValueTask DisposeAsync()
    {
        await _upstream.DisposeAsync();
        await _backup.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Left for the OS temp cleaner.
        }
    }

    private string[] ServeArguments(int port) => ["serve", "--config", ConfigPath, "--data-dir", DataDirectory, "--urls", $"http://127.0.0.1:{port}"];

    private async Task<string> CreateKeyWithCliAsync(string name)
    {
        var (exit, output) = await GatewayProcess.RunAsync(["keys", "create", "--name", name, "--config", ConfigPath, "--data-dir", DataDirectory], Ct);
        Assert.Equal(0, exit);
        var json = JsonNode.Parse(output.Trim())!;
        Assert.Equal(name, (string?)json["name"]);
        return (string)json["key"]!;
    }

    [Fact]
    public async Task OpenAISdk_ThroughTheRealServer_SeesAnOrdinaryOpenAIApi()
    {
        await using var server = GatewayProcess.Start(ServeArguments(GatewayProcess.FreePort()));
        var adminKey = (await server.WaitForLineAsync(AdminKeyLine(), Ct)).Value;
        var baseUrl = await server.WaitForListeningAsync(Ct);
        var key = await CreateKeyWithCliAsync("sdk-test");
        var options = new OpenAIClientOptions { Endpoint = new Uri(baseUrl, "v1") };
        _upstream.Default = FakeBehavior.Ok("Hello from the cheap provider.", promptTokens: 20, completionTokens: 6);

        // Non-streaming: the premium name is answered by the cheapest candidate.
        var chat = new ChatClient("gpt-4o", new ApiKeyCredential(key), options);
        ChatCompletion completion = await chat.CompleteChatAsync([new UserChatMessage("Say hello.")], cancellationToken: Ct);
        Assert.Equal("Hello from the cheap provider.", completion.Content[0].Text);
        Assert.Equal(20, completion.Usage.InputTokenCount);
        Assert.Equal("cheap-model", _upstream.Requests[^1].Model);
        Assert.Equal("Bearer sk-primary", _upstream.Requests[^1].Authorization);

        // Streaming.
        var text = new System.Text.StringBuilder();
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("Stream it.")], cancellationToken: Ct))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
        }

        Assert.Equal("Hello from the cheap provider.", text.ToString());

        // Tools.
        _upstream.Enqueue(FakeBehavior.ToolCall("get_weather", """{"city":"Hanoi"}"""));
        var tool = ChatTool.CreateFunctionTool("get_weather", "Weather for a city", BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}}}"""));
        ChatCompletion toolCall = await chat.CompleteChatAsync([new UserChatMessage("Weather in Hanoi?")], new ChatCompletionOptions { Tools = { tool } }, Ct);
        Assert.Equal(ChatFinishReason.ToolCalls, toolCall.FinishReason);
        Assert.Equal("get_weather", toolCall.ToolCalls[0].FunctionName);
        Assert.Equal("Hanoi", JsonNode.Parse(toolCall.ToolCalls[0].FunctionArguments.ToString())!["city"]!.GetValue<string>());

        // Failover is invisible to the SDK.
        _upstream.Enqueue(FakeBehavior.Status(503));
        _backup.Default = FakeBehavior.Ok("Hello from the backup.");
        ChatCompletion failedOver = await chat.CompleteChatAsync([new UserChatMessage("Again.")], cancellationToken: Ct);
        Assert.Equal("Hello from the backup.", failedOver.Content[0].Text);

        // Embeddings.
        var embeddings = new EmbeddingClient("text-embedding-3-small", new ApiKeyCredential(key), options);
        OpenAIEmbedding embedding = await embeddings.GenerateEmbeddingAsync("hello", cancellationToken: Ct);
        Assert.NotEmpty(embedding.ToFloats().ToArray());

        // Errors surface as the SDK's own exceptions with OpenAI's status codes.
        var unknown = new ChatClient("no-such-model", new ApiKeyCredential(key), options);
        var notFound = await Assert.ThrowsAsync<ClientResultException>(() => unknown.CompleteChatAsync([new UserChatMessage("x")], cancellationToken: Ct));
        Assert.Equal(404, notFound.Status);
        var wrongKey = new ChatClient("gpt-4o", new ApiKeyCredential("tg-wrong"), options);
        var unauthorized = await Assert.ThrowsAsync<ClientResultException>(() => wrongKey.CompleteChatAsync([new UserChatMessage("x")], cancellationToken: Ct));
        Assert.Equal(401, unauthorized.Status);

        // The printed admin key manages the server; the client key never reached a log line.
        using var admin = new HttpClient { BaseAddress = baseUrl };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", adminKey);
        using var providers = await admin.GetAsync("providers", Ct);
        Assert.Equal(HttpStatusCode.OK, providers.StatusCode);
        Assert.DoesNotContain(key, server.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("sk-primary", server.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_RevokedKey_StopsWorkingOnTheRunningServer()
    {
        await using var server = GatewayProcess.Start(ServeArguments(GatewayProcess.FreePort()));
        var baseUrl = await server.WaitForListeningAsync(Ct);
        var key = await CreateKeyWithCliAsync("to-revoke");
        using var client = new HttpClient { BaseAddress = baseUrl };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using (var ok = await client.GetAsync("v1/models", Ct))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        var (_, listing) = await GatewayProcess.RunAsync(["keys", "list", "--config", ConfigPath, "--data-dir", DataDirectory], Ct);
        var id = (string)JsonNode.Parse(listing.Trim())!["data"]!.AsArray().Single(k => (string?)k!["name"] == "to-revoke")!["id"]!;
        Assert.DoesNotContain(key, listing, StringComparison.Ordinal);
        var (exit, _) = await GatewayProcess.RunAsync(["keys", "revoke", id, "--config", ConfigPath, "--data-dir", DataDirectory], Ct);
        Assert.Equal(0, exit);

        // The server notices another process's commit on its next change poll (once a second).
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        deadline.CancelAfter(TimeSpan.FromSeconds(20));
        HttpStatusCode status;
        var requests = 0;
        try
        {
            do
            {
                using var response = await client.GetAsync("v1/models", deadline.Token);
                status = response.StatusCode;
                requests++;
            }
            while (status == HttpStatusCode.OK);
        }
        catch (OperationCanceledException) when (!Ct.IsCancellationRequested)
        {
            Assert.Fail($"The revoked key still worked after 20 s ({requests} requests answered 200). Server output:\n{server.Output}");
            throw;
        }

        Assert.Equal(HttpStatusCode.Unauthorized, status);
    }

    [Fact]
    public async Task Serve_SecondStart_DoesNotPrintANewAdminKey()
    {
        var port = GatewayProcess.FreePort();
        string firstOutput;
        await using (var first = GatewayProcess.Start(ServeArguments(port)))
        {
            await first.WaitForListeningAsync(Ct);
            firstOutput = first.Output;
        }

        await using var second = GatewayProcess.Start(ServeArguments(GatewayProcess.FreePort()));
        await second.WaitForListeningAsync(Ct);

        Assert.Single(AdminKeyLine().Matches(firstOutput));
        Assert.Empty(AdminKeyLine().Matches(second.Output));
    }

    [Fact]
    public async Task Serve_InvalidConfig_ExitsWithAMessageNamingTheKey()
    {
        var bad = Path.Combine(_directory, "bad.json");
        await File.WriteAllTextAsync(bad, """{"useDefaults":false,"providers":{"p":{"type":"openai","baseUrl":"http://127.0.0.1:1/v1"}},"models":{"m":{"provider":"ghost","upstreamModel":"x","inputPerMillion":-1,"outputPerMillion":1}}}""", Ct);

        var (exit, output) = await GatewayProcess.RunAsync(["serve", "--config", bad, "--data-dir", DataDirectory], Ct);

        Assert.Equal(2, exit);
        Assert.Contains("models:m:provider: unknown provider 'ghost'", output, StringComparison.Ordinal);
        Assert.Contains("models:m:inputPerMillion: must not be negative", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_TollgateConfigVariableAndAdminKeyVariable_AreHonoured()
    {
        var environment = new Dictionary<string, string>
        {
            ["TOLLGATE_CONFIG"] = ConfigPath,
            ["TOLLGATE_ADMIN_KEY"] = "tga-from-the-environment",
        };
        await using var server = GatewayProcess.Start(["--data-dir", DataDirectory, "--urls", $"http://127.0.0.1:{GatewayProcess.FreePort()}"], environment);
        var baseUrl = await server.WaitForListeningAsync(Ct);
        using var admin = new HttpClient { BaseAddress = baseUrl };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "tga-from-the-environment");

        using var response = await admin.PostAsync("admin/keys", new StringContent("""{"name":"env"}""", System.Text.Encoding.UTF8, "application/json"), Ct);

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Empty(AdminKeyLine().Matches(server.Output));
    }

    [GeneratedRegex(@"tga-[A-Za-z0-9_-]{20,}")]
    private static partial Regex AdminKeyLine();
}
