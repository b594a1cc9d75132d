using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Tollgate.Configuration;
using Tollgate.Metering;
using Tollgate.Providers;
using Tollgate.Providers.Gemini;
using Tollgate.Requests;
using Tollgate.Routing;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Providers.Gemini;

/// <summary>
/// Drives <see cref="GeminiAdapter"/> directly against a <see cref="FakeGemini"/>: a catalog with one gemini
/// provider and deployment <c>flash</c> (gemini-2.5-flash at $0.30 input, $0.03 cached, $2.50 output per 1M).
/// </summary>
internal sealed class GeminiHarness : IDisposable
{
    public const string Deployment = "flash";
    public static readonly DateTimeOffset Now = new(2025, 6, 1, 12, 0, 0, TimeSpan.Zero);

    private GeminiHarness(Catalog catalog) => Catalog = catalog;

    public Catalog Catalog { get; }

    public GeminiAdapter Adapter { get; } = new(new FakeTimeProvider(Now));

    public static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static GeminiHarness For(FakeGemini fake, string upstreamModel = "gemini-2.5-flash")
    {
        var config = new JsonObject
        {
            ["useDefaults"] = false,
            ["providers"] = new JsonObject { ["google"] = Provider(fake.BaseUrl) },
            ["models"] = new JsonObject { [Deployment] = Configs.Model("google", upstreamModel, 0.30m, 2.50m, ["tools", "vision", "json", "embeddings"], cachedInput: 0.03m) },
        };
        var secrets = new SecretSource(new Dictionary<string, string> { ["GEMINI_API_KEY"] = FakeGemini.ApiKey });
        return new GeminiHarness(Catalog.Build(ConfigurationLoader.Load(config, new Dictionary<string, string>()), secrets, TimeProvider.System));
    }

    public static JsonObject Provider(Uri baseUrl) => new()
    {
        ["type"] = "gemini",
        ["baseUrl"] = baseUrl.ToString(),
        ["apiKeyEnv"] = "GEMINI_API_KEY",
    };

    public static ParsedRequest Parse(JsonObject body, RequestKind kind = RequestKind.ChatCompletion)
    {
        Assert.True(RequestParser.TryParse(kind, Encoding.UTF8.GetBytes(body.ToJsonString()), out var request, out var error), error?.Message);
        return request!;
    }

    public static JsonObject Chat(string content = "Say hello.", bool stream = false) => new()
    {
        ["model"] = Deployment,
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = content }),
        ["stream"] = stream,
    };

    public async Task<AttemptResult> SendAsync(JsonObject body, RequestKind kind = RequestKind.ChatCompletion)
    {
        using var cancellation = new AttemptCancellation(Ct);
        cancellation.Arm(TimeSpan.FromSeconds(30));
        return await Adapter.SendAsync(Catalog.Deployments[Deployment], Parse(body, kind), cancellation, TimeSpan.FromSeconds(30));
    }

    /// <summary>A non-streaming answer: the OpenAI body the client would get, and the metered usage.</summary>
    public async Task<(JsonObject Body, MeteredUsage Usage)> CompleteAsync(JsonObject body, RequestKind kind = RequestKind.ChatCompletion)
    {
        var result = await SendAsync(body, kind);
        Assert.Null(result.Failure);
        var buffered = Assert.IsType<BufferedResponse>(result.Response);
        return (JsonNode.Parse(buffered.Body)!.AsObject(), buffered.Usage);
    }

    /// <summary>A streamed answer read to its end (or break): every chunk in order, and the usage.</summary>
    public async Task<StreamRun> StreamAsync(JsonObject body)
    {
        body["stream"] = true;
        using var cancellation = new AttemptCancellation(Ct);
        cancellation.Arm(TimeSpan.FromSeconds(30));
        var result = await Adapter.SendAsync(Catalog.Deployments[Deployment], Parse(body), cancellation, TimeSpan.FromSeconds(30));
        Assert.Null(result.Failure);
        await using var stream = Assert.IsAssignableFrom<StreamingResponse>(result.Response);
        var chunks = new List<StreamChunk> { stream.First };
        UpstreamStreamException? broken = null;
        try
        {
            while (await stream.ReadAsync() is { } chunk)
            {
                chunks.Add(chunk);
            }
        }
        catch (UpstreamStreamException ex)
        {
            broken = ex;
        }

        return new StreamRun(chunks, stream.Usage, broken);
    }

    public void Dispose() => Catalog.Dispose();
}

/// <summary>What a stream delivered.</summary>
internal sealed record StreamRun(List<StreamChunk> Raw, MeteredUsage Usage, UpstreamStreamException? Broken)
{
    public List<JsonObject> Chunks { get; } = [.. Raw.Select(c => JsonNode.Parse(c.Data.Span)!.AsObject())];

    /// <summary>The content deltas of choice 0, concatenated.</summary>
    public string Text => string.Concat(Chunks
        .Where(c => c["choices"]!.AsArray().Count > 0 && (int)c["choices"]![0]!["index"]! == 0)
        .Select(c => (string?)c["choices"]![0]!["delta"]!["content"] ?? string.Empty));

    /// <summary>Finish reasons in order of arrival.</summary>
    public List<string> FinishReasons => [.. Chunks
        .Where(c => c["choices"]!.AsArray().Count > 0)
        .Select(c => (string?)c["choices"]![0]!["finish_reason"])
        .OfType<string>()];
}
