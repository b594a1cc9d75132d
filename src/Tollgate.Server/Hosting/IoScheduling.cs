using Tollgate.Configuration;

namespace Tollgate.Server.Hosting;

/// <summary>
/// Where request code runs (<see cref="ServerOptions.InlineIo"/>). By default .NET hands every socket
/// completion to the thread pool, and Kestrel hands every read and flush to it again, so one proxied request
/// crosses threads several times; on a busy core each crossing is a context switch. Inline, the code after an
/// await continues on the I/O thread that saw the data, which is what the proxy path wants: it never blocks.
/// Endpoints that read or write the database do block (Microsoft.Data.Sqlite has no truly asynchronous I/O),
/// so they are moved to the thread pool with <see cref="RunOnThreadPool{TBuilder}"/>.
/// </summary>
internal static class IoScheduling
{
    /// <summary>Read by System.Net.Sockets once, when the process opens its first socket.</summary>
    internal const string InlineCompletionsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>
    /// Turns on inline socket completions for the process. Must run before the first socket is opened (the
    /// runtime reads the variable once); an explicit value in the environment is left as the operator set it.
    /// </summary>
    public static void ConfigureProcess(ServerOptions server)
    {
        if (server.InlineIo && Environment.GetEnvironmentVariable(InlineCompletionsVariable) is null)
        {
            Environment.SetEnvironmentVariable(InlineCompletionsVariable, "1");
        }
    }

    /// <summary>Kestrel's half: application code continues on the transport's thread instead of being queued.</summary>
    public static void ConfigureKestrel(IWebHostBuilder webHost, ServerOptions server) =>
        webHost.UseSockets(sockets => sockets.UnsafePreferInlineScheduling = server.InlineIo);

    /// <summary>
    /// Runs these endpoints' handlers on the thread pool (after their parameters are bound), so a slow
    /// database query never stalls the other connections served by the same I/O thread.
    /// </summary>
    public static TBuilder RunOnThreadPool<TBuilder>(this TBuilder builder, ServerOptions server)
        where TBuilder : IEndpointConventionBuilder =>
        server.InlineIo
            ? builder.AddEndpointFilter(static (context, next) => new ValueTask<object?>(Task.Run(() => next(context).AsTask())))
            : builder;
}
