using System.Text.Json;
using System.Text.Json.Serialization;
using Tollgate.Configuration;

namespace Tollgate.Simulation;

/// <summary>How a simulated deployment behaves: its speed, how often it fails, and (optionally) its prices.</summary>
/// <param name="TtftMs">Typical time to the first token in milliseconds (≥ 0). A failed attempt takes about this long too.</param>
/// <param name="MsPerOutputToken">Typical generation time per output token after the first (≥ 0).</param>
/// <param name="Jitter">
/// Spread of both times: each is multiplied by e^(jitter·z) with z standard normal, so the typical value is the median
/// and 0.3 puts about two thirds of attempts within −26 %…+35 % of it. 0 to 2; default 0.3.
/// </param>
/// <param name="FailureRate">Share of attempts that fail with a 5xx (count against the breaker). 0 to 1.</param>
/// <param name="RateLimitRate">Share of attempts refused with a 429 (cooldown, no breaker). 0 to 1, with <paramref name="FailureRate"/> at most 1.</param>
internal sealed record ProviderProfile(double TtftMs, double MsPerOutputToken, double Jitter, double FailureRate, double RateLimitRate)
{
    public const double DefaultJitter = 0.3;

    /// <summary>Price overrides in USD per 1M tokens; null keeps the configuration's price.</summary>
    public decimal? InputPerMillion { get; init; }

    public decimal? CachedInputPerMillion { get; init; }

    public decimal? OutputPerMillion { get; init; }

    /// <summary>
    /// Built-in behaviour of the deployments of the built-in <c>auto</c> route: typical published or commonly measured
    /// figures (late 2025), rounded. Local Ollama answers at once but generates slowly on a workstation GPU; Groq is
    /// very fast; reasoning models think before their first token; failure rates are a few percent, as public
    /// status pages and gateway operators report for busy periods; Groq's free tier rate-limits.
    /// </summary>
    public static IReadOnlyDictionary<string, ProviderProfile> BuiltIn { get; } = new Dictionary<string, ProviderProfile>(StringComparer.OrdinalIgnoreCase)
    {
        ["ollama/llama3.2"] = new(250, 30, DefaultJitter, 0.01, 0),
        ["ollama/qwen2.5"] = new(300, 38, DefaultJitter, 0.01, 0),
        ["groq/llama-3.1-8b-instant"] = new(150, 2, DefaultJitter, 0.02, 0.02),
        ["openai/gpt-4.1-nano"] = new(350, 7, DefaultJitter, 0.01, 0),
        ["openai/gpt-4o-mini"] = new(450, 12, DefaultJitter, 0.01, 0),
        ["deepseek/deepseek-chat"] = new(900, 30, DefaultJitter, 0.03, 0),
        ["openai/gpt-4.1-mini"] = new(450, 11, DefaultJitter, 0.01, 0),
        ["gemini/gemini-2.5-flash"] = new(600, 5, DefaultJitter, 0.02, 0),
        ["anthropic/claude-haiku-4-5"] = new(500, 8, DefaultJitter, 0.02, 0),
        ["groq/llama-3.3-70b-versatile"] = new(200, 4, DefaultJitter, 0.02, 0.02),
        ["deepseek/deepseek-reasoner"] = new(3000, 35, DefaultJitter, 0.03, 0),
        ["gemini/gemini-2.5-pro"] = new(2500, 12, DefaultJitter, 0.02, 0),
        ["openai/gpt-4.1"] = new(700, 20, DefaultJitter, 0.01, 0),
        ["openai/gpt-4o"] = new(600, 18, DefaultJitter, 0.01, 0),
        ["anthropic/claude-sonnet-4-5"] = new(1200, 16, DefaultJitter, 0.02, 0),
    };

    /// <summary>For deployments the built-in table does not name: bigger tiers are slower.</summary>
    public static ProviderProfile ForTier(int tier) => tier switch
    {
        <= 1 => new(400, 10, DefaultJitter, 0.02, 0),
        2 => new(600, 15, DefaultJitter, 0.02, 0),
        _ => new(1200, 20, DefaultJitter, 0.02, 0),
    };

    /// <summary>This profile with the fields <paramref name="change"/> sets.</summary>
    public ProviderProfile With(ProviderProfileOverride change) => new(
        change.TtftMs ?? TtftMs,
        change.MsPerOutputToken ?? MsPerOutputToken,
        change.Jitter ?? Jitter,
        change.FailureRate ?? FailureRate,
        change.RateLimitRate ?? RateLimitRate)
    {
        InputPerMillion = change.InputPerMillion ?? InputPerMillion,
        CachedInputPerMillion = change.CachedInputPerMillion ?? CachedInputPerMillion,
        OutputPerMillion = change.OutputPerMillion ?? OutputPerMillion,
    };

