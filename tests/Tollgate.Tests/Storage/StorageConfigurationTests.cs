using System.Text.Json.Nodes;
using Npgsql;
using Tollgate.Configuration;
using Tollgate.Server.Hosting;
using Tollgate.Storage.Postgres;

namespace Tollgate.Tests.Storage;

/// <summary>How <c>storage</c> picks a database, and how the PostgreSQL connection string is read.</summary>
public sealed class StorageConfigurationTests
{
    [Fact]
    public void Url_WithEscapedPasswordPortAndSslMode_BecomesTheSameNpgsqlSettings()
    {
        var normalized = new NpgsqlConnectionStringBuilder(PostgresConnectionString.Normalize("postgres://app%40prod:p%3Ass%2Fw0rd@db.internal:6543/tollgate?sslmode=require"));

        Assert.Equal("db.internal", normalized.Host);
        Assert.Equal(6543, normalized.Port);
        Assert.Equal("app@prod", normalized.Username);
        Assert.Equal("p:ss/w0rd", normalized.Password);
        Assert.Equal("tollgate", normalized.Database);
        Assert.Equal(SslMode.Require, normalized.SslMode);
    }

    [Fact]
    public void KeywordForm_IsKeptAsItIs()
    {
        var normalized = new NpgsqlConnectionStringBuilder(PostgresConnectionString.Normalize("Host=10.0.0.5;Username=tg;Password=x;Database=gw;Maximum Pool Size=40"));

        Assert.Equal(("10.0.0.5", "tg", "gw", 40), (normalized.Host, normalized.Username, normalized.Database, normalized.MaxPoolSize));
    }

    [Theory]
    [InlineData("postgres://user:hunter2-secret@/db", "not valid")]
    [InlineData("Username=u;Password=hunter2-secret", "names no Host")]
    [InlineData("Hots=db;Password=hunter2-secret", "neither")]
    [InlineData("postgresql://u:hunter2-secret@db/x?frobnicate=1", "frobnicate")]
    public void Invalid_IsRefused_WithoutRepeatingThePassword(string value, string expected)
    {
        var error = Assert.Throws<FormatException>(() => PostgresConnectionString.Normalize(value));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2-secret", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_DefaultPostgresVariable_IsNotTakenForAConfigurationKey()
    {
        var options = ConfigurationLoader.Load(
            new JsonObject { ["storage"] = new JsonObject { ["database"] = "postgres" } },
            new Dictionary<string, string> { ["TOLLGATE_POSTGRES"] = "Host=db" });

        Assert.Equal(StorageOptions.Postgres, options.Storage.Database);
        Assert.Equal("TOLLGATE_POSTGRES", options.Storage.ConnectionStringEnv);
    }

    [Fact]
    public void Load_UnknownDatabase_FailsNamingTheKey()
    {
        var error = Assert.Throws<TollgateConfigurationException>(() => ConfigurationLoader.Load(
            new JsonObject { ["storage"] = new JsonObject { ["database"] = "mysql" } }, new Dictionary<string, string>()));

        Assert.Contains("storage:database: must be 'sqlite' or 'postgres', got 'mysql'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OpenStorage_ConnectionStringVariableNamedInConfig_IsReadFromTheSecrets()
    {
        var options = new TollgateOptions { Storage = new StorageOptions { Database = StorageOptions.Postgres, ConnectionStringEnv = "GATEWAY_DB" } };

        var missing = Assert.Throws<TollgateConfigurationException>(() => GatewayStartup.OpenStorage(options, new SecretSource(new Dictionary<string, string>()), "unused", TimeProvider.System));
        Assert.Contains("GATEWAY_DB (storage:connectionStringEnv) is not set", missing.Message, StringComparison.Ordinal);

        var malformed = Assert.Throws<TollgateConfigurationException>(() => GatewayStartup.OpenStorage(options, new SecretSource(new Dictionary<string, string> { ["GATEWAY_DB"] = "Password=hunter2-secret" }), "unused", TimeProvider.System));
        Assert.Contains("GATEWAY_DB (storage:connectionStringEnv): the connection string names no Host", malformed.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2-secret", malformed.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("sqlite", "redis", "storage:limiter: 'redis' needs storage:database 'postgres'")]
    [InlineData("postgres", "memcached", "storage:limiter: must be 'database' or 'redis', got 'memcached'")]
    public void Load_LimiterThatCannotWork_FailsNamingTheKey(string database, string limiter, string expected)
    {
        var error = Assert.Throws<TollgateConfigurationException>(() => ConfigurationLoader.Load(
            new JsonObject { ["storage"] = new JsonObject { ["database"] = database, ["limiter"] = limiter } }, new Dictionary<string, string>()));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_DefaultRedisVariable_IsNotTakenForAConfigurationKey()
    {
        var options = ConfigurationLoader.Load(
            new JsonObject { ["storage"] = new JsonObject { ["database"] = "postgres", ["limiter"] = "redis" } },
            new Dictionary<string, string> { ["TOLLGATE_REDIS"] = "cache:6379", ["TOLLGATE_POSTGRES"] = "Host=db" });

        Assert.Equal(StorageOptions.RedisLimiter, options.Storage.Limiter);
        Assert.Equal("TOLLGATE_REDIS", options.Storage.RedisConnectionStringEnv);
    }

    [Fact]
    public void OpenStorage_RedisVariableNamedInConfig_IsReadFromTheSecrets_WithoutRepeatingThePassword()
    {
        var options = new TollgateOptions { Storage = new StorageOptions { Database = StorageOptions.Postgres, Limiter = StorageOptions.RedisLimiter, RedisConnectionStringEnv = "COUNTERS" } };
        var postgres = new Dictionary<string, string> { ["TOLLGATE_POSTGRES"] = "Host=db" };

        var missing = Assert.Throws<TollgateConfigurationException>(() => GatewayStartup.OpenStorage(options, new SecretSource(postgres), "unused", TimeProvider.System));
        Assert.Contains("storage:limiter: is 'redis', but COUNTERS (storage:redisConnectionStringEnv) is not set", missing.Message, StringComparison.Ordinal);

        var malformed = Assert.Throws<TollgateConfigurationException>(() => GatewayStartup.OpenStorage(
            options, new SecretSource(new Dictionary<string, string>(postgres) { ["COUNTERS"] = "redis://:hunter2-secret@cache/zero" }), "unused", TimeProvider.System));
        Assert.Contains("COUNTERS (storage:redisConnectionStringEnv): the redis:// URL's path must be a database number", malformed.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2-secret", malformed.Message, StringComparison.Ordinal);
    }
}
