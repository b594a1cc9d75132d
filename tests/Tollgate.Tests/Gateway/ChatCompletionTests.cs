using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Tollgate.Tests.Fakes;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Gateway;

public sealed class ChatCompletionTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Post_NonStreaming_ForwardsEveryFieldRewritingOnlyModel()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        var body = GatewayScenario.ChatBody();
        body["temperature"] = 0.3;
        body["seed"] = 42;
        body["stop"] = new JsonArray("END");
        body["n"] = 1;
        body["user"] = "u-1";
        body["logprobs"] = false;
        body["response_format"] = new JsonObject { ["type"] = "json_object" };
        body["tools"] = new JsonArray(new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = "lookup", ["parameters"] = new JsonObject() } });
        body["tool_choice"] = "auto";
        body["x_vendor_extension"] = new JsonObject { ["keep"] = true };

        using var response = await scenario.PostChatAsync(body, Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var forwarded = scenario.Fakes[0].Requests.Single().Json!;
        var expected = body.DeepClone().AsObject();
        expected["model"] = "upstream-0";
        Assert.True(JsonNode.DeepEquals(expected, forwarded), forwarded.ToJsonString());
    }

    [Fact]
    public async Task Post_NonStreaming_SendsProviderKeyNeverTheClientKey()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);

        using var response = await scenario.PostChatAsync(GatewayScenario.ChatBody(), Ct);

        var upstream = scenario.Fakes[0].Requests.Single();
        Assert.Equal("Bearer sk-p0", upstream.Authorization);
        Assert.DoesNotContain(upstream.Headers, h => h.Value.Contains(scenario.Gateway.ClientKey, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Post_NonStreaming_ReturnsUpstreamAnswerAndRoutingHeaders()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        scenario.Fakes[0].Enqueue(FakeBehavior.Ok("Bonjour.", promptTokens: 1_000, completionTokens: 500, cachedTokens: 400));

        using var response = await scenario.PostChatAsync(GatewayScenario.ChatBody(), Ct);
        var json = await scenario.ReadJsonAsync(response, Ct);

        Assert.Equal("Bonjour.", (string?)json["choices"]![0]!["message"]!["content"]);
        Assert.Equal("p0", response.Headers.GetValues("x-tollgate-provider").Single());
        Assert.Equal("d0", response.Headers.GetValues("x-tollgate-deployment").Single());
        Assert.Equal("upstream-0", response.Headers.GetValues("x-tollgate-model").Single());
        Assert.Equal("1", response.Headers.GetValues("x-tollgate-attempts").Single());
        Assert.StartsWith("req_", response.Headers.GetValues("x-request-id").Single(), StringComparison.Ordinal);
        var route = response.Headers.GetValues("x-tollgate-route").Single();
        Assert.StartsWith("gpt-4o; strategy=cheapest; candidates=d0:$", route, StringComparison.Ordinal);
        Assert.Contains("; tried=d0:ok; chosen=d0", route, StringComparison.Ordinal);

        // d0: $1 input, $0.50 cached input, $2 output per 1M tokens.
        Assert.Equal((600 * 1m + 400 * 0.5m + 500 * 2m) / 1_000_000m, decimal.Parse(response.Headers.GetValues("x-tollgate-cost-usd").Single(), System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal("reported", response.Headers.GetValues("x-tollgate-usage").Single());
    }

    [Fact]
    public async Task Post_ClientRequestId_IsEchoed()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = new StringContent(GatewayScenario.ChatBody().ToJsonString(), Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("x-request-id", "trace-abc.123");

        using var response = await scenario.Client.SendAsync(request, Ct);

        Assert.Equal("trace-abc.123", response.Headers.GetValues("x-request-id").Single());
    }

    [Fact]
    public async Task Post_Streaming_RelaysEveryChunkAndHidesUsageTheClientDidNotAskFor()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        scenario.Fakes[0].Default = FakeBehavior.Ok("one two three four");

        using var response = await scenario.PostChatAsync(GatewayScenario.ChatBody(stream: true), Ct);
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync(Ct));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        Assert.All(chunks, c => Assert.NotEmpty(c["choices"]!.AsArray()));
        var text = string.Concat(chunks.Select(c => (string?)c["choices"]![0]!["delta"]!["content"] ?? string.Empty));
        Assert.Equal("one two three four", text);
        Assert.Equal("stop", (string?)chunks[^1]["choices"]![0]!["finish_reason"]);

        // The gateway always asks for usage upstream.
        Assert.True((bool)scenario.Fakes[0].Requests.Single().Json!["stream_options"]!["include_usage"]!);
    }

    [Fact]
    public async Task Post_StreamingWithIncludeUsage_PassesTheUsageChunk()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        scenario.Fakes[0].Default = FakeBehavior.Ok("hi", promptTokens: 30, completionTokens: 2);
        var body = GatewayScenario.ChatBody(stream: true);
        body["stream_options"] = new JsonObject { ["include_usage"] = true };

        using var response = await scenario.PostChatAsync(body, Ct);
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync(Ct));

        var usageChunk = JsonNode.Parse(events[^2])!;
        Assert.Empty(usageChunk["choices"]!.AsArray());
        Assert.Equal(30, (int)usageChunk["usage"]!["prompt_tokens"]!);
        Assert.Equal(2, (int)usageChunk["usage"]!["completion_tokens"]!);
    }

    [Fact]
    public async Task Post_ToolCall_RoundTripsBothWays()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        scenario.Fakes[0].Enqueue(FakeBehavior.ToolCall("get_weather", """{"city":"Paris"}"""));
        var body = GatewayScenario.ChatBody(content: "Weather in Paris?");
        body["tools"] = new JsonArray(new JsonObject
        {
            ["type"] = "function",
            ["function"] = new JsonObject { ["name"] = "get_weather", ["parameters"] = new JsonObject { ["type"] = "object" } },
        });

        using var first = await scenario.PostChatAsync(body, Ct);
        var call = (await scenario.ReadJsonAsync(first, Ct))["choices"]![0]!["message"]!["tool_calls"]![0]!;
        Assert.Equal("get_weather", (string?)call["function"]!["name"]);

        var messages = body["messages"]!.AsArray();
        messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = null, ["tool_calls"] = new JsonArray(call.DeepClone()) });
        messages.Add(new JsonObject { ["role"] = "tool", ["tool_call_id"] = call["id"]!.DeepClone(), ["content"] = "18C and sunny" });
        using var second = await scenario.PostChatAsync(body, Ct);

        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        var forwarded = scenario.Fakes[0].Requests[1].Json!["messages"]!.AsArray();
        Assert.Equal("tool", (string?)forwarded[2]!["role"]);
        Assert.Equal((string?)call["id"], (string?)forwarded[2]!["tool_call_id"]);
    }

    [Fact]
    public async Task Post_UpstreamWithoutUsage_IsMarkedEstimated()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        scenario.Fakes[0].Enqueue(FakeBehavior.NoUsage("A fairly long answer without any usage block at all."));

        using var response = await scenario.PostChatAsync(GatewayScenario.ChatBody(), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("estimated", response.Headers.GetValues("x-tollgate-usage").Single());
    }

    [Fact]
    public async Task Post_DeploymentIdAsModel_IsAOneCandidateRoute()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 2, cancellationToken: Ct);

        using var response = await scenario.PostChatAsync(GatewayScenario.ChatBody(model: "d1"), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(0, scenario.Fakes[0].RequestCount);
        Assert.Equal("upstream-1", scenario.Fakes[1].Requests.Single().Model);
    }

    [Fact]
    public async Task Embeddings_RouteToEmbeddingDeployments()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, configure: config =>
        {
            config["models"]!["embed"] = Configs.Model("p0", "text-embedding-3-small", 0.02m, 0m, capabilities: ["embeddings"]);
        }, cancellationToken: Ct);

        using var response = await scenario.Client.PostAsJsonAsync("v1/embeddings", new { model = "embed", input = new[] { "a", "b" } }, Ct);
        var json = await scenario.ReadJsonAsync(response, Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(2, json["data"]!.AsArray().Count);
        Assert.Equal("/v1/embeddings", scenario.Fakes[0].Requests.Single().Path);
        Assert.Equal("text-embedding-3-small", scenario.Fakes[0].Requests.Single().Model);
    }

    [Fact]
    public async Task Embeddings_OnAChatOnlyModel_IsA400ThatReachesNoProvider()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);

        using var response = await scenario.Client.PostAsJsonAsync("v1/embeddings", new { model = "gpt-4o", input = "a" }, Ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("unsupported_by_model", (string?)(await scenario.ReadJsonAsync(response, Ct))["error"]!["code"]);
        Assert.Equal(0, scenario.Fakes[0].RequestCount);
    }

    [Fact]
    public async Task Models_ListsRoutesAndDeploymentsOfConfiguredProvidersOnly()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, configure: config =>
        {
            config["providers"]!["unkeyed"] = Configs.Provider(new Uri("http://127.0.0.1:9/v1"), "NOT_SET_KEY");
            config["models"]!["ghost"] = Configs.Model("unkeyed", "ghost", 1m, 1m);
            config["routes"]!["ghost-route"] = Configs.Route("cheapest", "ghost");
        }, cancellationToken: Ct);

        var json = (await scenario.Client.GetFromJsonAsync<JsonObject>("v1/models", Ct))!;
        var ids = json["data"]!.AsArray().Select(m => (string?)m!["id"]).ToList();

        Assert.Equal("list", (string?)json["object"]);
        Assert.Equal(["gpt-4o", "d0"], ids);
        Assert.Equal(0, scenario.Fakes[0].RequestCount);
    }
}
