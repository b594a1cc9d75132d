using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;
using Tollgate.Configuration;
using Tollgate.Server.Hosting;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Gateway;

/// <summary>
/// <c>server.inlineIo</c>: the proxy path continues on the socket I/O thread, endpoints that touch the
/// database are moved to the thread pool. Checked on a real Kestrel server with this process's socket
/// engine, which the test assembly configures as <c>tollgate serve</c> does (see <see cref="ProcessSetup"/>).
/// </summary>
public sealed class IoSchedulingTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Handlers_RunInlineOrOnThePool_AsConfigured(bool inlineIo)
    {
        var server = new ServerOptions { InlineIo = inlineIo };
        var builder = LoopbackServer.CreateBuilder();
        IoScheduling.ConfigureKestrel(builder.WebHost, server);
        await using var app = builder.Build();
        app.MapGet("/inline", () => Thread.CurrentThread.IsThreadPoolThread);
        app.MapGroup("/storage").RunOnThreadPool(server).MapGet("/", () => Thread.CurrentThread.IsThreadPoolThread);
        await app.StartAsync(TestContext.Current.CancellationToken);

        // One keep-alive connection: every request after the first arrives while Kestrel waits on the socket,
        // so its handler runs wherever the socket completion continues.
        using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 1 }) { BaseAddress = new Uri(LoopbackServer.AddressOf(app)) };
        var inlineOnPool = new List<bool>();
        var storageOnPool = new List<bool>();
        for (var i = 0; i < 5; i++)
        {
            inlineOnPool.Add(await client.GetFromJsonAsync<bool>("/inline", TestContext.Current.CancellationToken));
            storageOnPool.Add(await client.GetFromJsonAsync<bool>("/storage", TestContext.Current.CancellationToken));
        }

        Assert.All(storageOnPool, Assert.True);
        if (inlineIo)
        {
            Assert.Contains(false, inlineOnPool.Skip(1));
        }
        else
        {
            Assert.All(inlineOnPool, Assert.True);
        }
    }
}
