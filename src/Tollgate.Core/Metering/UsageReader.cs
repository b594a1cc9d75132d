using System.Text.Json;

namespace Tollgate.Metering;

/// <summary>Reads an OpenAI <c>usage</c> object and the few top-level facts the relay needs from a response or chunk.</summary>
public static class UsageReader
{
    /// <summary>Facts about one OpenAI response body or stream chunk.</summary>
    /// <param name="ChoiceTextBytes">UTF-8 bytes of every string inside <c>choices</c>: the basis of an output estimate when usage is missing.</param>
    /// <param name="HasFinishReason">A choice carries a non-null <c>finish_reason</c>.</param>
    public readonly record struct ResponseFacts(
        bool IsObject, TokenUsage? Usage, bool HasChoices, bool ChoicesEmpty, bool HasData, bool HasError, int ChoiceTextBytes, bool HasFinishReason);

    /// <summary>Scans top-level properties; throws <see cref="JsonException"/> when the payload is not valid JSON.</summary>
    public static ResponseFacts Scan(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return default;
        }

        TokenUsage? usage = null;
        bool hasChoices = false, choicesEmpty = false, hasData = false, hasError = false, hasFinish = false;
        var textBytes = 0;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                usage = reader.TokenType == JsonTokenType.StartObject ? ReadUsage(ref reader) : null;
                reader.Skip();
            }
            else if (reader.ValueTextEquals("choices"u8))
            {
                reader.Read();
                hasChoices = reader.TokenType == JsonTokenType.StartArray;
                if (!hasChoices)
                {
                    reader.Skip();
                    continue;
                }

                var depth = reader.CurrentDepth;
                choicesEmpty = true;
                while (reader.Read() && !(reader.TokenType == JsonTokenType.EndArray && reader.CurrentDepth == depth))
                {
                    choicesEmpty = false;
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        textBytes += reader.ValueSpan.Length;
                    }
                    else if (reader.TokenType == JsonTokenType.PropertyName && reader.ValueTextEquals("finish_reason"u8))
                    {
                        reader.Read();
                        hasFinish |= reader.TokenType == JsonTokenType.String;
                    }
                }
            }
            else if (reader.ValueTextEquals("data"u8))
            {
                reader.Read();
                hasData = reader.TokenType == JsonTokenType.StartArray;
                reader.Skip();
            }
            else if (reader.ValueTextEquals("error"u8))
            {
                reader.Read();
                hasError = reader.TokenType != JsonTokenType.Null;
                reader.Skip();
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (reader.Read())
        {
            throw new JsonException("Unexpected data after the JSON object.");
        }

        return new ResponseFacts(true, usage, hasChoices, choicesEmpty, hasData, hasError, textBytes, hasFinish);
    }

    private static TokenUsage ReadUsage(ref Utf8JsonReader reader)
    {
        long prompt = 0, completion = 0, cached = 0, reasoning = 0;
        var depth = reader.CurrentDepth;
        while (reader.Read() && !(reader.TokenType == JsonTokenType.EndObject && reader.CurrentDepth == depth))
        {
            if (reader.TokenType != JsonTokenType.PropertyName)
            {
                continue;
            }

            var level = reader.CurrentDepth - depth;
            if (level == 1 && reader.ValueTextEquals("prompt_tokens"u8))
            {
                prompt = ReadCount(ref reader);
            }
            else if (level == 1 && reader.ValueTextEquals("completion_tokens"u8))
            {
                completion = ReadCount(ref reader);
            }
            else if (level == 2 && reader.ValueTextEquals("cached_tokens"u8))
            {
                cached = ReadCount(ref reader);
            }
            else if (level == 2 && reader.ValueTextEquals("reasoning_tokens"u8))
            {
                reasoning = ReadCount(ref reader);
            }
        }

        // The loop stopped on the usage object's EndObject; the caller's Skip() is then a no-op.
        return new TokenUsage(prompt, completion, cached, reasoning);
    }

    private static long ReadCount(ref Utf8JsonReader reader)
    {
        reader.Read();
        return reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) && value >= 0 ? value : 0;
    }
}
