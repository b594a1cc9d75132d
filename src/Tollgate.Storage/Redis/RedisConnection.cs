using System.Data.Common;
using System.Globalization;
using StackExchange.Redis;

namespace Tollgate.Storage.Redis;

/// <summary>
/// One multiplexed connection to the Redis that holds the limit counters, opened on first use. It accepts the
/// connection string operators are likely to have: StackExchange.Redis's <c>host:port,password=...</c> form, or a
/// <c>redis://[user:password@]host:port[/database]</c> URL (<c>rediss://</c> for TLS). Neither the string nor the
/// password is ever repeated in a message.
/// </summary>
public sealed class RedisConnection : IAsyncDisposable
{
    private readonly ConfigurationOptions _options;
    private readonly Lock _sync = new();
    private Task<ConnectionMultiplexer>? _multiplexer;
    private IDatabase? _database;

    /// <summary>Parses <paramref name="connectionString"/>; throws <see cref="FormatException"/> naming what is wrong.</summary>
    public RedisConnection(string connectionString)
    {
        _options = Parse(connectionString);

        // Reconnects by itself after a restart or a network blip; meanwhile commands fail fast instead of queueing
        // behind a dead socket, and a request is refused 503 limits_unavailable rather than left waiting.
        _options.AbortOnConnectFail = false;
        _options.BacklogPolicy = BacklogPolicy.FailFast;
        _options.ClientName ??= "tollgate";
        var endpoint = _options.EndPoints[0] switch
        {
            System.Net.DnsEndPoint dns => string.Create(CultureInfo.InvariantCulture, $"{dns.Host}:{dns.Port}"),
            var other => other.ToString(),
        };
        Description = $"Redis at {endpoint}" + (_options.DefaultDatabase is { } db ? string.Create(CultureInfo.InvariantCulture, $" (database {db})") : string.Empty);
    }

    /// <summary>
    /// Raised, on a thread of the pool, when the connection that carries commands comes back after Redis could not be
    /// reached: whatever waited for Redis can be done now rather than at the next request.
    /// </summary>
    public event EventHandler? Restored;

    /// <summary>Where the counters are, for start-up messages: host, port and database number, never the password.</summary>
    public string Description { get; }

    /// <summary>The database, connected on first use; throws <see cref="RedisUnavailableException"/> when it cannot be reached.</summary>
    public async ValueTask<IDatabase> DatabaseAsync()
    {
        if (Volatile.Read(ref _database) is { } connected)
        {
            return connected;
        }

        Task<ConnectionMultiplexer> connecting;
        lock (_sync)
        {
            // Once connected the multiplexer reconnects by itself; a first attempt that failed outright is tried
            // again by the next request rather than remembered for the life of the process.
            if (_multiplexer is null || _multiplexer.IsFaulted || _multiplexer.IsCanceled)
            {
                _multiplexer = ConnectAsync();
            }

            connecting = _multiplexer;
        }

        try
        {
            var database = (await connecting.ConfigureAwait(false)).GetDatabase();
            Volatile.Write(ref _database, database);
            return database;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or System.Net.Sockets.SocketException)
        {
            throw new RedisUnavailableException(Description, ex);
        }
    }

    /// <summary>Asks Redis for an answer (at start, so a wrong address is reported before the first request).</summary>
    public async Task PingAsync()
    {
        var database = await DatabaseAsync().ConfigureAwait(false);
        try
        {
            await database.PingAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw new RedisUnavailableException(Description, ex);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Task<ConnectionMultiplexer>? connecting;
        lock (_sync)
        {
            connecting = _multiplexer;
        }

        if (connecting is { IsCompletedSuccessfully: true })
        {
            await connecting.Result.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task<ConnectionMultiplexer> ConnectAsync()
    {
        var multiplexer = await ConnectionMultiplexer.ConnectAsync(_options).ConfigureAwait(false);
        multiplexer.ConnectionRestored += OnConnectionRestored;
        return multiplexer;
    }

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e)
    {
        // The subscription connection comes back too, but no command of ours runs on it.
        if (e.ConnectionType == ConnectionType.Interactive && Restored is { } restored)
        {
            // Off the multiplexer's thread: a handler that sends commands must not hold up its reconnection.
            ThreadPool.QueueUserWorkItem(_ => restored(this, EventArgs.Empty));
        }
    }

    internal static ConfigurationOptions Parse(string connectionString)
    {
        var text = connectionString.Trim();
        if (text.StartsWith("redis://", StringComparison.OrdinalIgnoreCase) || text.StartsWith("rediss://", StringComparison.OrdinalIgnoreCase))
        {
            return FromUrl(text);
        }

        ConfigurationOptions options;
        try
        {
            options = ConfigurationOptions.Parse(text);
        }
        catch (ArgumentException)
        {
            throw new FormatException("it is neither a 'host:port,password=...' connection string nor a redis:// URL");
        }

        if (options.EndPoints.Count == 0)
        {
            throw new FormatException("the connection string names no host");
        }

        return options;
    }

    private static ConfigurationOptions FromUrl(string text)
    {
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
        {
            throw new FormatException("the redis:// URL is not valid");
        }

        var options = new ConfigurationOptions { Ssl = uri.Scheme.Equals("rediss", StringComparison.OrdinalIgnoreCase) };
        options.EndPoints.Add(uri.Host, uri.Port > 0 ? uri.Port : 6379);
        if (uri.UserInfo.Length > 0)
        {
            // redis://:password@host (no user) and redis://user:password@host (Redis 6 ACL users) are both common.
            var colon = uri.UserInfo.IndexOf(':', StringComparison.Ordinal);
            var user = Uri.UnescapeDataString(colon < 0 ? uri.UserInfo : uri.UserInfo[..colon]);
            var password = colon < 0 ? null : Uri.UnescapeDataString(uri.UserInfo[(colon + 1)..]);
            if (password is null)
            {
                options.Password = user;
            }
            else
            {
                options.User = user.Length > 0 ? user : null;
                options.Password = password;
            }
        }

        var path = uri.AbsolutePath.Trim('/');
        if (path.Length > 0)
        {
            if (!int.TryParse(path, NumberStyles.None, CultureInfo.InvariantCulture, out var database))
            {
                throw new FormatException("the redis:// URL's path must be a database number");
            }

            options.DefaultDatabase = database;
        }

        return options;
    }
}

/// <summary>
/// Redis could not be reached or refused a command. A <see cref="DbException"/>, like the databases' own, so every
/// place that turns an unreachable store into a clear answer (503 <c>limits_unavailable</c>, a one-line start-up
/// error) treats it the same way.
/// </summary>
public sealed class RedisUnavailableException(string description, Exception inner)
    : DbException($"{description} cannot be used: {inner.Message}", inner)
{
    /// <summary>Redis down or unreachable is a state that passes: the same request may succeed shortly.</summary>
    public override bool IsTransient => true;
}
