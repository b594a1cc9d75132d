using System.Text.Json.Nodes;
using Tollgate.Configuration;

namespace Tollgate.Server.Demo;

/// <summary>How a demo provider behaves: real-world latencies (compressed by <see cref="DemoCatalog.TimeCompression"/>) and fault rates.</summary>
/// <param name="FirstTokenMs">Real-world time to the first token.</param>
/// <param name="MsPerOutputToken">Real-world generation time per output token.</param>
/// <param name="ServerErrorRate">Share of requests answered with a 500.</param>
/// <param name="RateLimitRate">Share of requests answered with a 429 (and a Retry-After of one second).</param>
internal sealed record DemoBehavior(int FirstTokenMs, double MsPerOutputToken, double ServerErrorRate, double RateLimitRate);

/// <summary>One demo deployment: its id, the demo provider hosting it, list prices per 1M tokens, tier and behaviour.</summary>
internal sealed record DemoDeployment(string Id, string Provider, string UpstreamModel, decimal InputPerMillion, decimal OutputPerMillion, decimal? CachedInputPerMillion, int Tier, DemoBehavior Behavior);

/// <summary>
/// The catalog <c>tollgate demo</c> runs on: demo providers only (every name starts with <c>demo-</c>, so no report or
/// dashboard can mistake them for real ones), served by <see cref="DemoUpstream"/> on loopback. The built-in catalog is
/// switched off, so a real provider key in the environment is never used by the demo. Prices are the real providers'
/// list prices (USD per 1M tokens, November 2026); latencies are typical real ones.
/// </summary>
internal static class DemoCatalog
{
    /// <summary>Demo latencies run this many times faster than real ones, so a few thousand requests take about a minute.</summary>
    public const int TimeCompression = 10;

    /// <summary>The environment variable name of the demo providers' (meaningless) key.</summary>
    public const string KeyVariable = "TOLLGATE_DEMO_PROVIDER_KEY";

    public static IReadOnlyList<DemoDeployment> Deployments { get; } =
    [
        new("demo-ollama/llama3.2", "demo-ollama", "llama3.2", 0m, 0m, 0m, 1, new DemoBehavior(120, 25, 0.01, 0)),
        new("demo-openai/gpt-4o-mini", "demo-openai", "gpt-4o-mini", 0.15m, 0.60m, 0.075m, 1, new DemoBehavior(350, 8, 0.005, 0.01)),
        new("demo-deepseek/deepseek-chat", "demo-deepseek", "deepseek-chat", 0.28m, 0.42m, 0.028m, 2, new DemoBehavior(700, 20, 0.03, 0)),
        new("demo-anthropic/claude-haiku-4-5", "demo-anthropic", "claude-haiku-4-5", 1.00m, 5.00m, 0.10m, 2, new DemoBehavior(450, 7, 0.005, 0.005)),
        new("demo-openai/gpt-4o", "demo-openai", "gpt-4o", 2.50m, 10.00m, 1.25m, 3, new DemoBehavior(500, 12, 0.005, 0.01)),
        new("demo-anthropic/claude-sonnet-4-5", "demo-anthropic", "claude-sonnet-4-5", 3.00m, 15.00m, 0.30m, 3, new DemoBehavior(900, 15, 0.005, 0.005)),
    ];

    /// <summary>Public model names the demo traffic asks for.</summary>
    public static class Routes
    {
        public const string Auto = "auto";
        public const string Gpt4o = "gpt-4o";
        public const string ClaudeSonnet = "claude-sonnet";
    }

    /// <summary>The demo tenants' plans.</summary>
    public static class Plans
    {
        public const string Team = "demo-team";
        public const string Startup = "demo-startup";
        public const string Hobby = "demo-hobby";
    }

    /// <summary>The demo configuration, validated like a user's tollgate.json.</summary>
    public static TollgateOptions Options(Uri upstream)
    {
        var providers = new JsonObject();
        foreach (var provider in Deployments.Select(d => d.Provider).Distinct())
        {
            providers[provider] = new JsonObject
            {
                ["type"] = ProviderTypes.OpenAI,
                ["baseUrl"] = new Uri(upstream, $"{provider}/v1").ToString(),
                ["apiKeyEnv"] = KeyVariable,
                ["timeoutMs"] = 5_000,
            };
        }

        var models = new JsonObject();
        foreach (var d in Deployments)
        {
            models[d.Id] = new JsonObject
            {
                ["provider"] = d.Provider,
                ["upstreamModel"] = d.UpstreamModel,
                ["inputPerMillion"] = d.InputPerMillion,
                ["outputPerMillion"] = d.OutputPerMillion,
                ["cachedInputPerMillion"] = d.CachedInputPerMillion,
                ["contextWindow"] = 128_000,
                ["maxOutputTokens"] = 4_096,
                ["capabilities"] = new JsonArray("tools", "json"),
                ["tier"] = d.Tier,
            };
        }

        JsonArray All() => [.. Deployments.Select(d => (JsonNode)d.Id!)];
        var config = new JsonObject
        {
            ["useDefaults"] = false,
            ["providers"] = providers,
            ["models"] = models,
            ["routes"] = new JsonObject
            {
                // The SaaS team's route: the cheapest deployment good enough for the task.
                [Routes.Auto] = new JsonObject { ["strategy"] = RouteStrategies.Task, ["candidates"] = All() },

                // The solo developer's: asks for gpt-4o; the operator allows a cheaper equivalent to answer it.
                [Routes.Gpt4o] = new JsonObject { ["strategy"] = RouteStrategies.Cheapest, ["candidates"] = new JsonArray("demo-openai/gpt-4o", "demo-deepseek/deepseek-chat") },

                // A fixed premium choice with a fallback.
                [Routes.ClaudeSonnet] = new JsonObject { ["strategy"] = RouteStrategies.Ordered, ["candidates"] = new JsonArray("demo-anthropic/claude-sonnet-4-5", "demo-openai/gpt-4o") },
            },
            ["routing"] = new JsonObject { ["attemptTimeoutMs"] = 5_000, ["circuitBreakMs"] = 2_000 },

            // Plans sized for a one-minute burst: no per-minute limits, small included quotas so invoices show overage.
            ["plans"] = new JsonObject
            {
                [Plans.Team] = new JsonObject { ["monthlyFeeUsd"] = 29, ["includedTokens"] = 300_000, ["overagePer1KTokensUsd"] = 0.004 },
                [Plans.Startup] = new JsonObject { ["monthlyFeeUsd"] = 9, ["includedTokens"] = 100_000, ["overagePer1KTokensUsd"] = 0.005 },
                [Plans.Hobby] = new JsonObject { ["monthlyFeeUsd"] = 0, ["includedTokens"] = 50_000, ["overagePer1KTokensUsd"] = 0.006 },
            },
        };
        return ConfigurationLoader.Load(config, new Dictionary<string, string>());
    }

    public static DemoDeployment? Find(string provider, string upstreamModel) =>
        Deployments.FirstOrDefault(d => d.Provider == provider && d.UpstreamModel == upstreamModel);
}
