using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Npgsql;
using OpenAI;
using OpenAI.Chat;
using Tollgate.Tests.Fakes;
using Tollgate.Tests.Infrastructure;
using Tollgate.Tests.Storage;

namespace Tollgate.Tests.EndToEnd;

/// <summary>
/// Two real <c>tollgate</c> processes behind one PostgreSQL database, as a platform team runs them behind a load
/// balancer: a key made on one works on the other, a revocation on one stops the key on both, and each instance's
/// reports include what the other answered.
/// </summary>
[Collection(PostgresTests.Name)]
public sealed class SharedDatabaseTests(PostgresServer postgres) : IAsyncLifetime
{
    private const string AdminKey = "tga-shared-database-test-admin-key";

    private readonly string _directory = Directory.CreateTempSubdirectory("tollgate-shared-").FullName;
    private FakeUpstream _upstream = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private string ConfigPath => Path.Combine(_directory, "tollgate.json");

    public async ValueTask InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync("sk-shared-upstream", Ct);
        _upstream.Default = FakeBehavior.Ok("Answered.", promptTokens: 12, completionTokens: 3);
        var config = new JsonObject
        {
            ["useDefaults"] = false,
            ["providers"] = new JsonObject { ["p"] = Configs.Provider(_upstream.BaseUrl, "UPSTREAM_API_KEY") },
            ["models"] = new JsonObject { ["p/model"] = Configs.Model("p", "upstream-model", 1m, 2m) },
            ["routes"] = new JsonObject { ["gpt-4o"] = Configs.Route("cheapest", "p/model") },
            ["storage"] = new JsonObject { ["database"] = "postgres" },
        };
        await File.WriteAllTextAsync(ConfigPath, config.ToJsonString(), Ct);
    }

    public async ValueTask DisposeAsync()
    {
        await _upstream.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Left for the OS temp cleaner.
        }
    }

    [Fact]
    public async Task TwoInstances_OneDatabase_ShareKeysRevocationsAndUsage()
    {
        // The connection string as a hosting platform hands it out (a postgres:// URL), in the .env beside the config.
        var database = new NpgsqlConnectionStringBuilder(await postgres.CreateDatabaseAsync("shared"));
        await File.WriteAllTextAsync(
            Path.Combine(_directory, ".env"),
            $"UPSTREAM_API_KEY=sk-shared-upstream\nTOLLGATE_POSTGRES=postgres://{database.Username}@{database.Host}:{database.Port}/{database.Database}\n",
            Ct);

        await using var first = StartServer();
        await using var second = StartServer();
        var firstUrl = await first.WaitForListeningAsync(Ct);
        var secondUrl = await second.WaitForListeningAsync(Ct);
        using var firstAdmin = AdminClient(firstUrl);
        using var secondAdmin = AdminClient(secondUrl);

        // A key made through the first instance answers on the second, through the official SDK.
        using var created = await firstAdmin.PostAsJsonAsync("admin/keys", new { name = "shared-key" }, Ct);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var key = (await created.Content.ReadFromJsonAsync<JsonObject>(Ct))!;
        var chat = new ChatClient("gpt-4o", new ApiKeyCredential((string)key["key"]!), new OpenAIClientOptions { Endpoint = new Uri(secondUrl, "v1") });
        ChatCompletion answer = await chat.CompleteChatAsync([new UserChatMessage("Hello from the second instance.")], cancellationToken: Ct);
        Assert.Equal("Answered.", answer.Content[0].Text);
        var firstChat = new ChatClient("gpt-4o", new ApiKeyCredential((string)key["key"]!), new OpenAIClientOptions { Endpoint = new Uri(firstUrl, "v1") });
        await firstChat.CompleteChatAsync([new UserChatMessage("Hello from the first instance.")], cancellationToken: Ct);

        // Each instance reports both requests: the ledger is one table.
        foreach (var admin in new[] { firstAdmin, secondAdmin })
        {
            var usage = (await admin.GetFromJsonAsync<JsonObject>("admin/usage?groupBy=key", Ct))!;
            var row = usage["data"]!.AsArray().Single(r => (string?)r!["key"] == (string?)key["id"])!;
            Assert.Equal(2, (int)row["requests"]!);
            Assert.Equal(30, (int)row["totalTokens"]!);
        }

        // Revoked through the second instance, the key stops on the first at its next change poll (once a second).
        using (var revoked = await secondAdmin.DeleteAsync($"admin/keys/{(string)key["id"]!}", Ct))
        {
            Assert.True(revoked.IsSuccessStatusCode, $"revoke: {(int)revoked.StatusCode}");
        }

        using var client = new HttpClient { BaseAddress = firstUrl };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", (string)key["key"]!);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        deadline.CancelAfter(TimeSpan.FromSeconds(20));
        HttpStatusCode status;
        var answered = 0;
        try
        {
            do
            {
                using var response = await client.GetAsync("v1/models", deadline.Token);
                status = response.StatusCode;
                answered++;
            }
            while (status == HttpStatusCode.OK);
        }
        catch (OperationCanceledException) when (!Ct.IsCancellationRequested)
        {
            Assert.Fail($"The revoked key was not refused within 20 s ({answered} requests answered 200). First instance:\n{first.Output}\nSecond instance:\n{second.Output}");
            throw;
        }

        Assert.Equal(HttpStatusCode.Unauthorized, status);

        // The CLI works on the same database.
        var (exit, listing) = await GatewayProcess.RunAsync(["keys", "list", "--config", ConfigPath], Ct, Environment());
        Assert.Equal(0, exit);
        var listed = JsonNode.Parse(listing.Trim())!["data"]!.AsArray().Single(k => (string?)k!["id"] == (string?)key["id"])!;
        Assert.False((bool)listed["active"]!);
    }

    [Fact]
    public async Task Serve_PostgresWithoutAConnectionString_StopsWithAClearMessage()
    {
        await File.WriteAllTextAsync(Path.Combine(_directory, ".env"), "UPSTREAM_API_KEY=sk-shared-upstream\n", Ct);
        var (exit, output) = await GatewayProcess.RunAsync(["serve", "--config", ConfigPath, "--urls", $"http://127.0.0.1:{GatewayProcess.FreePort()}"], Ct, Environment());

        Assert.Equal(2, exit);
        Assert.Contains("storage:database: is 'postgres', but TOLLGATE_POSTGRES (storage:connectionStringEnv) is not set", output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_UnreachableDatabase_StopsWithAClearMessage_WithoutThePassword()
    {
        var closedPort = GatewayProcess.FreePort();
        await File.WriteAllTextAsync(
            Path.Combine(_directory, ".env"),
            $"UPSTREAM_API_KEY=sk-shared-upstream\nTOLLGATE_POSTGRES=Host=127.0.0.1;Port={closedPort};Username=tollgate;Password=s3cret-db-password;Database=none;Timeout=3\n",
            Ct);
        var (exit, output) = await GatewayProcess.RunAsync(["serve", "--config", ConfigPath, "--urls", $"http://127.0.0.1:{GatewayProcess.FreePort()}"], Ct, Environment());

        Assert.Equal(1, exit);
        Assert.Contains("The database could not be opened", output, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret-db-password", output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
    }

    private GatewayProcess StartServer() =>
        GatewayProcess.Start(["serve", "--config", ConfigPath, "--urls", $"http://127.0.0.1:{GatewayProcess.FreePort()}"], Environment(), _directory);

    /// <summary>Every process of a test runs from the test's directory, so the .env beside the config is the only one.</summary>
    private static Dictionary<string, string> Environment() => new() { ["TOLLGATE_ADMIN_KEY"] = AdminKey };

    private static HttpClient AdminClient(Uri baseUrl)
    {
        var client = new HttpClient { BaseAddress = baseUrl };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        return client;
    }
}
