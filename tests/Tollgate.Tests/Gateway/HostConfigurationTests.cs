using System.Text.Json.Nodes;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Gateway;

/// <summary>
/// The host reads no configuration file on change. A reloading <c>appsettings.json</c> source watches the whole
/// working directory, recursively, and the database lives under <c>./data</c> by default: every ledger commit
/// used to wake the watcher's thread several times.
/// </summary>
public sealed class HostConfigurationTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Host_FileConfigurationSources_NeverReloadOnChange()
    {
        var config = new JsonObject
        {
            ["providers"] = new JsonObject { ["p0"] = Configs.Provider(new Uri("http://127.0.0.1:9/v1")) },
            ["models"] = new JsonObject { ["d0"] = Configs.Model("p0", "upstream-0", 1, 2) },
        };
        await using var gateway = await TestGateway.StartAsync(config, cancellationToken: Ct);

        var root = (IConfigurationRoot)gateway.Services.GetRequiredService<IConfiguration>();
        var files = root.Providers.OfType<FileConfigurationProvider>().ToList();

        Assert.NotEmpty(files); // the host's optional appsettings*.json sources are still there, read once
        Assert.All(files, f => Assert.False(f.Source.ReloadOnChange, f.Source.Path));
    }
}
