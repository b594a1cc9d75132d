using System.Text;
using System.Text.Json.Nodes;
using BenchmarkDotNet.Attributes;
using Tollgate.Configuration;
using Tollgate.Keys;
using Tollgate.Providers.OpenAI;
using Tollgate.Requests;
using Tollgate.Routing;

namespace Tollgate.Benchmarks;

/// <summary>The per-request work the gateway adds before and after the upstream call.</summary>
[MemoryDiagnoser]
public class HotPathBenchmarks
{
    private static readonly byte[] ChatBody = Encoding.UTF8.GetBytes("""
        {"model":"gpt-4o","messages":[{"role":"system","content":"You are a helpful assistant that answers briefly and precisely."},
        {"role":"user","content":"Summarise the following paragraph in one sentence: Tollgate is a self-hosted, OpenAI-compatible LLM gateway that sends each request to the cheapest provider that is healthy and able to serve it, fails over when a provider errs, and meters every token exactly."}],
        "temperature":0.2,"max_tokens":64,"stream":true,"tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}}]}
        """);

    private static readonly byte[] Chunk = Encoding.UTF8.GetBytes(
        """{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":" word"},"logprobs":null,"finish_reason":null}],"usage":null}""");

    private static readonly byte[] UsageChunk = Encoding.UTF8.GetBytes(
        """{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,"prompt_tokens_details":{"cached_tokens":1920},"completion_tokens_details":{"reasoning_tokens":192}}}""");

    private const string Key = "tg-qjjz6hYEASKnBsa4SmQuybGGQn4D7veqkR2Z1aARqdQ";

    private Catalog _catalog = null!;
    private Route _route = null!;
    private ParsedRequest _request = null!;

    [GlobalSetup]
    public void Setup()
    {
        var config = new JsonObject
        {
            ["useDefaults"] = false,
            ["providers"] = new JsonObject
            {
                ["a"] = new JsonObject { ["type"] = "openai", ["baseUrl"] = "http://127.0.0.1:1/v1", ["apiKeyEnv"] = "A" },
                ["b"] = new JsonObject { ["type"] = "openai", ["baseUrl"] = "http://127.0.0.1:2/v1", ["apiKeyEnv"] = "B" },
            },
            ["models"] = new JsonObject
            {
                ["a/premium"] = Model("a", 2.5m, 10m),
                ["b/cheap"] = Model("b", 0.28m, 0.42m),
                ["a/mini"] = Model("a", 0.15m, 0.6m),
            },
            ["routes"] = new JsonObject
            {
                ["gpt-4o"] = new JsonObject { ["strategy"] = "cheapest", ["candidates"] = new JsonArray("a/premium", "b/cheap", "a/mini") },
            },
        };
        var options = ConfigurationLoader.Load(config, new Dictionary<string, string>());
        _catalog = Catalog.Build(options, new SecretSource(new Dictionary<string, string> { ["A"] = "x", ["B"] = "y" }), TimeProvider.System);
        _route = _catalog.Routes["gpt-4o"];
        RequestParser.TryParse(RequestKind.ChatCompletion, ChatBody, out var request, out _);
        _request = request!;
    }

    [GlobalCleanup]
    public void Cleanup() => _catalog.Dispose();

    private static JsonObject Model(string provider, decimal input, decimal output) => new()
    {
        ["provider"] = provider,
        ["upstreamModel"] = "m",
        ["inputPerMillion"] = input,
        ["outputPerMillion"] = output,
        ["capabilities"] = new JsonArray("tools", "json"),
    };

    [Benchmark(Description = "parse + validate chat body (~700 B)")]
    public bool ParseRequest() => RequestParser.TryParse(RequestKind.ChatCompletion, ChatBody, out _, out _);

    [Benchmark(Description = "splice upstream body (model + stream_options)")]
    public int RewriteBody()
    {
        using var body = UpstreamBodyWriter.Write(_request, _catalog.Deployments["b/cheap"].UpstreamModelJson);
        return body.Memory.Length;
    }

    [Benchmark(Description = "route plan (3 candidates, cheapest)")]
    public int PlanRoute() => Router.Plan(_route, _request).Candidates.Length;

    [Benchmark(Description = "scan stream chunk")]
    public bool ScanChunk() => OpenAIResponseScanner.Scan(Chunk).HasChoices;

    [Benchmark(Description = "scan usage chunk + buckets")]
    public long ScanUsageChunk() => OpenAIResponseScanner.Scan(UsageChunk).Usage!.Value.ToBuckets().Total;

    [Benchmark(Description = "hash client key (SHA-256)")]
    public string HashKey() => ApiKeys.Hash(Key);
}
