using System.Collections;

namespace Tollgate.Configuration;

/// <summary>
/// Where provider API keys come from: the process environment first, then a <c>.env</c> file.
/// Tests build one from a dictionary so they never touch process-wide state.
/// </summary>
public sealed class SecretSource
{
    private readonly Dictionary<string, string> _values;

    public SecretSource(IReadOnlyDictionary<string, string> values)
    {
        _values = new Dictionary<string, string>(values, StringComparer.Ordinal);
    }

    /// <summary>Environment variables, with <c>.env</c> entries filling only names the environment lacks.</summary>
    public static SecretSource FromEnvironment(IReadOnlyDictionary<string, string> dotEnv)
    {
        var values = new Dictionary<string, string>(dotEnv, StringComparer.Ordinal);
        foreach (DictionaryEntry entry in Environment.GetEnvironmentVariables())
        {
            if (entry.Key is string key && entry.Value is string value)
            {
                values[key] = value;
            }
        }

        return new SecretSource(values);
    }

    public string? Get(string? name) =>
        name is not null && _values.TryGetValue(name, out var value) && !string.IsNullOrWhiteSpace(value) ? value : null;
}
