using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Gateway;

public sealed class AdminTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task CreateKey_ReturnsItOnceAndStoresOnlyItsHash()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);

        using var created = await scenario.Gateway.Admin.PostAsJsonAsync("admin/keys", new { name = "ci-pipeline" }, Ct);
        var json = (await created.Content.ReadFromJsonAsync<JsonObject>(Ct))!;
        var key = (string)json["key"]!;

        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.StartsWith("tg-", key, StringComparison.Ordinal);
        Assert.StartsWith((string)json["prefix"]!, key, StringComparison.Ordinal);
        Assert.StartsWith("key_", (string)json["id"]!, StringComparison.Ordinal);

        var listing = await scenario.Gateway.Admin.GetStringAsync("admin/keys", Ct);
        Assert.Contains("ci-pipeline", listing, StringComparison.Ordinal);
        Assert.DoesNotContain(key, listing, StringComparison.Ordinal);

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        var database = await File.ReadAllBytesAsync(Path.Combine(scenario.Gateway.DataDirectory, "tollgate.db"), Ct);
        var wal = Path.Combine(scenario.Gateway.DataDirectory, "tollgate.db-wal");
        var all = System.Text.Encoding.ASCII.GetString(database) + (File.Exists(wal) ? System.Text.Encoding.ASCII.GetString(await File.ReadAllBytesAsync(wal, Ct)) : string.Empty);
        Assert.DoesNotContain(key, all, StringComparison.Ordinal);
        Assert.Contains(Tollgate.Keys.ApiKeys.Hash(key), all, StringComparison.Ordinal);

        using var client = scenario.Gateway.NewClient(key);
        using var answer = await client.PostAsJsonAsync("v1/chat/completions", GatewayScenario.ChatBody(), Ct);
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
    }

    [Fact]
    public async Task DeleteKey_RevokesAtOnce()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        using var created = await scenario.Gateway.Admin.PostAsJsonAsync("admin/keys", new { name = "temp" }, Ct);
        var json = (await created.Content.ReadFromJsonAsync<JsonObject>(Ct))!;
        using var client = scenario.Gateway.NewClient((string)json["key"]!);
        using (var before = await client.GetAsync("v1/models", Ct))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        using var revoked = await scenario.Gateway.Admin.DeleteAsync($"admin/keys/{json["id"]}", Ct);
        using var after = await client.PostAsJsonAsync("v1/chat/completions", GatewayScenario.ChatBody(), Ct);

        Assert.Equal(HttpStatusCode.NoContent, revoked.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, after.StatusCode);
        Assert.Equal(0, scenario.Fakes[0].RequestCount);
        var listing = (await scenario.Gateway.Admin.GetFromJsonAsync<JsonObject>("admin/keys", Ct))!;
        Assert.False((bool)listing["data"]!.AsArray().Single(k => (string?)k!["name"] == "temp")!["active"]!);
    }

    [Fact]
    public async Task OneConnection_EveryRequestIsAuthenticatedByItsOwnKey()
    {
        // A keep-alive connection remembers the key it authenticated with last (ConnectionKeyMemo); another key on
        // the same connection, as a reverse proxy in front of the gateway would send, must still be checked as itself.
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        async Task<(string Id, string Key)> CreateAsync(string name)
        {
            using var created = await scenario.Gateway.Admin.PostAsJsonAsync("admin/keys", new { name }, Ct);
            var json = (await created.Content.ReadFromJsonAsync<JsonObject>(Ct))!;
            return ((string)json["id"]!, (string)json["key"]!);
        }

        var first = await CreateAsync("first");
        var second = await CreateAsync("second");
        using (var revokedSecond = await scenario.Gateway.Admin.DeleteAsync($"admin/keys/{second.Id}", Ct))
        {
            Assert.Equal(HttpStatusCode.NoContent, revokedSecond.StatusCode);
        }

        var connections = 0;
        using var client = new HttpClient(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = 1,
            ConnectCallback = async (context, cancellationToken) =>
            {
                Interlocked.Increment(ref connections);
                var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
            },
        })
        { BaseAddress = scenario.Gateway.BaseAddress };

        async Task<HttpStatusCode> ModelsAsync(string key)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "v1/models");
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
            using var response = await client.SendAsync(request, Ct);
            return response.StatusCode;
        }

        Assert.Equal(HttpStatusCode.OK, await ModelsAsync(first.Key));
        Assert.Equal(HttpStatusCode.OK, await ModelsAsync(first.Key));
        Assert.Equal(HttpStatusCode.Unauthorized, await ModelsAsync(second.Key));
        Assert.Equal(HttpStatusCode.Unauthorized, await ModelsAsync(first.Key[..^1] + (first.Key[^1] == 'A' ? 'B' : 'A')));
        Assert.Equal(HttpStatusCode.OK, await ModelsAsync(first.Key));

        using (var revoked = await scenario.Gateway.Admin.DeleteAsync($"admin/keys/{first.Id}", Ct))
        {
            Assert.Equal(HttpStatusCode.NoContent, revoked.StatusCode);
        }

        Assert.Equal(HttpStatusCode.Unauthorized, await ModelsAsync(first.Key));
        Assert.Equal(1, connections);
    }

    [Fact]
    public async Task DeleteKey_Unknown_Is404Problem()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);

        using var response = await scenario.Gateway.Admin.DeleteAsync("admin/keys/key_nope", Ct);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("{\"name\":\"\"}")]
    [InlineData("not json")]
    public async Task CreateKey_BadBody_Is400Problem(string body)
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);

        using var response = await scenario.Gateway.Admin.PostAsync("admin/keys", new StringContent(body, System.Text.Encoding.UTF8, "application/json"), Ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Theory]
    [InlineData("GET", "admin/keys")]
    [InlineData("POST", "admin/keys")]
    [InlineData("POST", "admin/health/reset")]
    [InlineData("GET", "providers")]
    public async Task AdminEndpoints_WithoutTheAdminKey_Are401(string method, string path)
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);

        // A valid *client* key is not an admin key.
        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = JsonContent.Create(new { name = "x" }) };
        using var response = await scenario.Client.SendAsync(request, Ct);
        using var anonymous = await scenario.Gateway.Anonymous.GetAsync(path, Ct);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
    }

    [Fact]
    public async Task Health_NeedsNoAuth()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);

        var json = (await scenario.Gateway.Anonymous.GetFromJsonAsync<JsonObject>("health", Ct))!;

        Assert.Equal("ok", (string?)json["status"]);
        Assert.Equal(1, (int)json["providersConfigured"]!);

        var ready = (await scenario.Gateway.Anonymous.GetFromJsonAsync<JsonObject>("health/ready", Ct))!;
        Assert.Equal(("ready", "ok", "in memory"), ((string?)ready["status"], (string?)ready["database"], (string?)ready["limitCounters"]));
    }

    [Fact]
    public async Task Providers_ShowConfiguredStateLatencyAndErrors()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 2, configure: config =>
        {
            config["providers"]!["p1"]!["apiKeyEnv"] = "NOT_SET";
        }, cancellationToken: Ct);
        using (await scenario.PostChatAsync(GatewayScenario.ChatBody(), Ct))
        {
        }

        var json = (await scenario.Gateway.Admin.GetFromJsonAsync<JsonObject>("providers", Ct))!;
        var providers = json["providers"]!.AsArray();
        var p0 = providers.Single(p => (string?)p!["name"] == "p0")!;
        var p1 = providers.Single(p => (string?)p!["name"] == "p1")!;

        Assert.True((bool)p0["configured"]!);
        Assert.True((bool)p0["online"]!);
        Assert.Equal("closed", (string?)p0["circuit"]);
        Assert.NotNull((double?)p0["latencyP50Ms"]);
        Assert.Equal(0, (double)p0["errorRate"]!);
        Assert.False((bool)p1["configured"]!);
        Assert.False((bool)p1["online"]!);
        Assert.Equal("NOT_SET", (string?)p1["apiKeyEnv"]);
        Assert.DoesNotContain("sk-p", json.ToJsonString(), StringComparison.Ordinal);
    }
}
