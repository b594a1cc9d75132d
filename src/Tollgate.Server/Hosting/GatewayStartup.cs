using Tollgate.Configuration;
using Tollgate.Keys;
using Tollgate.Metering;
using Tollgate.Storage.Sqlite;

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
        await store.SetAdminKeyHashAsync(hash, cancellationToken).ConfigureAwait(false);
        announce(key);
        return hash;
    }

    /// <summary>
    /// Migrates the database, resolves the admin key and loads the token counter's vocabulary: what every start
    /// needs before the host is built and takes its first request.
    /// </summary>
    public static async Task<string> PrepareAsync(GatewaySettings settings, Action<string> announceAdminKey, CancellationToken cancellationToken)
    {
        var vocabulary = Task.Run(TokenEstimator.LoadVocabulary, cancellationToken);
        var database = new SqliteDatabase(settings.DataDirectory);
        await database.MigrateAsync(cancellationToken).ConfigureAwait(false);
        using var store = new SqliteKeyStore(database, settings.Time);
        var adminKeyHash = await ResolveAdminKeyHashAsync(store, settings.Secrets, announceAdminKey, cancellationToken).ConfigureAwait(false);
        await vocabulary.ConfigureAwait(false);
        return adminKeyHash;
    }
}
