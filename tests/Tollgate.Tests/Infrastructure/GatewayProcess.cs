using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading.Channels;

namespace Tollgate.Tests.Infrastructure;

/// <summary>
/// The built <c>tollgate</c> executable started as a separate process, as a user runs it. Output lines
/// are collected so tests can wait for a line (no sleeps) and read what was printed.
/// </summary>
public sealed partial class GatewayProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
    private readonly StringBuilder _output = new();
    private readonly Lock _sync = new();

    private GatewayProcess(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) => OnLine(e.Data);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>Everything the process printed so far (stdout and stderr).</summary>
    public string Output
    {
        get
        {
            lock (_sync)
            {
                return _output.ToString();
            }
        }
    }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>A loopback port free right now, for a gateway process's <c>--urls</c>.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Path of the <c>tollgate.dll</c> built beside the tests.</summary>
    public static string ExecutablePath => Path.Combine(AppContext.BaseDirectory, "tollgate.dll");

    public static GatewayProcess Start(IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null, string? workingDirectory = null)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? AppContext.BaseDirectory,
        };
        info.ArgumentList.Add(ExecutablePath);
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        // A test must not inherit the developer's own admin key or config.
        info.Environment.Remove("TOLLGATE_ADMIN_KEY");
        info.Environment.Remove("TOLLGATE_CONFIG");
        info.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        return new GatewayProcess(Process.Start(info)!);
    }

    /// <summary>Runs a CLI verb to completion and returns its exit code and output.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(IEnumerable<string> arguments, CancellationToken cancellationToken, IReadOnlyDictionary<string, string>? environment = null)
    {
        await using var process = Start(arguments, environment);
        await process._process.WaitForExitAsync(cancellationToken);

        // WaitForExitAsync also waits for the redirected streams to reach end of file.
        return (process.ExitCode, process.Output);
    }

    /// <summary>Waits until a printed line matches <paramref name="pattern"/>; fails if the process exits first.</summary>
    public async Task<Match> WaitForLineAsync(Regex pattern, CancellationToken cancellationToken)
    {
        await foreach (var line in _lines.Reader.ReadAllAsync(cancellationToken))
        {
            var match = pattern.Match(line);
            if (match.Success)
            {
                return match;
            }
        }

        throw new InvalidOperationException($"The gateway exited (code {(_process.HasExited ? _process.ExitCode : -1)}) before printing a line matching {pattern}. Output:\n{Output}");
    }

    /// <summary>Waits for "Now listening on: URL" and returns the URL.</summary>
    public async Task<Uri> WaitForListeningAsync(CancellationToken cancellationToken)
    {
        var match = await WaitForLineAsync(ListeningLine(), cancellationToken);
        return new Uri(match.Groups[1].Value.TrimEnd('/') + "/");
    }

    /// <summary>Kills the process at once (SIGKILL on Unix): no shutdown code runs, as in a crash or an OOM kill.</summary>
    public async Task KillAsync()
    {
        _process.Kill();
        await _process.WaitForExitAsync();
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            _lines.Writer.TryComplete();
            return;
        }

        lock (_sync)
        {
            _output.AppendLine(line);
        }

        _lines.Writer.TryWrite(line);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    [GeneratedRegex(@"Now listening on: (\S+)")]
    private static partial Regex ListeningLine();
}
