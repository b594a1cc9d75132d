using System.Diagnostics;
using System.Globalization;
using System.Text;
using StackExchange.Redis;

namespace Tollgate.Tests.Infrastructure;

/// <summary>
/// A real Redis server for the tests of limit counters kept in Redis, shared as a collection fixture.
/// </summary>
/// <remarks>
/// The server is private: <c>redis-server</c> (Debian's <c>redis-server</c> package, installed by <c>.ci/run</c>)
/// started as a child process on 127.0.0.1 at a free port, without persistence, in a temporary directory; the
/// system's own Redis, if any, is never touched. Each test asks <see cref="NewConnectionString"/> for a database
/// number of its own (the server has thousands), so tests stay independent and run in parallel. When
/// <c>TOLLGATE_TEST_REDIS</c> holds <c>host:port</c>, that server is used instead. A missing binary is an error,
/// never a silent skip.
/// </remarks>
public sealed class RedisServer : IAsyncLifetime
{
    /// <summary><c>host:port</c> of an existing server to use instead of starting one (its databases 1 and up are used).</summary>
    public const string EndpointVariable = "TOLLGATE_TEST_REDIS";

    private const int Databases = 4096;
    private static readonly TimeSpan StartupDeadline = TimeSpan.FromSeconds(30);

    private readonly StringBuilder _log = new();
    private readonly Lock _logSync = new();
    private int? _port;
    private int _nextDatabase;
    private int _databaseLimit = Databases;
    private string? _endpoint;
    private string? _directory;
    private Process? _server;

    /// <summary>A private server on the port of <paramref name="endpoint"/> (<c>127.0.0.1:port</c>): one that stopped, started again.</summary>
    public static RedisServer OnPort(string endpoint) =>
        new() { _port = int.Parse(endpoint[(endpoint.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture) };

    public string Endpoint => _endpoint ?? throw new InvalidOperationException($"{nameof(RedisServer)} has not been initialized.");

    /// <summary>What the private server has printed so far.</summary>
    public string ServerLog
    {
        get
        {
            lock (_logSync)
            {
                return _log.ToString();
            }
        }
    }

    public async ValueTask InitializeAsync()
    {
        var external = Environment.GetEnvironmentVariable(EndpointVariable);
        if (!string.IsNullOrWhiteSpace(external))
        {
            _endpoint = external.Trim();
            _databaseLimit = 16;
            return;
        }

        var binary = new[] { "/usr/bin/redis-server", "/usr/local/bin/redis-server" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException($"redis-server was not found. Install it with apt-get install redis-server (.ci/run installs it), or set {EndpointVariable} to a server's host:port.");

        _directory = Directory.CreateTempSubdirectory("tollgate-redis-").FullName;
        var port = _port ?? GatewayProcess.FreePort();
        _endpoint = string.Create(CultureInfo.InvariantCulture, $"127.0.0.1:{port}");
        var info = new ProcessStartInfo(binary)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = _directory,
        };
        foreach (var argument in new[]
        {
            "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--dir", _directory,
            "--save", string.Empty, "--appendonly", "no", "--databases", Databases.ToString(CultureInfo.InvariantCulture),
            "--daemonize", "no", "--protected-mode", "no",
        })
        {
            info.ArgumentList.Add(argument);
        }

        _server = new Process { StartInfo = info };
        _server.OutputDataReceived += (_, e) => Append(e.Data);
        _server.ErrorDataReceived += (_, e) => Append(e.Data);
        _server.Start();
        _server.BeginOutputReadLine();
        _server.BeginErrorReadLine();
        await WaitUntilReadyAsync();
    }

    /// <summary>A connection string to a database number no other test uses.</summary>
    public string NewConnectionString()
    {
        var database = (Interlocked.Increment(ref _nextDatabase) % (_databaseLimit - 1)) + 1;
        return string.Create(CultureInfo.InvariantCulture, $"{Endpoint},defaultDatabase={database}");
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is { HasExited: false } server)
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }

        _server?.Dispose();
        if (_directory is not null)
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private async Task WaitUntilReadyAsync()
    {
        var deadline = Stopwatch.StartNew();
        Exception? last = null;
        while (deadline.Elapsed < StartupDeadline)
        {
            if (_server!.HasExited)
            {
                await _server.WaitForExitAsync();
                throw new InvalidOperationException($"redis-server exited at start. Its output:\n{ServerLog}");
            }

            try
            {
                await using var connection = await ConnectionMultiplexer.ConnectAsync(Endpoint);
                await connection.GetDatabase().PingAsync();
                return;
            }
            catch (RedisConnectionException ex)
            {
                // Refused while the server binds its port.
                last = ex;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"redis-server did not answer within {StartupDeadline.TotalSeconds:0} s ({last?.Message}). Its output:\n{ServerLog}");
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_logSync)
        {
            _log.AppendLine(line);
        }
    }
}
