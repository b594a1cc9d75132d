using System.Runtime.CompilerServices;
using Tollgate.Configuration;
using Tollgate.Server.Hosting;

namespace Tollgate.Tests.Infrastructure;

internal static class ProcessSetup
{
    /// <summary>
    /// The in-process gateways run as <c>tollgate serve</c> does: socket completions inline on the I/O threads
    /// (the runtime reads the switch once, before the first socket, so it is set when the assembly loads). Any
    /// blocking call that reached the request path would stall these tests instead of hiding on the thread pool.
    /// </summary>
    [ModuleInitializer]
    internal static void UseInlineIo() => IoScheduling.ConfigureProcess(new ServerOptions());
}
