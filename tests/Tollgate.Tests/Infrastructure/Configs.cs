using System.Text.Json.Nodes;

namespace Tollgate.Tests.Infrastructure;

/// <summary>Builders for tollgate.json content pointing at fake upstreams.</summary>
public static class Configs
{
    /// <summary>A provider of type openai at <paramref name="baseUrl"/> whose key is in <c>{NAME}_KEY</c>.</summary>
    public static JsonObject Provider(Uri baseUrl, string? apiKeyEnv = "DEFAULT", int? timeoutMs = null)
    {
        var provider = new JsonObject { ["type"] = "openai", ["baseUrl"] = baseUrl.ToString() };
        if (apiKeyEnv is not null)
        {
            provider["apiKeyEnv"] = apiKeyEnv;
        }

        if (timeoutMs is not null)
        {
            provider["timeoutMs"] = timeoutMs;
        }

        return provider;
    }

    public static JsonObject Model(string provider, string upstreamModel, decimal input, decimal output, string[]? capabilities = null, int contextWindow = 128_000, int maxOutputTokens = 4_096, decimal? cachedInput = null)
    {
        var model = new JsonObject
        {
            ["provider"] = provider,
            ["upstreamModel"] = upstreamModel,
            ["inputPerMillion"] = input,
            ["outputPerMillion"] = output,
            ["contextWindow"] = contextWindow,
            ["maxOutputTokens"] = maxOutputTokens,
            ["capabilities"] = new JsonArray([.. (capabilities ?? ["tools", "vision", "json"]).Select(c => (JsonNode)c!)]),
        };
        if (cachedInput is not null)
        {
            model["cachedInputPerMillion"] = cachedInput;
        }

        return model;
    }

    public static JsonObject Route(string strategy, params string[] candidates) => new()
    {
        ["strategy"] = strategy,
        ["candidates"] = new JsonArray([.. candidates.Select(c => (JsonNode)c!)]),
    };
}
