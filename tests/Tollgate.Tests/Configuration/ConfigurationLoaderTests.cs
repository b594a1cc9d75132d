using System.Text.Json.Nodes;
using Tollgate.Configuration;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Configuration;

public sealed class ConfigurationLoaderTests
{
    private static readonly Dictionary<string, string> NoEnvironment = [];

    [Fact]
    public void Load_BuiltInDefaults_KnowTheDocumentedProvidersWithDecimalPrices()
    {
        var options = ConfigurationLoader.Load((JsonObject?)null, NoEnvironment);

        Assert.Equal(["anthropic", "deepseek", "gemini", "groq", "ollama", "openai", "openrouter"], options.Providers.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("anthropic", options.Providers["anthropic"].Type);
        Assert.Equal("gemini", options.Providers["gemini"].Type);
        Assert.Equal(1.25m, options.Models["anthropic/claude-haiku-4-5"].CacheWrite5mPerMillion);
        Assert.Equal(0.03m, options.Models["gemini/gemini-2.5-flash"].CachedInputPerMillion);
        Assert.Equal("DEEPSEEK_API_KEY", options.Providers["deepseek"].ApiKeyEnv);
        Assert.Null(options.Providers["ollama"].ApiKeyEnv);
        Assert.Equal("http://localhost:11434/v1", options.Providers["ollama"].BaseUrl);
        Assert.Equal(0.28m, options.Models["deepseek/deepseek-chat"].InputPerMillion);
        Assert.Equal(10.00m, options.Models["openai/gpt-4o"].OutputPerMillion);
        Assert.Equal(0m, options.Models["ollama/llama3.2"].InputPerMillion);
        Assert.Equal(30_000, options.Routing.AttemptTimeoutMs);
        Assert.Equal(8 * 1024 * 1024, options.Server.MaxRequestBodyBytes);
    }

    [Fact]
    public void Load_UserRoute_ReplacesTheDefaultRouteWhole()
    {
        var user = new JsonObject
        {
            ["routes"] = new JsonObject { ["gpt-4o"] = Configs.Route("ordered", "deepseek/deepseek-chat") },
        };

        var options = ConfigurationLoader.Load(user, NoEnvironment);

        // Configuration merges arrays index by index; the loader must not leave the default's second candidate behind.
        Assert.Equal(["deepseek/deepseek-chat"], options.Routes["gpt-4o"].Candidates);
        Assert.Equal("ordered", options.Routes["gpt-4o"].Strategy);
        Assert.True(options.Routes.ContainsKey("gpt-4o-mini"));
    }

    [Fact]
    public void Load_EnvironmentVariable_OverridesTheFile()
    {
        var user = new JsonObject { ["routing"] = new JsonObject { ["attemptTimeoutMs"] = 5000 } };
        var environment = new Dictionary<string, string> { ["TOLLGATE_routing__attemptTimeoutMs"] = "1234", ["TOLLGATE_ADMIN_KEY"] = "x" };

        var options = ConfigurationLoader.Load(user, environment);

        Assert.Equal(1234, options.Routing.AttemptTimeoutMs);
    }

    [Fact]
    public void Load_UseDefaultsFalse_HasOnlyTheUsersEntries()
    {
        var user = new JsonObject
        {
            ["useDefaults"] = false,
            ["providers"] = new JsonObject { ["p"] = Configs.Provider(new Uri("http://127.0.0.1:1/v1")) },
            ["models"] = new JsonObject { ["m"] = Configs.Model("p", "up", 1m, 2m) },
        };

        var options = ConfigurationLoader.Load(user, NoEnvironment);

        Assert.Equal(["p"], options.Providers.Keys);
        Assert.Equal(["m"], options.Models.Keys);
        Assert.Empty(options.Routes);
    }

    [Theory]
    [InlineData("models:m:provider: unknown provider 'nope'", "nope", 1, "m")]
    [InlineData("models:m:inputPerMillion: must not be negative", "p", -1, "m")]
    [InlineData("routes:r:candidates: deployment 'missing' is not defined under models", "p", 1, "missing")]
    public void Load_InvalidReference_FailsNamingTheKey(string expected, string modelProvider, decimal inputPrice, string routeCandidate)
    {
        var user = new JsonObject
        {
            ["useDefaults"] = false,
            ["providers"] = new JsonObject { ["p"] = Configs.Provider(new Uri("http://127.0.0.1:1/v1")) },
            ["models"] = new JsonObject { ["m"] = Configs.Model(modelProvider, "up", inputPrice, 2m) },
            ["routes"] = new JsonObject { ["r"] = Configs.Route("cheapest", routeCandidate) },
        };

        var ex = Assert.Throws<TollgateConfigurationException>(() => ConfigurationLoader.Load(user, NoEnvironment));

        Assert.Contains(ex.Errors, e => e.StartsWith(expected, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("grpc", "unknown provider type 'grpc'")]
    [InlineData("bedrock", "unknown provider type 'bedrock'")]
    public void Load_ProviderType_MustBeKnown(string type, string expected)
    {
        var provider = Configs.Provider(new Uri("http://127.0.0.1:1/v1"));
        provider["type"] = type;
        var user = new JsonObject { ["useDefaults"] = false, ["providers"] = new JsonObject { ["p"] = provider } };

        var ex = Assert.Throws<TollgateConfigurationException>(() => ConfigurationLoader.Load(user, NoEnvironment));

        Assert.Contains(ex.Errors, e => e.StartsWith("providers:p:type: " + expected, StringComparison.Ordinal));
    }

    [Fact]
    public void Load_DuplicateCandidateAndUnknownStrategy_AreBothReported()
    {
        var route = Configs.Route("fastest", "m", "m");
        var user = new JsonObject
        {
            ["useDefaults"] = false,
            ["providers"] = new JsonObject { ["p"] = Configs.Provider(new Uri("http://127.0.0.1:1/v1")) },
            ["models"] = new JsonObject { ["m"] = Configs.Model("p", "up", 1m, 2m) },
            ["routes"] = new JsonObject { ["r"] = route },
        };

        var ex = Assert.Throws<TollgateConfigurationException>(() => ConfigurationLoader.Load(user, NoEnvironment));

        Assert.Contains(ex.Errors, e => e.StartsWith("routes:r:strategy: unknown strategy 'fastest'", StringComparison.Ordinal));
        Assert.Contains(ex.Errors, e => e.StartsWith("routes:r:candidates: deployment 'm' is listed twice", StringComparison.Ordinal));
    }

    [Fact]
    public void Load_MisspelledKey_FailsInsteadOfBeingIgnored()
    {
        var model = Configs.Model("openai", "gpt-x", 1m, 2m);
        model["inputPerMilion"] = 3;
        var user = new JsonObject { ["models"] = new JsonObject { ["openai/gpt-x"] = model } };

        var ex = Assert.Throws<TollgateConfigurationException>(() => ConfigurationLoader.Load(user, NoEnvironment));

        Assert.Contains(ex.Errors, e => e.Contains("inputPerMilion", StringComparison.Ordinal));
    }

    [Fact]
    public void Load_FileWithInvalidJson_ReportsTheLine()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("tollgate-config-").FullName, "tollgate.json");
        File.WriteAllText(path, "{\n  \"routing\": {\n    \"attemptTimeoutMs\": ,\n  }\n}");

        var ex = Assert.Throws<TollgateConfigurationException>(() => ConfigurationLoader.Load(path, NoEnvironment));

        Assert.Contains("line 3", ex.Errors[0], StringComparison.Ordinal);
    }

    [Fact]
    public void Load_MissingFile_SaysSo()
    {
        var ex = Assert.Throws<TollgateConfigurationException>(() => ConfigurationLoader.Load("/nonexistent/tollgate.json", NoEnvironment));

        Assert.Contains("does not exist", ex.Errors[0], StringComparison.Ordinal);
    }

    [Fact]
    public void DotEnv_Read_ParsesQuotesCommentsAndExport()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("tollgate-env-").FullName, ".env");
        File.WriteAllText(path, "# keys\nDEEPSEEK_API_KEY=sk-one\nexport OPENAI_API_KEY=\"sk two\"\nGROQ_API_KEY='g' \nPLAIN=value # comment\nBROKEN\n");

        var values = DotEnvFile.Read(path);

        Assert.Equal("sk-one", values["DEEPSEEK_API_KEY"]);
        Assert.Equal("sk two", values["OPENAI_API_KEY"]);
        Assert.Equal("g", values["GROQ_API_KEY"]);
        Assert.Equal("value", values["PLAIN"]);
        Assert.False(values.ContainsKey("BROKEN"));
    }
}
