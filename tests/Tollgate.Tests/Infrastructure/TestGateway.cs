using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Tollgate.Configuration;
using Tollgate.Keys;
using Tollgate.Server.Hosting;

namespace Tollgate.Tests.Infrastructure;

/// <summary>
/// A real gateway on a loopback Kestrel port, in this process, with its own SQLite file in a fresh
/// temporary directory. <see cref="Client"/> carries a client key, <see cref="Admin"/> the admin key.
/// </summary>
public sealed class TestGateway : IAsyncDisposable
{
    public const string AdminKeyValue = "tga-test-admin-key-0123456789";

    private readonly WebApplication _app;

    private TestGateway(WebApplication app, Uri baseAddress, string dataDirectory, string clientKey)
    {
        _app = app;
        BaseAddress = baseAddress;
        DataDirectory = dataDirectory;
        ClientKey = clientKey;
        Client = NewClient(clientKey);
        Admin = NewClient(AdminKeyValue);
        Anonymous = NewClient(null);
    }

    public Uri BaseAddress { get; }

    public string DataDirectory { get; }

    public string ClientKey { get; }

    public HttpClient Client { get; }

    public HttpClient Admin { get; }

    public HttpClient Anonymous { get; }

    public IServiceProvider Services => _app.Services;

    /// <summary>Starts a gateway with the given <c>tollgate.json</c> content (built-in defaults off unless it says otherwise).</summary>
    public static async Task<TestGateway> StartAsync(
        JsonObject config,
        IReadOnlyDictionary<string, string>? secrets = null,
        TimeProvider? time = null,
        string? dataDirectory = null,
        CancellationToken cancellationToken = default)
    {
        if (!config.ContainsKey("useDefaults"))
        {
            config["useDefaults"] = false;
        }

        var options = ConfigurationLoader.Load(config, new Dictionary<string, string>());
        var secretValues = new Dictionary<string, string>(secrets ?? new Dictionary<string, string>())
        {
            [GatewayStartup.AdminKeyVariable] = AdminKeyValue,
        };

        var dataDir = dataDirectory ?? Directory.CreateTempSubdirectory("tollgate-test-").FullName;
        var settings = new GatewaySettings
        {
            Options = options,
            Secrets = new SecretSource(secretValues),
            DataDirectory = dataDir,
            Urls = ["http://127.0.0.1:0"],
            Time = time ?? TimeProvider.System,
            MinimumLogLevel = LogLevel.Warning,
        };

        var adminHash = await GatewayStartup.PrepareAsync(settings, _ => { }, cancellationToken);
        var app = GatewayHost.Build(settings, adminHash);
        await app.StartAsync(cancellationToken);
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        var store = app.Services.GetRequiredService<IKeyStore>();
        var created = await store.CreateAsync("test-client", cancellationToken);
        return new TestGateway(app, new Uri(address.TrimEnd('/') + "/"), dataDir, created.Key);
    }

    /// <summary>An HttpClient for this gateway with the given bearer token (or none).</summary>
    public HttpClient NewClient(string? bearer)
    {
        var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        if (bearer is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        return client;
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        Admin.Dispose();
        Anonymous.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
            // A file still held open by a background task; the OS temp cleaner takes it.
        }
    }
}
