using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Npgsql;

namespace Tollgate.Tests.Infrastructure;

/// <summary>
/// A real PostgreSQL server for the tests that need one, meant to be shared as an assembly or collection fixture.
/// </summary>
/// <remarks>
/// <para>
/// The storage code is tested against a real server rather than a fake because what matters there (transactions,
/// constraints, locking, SQL dialect) is exactly what a fake gets wrong. Each test asks for its own database through
/// <see cref="CreateDatabaseAsync"/>, so tests stay independent and can run in parallel against one server.
/// </para>
/// <para>
/// By default the server is private: a throw-away cluster made with <c>initdb</c> in a temporary directory, listening
/// only on 127.0.0.1 at a free port, with durability switched off for speed, and started as a child process (not
/// daemonised by <c>pg_ctl start</c>) so this fixture owns it, collects its log for failure messages and can always
/// stop it. Nothing on the machine (a system cluster, port 5432, <c>/var/run/postgresql</c>) is used or touched.
/// PostgreSQL refuses to run as root, and tests run as root in CI, so as root every server binary is run as the
/// <c>postgres</c> system user (created by the Debian package) and the temporary directory is handed over to it.
/// </para>
/// <para>
/// When <c>TOLLGATE_TEST_POSTGRES</c> holds a connection string, that server is used instead (it needs the right to
/// CREATE DATABASE) and nothing is started; the databases made on it are dropped again at the end. Missing server
/// binaries are an error, never a silent skip, so a machine without PostgreSQL cannot pass by testing less.
/// </para>
/// </remarks>
public sealed class PostgresServer : IAsyncLifetime
{
    /// <summary>Connection string of an existing server to use instead of starting one.</summary>
    public const string ConnectionStringVariable = "TOLLGATE_TEST_POSTGRES";

    /// <summary>Directory holding <c>initdb</c>, <c>postgres</c> and <c>pg_ctl</c>, when not the newest Debian one.</summary>
    public const string BinDirectoryVariable = "TOLLGATE_POSTGRES_BIN";

    private const string SuperUser = "tollgate";
    private const string ServiceAccount = "postgres";
    private const string DebianInstallRoot = "/usr/lib/postgresql";
    private const int StartAttempts = 3;

    private static readonly TimeSpan StartupDeadline = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(50);

    private readonly ConcurrentQueue<string> _createdDatabases = new();
    private readonly ConcurrentQueue<string> _handedOutConnectionStrings = new();
    private readonly StringBuilder _log = new();
    private readonly Lock _logSync = new();
    private string? _adminConnectionString;
    private bool _external;
    private bool _asServiceAccount;
    private string? _binDirectory;
    private string? _rootDirectory;
    private Process? _server;

    /// <summary>
    /// A superuser connection to the <c>postgres</c> database (unpooled for the private server), for creating
    /// and inspecting databases rather than for a test's own queries.
    /// </summary>
    public string AdminConnectionString =>
        _adminConnectionString ?? throw new InvalidOperationException($"{nameof(PostgresServer)} has not been initialized.");

    /// <summary>What the private server has printed so far (empty when an external server is used).</summary>
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
        var external = Environment.GetEnvironmentVariable(ConnectionStringVariable);
        if (!string.IsNullOrWhiteSpace(external))
        {
            _external = true;
            _adminConnectionString = external;
            return;
        }

