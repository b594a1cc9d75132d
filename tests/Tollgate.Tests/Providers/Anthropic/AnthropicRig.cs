using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Tollgate.Configuration;
using Tollgate.Health;
using Tollgate.Providers;
using Tollgate.Providers.Anthropic;
using Tollgate.Requests;
using Tollgate.Routing;

namespace Tollgate.Tests.Providers.Anthropic;

/// <summary>An <see cref="AnthropicAdapter"/> pointed at a <see cref="FakeAnthropic"/>, driven directly (no gateway).</summary>
public sealed class AnthropicRig : IAsyncDisposable
{
    public const string UpstreamModel = "claude-sonnet-4-5";

    /// <summary>The fixed clock behind <c>created</c>: 2025-01-02T03:04:05Z.</summary>
    public static readonly DateTimeOffset Now = new(2025, 1, 2, 3, 4, 5, TimeSpan.Zero);

    private readonly HttpMessageInvoker _http;

    private AnthropicRig(FakeAnthropic fake, int maxOutputTokens)
    {
        Fake = fake;
        _http = ProviderHttpClientFactory.Create(TimeSpan.FromSeconds(30));
        var provider = new Provider("claude", ProviderTypes.Anthropic, new Uri(fake.BaseUrl + "/"), FakeAnthropic.ApiKey, "ANTHROPIC_API_KEY", TimeSpan.FromSeconds(30), _http);
        Deployment = new Deployment(
            "claude-sonnet", provider, UpstreamModel, Prices, 200_000, maxOutputTokens,
            Capability.Tools | Capability.Vision | Capability.Json, new DeploymentHealth(TimeProvider.System, HealthPolicy.Default));
        Adapter = new AnthropicAdapter(new FakeTimeProvider(Now));
    }

    /// <summary>Anthropic-style prices per 1M tokens: input $3, output $15, cache read 0.1×, 5-minute write 1.25×, 1-hour write 2×.</summary>
    public static DeploymentPrices Prices { get; } = new(3m, 0.30m, 3.75m, 6m, 15m);

    public FakeAnthropic Fake { get; }

    public Deployment Deployment { get; }

    public AnthropicAdapter Adapter { get; }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static async Task<AnthropicRig> StartAsync(int maxOutputTokens = 8_192) =>
        new(await FakeAnthropic.StartAsync(Ct), maxOutputTokens);

    public static JsonObject Body(string content = "Hello?", bool stream = false)
    {
        var body = new JsonObject
        {
            ["model"] = "claude",
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = content }),
        };
        if (stream)
        {
            body["stream"] = true;
        }

        return body;
    }

    public static ParsedRequest Parse(JsonObject body)
    {
        Assert.True(RequestParser.TryParse(RequestKind.ChatCompletion, Encoding.UTF8.GetBytes(body.ToJsonString()), out var request, out var error), error?.Message);
        return request!;
    }

    /// <summary>One attempt, as the dispatcher makes it; the cancellation lives as long as the test.</summary>
    public async Task<AttemptResult> SendAsync(JsonObject body)
    {
        var cancellation = new AttemptCancellation(Ct);
        cancellation.Arm(TimeSpan.FromSeconds(30));
        return await Adapter.SendAsync(Deployment, Parse(body), cancellation, TimeSpan.FromSeconds(30));
    }

    /// <summary>Sends and translates the request the fake received; its answer is not looked at.</summary>
    public async Task<JsonObject> TranslateAsync(JsonObject body)
    {
        var result = await SendAsync(body);
        Assert.Null(result.Failure);
        await result.Response!.DisposeAsync();
        return Fake.Requests[^1].Json!;
    }

    /// <summary>A non-streaming answer as the client would receive it.</summary>
    public async Task<(JsonObject Body, BufferedResponse Response)> CompleteAsync(JsonObject body)
    {
        var result = await SendAsync(body);
        Assert.Null(result.Failure);
        var buffered = Assert.IsType<BufferedResponse>(result.Response);
        return (JsonNode.Parse(buffered.Body)!.AsObject(), buffered);
    }

    /// <summary>A whole stream: every chunk (First included) until the clean end, or the exception that broke it.</summary>
    public async Task<StreamRead> StreamAsync(JsonObject body)
    {
        body["stream"] = true;
        var result = await SendAsync(body);
        Assert.Null(result.Failure);
        var stream = Assert.IsAssignableFrom<StreamingResponse>(result.Response);
        await using (stream)
        {
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

            return new StreamRead(chunks, broken, stream.Usage);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        await Fake.DisposeAsync();
    }
}

/// <summary>What a stream delivered.</summary>
public sealed record StreamRead(List<StreamChunk> Chunks, UpstreamStreamException? Broken, Tollgate.Metering.MeteredUsage Usage)
{
    public List<JsonObject> Json => [.. Chunks.Select(c => JsonNode.Parse(c.Data.Span)!.AsObject())];

    /// <summary>The chunks the client always sees (not the usage-only one).</summary>
    public List<JsonObject> Visible => [.. Chunks.Where(c => !c.UsageOnly).Select(c => JsonNode.Parse(c.Data.Span)!.AsObject())];

    /// <summary>Every content delta joined.</summary>
    public string Content => string.Concat(Visible.Select(c => (string?)c["choices"]![0]!["delta"]!["content"] ?? string.Empty));

    /// <summary>Tool call arguments per index, fragments joined, as an OpenAI client accumulates them.</summary>
    public Dictionary<int, (string? Id, string? Name, string Arguments)> ToolCalls()
    {
        var calls = new Dictionary<int, (string? Id, string? Name, string Arguments)>();
        foreach (var chunk in Visible)
        {
            if (chunk["choices"]![0]!["delta"]!["tool_calls"] is not JsonArray deltas)
            {
                continue;
            }

            foreach (var delta in deltas)
            {
                var index = (int)delta!["index"]!;
                var current = calls.GetValueOrDefault(index, (null, null, string.Empty));
                calls[index] = (
                    current.Id ?? (string?)delta["id"],
                    current.Name ?? (string?)delta["function"]?["name"],
                    current.Arguments + ((string?)delta["function"]?["arguments"] ?? string.Empty));
            }
        }

        return calls;
    }
}
