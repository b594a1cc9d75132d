using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Tollgate.Tests.Fakes;

namespace Tollgate.Tests.Infrastructure;

/// <summary>
/// A gateway in front of N fake providers. Provider <c>p{i}</c> (key <c>sk-p{i}</c>) hosts deployment
/// <c>d{i}</c>; deployment i is cheaper than i+1, so strategy <c>cheapest</c> tries them in index order.
/// Route <c>gpt-4o</c> lists every deployment.
/// </summary>
public sealed class GatewayScenario : IAsyncDisposable
{
    private GatewayScenario(TestGateway gateway, FakeUpstream[] fakes)
    {
        Gateway = gateway;
        Fakes = fakes;
    }

    public TestGateway Gateway { get; }

    public FakeUpstream[] Fakes { get; }

    public HttpClient Client => Gateway.Client;

    /// <param name="providers">How many fake providers.</param>
    /// <param name="refused">Indexes whose base URL is a port nothing listens on.</param>
    /// <param name="configure">Last changes to the config before start.</param>
    public static async Task<GatewayScenario> StartAsync(
        int providers = 2,
        string strategy = "cheapest",
        int[]? refused = null,
        Action<JsonObject>? configure = null,
        CancellationToken cancellationToken = default)
    {
        var fakes = new FakeUpstream[providers];
        var providerConfig = new JsonObject();
        var models = new JsonObject();
        var secrets = new Dictionary<string, string>();
        for (var i = 0; i < providers; i++)
        {
            fakes[i] = await FakeUpstream.StartAsync($"sk-p{i}", cancellationToken);
            var url = refused?.Contains(i) == true ? FakeUpstream.UnusedLoopbackUrl() : fakes[i].BaseUrl;
            providerConfig[$"p{i}"] = Configs.Provider(url, $"P{i}_KEY");
            models[$"d{i}"] = Configs.Model($"p{i}", $"upstream-{i}", i + 1, (i + 1) * 2, cachedInput: (i + 1) / 2m);
            secrets[$"P{i}_KEY"] = $"sk-p{i}";
        }

        var config = new JsonObject
        {
            ["providers"] = providerConfig,
            ["models"] = models,
            ["routes"] = new JsonObject { ["gpt-4o"] = Configs.Route(strategy, [.. Enumerable.Range(0, providers).Select(i => $"d{i}")]) },
            ["routing"] = new JsonObject { ["attemptTimeoutMs"] = 30_000 },
        };
        configure?.Invoke(config);
        var gateway = await TestGateway.StartAsync(config, secrets, cancellationToken: cancellationToken);
        return new GatewayScenario(gateway, fakes);
    }

    public static JsonObject ChatBody(string model = "gpt-4o", bool stream = false, string content = "Say hello.") => new()
    {
        ["model"] = model,
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = content }),
        ["stream"] = stream,
    };

    public Task<HttpResponseMessage> PostChatAsync(JsonObject body, CancellationToken cancellationToken) =>
        Client.PostAsync("v1/chat/completions", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"), cancellationToken);

    public async Task<JsonObject> ReadJsonAsync(HttpResponseMessage response, CancellationToken cancellationToken) =>
        (await response.Content.ReadFromJsonAsync<JsonObject>(cancellationToken))!;

    public async ValueTask DisposeAsync()
    {
        await Gateway.DisposeAsync();
        foreach (var fake in Fakes)
        {
            await fake.DisposeAsync();
        }
    }
}

/// <summary>Splits an SSE body into its data payloads.</summary>
public static class Sse
{
    public static List<string> DataEvents(string body) =>
        [.. body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Where(e => e.StartsWith("data: ", StringComparison.Ordinal))
            .Select(e => e["data: ".Length..])];
}
