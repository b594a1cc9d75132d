using Tollgate.Configuration;
using Tollgate.Keys;
using Tollgate.Metering;
using Tollgate.Storage;
using Tollgate.Storage.Postgres;

namespace Tollgate.Server.Hosting;

/// <summary>Where the pieces of a start come from: config file, <c>.env</c>, data directory, admin key.</summary>
public static class GatewayStartup
{
    public const string ConfigVariable = "TOLLGATE_CONFIG";
    public const string AdminKeyVariable = "TOLLGATE_ADMIN_KEY";
    public const string DefaultConfigFile = "tollgate.json";

    /// <summary>The config path: <c>--config</c>, else <c>TOLLGATE_CONFIG</c>, else <c>./tollgate.json</c> when it exists, else none (built-in defaults only).</summary>
    public static string? ResolveConfigPath(string? option)
    {
        var path = option ?? Environment.GetEnvironmentVariable(ConfigVariable);
        if (!string.IsNullOrWhiteSpace(path))
        {
            return Path.GetFullPath(path);
        }

        return File.Exists(DefaultConfigFile) ? Path.GetFullPath(DefaultConfigFile) : null;
    }

    /// <summary>Reads <c>.env</c> beside the config file and in the working directory (the environment wins over both).</summary>
    public static Dictionary<string, string> ReadDotEnv(string? configPath)
    {
        var values = DotEnvFile.Read(Path.GetFullPath(".env"));
        if (configPath is not null && Path.GetDirectoryName(configPath) is { } dir)
        {
            foreach (var (key, value) in DotEnvFile.Read(Path.Combine(dir, ".env")))
            {
                values[key] = value;
            }
        }

        return values;
    }

    /// <summary>Loads configuration and secrets; throws <see cref="TollgateConfigurationException"/> with every problem found.</summary>
    public static (TollgateOptions Options, SecretSource Secrets) LoadConfiguration(string? configPath)
    {
        var dotEnv = ReadDotEnv(configPath);
        var environment = new System.Collections.Hashtable(StringComparer.Ordinal);
        foreach (var (key, value) in dotEnv)
        {
            environment[key] = value;
        }

        foreach (System.Collections.DictionaryEntry entry in Environment.GetEnvironmentVariables())
        {
            environment[entry.Key] = entry.Value;
        }

        var options = ConfigurationLoader.Load(configPath, environment);
        return (options, SecretSource.FromEnvironment(dotEnv));
    }

    public static string ResolveDataDirectory(string? option, TollgateOptions options) =>
        Path.GetFullPath(option ?? options.Storage.DataDirectory);

    /// <summary>
    /// The admin key's hash. <c>TOLLGATE_ADMIN_KEY</c> wins; else the stored hash; else a new key is
    /// generated, its hash stored, and the key itself handed to <paramref name="announce"/> to print once.
    /// </summary>
    public static async Task<string> ResolveAdminKeyHashAsync(IKeyStore store, SecretSource secrets, Action<string> announce, CancellationToken cancellationToken)
    {
        if (secrets.Get(AdminKeyVariable) is { } configured)
        {
            return ApiKeys.Hash(configured);
        }

        if (await store.GetAdminKeyHashAsync(cancellationToken).ConfigureAwait(false) is { } stored)
        {
            return stored;
        }

        var key = ApiKeys.NewSecret(ApiKeys.AdminPrefix);
        var hash = ApiKeys.Hash(key);
        if (await store.TryInitializeAdminKeyHashAsync(hash, cancellationToken).ConfigureAwait(false))
        {
            announce(key);
            return hash;
        }

        // Another instance sharing the database stored its admin key between the read above and now: that key stands
        // (it printed it), and this instance must not print one that would not work.
        return await store.GetAdminKeyHashAsync(cancellationToken).ConfigureAwait(false)
            ?? throw new InvalidOperationException("The admin key hash vanished while it was being initialised.");
    }

    /// <summary>
    /// Migrates the database, resolves the admin key and loads the token counter's vocabulary: what every start
    /// needs before the host is built and takes its first request.
    /// </summary>
    public static async Task<string> PrepareAsync(GatewaySettings settings, Action<string> announceAdminKey, CancellationToken cancellationToken)
    {
        var vocabulary = Task.Run(TokenEstimator.LoadVocabulary, cancellationToken);
        await using var storage = OpenStorage(settings.Options, settings.Secrets, settings.DataDirectory, settings.Time);
        await storage.MigrateAsync(cancellationToken).ConfigureAwait(false);
        var adminKeyHash = await ResolveAdminKeyHashAsync(storage.Keys, settings.Secrets, announceAdminKey, cancellationToken).ConfigureAwait(false);
        await vocabulary.ConfigureAwait(false);
        return adminKeyHash;
    }

    /// <summary>
    /// The database <c>storage.database</c> names: the SQLite file under <paramref name="dataDirectory"/>, or the
    /// PostgreSQL database whose connection string is in the variable <c>storage.connectionStringEnv</c> names (with
    /// its limit counters in Redis when <c>storage.limiter</c> is <c>redis</c>).
    /// Throws <see cref="TollgateConfigurationException"/> when that variable is missing or unreadable.
    /// </summary>
    public static GatewayStorage OpenStorage(TollgateOptions options, SecretSource secrets, string dataDirectory, TimeProvider time)
    {
        var storage = options.Storage;
        if (storage.Database != StorageOptions.Postgres)
        {
            return GatewayStorage.Sqlite(dataDirectory, time, storage.LedgerFsync);
        }

        var variable = storage.ConnectionStringEnv;
        if (secrets.Get(variable) is not { Length: > 0 } value)
        {
            throw new TollgateConfigurationException([$"storage:database: is '{StorageOptions.Postgres}', but {variable} (storage:connectionStringEnv) is not set in the environment or .env"]);
        }

        string postgres;
        try
        {
            postgres = PostgresConnectionString.Normalize(value);
        }
        catch (FormatException ex)
        {
            throw new TollgateConfigurationException([$"{variable} (storage:connectionStringEnv): {ex.Message}"]);
        }

        if (storage.Limiter != StorageOptions.RedisLimiter)
        {
            return GatewayStorage.Postgres(postgres, time);
        }

        var redisVariable = storage.RedisConnectionStringEnv;
        if (secrets.Get(redisVariable) is not { Length: > 0 } redis)
        {
            throw new TollgateConfigurationException([$"storage:limiter: is '{StorageOptions.RedisLimiter}', but {redisVariable} (storage:redisConnectionStringEnv) is not set in the environment or .env"]);
        }

        try
        {
            return GatewayStorage.Postgres(postgres, time, redis);
        }
        catch (FormatException ex)
        {
            throw new TollgateConfigurationException([$"{redisVariable} (storage:redisConnectionStringEnv): {ex.Message}"]);
        }
    }
}
