using System.ClientModel;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Npgsql;
using OpenAI;
using OpenAI.Chat;
using StackExchange.Redis;
using Tollgate.Tests.Fakes;
using Tollgate.Tests.Infrastructure;
using Tollgate.Tests.Storage;

namespace Tollgate.Tests.EndToEnd;

/// <summary>
/// Two real <c>tollgate</c> processes behind one PostgreSQL database, as a platform team runs them behind a load
/// balancer: a key made on one works on the other, a revocation on one stops the key on both, and each instance's
/// reports include what the other answered; limits hold across them with their counters in PostgreSQL or in Redis.
/// </summary>
[Collection(PostgresTests.Name)]
public sealed class SharedDatabaseTests(PostgresServer postgres, RedisServer redis) : IAsyncLifetime
{
    private const string AdminKey = "tga-shared-database-test-admin-key";

    private const string WarningHeader = "x-tollgate-warning";

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
            ["plans"] = new JsonObject { ["team"] = new JsonObject { ["includedTokens"] = 30, ["overagePer1KTokensUsd"] = 0.01 } },
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
        var databaseName = await WriteConnectionStringAsync();

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
            var row = new NpgsqlConnectionStringBuilder(postgres.AdminConnectionString) { Database = databaseName, Pooling = false };
            await using var connection = new NpgsqlConnection(row.ConnectionString);
            await connection.OpenAsync(Ct);
            await using var query = new NpgsqlCommand($"SELECT revoked_at::text || ' / stamp ' || (SELECT value FROM settings WHERE name = 'auth_version') FROM api_keys WHERE id = '{(string)key["id"]!}'", connection);
            Assert.Fail($"The revoked key was not refused within 20 s ({answered} requests answered 200; in the database: {await query.ExecuteScalarAsync(Ct)}). First instance:\n{first.Output}\nSecond instance:\n{second.Output}");
            throw;
        }

        Assert.Equal(HttpStatusCode.Unauthorized, status);

        // The CLI works on the same database.
        var (exit, listing) = await GatewayProcess.RunAsync(["keys", "list", "--config", ConfigPath], Ct, Environment());
        Assert.Equal(0, exit);
        var listed = JsonNode.Parse(listing.Trim())!["data"]!.AsArray().Single(k => (string?)k!["id"] == (string?)key["id"])!;
        Assert.False((bool)listed["active"]!);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task TwoInstances_HoldOneQuotaAndPriceOneMonthBetweenThem(bool countersInRedis)
    {
        await WriteConnectionStringAsync(countersInRedis ? redis.NewConnectionString() : null);
        await using var first = StartServer();
        await using var second = StartServer();
        var urls = new[] { await first.WaitForListeningAsync(Ct), await second.WaitForListeningAsync(Ct) };
        using var admin = AdminClient(urls[0]);

        // A key allowed 100 tokens a month, used through both instances in turn (each answer uses 15 tokens). With
        // counters per instance each would let about six through; shared, the two together stop at 100.
        using var created = await admin.PostAsJsonAsync("admin/keys", new { name = "quota", limits = new { monthlyTokens = 100 } }, Ct);
        var quotaKey = (await created.Content.ReadFromJsonAsync<JsonObject>(Ct))!;
        var refusedBy = new HashSet<int>();
        for (var i = 0; i < 16; i++)
        {
            using var response = await ChatAsync(urls[i % 2], (string)quotaKey["key"]!, Ct);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                Assert.Contains("monthly_token_quota_exceeded", await response.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
                refusedBy.Add(i % 2);
            }
            else
            {
                Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(Ct)}");
            }
        }

        Assert.Equal([0, 1], refusedBy.Order());
        var quotaUsage = (await admin.GetFromJsonAsync<JsonObject>("admin/usage?groupBy=key", Ct))!["data"]!.AsArray()
            .Single(r => (string?)r!["key"] == (string?)quotaKey["id"])!;
        Assert.InRange((long)quotaUsage["totalTokens"]!, 15, 100);

        // A tenant on plan "team" (30 tokens included, USD 0.01 per 1K beyond): four answers of 15 tokens through both
        // instances are 60 tokens, 30 of them beyond, charged exactly once: USD 0.0003.
        using var tenantCreated = await admin.PostAsJsonAsync("admin/tenants", new { name = "acme", plan = "team" }, Ct);
        var tenant = (await tenantCreated.Content.ReadFromJsonAsync<JsonObject>(Ct))!;
        using var keyCreated = await admin.PostAsJsonAsync("admin/keys", new { name = "acme-app", tenant = (string)tenant["id"]! }, Ct);
        var tenantKey = (string)(await keyCreated.Content.ReadFromJsonAsync<JsonObject>(Ct))!["key"]!;
        for (var i = 0; i < 4; i++)
        {
            using var response = await ChatAsync(urls[i % 2], tenantKey, Ct);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(Ct)}");
        }

        var billed = (await admin.GetFromJsonAsync<JsonObject>($"admin/usage?tenant={(string)tenant["id"]!}", Ct))!["totals"]!;
        Assert.Equal(60, (long)billed["totalTokens"]!);
        Assert.Equal(0.0003m, (decimal)billed["priceUsd"]!);
    }

    [Fact]
    public async Task DatabaseLostWhileServing_LimitedRequestsFailClosed_AndNothingIsAnsweredUnrecorded()
    {
        var database = await WriteConnectionStringAsync();
        await using var server = StartServer();
        var url = await server.WaitForListeningAsync(Ct);
        using var admin = AdminClient(url);
        using var created = await admin.PostAsJsonAsync("admin/keys", new { name = "limited", limits = new { monthlyTokens = 1000 } }, Ct);
        var limited = (string)(await created.Content.ReadFromJsonAsync<JsonObject>(Ct))!["key"]!;
        using var createdOpen = await admin.PostAsJsonAsync("admin/keys", new { name = "open" }, Ct);
        var open = (string)(await createdOpen.Content.ReadFromJsonAsync<JsonObject>(Ct))!["key"]!;
        using (var before = await ChatAsync(url, limited, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        using (var before = await ChatAsync(url, open, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        int upstreamCalls;
        await using (var connection = new NpgsqlConnection(postgres.AdminConnectionString))
        {
            await connection.OpenAsync(Ct);
            await using var drop = new NpgsqlCommand($"DROP DATABASE \"{database}\" WITH (FORCE)", connection);
            await drop.ExecuteNonQueryAsync(Ct);
        }

        // The open key's answer cannot be recorded: 500 ledger_unavailable, never an answer without its row (the key
        // itself may already be unverifiable: 503 keys_unavailable).
        using (var unrecorded = await ChatAsync(url, open, Ct))
        {
            var body = await unrecorded.Content.ReadAsStringAsync(Ct);
            Assert.True(
                (unrecorded.StatusCode, ErrorCode(body)) is (HttpStatusCode.InternalServerError, "ledger_unavailable") or (HttpStatusCode.ServiceUnavailable, "keys_unavailable"),
                $"{(int)unrecorded.StatusCode}: {body}");
        }

        // The limited key: until the change watcher finds the counter unreadable and drops the key cache (within a
        // second), its limit check or its row fails (500 ledger_unavailable); after, the key cannot be verified (503
        // keys_unavailable, with Retry-After). No provider is asked either way.
        upstreamCalls = _upstream.Requests.Count;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        deadline.CancelAfter(TimeSpan.FromSeconds(20));
        while (true)
        {
            using var response = await ChatAsync(url, limited, deadline.Token);
            var body = await response.Content.ReadAsStringAsync(Ct);
            if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
            {
                Assert.Equal("keys_unavailable", ErrorCode(body));
                Assert.Equal("1", response.Headers.RetryAfter?.ToString());
                break;
            }

            Assert.True((response.StatusCode, ErrorCode(body)) is (HttpStatusCode.InternalServerError, "ledger_unavailable"), $"{(int)response.StatusCode}: {body}");
        }

        Assert.Equal(upstreamCalls, _upstream.Requests.Count);
        Assert.False(server.HasExited);

        // A load balancer's readiness probe takes the instance out of rotation, without naming the server.
        using var probe = new HttpClient { BaseAddress = url };
        using var unready = await probe.GetAsync("health/ready", Ct);
        var readiness = await unready.Content.ReadAsStringAsync(Ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, unready.StatusCode);
        Assert.Equal("""{"status":"unready","database":"unreachable","limitCounters":"in database"}""", readiness);
    }

    /// <summary>
    /// Clients that leave while their database query runs must cost nothing but that query. Before Npgsql stopped being
    /// handed request tokens, each abort made Npgsql cancel on the aborting thread while the query's completion waited
    /// for it on the socket I/O thread (inline I/O), and every connection of the instance stalled until the command
    /// timeout (30 s): this test's readiness probe answered 503, its own database check having timed out.
    /// </summary>
    [Fact]
    public async Task ClientsLeavingDuringQueries_DoNotStallTheInstance()
    {
        var database = await WriteConnectionStringAsync();
        await using var server = StartServer();
        var url = await server.WaitForListeningAsync(Ct);

        // 200,000 ledger rows of this month, so that the report queries are still running when their clients leave.
        var builder = new NpgsqlConnectionStringBuilder(postgres.AdminConnectionString) { Database = database };
        await using (var connection = new NpgsqlConnection(builder.ConnectionString))
        {
            await connection.OpenAsync(Ct);
            await using var fill = new NpgsqlCommand("""
                INSERT INTO ledger (request_id, ts_ms, tenant_id, key_id, model, attempts, input_uncached, input_cached,
                    cache_write_5m, cache_write_1h, output_text, output_reasoning, cost_pusd, price_pusd, total_ms, status)
                SELECT 'req_' || i, (extract(epoch FROM now()) * 1000)::bigint - i * 10, 'default', 'key_' || (i % 50), 'gpt-4o',
                    1, 10, 0, 0, 0, 5, 0, 1000, 0, 3, 200
                FROM generate_series(1, 200000) AS i
                """, connection);
            await fill.ExecuteNonQueryAsync(Ct);
        }

        for (var round = 0; round < 3; round++)
        {
            using var leaving = new HttpClient { BaseAddress = url };
            leaving.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
            using var leave = CancellationTokenSource.CreateLinkedTokenSource(Ct);
            var reports = Enumerable.Range(0, 32).Select(async _ =>
            {
                try
                {
                    using var response = await leaving.GetAsync("admin/reports/usage?groupBy=day,key", leave.Token);
                }
                catch (OperationCanceledException) when (leave.IsCancellationRequested)
                {
                    // This client left, as intended.
                }
            }).ToArray();

            // When the first report is answered the others are running or waiting for a connection; their clients leave,
            // and the gateway sees each request aborted.
            await Task.WhenAny(reports);
            await leave.CancelAsync();
            await Task.WhenAll(reports);

            // The instance answers at once, while the abandoned queries finish in the database.
            using var probe = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(10) };
            using var health = await probe.GetAsync("health/ready", Ct);
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }

        using var admin = AdminClient(url);
        admin.Timeout = TimeSpan.FromSeconds(15);
        using var report = await admin.GetAsync("admin/reports/usage", Ct);
        Assert.Equal(HttpStatusCode.OK, report.StatusCode);
        Assert.False(server.HasExited);
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

    [Fact]
    public async Task RateLimitMetOnOneInstance_ParksTheDeploymentOnTheOther()
    {
        // Two candidates: the cheap one (this test's upstream) and a premium one. Both instances use the same provider
        // keys, so a 429 one of them gets is the other's limit too.
        await using var premium = await FakeUpstream.StartAsync("sk-premium-upstream", Ct);
        premium.Default = FakeBehavior.Ok("Premium answer.", promptTokens: 12, completionTokens: 3);
        await WriteConnectionStringAsync();
        await File.AppendAllTextAsync(Path.Combine(_directory, ".env"), "PREMIUM_API_KEY=sk-premium-upstream\n", Ct);
        var config = JsonNode.Parse(await File.ReadAllTextAsync(ConfigPath, Ct))!;
        config["providers"]!["q"] = Configs.Provider(premium.BaseUrl, "PREMIUM_API_KEY");
        config["models"]!["q/model"] = Configs.Model("q", "premium-model", 10m, 20m);
        config["routes"]!["gpt-4o"] = Configs.Route("cheapest", "p/model", "q/model");
        await File.WriteAllTextAsync(ConfigPath, config.ToJsonString(), Ct);

        await using var first = StartServer();
        await using var second = StartServer();
        var urls = new[] { await first.WaitForListeningAsync(Ct), await second.WaitForListeningAsync(Ct) };
        using var admin = AdminClient(urls[0]);
        using var created = await admin.PostAsJsonAsync("admin/keys", new { name = "app" }, Ct);
        var key = (string)(await created.Content.ReadFromJsonAsync<JsonObject>(Ct))!["key"]!;

        // The first instance meets the cheap provider's rate limit (Retry-After: 60 s) and fails over to the premium one.
        _upstream.Enqueue(FakeBehavior.Status(429, retryAfter: "60"));
        using (var answered = await ChatAsync(urls[0], key, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
            Assert.Equal("q", answered.Headers.GetValues("x-tollgate-provider").Single());
        }

        Assert.Single(_upstream.Requests);

        // The second instance hears of it (PostgreSQL NOTIFY), and parks the cheap deployment for the rest of the minute.
        using var secondAdmin = AdminClient(urls[1]);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        deadline.CancelAfter(TimeSpan.FromSeconds(20));
        while (!await CoolingDownAsync(secondAdmin, "p/model", deadline.Token))
        {
            await Task.Delay(50, deadline.Token);
        }

        using (var answered = await ChatAsync(urls[1], key, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
            Assert.Equal("q", answered.Headers.GetValues("x-tollgate-provider").Single());
        }

        Assert.Single(_upstream.Requests);

        static async Task<bool> CoolingDownAsync(HttpClient client, string deployment, CancellationToken cancellationToken)
        {
            var providers = (await client.GetFromJsonAsync<JsonObject>("providers", cancellationToken))!["providers"]!.AsArray();
            var status = providers.SelectMany(p => p!["deployments"]!.AsArray()).Single(d => (string?)d!["id"] == deployment)!;
            return status["coolingDownUntil"] is not null;
        }
    }

    [Fact]
    public async Task DashboardLogin_OnOneInstance_IsGoodOnTheOther_AndALogoutEndsItOnBoth()
    {
        var database = await WriteConnectionStringAsync();
        await using var first = StartServer();
        await using var second = StartServer();
        var urls = new[] { await first.WaitForListeningAsync(Ct), await second.WaitForListeningAsync(Ct) };
        using var handler = new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false };
        using var http = new HttpClient(handler);

        using var login = await http.PostAsync(new Uri(urls[0], "dashboard/login"), new FormUrlEncodedContent([new("key", AdminKey)]), Ct);
        Assert.Equal(HttpStatusCode.SeeOther, login.StatusCode);
        var cookie = login.Headers.GetValues("Set-Cookie").Single().Split(';')[0];
        var sessionId = cookie[(cookie.IndexOf('=', StringComparison.Ordinal) + 1)..];

        // Behind a load balancer without sticky sessions the next request goes to the other instance.
        Assert.Equal(HttpStatusCode.OK, await SendWithCookieAsync(HttpMethod.Get, urls[1], "dashboard/session"));
        Assert.Equal(HttpStatusCode.OK, await SendWithCookieAsync(HttpMethod.Get, urls[1], "admin/tenants"));

        // The database holds the session under the hash of the cookie, never the cookie itself.
        await using (var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(postgres.AdminConnectionString) { Database = database }.ConnectionString))
        {
            await connection.OpenAsync(Ct);
            await using var command = new NpgsqlCommand("SELECT count(*) FILTER (WHERE id_hash = $1), count(*) FROM dashboard_sessions", connection);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = sessionId });
            await using var reader = await command.ExecuteReaderAsync(Ct);
            await reader.ReadAsync(Ct);
            Assert.Equal((0L, 1L), (reader.GetInt64(0), reader.GetInt64(1)));
        }

        Assert.Equal(HttpStatusCode.SeeOther, await SendWithCookieAsync(HttpMethod.Post, urls[1], "dashboard/logout"));
        Assert.Equal(HttpStatusCode.Unauthorized, await SendWithCookieAsync(HttpMethod.Get, urls[0], "dashboard/session"));
        Assert.Equal(HttpStatusCode.Unauthorized, await SendWithCookieAsync(HttpMethod.Get, urls[0], "admin/tenants"));

        async Task<HttpStatusCode> SendWithCookieAsync(HttpMethod method, Uri baseUrl, string path)
        {
            using var request = new HttpRequestMessage(method, new Uri(baseUrl, path));
            request.Headers.Add("Cookie", cookie);
            using var response = await http.SendAsync(request, Ct);
            return response.StatusCode;
        }
    }

    [Fact]
    public async Task RedisLostWhileServing_LimitedRequestsFailClosed_OthersAreServed_AndItsReturnIsSeamless()
    {
        // A Redis of this test's own, to stop and start again while the gateway serves.
        var counters = new RedisServer();
        await counters.InitializeAsync();
        await WriteConnectionStringAsync(counters.NewConnectionString());
        await using var server = StartServer();
        var url = await server.WaitForListeningAsync(Ct);
        using var admin = AdminClient(url);
        using var created = await admin.PostAsJsonAsync("admin/keys", new { name = "limited", limits = new { monthlyTokens = 40 } }, Ct);
        var limitedKey = (await created.Content.ReadFromJsonAsync<JsonObject>(Ct))!;
        var limited = (string)limitedKey["key"]!;
        using var createdOpen = await admin.PostAsJsonAsync("admin/keys", new { name = "open" }, Ct);
        var open = (string)(await createdOpen.Content.ReadFromJsonAsync<JsonObject>(Ct))!["key"]!;
        using (var before = await ChatAsync(url, limited, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        var endpoint = counters.Endpoint;
        await counters.DisposeAsync();

        // Limits cannot be checked: refused before any provider is asked. A key without limits needs no counter.
        var upstreamCalls = _upstream.Requests.Count;
        using (var refused = await ChatAsync(url, limited, Ct))
        {
            var body = await refused.Content.ReadAsStringAsync(Ct);
            Assert.True(refused.StatusCode == HttpStatusCode.ServiceUnavailable && ErrorCode(body) == "limits_unavailable", $"{(int)refused.StatusCode}: {body}");
            Assert.DoesNotContain(endpoint, body, StringComparison.Ordinal);
        }

        Assert.Equal(upstreamCalls, _upstream.Requests.Count);
        using (var served = await ChatAsync(url, open, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        }

        // Still in rotation (callers without limits are served), and saying what is wrong.
        using var probe = new HttpClient { BaseAddress = url };
        var degraded = (await probe.GetFromJsonAsync<JsonObject>("health/ready", Ct))!;
        Assert.Equal(("degraded", "ok", "unreachable"), ((string?)degraded["status"], (string?)degraded["database"], (string?)degraded["limitCounters"]));

        // Changing limits is saved in PostgreSQL and answered; forgetting the old counters in Redis waits for its return.
        using (var change = await admin.PatchAsJsonAsync($"admin/keys/{(string)limitedKey["id"]!}", new { limits = new { monthlyTokens = 40 } }, Ct))
        {
            Assert.True(change.StatusCode == HttpStatusCode.OK, $"{(int)change.StatusCode}: {await change.Content.ReadAsStringAsync(Ct)}");
            Assert.True(change.Headers.Contains(WarningHeader));
        }

        // Back, empty (no persistence): the counters are made again from the ledger, so the quota still counts the
        // 15 tokens used before. 40 allow one more answer of 15 (its worst case is 10 + prompt), not three.
        await using var restarted = RedisServer.OnPort(endpoint);
        await restarted.InitializeAsync();
        var answered = 0;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        deadline.CancelAfter(TimeSpan.FromSeconds(20));
        for (var i = 0; i < 4; i++)
        {
            while (true)
            {
                using var response = await ChatAsync(url, limited, deadline.Token);
                var body = await response.Content.ReadAsStringAsync(Ct);
                if (ErrorCode(body) == "limits_unavailable")
                {
                    // The multiplexer reconnects on its own schedule.
                    await Task.Delay(100, deadline.Token);
                    continue;
                }

                answered += response.StatusCode == HttpStatusCode.OK ? 1 : 0;
                Assert.True(response.StatusCode == HttpStatusCode.OK || ErrorCode(body) == "monthly_token_quota_exceeded", $"{(int)response.StatusCode}: {body}");
                break;
            }
        }

        Assert.Equal(1, answered);
        Assert.Equal("ready", (string?)(await probe.GetFromJsonAsync<JsonObject>("health/ready", Ct))!["status"]);
    }

    [Fact]
    public async Task LimitsChangedWhileRedisIsCutOff_AreAnsweredWithAWarning_AndCountTheLedgerOnceRedisIsBack()
    {
        // Redis keeps running, and keeps its counters; only the gateway's path to it drops for a while.
        var endpoint = redis.Endpoint.Split(':');
        await using var cutter = new TcpCutter(new IPEndPoint(IPAddress.Parse(endpoint[0]), int.Parse(endpoint[1], CultureInfo.InvariantCulture)));
        var counters = redis.NewConnectionString();
        var database = counters[(counters.IndexOf(',', StringComparison.Ordinal) + 1)..];
        await WriteConnectionStringAsync($"127.0.0.1:{cutter.Port},{database}");
        await using var server = StartServer();
        var url = await server.WaitForListeningAsync(Ct);
        using var admin = AdminClient(url);
        using var created = await admin.PostAsJsonAsync("admin/keys", new { name = "limited", limits = new { monthlyTokens = 40 } }, Ct);
        var key = (await created.Content.ReadFromJsonAsync<JsonObject>(Ct))!;
        var id = (string)key["id"]!;
        using var tenantCreated = await admin.PostAsJsonAsync("admin/tenants", new { name = "acme", plan = "team" }, Ct);
        var tenantId = (string)(await tenantCreated.Content.ReadFromJsonAsync<JsonObject>(Ct))!["id"]!;
        using (var first = await ChatAsync(url, (string)key["key"]!, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }

        // Redis counts the key's first answer (15 tokens) in a month counter made from the ledger.
        await using var direct = await ConnectionMultiplexer.ConnectAsync(counters + ",allowAdmin=true");
        var monthCounters = direct.GetServer(redis.Endpoint).KeysAsync(int.Parse(database["defaultDatabase=".Length..], CultureInfo.InvariantCulture), $"tollgate:{{default}}:k:{id}:m:*");
        async Task<string[]> MonthFieldAsync(string field)
        {
            var values = new List<string>();
            await foreach (var month in monthCounters)
            {
                values.Add((string?)await direct.GetDatabase().HashGetAsync(month, field) ?? string.Empty);
            }

            return [.. values];
        }

        Assert.Equal(["15"], await MonthFieldAsync("tokens"));

        // Cut off: the limits are lifted, two answers are given without them (counted in the ledger only), and the
        // limits are set again. Each change is saved and answered as usual, with a warning that the counters are stale.
        cutter.Cut();
        using (var lifted = await admin.PatchAsJsonAsync($"admin/keys/{id}", new { limits = (object?)null }, Ct))
        {
            await AssertSavedWithWarningAsync(lifted, $"admin/keys/{id}");
        }

        for (var i = 0; i < 2; i++)
        {
            using var unlimited = await ChatAsync(url, (string)key["key"]!, Ct);
            Assert.Equal(HttpStatusCode.OK, unlimited.StatusCode);
        }

        using (var limitedAgain = await admin.PatchAsJsonAsync($"admin/keys/{id}", new { limits = new { monthlyTokens = 40 } }, Ct))
        {
            await AssertSavedWithWarningAsync(limitedAgain, $"admin/keys/{id}");
        }

        using (var plan = await admin.PatchAsJsonAsync($"admin/tenants/{tenantId}", new { plan = "none" }, Ct))
        {
            await AssertSavedWithWarningAsync(plan, $"admin/tenants/{tenantId}");
        }

        // Redis still holds the counter that knew of 15 tokens. Back, with no request meanwhile: the gateway's reconnect
        // alone forgets it.
        Assert.Equal(["1"], await MonthFieldAsync("seeded"));
        cutter.Restore();
        using (var deadline = CancellationTokenSource.CreateLinkedTokenSource(Ct))
        {
            deadline.CancelAfter(TimeSpan.FromSeconds(30));
            while ((await MonthFieldAsync("seeded")).Contains("1"))
            {
                await Task.Delay(50, deadline.Token);
            }
        }

        // The next request finds the ledger's 45 tokens, past the 40 allowed: refused before any provider is asked.
        using (var refused = await ChatAsync(url, (string)key["key"]!, Ct))
        {
            var body = await refused.Content.ReadAsStringAsync(Ct);
            Assert.True(refused.StatusCode == HttpStatusCode.TooManyRequests && ErrorCode(body) == "monthly_token_quota_exceeded", $"{(int)refused.StatusCode}: {body}");
        }

        Assert.Equal(["45"], await MonthFieldAsync("tokens"));

        async Task AssertSavedWithWarningAsync(HttpResponseMessage change, string path)
        {
            var body = await change.Content.ReadAsStringAsync(Ct);
            Assert.True(change.StatusCode == HttpStatusCode.OK, $"{(int)change.StatusCode}: {body}");
            Assert.Contains("reset", Assert.Single(change.Headers.GetValues(WarningHeader)), StringComparison.Ordinal);

            // The body is what the endpoint always answers: the key or tenant as saved.
            var saved = (await admin.GetFromJsonAsync<JsonObject>(path.StartsWith("admin/keys", StringComparison.Ordinal) ? "admin/keys" : path, Ct))!;
            var expected = saved["data"] is JsonArray keys ? keys.Single(k => (string?)k!["id"] == id) : saved["tenant"];
            Assert.True(JsonNode.DeepEquals(expected, JsonNode.Parse(body)), $"answered {body}, saved {expected}");
        }
    }

    [Fact]
    public async Task RedisLimiter_WithoutItsConnectionString_OrUnreachable_StopsWithAClearMessage()
    {
        await WriteConnectionStringAsync(redisConnectionString: null);
        await UseRedisLimiterAsync();
        var (exit, output) = await GatewayProcess.RunAsync(["serve", "--config", ConfigPath, "--urls", $"http://127.0.0.1:{GatewayProcess.FreePort()}"], Ct, Environment());
        Assert.Equal(2, exit);
        Assert.Contains("storage:limiter: is 'redis', but TOLLGATE_REDIS (storage:redisConnectionStringEnv) is not set", output, StringComparison.Ordinal);
        (exit, output) = await GatewayProcess.RunAsync(["config", "check", "--config", ConfigPath], Ct, Environment());
        Assert.Equal(2, exit);
        Assert.Contains("TOLLGATE_REDIS (storage:redisConnectionStringEnv) is not set", output, StringComparison.Ordinal);

        await WriteConnectionStringAsync($"redis://:s3cret-redis-password@127.0.0.1:{GatewayProcess.FreePort()}");
        (exit, output) = await GatewayProcess.RunAsync(["serve", "--config", ConfigPath, "--urls", $"http://127.0.0.1:{GatewayProcess.FreePort()}"], Ct, Environment());
        Assert.Equal(1, exit);
        Assert.Contains("The database could not be opened: Redis at 127.0.0.1:", output, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret-redis-password", output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);

        // `config check` connects to nothing; it says where the data and the counters are, never with a password.
        (exit, output) = await GatewayProcess.RunAsync(["config", "check", "--config", ConfigPath], Ct, Environment());
        Assert.Equal(0, exit);
        Assert.Matches(@"storage: PostgreSQL database '\w+' on 127\.0\.0\.1:\d+, limit counters in Redis at 127\.0\.0\.1:\d+", output);
        Assert.DoesNotContain("s3cret-redis-password", output, StringComparison.Ordinal);
    }

    /// <summary>
    /// Makes a database and writes its URL into the .env beside the config (with the Redis connection string and
    /// <c>storage.limiter: redis</c> when one is given); returns the database's name.
    /// </summary>
    private async Task<string> WriteConnectionStringAsync(string? redisConnectionString = null)
    {
        var database = new NpgsqlConnectionStringBuilder(await postgres.CreateDatabaseAsync("shared"));
        await File.WriteAllTextAsync(
            Path.Combine(_directory, ".env"),
            $"UPSTREAM_API_KEY=sk-shared-upstream\nTOLLGATE_POSTGRES=postgres://{database.Username}@{database.Host}:{database.Port}/{database.Database}\n" +
            (redisConnectionString is null ? string.Empty : $"TOLLGATE_REDIS={redisConnectionString}\n"),
            Ct);
        if (redisConnectionString is not null)
        {
            await UseRedisLimiterAsync();
        }

        return database.Database!;
    }

    private async Task UseRedisLimiterAsync()
    {
        var config = JsonNode.Parse(await File.ReadAllTextAsync(ConfigPath, Ct))!;
        config["storage"]!["limiter"] = "redis";
        await File.WriteAllTextAsync(ConfigPath, config.ToJsonString(), Ct);
    }

    private static async Task<HttpResponseMessage> ChatAsync(Uri baseUrl, string key, CancellationToken cancellationToken)
    {
        using var client = new HttpClient { BaseAddress = baseUrl };
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = JsonContent.Create(new { model = "gpt-4o", max_tokens = 10, messages = new[] { new { role = "user", content = "Hi" } } }),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return await client.SendAsync(request, cancellationToken);
    }

    private static string? ErrorCode(string body) => JsonNode.Parse(body)?["error"]?["code"]?.GetValue<string>();

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