        _binDirectory = FindBinDirectory();
        _asServiceAccount = !OperatingSystem.IsWindows() && Environment.UserName == "root";
        try
        {
            await StartPrivateServerAsync();
        }
        catch
        {
            // A fixture whose initialization failed may never be disposed, and the half-started server must not outlive the run.
            await StopPrivateServerAsync();
            throw;
        }
    }

    /// <summary>
    /// Creates an empty database with a fresh name (<c>tg_</c>, the cleaned <paramref name="prefix"/>, random hex) and
    /// returns a pooled connection string to it as the superuser.
    /// </summary>
    public async Task<string> CreateDatabaseAsync(string? prefix = null)
    {
        var name = NewDatabaseName(prefix);
        await using (var connection = new NpgsqlConnection(AdminConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
            await command.ExecuteNonQueryAsync();
        }

        _createdDatabases.Enqueue(name);
        var builder = _external
            ? new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = name }
            : new NpgsqlConnectionStringBuilder { Host = "127.0.0.1", Port = Port, Username = SuperUser, Database = name };
        var connectionString = builder.ConnectionString;
        _handedOutConnectionStrings.Enqueue(connectionString);
        return connectionString;
    }

    public async ValueTask DisposeAsync()
    {
        // Idle pooled connections would otherwise linger: on an external server they would hold the databases open,
        // on the private one they would point at a server that is gone.
        foreach (var connectionString in _handedOutConnectionStrings)
        {
            await using var connection = new NpgsqlConnection(connectionString);
            NpgsqlConnection.ClearPool(connection);
        }

        if (_external)
        {
            await DropCreatedDatabasesAsync();
        }
        else
        {
            await StopPrivateServerAsync();
        }
    }

    private int Port => new NpgsqlConnectionStringBuilder(AdminConnectionString).Port;

    private async Task StartPrivateServerAsync()
    {
        _rootDirectory = Directory.CreateTempSubdirectory("tollgate-pg-").FullName;
        var dataDirectory = Path.Combine(_rootDirectory, "data");
        // The server's own Unix socket goes here rather than /var/run/postgresql, which may be missing or not ours.
        var socketDirectory = Directory.CreateDirectory(Path.Combine(_rootDirectory, "socket")).FullName;
        if (_asServiceAccount)
        {
            await RunCheckedAsync(new ProcessStartInfo("chown") { ArgumentList = { "-R", $"{ServiceAccount}:{ServiceAccount}", _rootDirectory } });
        }

        // --no-sync: a cluster that lives for one test run need not wait for its files to reach the disk.
        await RunCheckedAsync(ServerTool("initdb", "-D", dataDirectory, "-U", SuperUser, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"));

        var deadline = Stopwatch.StartNew();
        for (var attempt = 1; ; attempt++)
        {
            var port = FreePort();
            _adminConnectionString = new NpgsqlConnectionStringBuilder
            {
                Host = "127.0.0.1",
                Port = port,
                Username = SuperUser,
                Database = "postgres",
                Pooling = false,
            }.ConnectionString;
            var server = StartServer(dataDirectory, socketDirectory, port);
            if (await WaitUntilReadyAsync(server, deadline))
            {
                return;
            }

            // The port was free when picked but is released before the server binds it, so another process may
            // take it in between: that one failure is worth another port.
            var log = ServerLog;
            if (attempt < StartAttempts && log.Contains("could not bind", StringComparison.Ordinal))
            {
                server.Dispose();
                _server = null;
                continue;
            }

            throw new InvalidOperationException($"PostgreSQL exited with code {server.ExitCode} before accepting connections. Server log:\n{log}");
        }
    }

    private Process StartServer(string dataDirectory, string socketDirectory, int port)
    {
        lock (_logSync)
        {
            _log.Clear();
        }

        var info = ServerTool(
            "postgres",
            "-D", dataDirectory,
            "-p", port.ToString(CultureInfo.InvariantCulture),
            "-k", socketDirectory,
            "-c", "listen_addresses=127.0.0.1",
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
            "-c", "max_connections=200");
        info.UseShellExecute = false;
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        var server = new Process { StartInfo = info };
        server.OutputDataReceived += (_, e) => AppendLog(e.Data);
        server.ErrorDataReceived += (_, e) => AppendLog(e.Data);
        server.Start();
        _server = server;
        server.BeginOutputReadLine();
        server.BeginErrorReadLine();
        return server;
    }

    /// <summary>True once a connection opens; false if the server exited first; throws when the deadline passes.</summary>
    private async Task<bool> WaitUntilReadyAsync(Process server, Stopwatch deadline)
    {
        NpgsqlException? lastError = null;
        while (deadline.Elapsed < StartupDeadline)
        {
            if (server.HasExited)
            {
                // Lets the output readers reach the end, so the log explaining the exit is complete.
                await server.WaitForExitAsync();
                return false;
            }

            try
            {
                await using var connection = new NpgsqlConnection(AdminConnectionString);
                await connection.OpenAsync();
                return true;
            }
            catch (NpgsqlException e)
            {
                // Refused while the server binds its port, or 57P03 "the database system is starting up".
                lastError = e;
            }

            await Task.Delay(RetryDelay);
        }

        throw new TimeoutException(
            $"PostgreSQL did not accept connections within {StartupDeadline.TotalSeconds:0} s (last error: {lastError?.Message}). Server log:\n{ServerLog}");
    }

    private async Task StopPrivateServerAsync()
    {
        if (_server is { } server)
        {
            if (!server.HasExited && !await StopWithPgCtlAsync(server))
            {
                server.Kill(entireProcessTree: true);
                await WaitForExitAsync(server, TimeSpan.FromSeconds(10));
            }

            server.Dispose();
            _server = null;
        }

        if (_rootDirectory is not null)
        {
            try
            {
                Directory.Delete(_rootDirectory, recursive: true);
            }
            catch (IOException)
            {
                // Best effort: a leftover directory in the temp folder must not fail the run.
            }
            catch (UnauthorizedAccessException)
            {
                // As above.
            }

            _rootDirectory = null;
        }
    }

    /// <summary>Fast shutdown: sessions are ended and the server stops cleanly. False when it did not.</summary>
    private async Task<bool> StopWithPgCtlAsync(Process server)
    {
        if (_binDirectory is null || _rootDirectory is null || !File.Exists(Path.Combine(_binDirectory, "pg_ctl")))
        {
            return false;
        }

        try
        {
            // pg_ctl finds the server through the pid file in the data directory and, with -w, returns once it is gone.
            var seconds = ((int)ShutdownTimeout.TotalSeconds).ToString(CultureInfo.InvariantCulture);
            var stop = ServerTool("pg_ctl", "-D", Path.Combine(_rootDirectory, "data"), "-m", "fast", "-w", "-t", seconds, "stop");
            var (exitCode, _) = await RunAsync(stop, ShutdownTimeout + TimeSpan.FromSeconds(5));
            return exitCode == 0 && await WaitForExitAsync(server, TimeSpan.FromSeconds(10));
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private async Task DropCreatedDatabasesAsync()
    {
        foreach (var name in _createdDatabases)
        {
            try
            {
                await using var connection = new NpgsqlConnection(AdminConnectionString);
                await connection.OpenAsync();
                // FORCE ends the sessions a test left open, which would otherwise block the drop.
                await using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", connection);
                await command.ExecuteNonQueryAsync();
            }
            catch (NpgsqlException)
            {
                // Best effort: a database left behind on a shared server must not fail the run.
            }
        }
    }

    /// <summary>A lowercase name that is a valid unquoted identifier, whatever the prefix holds.</summary>
    private static string NewDatabaseName(string? prefix)
    {
        var cleaned = new string([.. (prefix ?? string.Empty).Select(c => char.IsAsciiLetterOrDigit(c) ? char.ToLowerInvariant(c) : '_')]);
        if (cleaned.Length > 40)
        {
            cleaned = cleaned[..40];
        }

        var infix = cleaned.Length == 0 ? string.Empty : cleaned + "_";
        return $"tg_{infix}{RandomNumberGenerator.GetHexString(8, lowercase: true)}";
    }

    private static string FindBinDirectory()
    {
        var overridden = Environment.GetEnvironmentVariable(BinDirectoryVariable);
        if (!string.IsNullOrWhiteSpace(overridden))
        {
            return File.Exists(Path.Combine(overridden, "initdb"))
                ? Path.GetFullPath(overridden)
                : throw BinariesNotFound($"{BinDirectoryVariable} is {overridden}, which holds no initdb");
        }

        // Debian installs each major version side by side; the newest is the one a fresh install would use.
        var newest = Directory.Exists(DebianInstallRoot)
            ? Directory.EnumerateDirectories(DebianInstallRoot)
                .Where(version => File.Exists(Path.Combine(version, "bin", "initdb")))
                .OrderByDescending(version => ParseVersion(Path.GetFileName(version)))
                .Select(version => Path.Combine(version, "bin"))
                .FirstOrDefault()
            : null;

        // Other distributions and Homebrew put the server binaries on PATH instead.
        newest ??= (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .FirstOrDefault(directory => File.Exists(Path.Combine(directory, "initdb")));

        return newest ?? throw BinariesNotFound($"looked in {DebianInstallRoot}/*/bin and on PATH");
    }

    private static Version ParseVersion(string name) =>
        Version.TryParse(name.Contains('.', StringComparison.Ordinal) ? name : name + ".0", out var version) ? version : new Version(0, 0);

    private static InvalidOperationException BinariesNotFound(string where) =>
        new($"PostgreSQL server binaries were not found ({where}). Install them with apt-get install postgresql (.ci/run installs it), " +
            $"set {BinDirectoryVariable} to the directory holding initdb, or set {ConnectionStringVariable} to a server's connection string.");

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Start info for a PostgreSQL binary, run as the <c>postgres</c> user when this process is root.</summary>
    private ProcessStartInfo ServerTool(string tool, params string[] arguments)
    {
        var path = Path.Combine(_binDirectory!, tool);
        var info = _asServiceAccount
            ? new ProcessStartInfo(File.Exists("/usr/sbin/runuser") ? "/usr/sbin/runuser" : "runuser") { ArgumentList = { "-u", ServiceAccount, "--", path } }
            : new ProcessStartInfo(path);
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        // The postgres user may not be allowed into the test's working directory (root's home, say).
        info.WorkingDirectory = _rootDirectory;
        // Messages in English whatever the machine's locale, so the log reads the same everywhere and can be matched.
        info.Environment["LC_ALL"] = "C";
        return info;
    }

    private static async Task RunCheckedAsync(ProcessStartInfo info)
    {
        var (exitCode, output) = await RunAsync(info, ToolTimeout);
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"{Describe(info)} failed with exit code {exitCode}:\n{output}");
        }
    }

    /// <summary>Runs a short-lived command to its end, killing it after <paramref name="timeout"/>.</summary>
    private static async Task<(int ExitCode, string Output)> RunAsync(ProcessStartInfo info, TimeSpan timeout)
    {
        info.UseShellExecute = false;
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"{Describe(info)} did not start.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!await WaitForExitAsync(process, timeout))
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"{Describe(info)} did not finish within {timeout.TotalSeconds:0} s:\n{await stdout}{await stderr}");
        }

        return (process.ExitCode, await stdout + await stderr);
    }

    private static async Task<bool> WaitForExitAsync(Process process, TimeSpan timeout)
    {
        using var cancellation = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancellation.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static string Describe(ProcessStartInfo info) => string.Join(' ', [info.FileName, .. info.ArgumentList]);

    private void AppendLog(string? line)
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
