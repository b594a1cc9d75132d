using Tollgate.Configuration;

namespace Tollgate.Server.Hosting;

/// <summary>Everything needed to build a gateway host, resolved from the command line, files and environment.</summary>
public sealed record GatewaySettings
{
    public required TollgateOptions Options { get; init; }

    public required SecretSource Secrets { get; init; }

    /// <summary>Absolute path of the data directory (the SQLite file lives here).</summary>
    public required string DataDirectory { get; init; }

    /// <summary>URLs to listen on, e.g. <c>http://127.0.0.1:5080</c>.</summary>
    public IReadOnlyList<string> Urls { get; init; } = ["http://localhost:5080"];

    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Lowest log level written to the console.</summary>
    public LogLevel MinimumLogLevel { get; init; } = LogLevel.Information;
}
