using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace Tollgate.Tests.Fakes;

/// <summary>One embeddings input: the text (or token list) it stands for and what it costs.</summary>
/// <param name="Key">Text the vector is derived from (token arrays become "tokens:1,2,3").</param>
/// <param name="Tokens">Fake token count: whitespace-separated words (at least 1), or the token array's length.</param>
internal sealed record EmbeddingInput(string Key, int Tokens);

/// <summary>Deterministic fake embeddings: the same input always gives the same unit vector.</summary>
internal static class FakeEmbedding
{
    public const int DefaultDimensions = 8;

    /// <summary>
    /// Reads OpenAI's "input": a string, an array of strings, a token array, or an array of token arrays.
    /// Returns null when the shape is not one of those.
    /// </summary>
    public static List<EmbeddingInput>? ParseInputs(JsonNode? input)
    {
        switch (input)
        {
            case JsonValue value when value.TryGetValue(out string? text):
                return [FromText(text)];
            case JsonArray { Count: > 0 } array when array.All(IsToken):
                return [FromTokens(array)];
            case JsonArray { Count: > 0 } array:
                var inputs = new List<EmbeddingInput>(array.Count);
                foreach (var item in array)
                {
                    if (item is JsonValue itemValue && itemValue.TryGetValue(out string? itemText))
                    {
                        inputs.Add(FromText(itemText));
                    }
                    else if (item is JsonArray { Count: > 0 } tokens && tokens.All(IsToken))
                    {
                        inputs.Add(FromTokens(tokens));
                    }
                    else
                    {
                        return null;
                    }
                }

                return inputs;
            default:
                return null;
        }
    }

    public static float[] Vector(string key, int dimensions)
    {
        // FNV-1a seeds an xorshift generator: cheap, stable across runs and platforms (unlike string.GetHashCode).
        var state = 14695981039346656037UL;
        foreach (var b in Encoding.UTF8.GetBytes(key))
        {
            state = (state ^ b) * 1099511628211UL;
        }

        state |= 1;
        var vector = new float[dimensions];
        var sumOfSquares = 0d;
        for (var i = 0; i < dimensions; i++)
        {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            var component = ((state >> 11) * (1d / (1UL << 53) * 2)) - 1;
            vector[i] = (float)component;
            sumOfSquares += component * component;
        }

        var norm = Math.Sqrt(sumOfSquares);
        for (var i = 0; i < dimensions && norm > 0; i++)
        {
            vector[i] = (float)(vector[i] / norm);
        }

        return vector;
    }

    private static bool IsToken(JsonNode? node) => node is JsonValue value && value.TryGetValue(out int _);

    private static EmbeddingInput FromText(string text) =>
        new(text, Math.Max(1, text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length));

    private static EmbeddingInput FromTokens(JsonArray tokens) =>
        new(
            "tokens:" + string.Join(',', tokens.Select(token => token!.GetValue<int>().ToString(CultureInfo.InvariantCulture))),
            tokens.Count);
}
