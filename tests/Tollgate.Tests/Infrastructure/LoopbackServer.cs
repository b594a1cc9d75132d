using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Tollgate.Tests.Infrastructure;

/// <summary>The Kestrel set-up every fake provider shares: loopback, an ephemeral port, no ambient configuration.</summary>
public static class LoopbackServer
{
    public static WebApplicationBuilder CreateBuilder()
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], EnvironmentName = Environments.Production });

        // The test output folder may hold the gateway's appsettings.json (e.g. a "Kestrel" section):
        // a fake must not pick up anyone's configuration, nor log into the test output.
        builder.Configuration.Sources.Clear();
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(options => options.ShutdownTimeout = TimeSpan.FromSeconds(5));
        builder.WebHost.ConfigureKestrel(options => options.Listen(IPAddress.Loopback, 0));

        // A one-byte write buffer makes every response flush wait until the socket has taken the bytes,
        // so an Abort() right after a flush (a cut stream) never loses the chunks already "sent".
        builder.WebHost.UseSockets(options => options.MaxWriteBufferSize = 1);
        return builder;
    }

    /// <summary>The address a started application listens on, e.g. <c>http://127.0.0.1:PORT</c> (no trailing slash).</summary>
    public static string AddressOf(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single().TrimEnd('/');
}
