using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Tollgate.Tests.Fakes;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Tenancy;

/// <summary>The ledger's durability promise against a real process killed with SIGKILL under load.</summary>
public sealed class KillTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("tollgate-kill-").FullName;
    private FakeUpstream _upstream = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private string ConfigPath => Path.Combine(_directory, "tollgate.json");

    private string DataDirectory => Path.Combine(_directory, "data");

    public async ValueTask InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync("sk-up", Ct);
        var config = new JsonObject
        {
            ["useDefaults"] = false,
            ["providers"] = new JsonObject { ["up"] = Configs.Provider(_upstream.BaseUrl, "UP_API_KEY") },
            ["models"] = new JsonObject { ["up/m"] = Configs.Model("up", "m", 0.28m, 0.42m) },
            ["routes"] = new JsonObject { ["gpt-4o"] = Configs.Route("cheapest", "up/m") },
        };
        await File.WriteAllTextAsync(ConfigPath, config.ToJsonString(), Ct);
        await File.WriteAllTextAsync(Path.Combine(_directory, ".env"), "UP_API_KEY=sk-up\n", Ct);
    }

    public async ValueTask DisposeAsync()
    {
        await _upstream.DisposeAsync();
        SqliteConnection.ClearAllPools();
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
    public async Task Sigkill_UnderLoad_EveryFullyReceivedResponseHasItsLedgerRow()
    {
        int port;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        await using var server = GatewayProcess.Start(["serve", "--config", ConfigPath, "--data-dir", DataDirectory, "--urls", $"http://127.0.0.1:{port}"]);
        var baseUrl = await server.WaitForListeningAsync(Ct);
        var (exit, output) = await GatewayProcess.RunAsync(["keys", "create", "--name", "load", "--config", ConfigPath, "--data-dir", DataDirectory], Ct);
        Assert.Equal(0, exit);
        var key = (string)JsonNode.Parse(output.Trim()[output.Trim().IndexOf('{', StringComparison.Ordinal)..])!["key"]!;

        var received = new ConcurrentBag<string>();
        var enoughReceived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var attempted = 0;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        using var http = new HttpClient { BaseAddress = baseUrl, Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);

        async Task WorkerAsync(int worker)
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                var id = $"kill-{worker}-{i}";
                var stream = i % 2 == 1;
                Interlocked.Increment(ref attempted);
                try
                {
                    using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
                    {
                        Content = new StringContent(GatewayScenario.ChatBody(stream: stream).ToJsonString(), Encoding.UTF8, "application/json"),
                    };
                    request.Headers.Add("x-request-id", id);
                    using var response = await http.SendAsync(request, Ct);
                    var body = await response.Content.ReadAsStringAsync(Ct);

                    // "Fully received": a 200 whose whole body arrived (the stream's [DONE], or the JSON's closing brace).
                    if (response.StatusCode == HttpStatusCode.OK && (stream ? body.EndsWith("data: [DONE]\n\n", StringComparison.Ordinal) : JsonNode.Parse(body)?["choices"] is not null))
                    {
                        received.Add(id);
                        if (received.Count >= 400)
                        {
                            enoughReceived.TrySetResult();
                        }
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException or System.Text.Json.JsonException)
                {
                    if (server.HasExited)
                    {
                        return;
                    }
                }
            }
        }

        var workers = Enumerable.Range(0, 32).Select(WorkerAsync).ToArray();
        await enoughReceived.Task.WaitAsync(Ct);

        await server.KillAsync();
        await stop.CancelAsync();
        await Task.WhenAll(workers);

        var ids = new HashSet<string>(StringComparer.Ordinal);
        var connectionString = new SqliteConnectionStringBuilder { DataSource = Path.Combine(DataDirectory, "tollgate.db"), Pooling = false }.ToString();
        await using (var connection = new SqliteConnection(connectionString))
        {
            await connection.OpenAsync(Ct);
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT request_id FROM ledger WHERE status = 200";
            await using var reader = await command.ExecuteReaderAsync(Ct);
            while (await reader.ReadAsync(Ct))
            {
                ids.Add(reader.GetString(0));
            }
        }

        var missing = received.Where(id => !ids.Contains(id)).ToList();
        Assert.True(received.Count >= 400);
        Assert.True(missing.Count == 0, $"{missing.Count} of {received.Count} fully received responses have no ledger row: {string.Join(", ", missing.Take(10))}");
        Assert.True(attempted > received.Count, "the kill happened under load, with requests in flight");
    }
}
