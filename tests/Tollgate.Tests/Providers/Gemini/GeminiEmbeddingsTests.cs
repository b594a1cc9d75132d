using System.Buffers.Binary;
using System.Text.Json.Nodes;
using Tollgate.Metering;
using Tollgate.Providers;
using Tollgate.Requests;
using static Tollgate.Tests.Providers.Gemini.GeminiRequestTranslationTests;

namespace Tollgate.Tests.Providers.Gemini;

/// <summary>OpenAI /v1/embeddings ↔ Gemini embedContent / batchEmbedContents.</summary>
public sealed class GeminiEmbeddingsTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task CompleteAsync_OneString_UsesEmbedContentAndReturnsAnOpenAIList()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake, "gemini-embedding-001");
        var body = new JsonObject { ["model"] = "flash", ["input"] = "The quick brown fox.", ["dimensions"] = 3 };

        var (answer, usage) = await harness.CompleteAsync(body, RequestKind.Embedding);

        var request = Assert.Single(fake.Requests);
        Assert.Equal("/v1beta/models/gemini-embedding-001:embedContent", request.Path);
        AssertJson(
            """{"model":"models/gemini-embedding-001","content":{"parts":[{"text":"The quick brown fox."}]},"outputDimensionality":3}""",
            request.Json);
        var tokens = TokenEstimator.CountRequest(GeminiHarness.Parse(body, RequestKind.Embedding).Body.Span);
        AssertJson(
            $$$"""
            {"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.11,0.12]}],
             "model":"gemini-embedding-001","usage":{"prompt_tokens":{{{tokens}}},"total_tokens":{{{tokens}}}}}
            """,
            answer);
        Assert.Equal(UsageSource.Estimated, usage.Source);
        Assert.Equal(new UsageBuckets(tokens, 0, 0, 0, 0, 0), usage.Buckets);
    }

    [Fact]
    public async Task CompleteAsync_ArrayOfStrings_UsesBatchEmbedContentsInOrder()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake, "gemini-embedding-001");
        var body = new JsonObject { ["model"] = "flash", ["input"] = new JsonArray("alpha", "beta", "gamma") };

        var (answer, _) = await harness.CompleteAsync(body, RequestKind.Embedding);

        var request = Assert.Single(fake.Requests);
        Assert.Equal("/v1beta/models/gemini-embedding-001:batchEmbedContents", request.Path);
        var requests = request.Json!["requests"]!.AsArray();
        Assert.Equal(["alpha", "beta", "gamma"], requests.Select(r => (string?)r!["content"]!["parts"]![0]!["text"]));
        Assert.All(requests, r => Assert.Equal("models/gemini-embedding-001", (string?)r!["model"]));
        var data = answer["data"]!.AsArray();
        Assert.Equal([0, 1, 2], data.Select(d => (int)d!["index"]!));
        Assert.Equal([0.1m, 0.2m, 0.3m], data.Select(d => (decimal)d!["embedding"]![0]!));
    }

    [Fact]
    public async Task CompleteAsync_Base64Encoding_ReturnsLittleEndianFloat32s()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake, "gemini-embedding-001");
        fake.Enqueue(GeminiReply.Json("""{"embedding":{"values":[0.5,-1.25]}}"""));
        var body = new JsonObject { ["model"] = "flash", ["input"] = "x", ["encoding_format"] = "base64" };

        var (answer, _) = await harness.CompleteAsync(body, RequestKind.Embedding);

        var bytes = Convert.FromBase64String((string)answer["data"]![0]!["embedding"]!);
        Assert.Equal(8, bytes.Length);
        Assert.Equal(0.5f, BinaryPrimitives.ReadSingleLittleEndian(bytes));
        Assert.Equal(-1.25f, BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(4)));
    }

    [Fact]
    public async Task SendAsync_TokenArrayInput_IsABadRequestThatReachesNoProvider()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake, "gemini-embedding-001");
        var body = new JsonObject { ["model"] = "flash", ["input"] = new JsonArray(new JsonArray(1, 2, 3)) };

        var result = await harness.SendAsync(body, RequestKind.Embedding);

        Assert.Equal(FailureKind.BadRequest, result.Failure?.Kind);
        Assert.Empty(fake.Requests);
    }

    [Fact]
    public async Task SendAsync_WrongNumberOfVectors_IsAnInvalidResponse()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake, "gemini-embedding-001");
        fake.Enqueue(GeminiReply.Json(GeminiWire.BatchEmbeddings(1, 3)));
        var body = new JsonObject { ["model"] = "flash", ["input"] = new JsonArray("a", "b") };

        var result = await harness.SendAsync(body, RequestKind.Embedding);

        Assert.Equal(FailureKind.InvalidResponse, result.Failure?.Kind);
    }
}
