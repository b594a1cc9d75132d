using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Data.Sqlite;
using Tollgate.Tests.Fakes;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.EndToEnd;

/// <summary>
/// <c>/metrics</c> and OTLP traces of the real <c>tollgate</c> process: a process of its own, because metric
/// listeners are process-wide and the in-process gateways of other tests would add to the counts.
/// </summary>
public sealed partial class TelemetryTests : IAsyncLifetime
{
    private const string AdminKey = "tga-telemetry-test-admin-key";
    private const string Prompt = "What is the secret recipe?";
    private const string Answer = "Flour, water and salt.";

    private readonly string _directory = Directory.CreateTempSubdirectory("tollgate-telemetry-").FullName;
    private FakeUpstream _cheap = null!;
    private FakeUpstream _premium = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private string ConfigPath => Path.Combine(_directory, "tollgate.json");

    public async ValueTask InitializeAsync()
    {
        _cheap = await FakeUpstream.StartAsync("sk-cheap-provider-secret", Ct);
        _premium = await FakeUpstream.StartAsync("sk-premium-provider-secret", Ct);
        await WriteConfigAsync(null);
    }

    public async ValueTask DisposeAsync()
    {
        await _cheap.DisposeAsync();
        await _premium.DisposeAsync();
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
    public async Task Metrics_AfterAnAnswerAndAFailover_CountRequestsAttemptsTokensAndCost()
    {
        await using var server = StartServer();
        var baseUrl = await server.WaitForListeningAsync(Ct);
        using var client = await ClientAsync(baseUrl);
        _cheap.Default = FakeBehavior.Ok(Answer, promptTokens: 20, completionTokens: 6);
        _premium.Default = FakeBehavior.Ok(Answer, promptTokens: 30, completionTokens: 4);

        using (var answered = await client.PostAsync("v1/chat/completions", Chat(stream: false), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        }

        // The cheap deployment fails with a 503: the premium one answers, as a stream.
        _cheap.Enqueue(FakeBehavior.Status(503));
        using (var failedOver = await client.PostAsync("v1/chat/completions", Chat(stream: true), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, failedOver.StatusCode);
            Assert.Contains("[DONE]", await failedOver.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }

        using var admin = Client(baseUrl, AdminKey);
        var metrics = await admin.GetStringAsync("metrics", Ct);

        Assert.Equal(1, Sample(metrics, "tollgate_requests_total", ("route", "gpt-4o"), ("deployment", "cheap/model"), ("status", "200")));
        Assert.Equal(1, Sample(metrics, "tollgate_requests_total", ("route", "gpt-4o"), ("deployment", "premium/model"), ("status", "200")));
        Assert.Equal(1, Sample(metrics, "tollgate_attempts_total", ("deployment", "cheap/model"), ("outcome", "upstream_503")));
        Assert.Equal(1, Sample(metrics, "tollgate_attempts_total", ("deployment", "cheap/model"), ("outcome", "ok")));
        Assert.Equal(1, Sample(metrics, "tollgate_attempts_total", ("deployment", "premium/model"), ("outcome", "ok")));
        Assert.Equal(20, Sample(metrics, "tollgate_tokens_total", ("deployment", "cheap/model"), ("bucket", "input")));
        Assert.Equal(6, Sample(metrics, "tollgate_tokens_total", ("deployment", "cheap/model"), ("bucket", "output")));
        Assert.Equal(30, Sample(metrics, "tollgate_tokens_total", ("deployment", "premium/model"), ("bucket", "input")));
        Assert.Equal(4, Sample(metrics, "tollgate_tokens_total", ("deployment", "premium/model"), ("bucket", "output")));

        // 20 × $0.28 + 6 × $0.42 per 1M tokens, and 30 × $2.50 + 4 × $10 per 1M.
        Assert.Equal(0.00000812, Sample(metrics, "tollgate_cost_usd_total", ("provider", "cheap"), ("deployment", "cheap/model")), 15);
        Assert.Equal(0.000115, Sample(metrics, "tollgate_cost_usd_total", ("provider", "premium"), ("deployment", "premium/model")), 15);
        Assert.Equal(1, Sample(metrics, "tollgate_upstream_first_byte_duration_seconds_count", ("deployment", "cheap/model"), ("stream", "false")));
        Assert.Equal(1, Sample(metrics, "tollgate_upstream_first_byte_duration_seconds_count", ("deployment", "premium/model"), ("stream", "true")));
        Assert.Equal(0, Sample(metrics, "tollgate_deployment_circuit", ("deployment", "cheap/model")));

        // Two answered requests, two ledger rows, committed in one or two transactions before their last bytes.
        Assert.Equal(2, Sample(metrics, "tollgate_ledger_rows_total"));
        Assert.InRange(Sample(metrics, "tollgate_ledger_commit_duration_seconds_count"), 1, 2);

        // Labels are configuration names: no key, prompt or answer ever appears.
        Assert.DoesNotContain(Prompt, metrics, StringComparison.Ordinal);
        Assert.DoesNotContain(Answer, metrics, StringComparison.Ordinal);
        Assert.DoesNotContain(client.DefaultRequestHeaders.Authorization!.Parameter!, metrics, StringComparison.Ordinal);
        Assert.DoesNotContain("provider-secret", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_WhenTheLedgerRefusesARow_CountTheFailureAnd500_AndTheProvidersCostStill()
    {
        await using var server = StartServer();
        var baseUrl = await server.WaitForListeningAsync(Ct);
        using var client = await ClientAsync(baseUrl);
        _cheap.Default = FakeBehavior.Ok(Answer, promptTokens: 20, completionTokens: 6);
        await using (var connection = new SqliteConnection($"Data Source={Path.Combine(_directory, "data", "tollgate.db")};Pooling=False"))
        {
            await connection.OpenAsync(Ct);
            await using var command = connection.CreateCommand();
            command.CommandText = "CREATE TRIGGER refuse_ledger BEFORE INSERT ON ledger BEGIN SELECT RAISE(ABORT, 'the disk is full'); END;";
            await command.ExecuteNonQueryAsync(Ct);
        }

        using (var refused = await client.PostAsync("v1/chat/completions", Chat(stream: false), Ct))
        {
            Assert.Equal(HttpStatusCode.InternalServerError, refused.StatusCode);
        }

        using var admin = Client(baseUrl, AdminKey);
        var metrics = await admin.GetStringAsync("metrics", Ct);

        Assert.Equal(1, Sample(metrics, "tollgate_ledger_failures_total"));
        Assert.Equal(1, Sample(metrics, "tollgate_requests_total", ("deployment", "cheap/model"), ("status", "500")));
        Assert.DoesNotContain("status=\"200\"", metrics, StringComparison.Ordinal);
        Assert.Equal(0.00000812, Sample(metrics, "tollgate_cost_usd_total", ("deployment", "cheap/model")), 15);
    }

    [Fact]
    public async Task Metrics_WithoutTheAdminKey_AreRefused()
    {
        await using var server = StartServer();
        var baseUrl = await server.WaitForListeningAsync(Ct);
        using var anonymous = Client(baseUrl, null);
        using var wrong = Client(baseUrl, "tga-not-the-admin-key");
        using var clientKey = await ClientAsync(baseUrl);

        using var none = await anonymous.GetAsync("metrics", Ct);
        using var wrongKey = await wrong.GetAsync("metrics", Ct);
        using var notAdmin = await clientKey.GetAsync("metrics", Ct);

        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, wrongKey.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, notAdmin.StatusCode);

        // The refusals are counted, as are a wrong client key on /v1 and a wrong key at the dashboard's login form.
        using (var wrongClientKey = await wrong.PostAsync("v1/chat/completions", Chat(stream: false), Ct))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, wrongClientKey.StatusCode);
        }

        using (var failedLogin = await anonymous.PostAsync("dashboard/login", new FormUrlEncodedContent([new("key", "tg-not-a-key")]), Ct))
        {
            // Followed to the page the form comes back to.
            Assert.Equal("?login=failed", failedLogin.RequestMessage!.RequestUri!.Query);
        }

        using var admin = Client(baseUrl, AdminKey);
        var metrics = await admin.GetStringAsync("metrics", Ct);
        Assert.Equal(1, Sample(metrics, "tollgate_auth_refusals_total", ("surface", "admin"), ("reason", "missing_admin_key")));
        Assert.Equal(2, Sample(metrics, "tollgate_auth_refusals_total", ("surface", "admin"), ("reason", "wrong_admin_key")));
        Assert.Equal(1, Sample(metrics, "tollgate_auth_refusals_total", ("surface", "v1"), ("reason", "invalid_api_key")));
        Assert.Equal(1, Sample(metrics, "tollgate_auth_refusals_total", ("surface", "dashboard"), ("reason", "wrong_key")));
        Assert.Equal(0, _cheap.RequestCount + _premium.RequestCount);
    }

    [Fact]
    public async Task Metrics_OpenWhenConfiguredSo_AndAbsentWhenTurnedOff()
    {
        await WriteConfigAsync(new JsonObject { ["metricsRequireAdminKey"] = false });
        await using (var open = StartServer())
        {
            using var anonymous = Client(await open.WaitForListeningAsync(Ct), null);
            using var response = await anonymous.GetAsync("metrics", Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Contains("tollgate_deployment_circuit", await response.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }

        await WriteConfigAsync(new JsonObject { ["metrics"] = false });
        await using var off = StartServer();
        using var admin = Client(await off.WaitForListeningAsync(Ct), AdminKey);
        using var absent = await admin.GetAsync("metrics", Ct);
        Assert.Equal(HttpStatusCode.NotFound, absent.StatusCode);
    }

    [Fact]
    public async Task Tracing_WithAnOtlpEndpoint_ExportsTheRequestsSpan_WithoutKeysOrText()
    {
        await using var collector = await OtlpCollector.StartAsync(Ct);
        var environment = new Dictionary<string, string>
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.BaseUrl,
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "50",
        };
        await using var server = StartServer(environment);
        var baseUrl = await server.WaitForListeningAsync(Ct);
        using var client = await ClientAsync(baseUrl);
        _cheap.Default = FakeBehavior.Ok(Answer, promptTokens: 20, completionTokens: 6);

        using var response = await client.PostAsync("v1/chat/completions", Chat(stream: false), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var requestId = response.Headers.GetValues("x-request-id").Single();

        // Span attributes travel as UTF-8 strings inside the protobuf body.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        var export = await collector.WaitForAsync(
            body => body.Contains(requestId, StringComparison.Ordinal) && body.Contains("url.full", StringComparison.Ordinal),
            timeout.Token);

        Assert.Contains("tollgate.deployment", export, StringComparison.Ordinal);
        Assert.Contains("cheap/model", export, StringComparison.Ordinal);
        Assert.Contains("gen_ai.usage.input_tokens", export, StringComparison.Ordinal);
        Assert.Contains("/v1/chat/completions", export, StringComparison.Ordinal);

        // The attempt's own span: the HTTP call to the provider.
        Assert.Contains(_cheap.BaseUrl.Authority, export, StringComparison.Ordinal);
        Assert.DoesNotContain(Prompt, export, StringComparison.Ordinal);
        Assert.DoesNotContain(Answer, export, StringComparison.Ordinal);
        Assert.DoesNotContain(client.DefaultRequestHeaders.Authorization!.Parameter!, export, StringComparison.Ordinal);
        Assert.DoesNotContain("provider-secret", export, StringComparison.Ordinal);

        // The gateway's trace context is not the provider's business.
        Assert.False(_cheap.Requests[^1].Headers.ContainsKey("traceparent"));
    }

    private GatewayProcess StartServer(Dictionary<string, string>? environment = null)
    {
        environment ??= [];
        environment["TOLLGATE_ADMIN_KEY"] = AdminKey;
        environment["CHEAP_KEY"] = "sk-cheap-provider-secret";
        environment["PREMIUM_KEY"] = "sk-premium-provider-secret";
        return GatewayProcess.Start(
            ["serve", "--config", ConfigPath, "--data-dir", Path.Combine(_directory, "data"), "--urls", $"http://127.0.0.1:{GatewayProcess.FreePort()}"],
            environment);
    }

    private async Task WriteConfigAsync(JsonObject? telemetry)
    {
        var config = new JsonObject
        {
            ["useDefaults"] = false,
            ["providers"] = new JsonObject
            {
                ["cheap"] = Configs.Provider(_cheap.BaseUrl, "CHEAP_KEY"),
                ["premium"] = Configs.Provider(_premium.BaseUrl, "PREMIUM_KEY"),
            },
            ["models"] = new JsonObject
            {
                ["cheap/model"] = Configs.Model("cheap", "cheap-model", 0.28m, 0.42m),
                ["premium/model"] = Configs.Model("premium", "premium-model", 2.5m, 10m),
            },
            ["routes"] = new JsonObject { ["gpt-4o"] = Configs.Route("cheapest", "premium/model", "cheap/model") },
        };
        if (telemetry is not null)
        {
            config["telemetry"] = telemetry;
        }

        await File.WriteAllTextAsync(ConfigPath, config.ToJsonString(), Ct);
    }

    private static StringContent Chat(bool stream) =>
        new(
            new JsonObject
            {
                ["model"] = "gpt-4o",
                ["stream"] = stream,
                ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = Prompt }),
            }.ToJsonString(),
            Encoding.UTF8,
            "application/json");

    private static HttpClient Client(Uri baseUrl, string? bearer)
    {
        var client = new HttpClient { BaseAddress = baseUrl };
        if (bearer is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        return client;
    }

    private static async Task<HttpClient> ClientAsync(Uri baseUrl)
    {
        using var admin = Client(baseUrl, AdminKey);
        using var created = await admin.PostAsJsonAsync("admin/keys", new JsonObject { ["name"] = "telemetry" }, Ct);
        created.EnsureSuccessStatusCode();
        var key = (string)(await created.Content.ReadFromJsonAsync<JsonObject>(Ct))!["key"]!;
        return Client(baseUrl, key);
    }

    /// <summary>The value of the one sample of <paramref name="metric"/> whose labels include all of <paramref name="labels"/>.</summary>
    private static double Sample(string exposition, string metric, params (string Name, string Value)[] labels)
    {
        var matches = exposition.Split('\n')
            .Select(line => SampleLine().Match(line))
            .Where(m => m.Success && m.Groups["name"].Value == metric)
            .Where(m =>
            {
                var present = LabelPair().Matches(m.Groups["labels"].Value).ToDictionary(l => l.Groups[1].Value, l => l.Groups[2].Value);
                return labels.All(l => present.TryGetValue(l.Name, out var value) && value == l.Value);
            })
            .ToList();
        var match = Assert.Single(matches);
        return double.Parse(match.Groups["value"].Value, CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>.*)\})? (?<value>\S+)")]
    private static partial Regex SampleLine();

    [GeneratedRegex("""([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)" """, RegexOptions.IgnorePatternWhitespace)]
    private static partial Regex LabelPair();

    /// <summary>A fake OpenTelemetry collector: accepts OTLP/HTTP trace exports and keeps their bodies.</summary>
    private sealed class OtlpCollector : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly Channel<string> _exports = Channel.CreateUnbounded<string>();

        private OtlpCollector(WebApplication app) => _app = app;

        public string BaseUrl => LoopbackServer.AddressOf(_app);

        public static async Task<OtlpCollector> StartAsync(CancellationToken cancellationToken)
        {
            var app = LoopbackServer.CreateBuilder().Build();
            var collector = new OtlpCollector(app);
            app.MapPost("/v1/traces", async (HttpContext context) =>
            {
                using var body = new MemoryStream();
                await context.Request.Body.CopyToAsync(body, context.RequestAborted);

                // Latin-1 maps every byte to one char, so the UTF-8 of ASCII attribute text is found as is.
                collector._exports.Writer.TryWrite(Encoding.Latin1.GetString(body.ToArray()));
                context.Response.ContentType = "application/x-protobuf";
            });
            await app.StartAsync(cancellationToken);
            return collector;
        }

        /// <summary>Everything exported so far, once it satisfies <paramref name="predicate"/> (spans of one request may come in separate exports).</summary>
        public async Task<string> WaitForAsync(Func<string, bool> predicate, CancellationToken cancellationToken)
        {
            var received = new StringBuilder();
            await foreach (var export in _exports.Reader.ReadAllAsync(cancellationToken))
            {
                received.Append(export);
                if (predicate(received.ToString()))
                {
                    return received.ToString();
                }
            }

            throw new InvalidOperationException("The collector stopped.");
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
