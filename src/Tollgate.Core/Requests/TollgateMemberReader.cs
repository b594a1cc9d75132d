using System.Text.Json;
using Tollgate.Routing;
using Tollgate.Routing.Classification;

namespace Tollgate.Requests;

/// <summary>
/// Reads the optional <c>tollgate</c> object of a chat request body: the gateway's own per-request routing
/// constraints, the body-side twin of the <c>x-tollgate-*</c> headers. The member is stripped before the body
/// goes upstream (<see cref="UpstreamBodyWriter"/>). Unknown fields are an error, so a typo is not silently ignored.
/// </summary>
internal static class TollgateMemberReader
{
    public const string Param = "tollgate";

    /// <summary>Reads the value at the reader (positioned on the property name) to its end.</summary>
    public static bool TryRead(ref Utf8JsonReader reader, out RequestConstraints constraints, out RequestError? error)
    {
        constraints = RequestConstraints.None;
        reader.Read();
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            error = new RequestError("'tollgate' must be an object of routing constraints.", Param, "invalid_type");
            return false;
        }

        var result = new RequestConstraints();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var name = reader.GetString()!;
            reader.Read();
            switch (name)
            {
                case "task" when reader.TokenType == JsonTokenType.String && TaskKinds.TryParse(reader.GetString(), out var task):
                    result = result with { Task = task };
                    break;
                case "task":
                    return Fail(out error, $"'tollgate.task' must be one of: {string.Join(", ", TaskKinds.All.Select(t => t.Name()))}.", "tollgate.task");
                case "max_latency_ms" when reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var ms) && ms > 0:
                    result = result with { MaxLatencyMs = ms };
                    break;
                case "max_latency_ms":
                    return Fail(out error, "'tollgate.max_latency_ms' must be a positive integer.", "tollgate.max_latency_ms");
                case "max_cost_usd" when reader.TokenType == JsonTokenType.Number && reader.TryGetDecimal(out var usd) && usd >= 0:
                    result = result with { MaxCostUsd = usd };
                    break;
                case "max_cost_usd":
                    return Fail(out error, "'tollgate.max_cost_usd' must be a non-negative number of US dollars.", "tollgate.max_cost_usd");
                case "min_tier" when reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var tier) && tier is >= 1 and <= 5:
                    result = result with { MinTier = tier };
                    break;
                case "min_tier":
                    return Fail(out error, "'tollgate.min_tier' must be an integer from 1 to 5.", "tollgate.min_tier");
                case "providers" or "exclude_providers":
                    if (!TryReadNames(ref reader, out var names))
                    {
                        return Fail(out error, $"'tollgate.{name}' must be an array of provider names.", "tollgate." + name);
                    }

                    result = name == "providers" ? result with { Providers = names } : result with { ExcludeProviders = names };
                    break;
                case "best_effort" when reader.TokenType is JsonTokenType.True or JsonTokenType.False:
                    result = result with { BestEffort = reader.GetBoolean() };
                    break;
                case "verify" when reader.TokenType is JsonTokenType.True or JsonTokenType.False:
                    result = result with { Verify = reader.GetBoolean() };
                    break;
                case "best_effort" or "verify":
                    return Fail(out error, $"'tollgate.{name}' must be true or false.", "tollgate." + name);
                default:
                    return Fail(out error,
                        $"Unknown field 'tollgate.{name}' (expected: task, max_latency_ms, max_cost_usd, min_tier, providers, exclude_providers, best_effort, verify).",
                        "tollgate." + name);
            }
        }

        constraints = result;
        error = null;
        return true;
    }

    private static bool TryReadNames(ref Utf8JsonReader reader, out string[] names)
    {
        names = [];
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            reader.Skip();
            return false;
        }

        var list = new List<string>(4);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.String || reader.GetString() is not { Length: > 0 } name)
            {
                reader.Skip();
                return false;
            }

            list.Add(name);
        }

        names = [.. list];
        return true;
    }

    private static bool Fail(out RequestError? error, string message, string param)
    {
        error = new RequestError(message, param, "invalid_value");
        return false;
    }
}
