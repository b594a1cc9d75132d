using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;

namespace Tollgate.Tests.Infrastructure;

/// <summary>
/// A loopback Kestrel server that answers every POST with a recorded provider response, byte for byte:
/// the <c>.sse</c> transcript when the request asks for a stream, else the <c>.json</c> body.
/// </summary>
public sealed class FixtureServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private FixtureServer(WebApplication app, Uri baseUrl)
    {
        _app = app;
        BaseUrl = baseUrl;
    }

    /// <summary>Base URL with the <c>/v1</c> segment.</summary>
    public Uri BaseUrl { get; }

    public static string PathOf(string relative) => Path.Combine(AppContext.BaseDirectory, relative);

    public static async Task<FixtureServer> StartAsync(string jsonPath, string ssePath, CancellationToken cancellationToken)
    {
        var json = await File.ReadAllBytesAsync(PathOf(jsonPath), cancellationToken);
        var sse = await File.ReadAllBytesAsync(PathOf(ssePath), cancellationToken);
        var app = LoopbackServer.CreateBuilder().Build();
        app.Run(async context =>
        {
            using var reader = new StreamReader(context.Request.Body);
            var body = await reader.ReadToEndAsync(context.RequestAborted);
            var stream = body.Contains("\"stream\":true", StringComparison.Ordinal);
            context.Response.ContentType = stream ? "text/event-stream" : "application/json";
            await context.Response.Body.WriteAsync(stream ? sse : json, context.RequestAborted);
        });
        await app.StartAsync(cancellationToken);
        return new FixtureServer(app, new Uri(LoopbackServer.AddressOf(app) + "/v1"));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
