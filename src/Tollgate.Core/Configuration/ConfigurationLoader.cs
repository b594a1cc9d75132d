using System.Collections;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Configuration;

namespace Tollgate.Configuration;

/// <summary>
/// Builds <see cref="TollgateOptions"/> from three layers: the built-in catalog, the user's
/// <c>tollgate.json</c>, then <c>TOLLGATE_</c> environment variables (<c>__</c> separates sections).
/// </summary>
/// <remarks>
/// The built-in catalog and the user's file are merged as JSON before Microsoft.Extensions.Configuration
/// sees them, because configuration merges arrays index by index: a user route with one candidate
/// layered over a default route with three would otherwise keep the last two. A provider, model or
/// route entry that the user's file names replaces the built-in entry whole.
/// </remarks>
public static class ConfigurationLoader
{
    private static readonly string[] EntrySections = ["providers", "models", "routes", "plans"];

    /// <summary>
    /// <c>TOLLGATE_</c> variables that hold values, not configuration keys: the admin key, the config path, and the
    /// default PostgreSQL and Redis connection strings.
    /// </summary>
    private static readonly HashSet<string> NonConfigVariables = new(StringComparer.OrdinalIgnoreCase) { "ADMIN_KEY", "CONFIG", "POSTGRES", "REDIS" };

    private static readonly JsonDocumentOptions DocumentOptions = new()
    {
        CommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    /// <summary>Loads and validates; throws <see cref="TollgateConfigurationException"/> listing every problem.</summary>
    public static TollgateOptions Load(string? configPath, IDictionary? environment = null)
    {
        JsonObject? user = null;
        if (configPath is not null)
        {
            if (!File.Exists(configPath))
            {
                throw new TollgateConfigurationException([$"config file '{configPath}' does not exist"]);
            }

            user = ParseObject(File.ReadAllText(configPath), configPath);
        }

        return Load(user, environment ?? Environment.GetEnvironmentVariables());
    }

    public static TollgateOptions Load(JsonObject? user, IDictionary environment)
    {
        var useDefaults = user?["useDefaults"] is not JsonValue flag || !flag.TryGetValue<bool>(out var value) || value;
        var defaults = ReadDefaults();

        // The built-in plans stay even without the built-in catalog: a tenant always has plans to choose from.
        var merged = useDefaults ? defaults : new JsonObject { ["plans"] = defaults["plans"]?.DeepClone() };
        if (user is not null)
        {
            Merge(merged, user);
        }

        var builder = new ConfigurationBuilder();
        using var stream = new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(merged, TollgateJsonContext.Default.JsonObject));
        builder.AddJsonStream(stream);
        builder.AddInMemoryCollection(EnvironmentOverrides(environment));
        var configuration = builder.Build();

        TollgateOptions options;
        try
        {
            options = new TollgateOptions();
            configuration.Bind(options, binder => binder.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException ex)
        {
            throw new TollgateConfigurationException([ex.InnerException?.Message ?? ex.Message]);
        }

        var errors = TollgateOptionsValidator.Validate(options);
        return errors.Count > 0 ? throw new TollgateConfigurationException(errors) : options;
    }

    private static JsonObject ReadDefaults()
    {
        using var stream = typeof(ConfigurationLoader).Assembly.GetManifestResourceStream("Tollgate.defaults.json")
            ?? throw new InvalidOperationException("The built-in catalog is missing from the assembly.");
        using var reader = new StreamReader(stream);
        var defaults = ParseObject(reader.ReadToEnd(), "built-in defaults");
        defaults.Remove("//");
        return defaults;
    }

    private static JsonObject ParseObject(string json, string source)
    {
        try
        {
            return JsonNode.Parse(json, documentOptions: DocumentOptions) as JsonObject
                ?? throw new TollgateConfigurationException([$"{source}: the top level must be a JSON object"]);
        }
        catch (JsonException ex)
        {
            throw new TollgateConfigurationException([$"{source}: invalid JSON at line {ex.LineNumber + 1}: {ex.Message}"]);
        }
    }

    private static void Merge(JsonObject target, JsonObject user)
    {
        foreach (var (name, node) in user.ToArray())
        {
            if (name == "useDefaults" || name.StartsWith("//", StringComparison.Ordinal))
            {
                continue;
            }

            var isEntrySection = Array.Exists(EntrySections, s => s.Equals(name, StringComparison.OrdinalIgnoreCase));
            if (node is JsonObject userSection && target[name] is JsonObject targetSection)
            {
                foreach (var (entryName, entry) in userSection.ToArray())
                {
                    if (!isEntrySection && entry is JsonObject nested && targetSection[entryName] is JsonObject nestedTarget)
                    {
                        Merge(nestedTarget, nested);
                        continue;
                    }

                    RemoveIgnoringCase(targetSection, entryName);
                    targetSection[entryName] = entry?.DeepClone();
                }

                continue;
            }

            target[name] = node?.DeepClone();
        }
    }

    private static void RemoveIgnoringCase(JsonObject obj, string name)
    {
        foreach (var key in obj.Select(p => p.Key).Where(k => k.Equals(name, StringComparison.OrdinalIgnoreCase)).ToArray())
        {
            obj.Remove(key);
        }
    }

    private static Dictionary<string, string?> EnvironmentOverrides(IDictionary environment)
    {
        const string Prefix = "TOLLGATE_";
        var overrides = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (DictionaryEntry entry in environment)
        {
            if (entry.Key is not string key || !key.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            var name = key[Prefix.Length..];
            if (name.Length == 0 || NonConfigVariables.Contains(name))
            {
                continue;
            }

            overrides[name.Replace("__", ConfigurationPath.KeyDelimiter, StringComparison.Ordinal)] = entry.Value as string;
        }

        return overrides;
    }
}

/// <summary>Configuration that cannot start the gateway; <see cref="Errors"/> names each key and what is wrong.</summary>
public sealed class TollgateConfigurationException(IReadOnlyList<string> errors)
    : Exception("Invalid configuration:" + Environment.NewLine + string.Join(Environment.NewLine, errors.Select(e => "  - " + e)))
{
    public IReadOnlyList<string> Errors { get; } = errors;
}