    /// <summary>What is wrong with the profile, or null.</summary>
    public string? Problem() =>
        TtftMs < 0 || MsPerOutputToken < 0 ? "ttftMs and msPerOutputToken must not be negative"
        : Jitter is < 0 or > 2 ? "jitter must be from 0 to 2"
        : FailureRate is < 0 or > 1 || RateLimitRate is < 0 or > 1 || FailureRate + RateLimitRate > 1 ? "failureRate and rateLimitRate must be from 0 to 1 and add up to at most 1"
        : InputPerMillion < 0 || CachedInputPerMillion < 0 || OutputPerMillion < 0 ? "prices must not be negative"
        : null;
}

/// <summary>One entry of a <c>--providers</c> file: the fields it names replace the built-in profile's, field by field.</summary>
internal sealed record ProviderProfileOverride
{
    public double? TtftMs { get; init; }

    public double? MsPerOutputToken { get; init; }

    public double? Jitter { get; init; }

    public double? FailureRate { get; init; }

    public double? RateLimitRate { get; init; }

    public decimal? InputPerMillion { get; init; }

    public decimal? CachedInputPerMillion { get; init; }

    public decimal? OutputPerMillion { get; init; }
}

/// <summary>The profiles of every deployment of a configuration, and the configuration with the profiles' price overrides.</summary>
internal static class ProviderProfiles
{
    /// <summary>
    /// Resolves a profile for every deployment: the built-in one (or the tier default), with the file's fields over it.
    /// Throws <see cref="SimulationException"/> when the file names an unknown deployment or sets an invalid value.
    /// </summary>
    public static Dictionary<string, ProviderProfile> Resolve(TollgateOptions options, IReadOnlyDictionary<string, ProviderProfileOverride>? overrides)
    {
        var profiles = new Dictionary<string, ProviderProfile>(StringComparer.OrdinalIgnoreCase);
        foreach (var (id, model) in options.Models)
        {
            profiles[id] = ProviderProfile.BuiltIn.TryGetValue(id, out var builtIn) ? builtIn : ProviderProfile.ForTier(model.Tier);
        }

        foreach (var (id, change) in overrides ?? new Dictionary<string, ProviderProfileOverride>())
        {
            if (!profiles.TryGetValue(id, out var profile))
            {
                throw new SimulationException($"The providers file names '{id}', which is not a deployment of the configuration ('tollgate config check' lists them).");
            }

            profiles[id] = profile.With(change ?? new ProviderProfileOverride());
            if (profiles[id].Problem() is { } problem)
            {
                throw new SimulationException($"The providers file's entry '{id}' is invalid: {problem}.");
            }
        }

        return profiles;
    }

    /// <summary>The configuration with every price a profile overrides replaced.</summary>
    public static TollgateOptions WithPrices(TollgateOptions options, IReadOnlyDictionary<string, ProviderProfile> profiles)
    {
        var models = new Dictionary<string, DeploymentOptions>(options.Models, StringComparer.OrdinalIgnoreCase);
        foreach (var (id, model) in options.Models)
        {
            if (profiles.TryGetValue(id, out var p) && (p.InputPerMillion ?? p.CachedInputPerMillion ?? p.OutputPerMillion) is not null)
            {
                models[id] = model with
                {
                    InputPerMillion = p.InputPerMillion ?? model.InputPerMillion,
                    CachedInputPerMillion = p.CachedInputPerMillion ?? model.CachedInputPerMillion,
                    OutputPerMillion = p.OutputPerMillion ?? model.OutputPerMillion,
                };
            }
        }

        return options with { Models = models };
    }

    /// <summary>Reads a <c>--providers</c> file: a JSON object of deployment ids to profile fields (camelCase, comments allowed).</summary>
    public static Dictionary<string, ProviderProfileOverride> Read(string json)
    {
        try
        {
            return JsonSerializer.Deserialize(json, ProfileJsonContext.Default.DictionaryStringProviderProfileOverride)
                ?? throw new SimulationException("The providers file must be a JSON object of deployment ids to profiles.");
        }
        catch (JsonException ex)
        {
            throw new SimulationException($"The providers file is not valid: {ex.Message}");
        }
    }
}

/// <summary>camelCase like <c>tollgate.json</c>; unknown fields are errors so a typo is not silently ignored.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    ReadCommentHandling = JsonCommentHandling.Skip,
    AllowTrailingCommas = true,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(Dictionary<string, ProviderProfileOverride>))]
internal sealed partial class ProfileJsonContext : JsonSerializerContext;

/// <summary>A simulation input (workload, providers file, route) that cannot be used; the message says which and why.</summary>
public sealed class SimulationException(string message) : Exception(message);
