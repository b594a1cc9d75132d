using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Text.Json.Nodes;
using static Tollgate.Tests.Fakes.FakeHttp;

namespace Tollgate.Tests.Fakes;

/// <summary>Self-tests of <see cref="FakeUpstream"/>'s normal answers and bookkeeping, over real HTTP.</summary>
[SuppressMessage("Naming", "CA1707:Identifiers should not contain underscores", Justification = "Test names follow Method_Scenario_Expected.")]
public sealed class FakeUpstreamTests
{
    private const int TimeoutMs = 15_000;

    [Fact(Timeout = TimeoutMs)]
    public async Task StartAsync_Default_BaseUrlIsLoopbackV1WithoutTrailingSlash()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);

        Assert.Equal("127.0.0.1", upstream.BaseUrl.Host);
        Assert.NotEqual(0, upstream.BaseUrl.Port);
        Assert.EndsWith("/v1", upstream.BaseUrl.ToString(), StringComparison.Ordinal);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_DefaultOk_ReturnsOpenAiCompletionEchoingModel()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);

        using var response = await PostAsync(upstream, "chat/completions", ChatBody("gpt-test"));
        var json = await ReadObjectAsync(response);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.StartsWith("chatcmpl-", (string?)json["id"], StringComparison.Ordinal);
        Assert.Equal("chat.completion", (string?)json["object"]);
        Assert.True((long?)json["created"] > 0);
        Assert.Equal("gpt-test", (string?)json["model"]);
        Assert.Equal("fp_fake", (string?)json["system_fingerprint"]);
        var choice = Assert.Single(json["choices"]!.AsArray())!;
        Assert.Equal(0, (int?)choice["index"]);
        Assert.Equal("assistant", (string?)choice["message"]!["role"]);
        Assert.Equal(FakeBehavior.DefaultContent, (string?)choice["message"]!["content"]);
        Assert.Null(choice["message"]!["refusal"]);
        Assert.True(choice.AsObject().ContainsKey("logprobs"));
        Assert.Equal("stop", (string?)choice["finish_reason"]);
        Assert.Equal(12, (int?)json["usage"]!["prompt_tokens"]);
        Assert.Equal(7, (int?)json["usage"]!["completion_tokens"]);
        Assert.Equal(19, (int?)json["usage"]!["total_tokens"]);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_OkWithTokenCounts_ReportsUsageDetails()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Enqueue(FakeBehavior.Ok("Hi", promptTokens: 100, completionTokens: 40, cachedTokens: 64, reasoningTokens: 16));

        using var response = await PostAsync(upstream, "chat/completions", ChatBody());
        var usage = (await ReadObjectAsync(response))["usage"]!;

        Assert.Equal(100, (int?)usage["prompt_tokens"]);
        Assert.Equal(40, (int?)usage["completion_tokens"]);
        Assert.Equal(140, (int?)usage["total_tokens"]);
        Assert.Equal(64, (int?)usage["prompt_tokens_details"]!["cached_tokens"]);
        Assert.Equal(16, (int?)usage["completion_tokens_details"]!["reasoning_tokens"]);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_NIsThree_ReturnsThreeChoices()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        var body = ChatBody();
        body["n"] = 3;

        using var response = await PostAsync(upstream, "chat/completions", body);
        var choices = (await ReadObjectAsync(response))["choices"]!.AsArray();

        Assert.Equal([0, 1, 2], choices.Select(choice => (int)choice!["index"]!));
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_ToolCall_ReturnsToolCallsWithNullContent()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Enqueue(FakeBehavior.ToolCall("get_weather", """{"city":"Paris"}"""));

        using var response = await PostAsync(upstream, "chat/completions", ChatBody());
        var choice = (await ReadObjectAsync(response))["choices"]![0]!;

        Assert.Equal("tool_calls", (string?)choice["finish_reason"]);
        Assert.Null(choice["message"]!["content"]);
        var call = Assert.Single(choice["message"]!["tool_calls"]!.AsArray())!;
        Assert.StartsWith("call_", (string?)call["id"], StringComparison.Ordinal);
        Assert.Equal("function", (string?)call["type"]);
        Assert.Equal("get_weather", (string?)call["function"]!["name"]);
        Assert.Equal("""{"city":"Paris"}""", (string?)call["function"]!["arguments"]);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_Stream_ChunksConcatenateToContentAndEndWithDone()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Enqueue(FakeBehavior.Ok("The quick  brown fox."));

        using var response = await PostAsync(upstream, "chat/completions", ChatBody(stream: true), HttpCompletionOption.ResponseHeadersRead);
        var sse = await ReadEventsAsync(response);

        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Null(sse.Error);
        Assert.Equal("[DONE]", sse.Data[^1]);
        var chunks = sse.Chunks;
        Assert.All(chunks, chunk => Assert.Equal("chat.completion.chunk", (string?)chunk["object"]));
        Assert.All(chunks, chunk => Assert.False(chunk.ContainsKey("usage")));
        Assert.Single(chunks.Select(chunk => (string?)chunk["id"]).Distinct());
        Assert.Equal("assistant", (string?)chunks[0]["choices"]![0]!["delta"]!["role"]);
        Assert.Equal(string.Empty, (string?)chunks[0]["choices"]![0]!["delta"]!["content"]);
        var contentChunks = chunks.Skip(1).SkipLast(1).Select(chunk => (string)chunk["choices"]![0]!["delta"]!["content"]!).ToList();
        Assert.True(contentChunks.Count > 1);
        Assert.Equal("The quick  brown fox.", string.Concat(contentChunks));
        var last = chunks[^1]["choices"]![0]!;
        Assert.Empty(last["delta"]!.AsObject());
        Assert.Equal("stop", (string?)last["finish_reason"]);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_StreamWithIncludeUsage_SendsUsageNullThenUsageOnlyChunk()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Enqueue(FakeBehavior.Ok("a b", promptTokens: 5, completionTokens: 2, cachedTokens: 1));

        using var response = await PostAsync(upstream, "chat/completions", ChatBody(stream: true, includeUsage: true), HttpCompletionOption.ResponseHeadersRead);
        var chunks = (await ReadEventsAsync(response)).Chunks;

        Assert.All(chunks.SkipLast(1), chunk => Assert.True(chunk.ContainsKey("usage") && chunk["usage"] is null));
        Assert.Equal("stop", (string?)chunks[^2]["choices"]![0]!["finish_reason"]);
        Assert.Empty(chunks[^1]["choices"]!.AsArray());
        Assert.Equal(7, (int?)chunks[^1]["usage"]!["total_tokens"]);
        Assert.Equal(1, (int?)chunks[^1]["usage"]!["prompt_tokens_details"]!["cached_tokens"]);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_StreamToolCall_StreamsNameThenArgumentFragments()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        const string Arguments = """{"city":"Paris","unit":"celsius"}""";
        upstream.Enqueue(FakeBehavior.ToolCall("get_weather", Arguments));

        using var response = await PostAsync(upstream, "chat/completions", ChatBody(stream: true), HttpCompletionOption.ResponseHeadersRead);
        var chunks = (await ReadEventsAsync(response)).Chunks;

        var first = chunks[0]["choices"]![0]!["delta"]!["tool_calls"]![0]!;
        Assert.Equal(0, (int?)first["index"]);
        Assert.StartsWith("call_", (string?)first["id"], StringComparison.Ordinal);
        Assert.Equal("get_weather", (string?)first["function"]!["name"]);
        Assert.Equal(string.Empty, (string?)first["function"]!["arguments"]);
        var fragments = chunks.Skip(1).SkipLast(1)
            .Select(chunk => (string)chunk["choices"]![0]!["delta"]!["tool_calls"]![0]!["function"]!["arguments"]!).ToList();
        Assert.True(fragments.Count > 1);
        Assert.Equal(Arguments, string.Concat(fragments));
        Assert.Equal("tool_calls", (string?)chunks[^1]["choices"]![0]!["finish_reason"]);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_NoUsage_OmitsUsageEvenWhenAsked()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Enqueue(FakeBehavior.NoUsage(), FakeBehavior.Ok().WithoutUsage());

        using var plain = await PostAsync(upstream, "chat/completions", ChatBody());
        using var streamed = await PostAsync(upstream, "chat/completions", ChatBody(stream: true, includeUsage: true), HttpCompletionOption.ResponseHeadersRead);
        var sse = await ReadEventsAsync(streamed);

        Assert.False((await ReadObjectAsync(plain)).ContainsKey("usage"));
        Assert.All(sse.Chunks, chunk => Assert.False(chunk.ContainsKey("usage")));
        Assert.Equal("stop", (string?)sse.Chunks[^1]["choices"]![0]!["finish_reason"]);
        Assert.Equal("[DONE]", sse.Data[^1]);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task Enqueue_SeveralBehaviors_ConsumedInOrderThenDefault()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Default = FakeBehavior.Ok("default");
        upstream.Enqueue(FakeBehavior.Status(500), FakeBehavior.Ok("second"));

        var statuses = new List<HttpStatusCode>();
        var contents = new List<string?>();
        for (var i = 0; i < 3; i++)
        {
            using var response = await PostAsync(upstream, "chat/completions", ChatBody());
            statuses.Add(response.StatusCode);
            contents.Add((string?)(await ReadObjectAsync(response))["choices"]?[0]?["message"]?["content"]);
        }

        Assert.Equal([HttpStatusCode.InternalServerError, HttpStatusCode.OK, HttpStatusCode.OK], statuses);
        Assert.Equal([null, "second", "default"], contents);
        Assert.Equal(0, upstream.QueuedCount);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task StartAsync_WithExpectedApiKey_Rejects401UnlessBearerMatches()
    {
        await using var upstream = await FakeUpstream.StartAsync("sk-right", Ct);

        using var missing = await PostAsync(upstream, "chat/completions", ChatBody());
        using var wrong = await PostAsync(upstream, "chat/completions", ChatBody(), apiKey: "sk-wrong");
        using var right = await PostAsync(upstream, "chat/completions", ChatBody(), apiKey: "sk-right");

        Assert.Equal(HttpStatusCode.Unauthorized, missing.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Equal("invalid_api_key", (string?)(await ReadObjectAsync(wrong))["error"]!["code"]);
        Assert.Equal(HttpStatusCode.OK, right.StatusCode);
        Assert.Equal(3, upstream.RequestCount);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task Requests_AfterPost_RecordsMethodPathHeadersAndBody()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);

        using var response = await PostAsync(upstream, "chat/completions", ChatBody("m-1", stream: true), apiKey: "sk-abc");
        var request = Assert.Single(upstream.Requests);

        Assert.Equal("POST", request.Method);
        Assert.Equal("/v1/chat/completions", request.Path);
        Assert.Equal("Bearer sk-abc", request.Authorization);
        Assert.Equal("Bearer sk-abc", request.Headers["authorization"]);
        Assert.StartsWith("application/json", request.Header("Content-Type"), StringComparison.Ordinal);
        Assert.Equal("m-1", request.Model);
        Assert.True(request.IsStream);
        Assert.Equal("m-1", (string?)JsonNode.Parse(request.Body)!["model"]);
        Assert.Equal("user", (string?)request.Json!["messages"]![0]!["role"]);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task WaitForRequestsAsync_ConcurrentRequests_CompletesOnceCountReached()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        upstream.Default = FakeBehavior.Ok().WithGate(gate);

        var waitForThree = upstream.WaitForRequestsAsync(3, Ct);
        var pending = Enumerable.Range(0, 3).Select(_ => PostAsync(upstream, "chat/completions", ChatBody())).ToList();
        await waitForThree;
        Assert.Equal(3, upstream.RequestCount);
        Assert.All(pending, task => Assert.False(task.IsCompleted));
        gate.SetResult();

        foreach (var response in await Task.WhenAll(pending))
        {
            using (response)
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }
        }
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task Embeddings_StringAndArrayInputs_ReturnDeterministicUnitVectors()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        var body = new JsonObject { ["model"] = "emb-1", ["input"] = new JsonArray("hello world", "other", "hello world") };

        using var response = await PostAsync(upstream, "embeddings", body);
        var json = await ReadObjectAsync(response);
        var vectors = json["data"]!.AsArray().Select(item => item!["embedding"]!.AsArray().Select(v => (float)v!).ToArray()).ToList();

        Assert.Equal("list", (string?)json["object"]);
        Assert.Equal("emb-1", (string?)json["model"]);
        Assert.Equal([0, 1, 2], json["data"]!.AsArray().Select(item => (int)item!["index"]!));
        Assert.All(json["data"]!.AsArray(), item => Assert.Equal("embedding", (string?)item!["object"]));
        Assert.All(vectors, vector => Assert.Equal(8, vector.Length));
        Assert.All(vectors, vector => Assert.Equal(1, Math.Sqrt(vector.Sum(v => (double)v * v)), 3));
        Assert.Equal(vectors[0], vectors[2]);
        Assert.NotEqual(vectors[0], vectors[1]);
        Assert.Equal(5, (int?)json["usage"]!["prompt_tokens"]);
        Assert.Equal(5, (int?)json["usage"]!["total_tokens"]);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task Embeddings_TokenArraysAndBase64_ReturnsOneVectorPerTokenArray()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        var body = new JsonObject
        {
            ["model"] = "emb-1",
            ["input"] = new JsonArray(new JsonArray(1, 2, 3), new JsonArray(4)),
            ["encoding_format"] = "base64",
            ["dimensions"] = 4,
        };

        using var response = await PostAsync(upstream, "embeddings", body);
        var json = await ReadObjectAsync(response);
        var data = json["data"]!.AsArray();

        Assert.Equal(2, data.Count);
        Assert.All(data, item => Assert.Equal(16, Convert.FromBase64String((string)item!["embedding"]!).Length));
        Assert.Equal(4, (int?)json["usage"]!["prompt_tokens"]);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task Embeddings_StatusBehavior_ReturnsError()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Enqueue(FakeBehavior.Status(400, message: "bad input"));

        using var response = await PostAsync(upstream, "embeddings", new JsonObject { ["model"] = "e", ["input"] = "x" });

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("bad input", (string?)(await ReadObjectAsync(response))["error"]!["message"]);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task Models_Get_ListsFakeModelWithoutConsumingBehavior()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Enqueue(FakeBehavior.Status(500));

        using var response = await Client.GetAsync(Url(upstream, "models"), Ct);
        var json = await ReadObjectAsync(response);

        Assert.Equal("list", (string?)json["object"]);
        var model = Assert.Single(json["data"]!.AsArray())!;
        Assert.Equal("fake-model", (string?)model["id"]);
        Assert.Equal("model", (string?)model["object"]);
        Assert.Equal(0, (int?)model["created"]);
        Assert.Equal("fake", (string?)model["owned_by"]);
        Assert.Equal(1, upstream.QueuedCount);
    }
}
