using System.Buffers;
using System.Text.Json;
using Tollgate.Metering;

namespace Tollgate.Providers.OpenAI;

/// <summary>
/// Reads, in one forward pass, what the relay needs from an OpenAI response body or stream chunk:
/// its shape, its <c>usage</c> (in every OpenAI-compatible dialect), the text inside <c>choices</c>
/// (for estimating when no usage comes) and whether a finish reason was given.
/// </summary>
public static class OpenAIResponseScanner
{
    /// <summary>Facts about one OpenAI response body or stream chunk.</summary>
    /// <param name="HasFinishReason">A choice carries a non-null <c>finish_reason</c>.</param>
    public readonly record struct ResponseFacts(
        bool IsObject, OpenAIWireUsage? Usage, bool HasChoices, bool ChoicesEmpty, bool HasData, bool HasError, bool HasFinishReason);

    /// <summary>Scans top-level properties; throws <see cref="JsonException"/> when the payload is not valid JSON.</summary>
    /// <param name="json">The payload.</param>
    /// <param name="choiceText">When given, receives the unescaped UTF-8 of the text inside <c>choices</c> (content, tool arguments).</param>
    public static ResponseFacts Scan(ReadOnlySpan<byte> json, IBufferWriter<byte>? choiceText = null)
    {
        var reader = new Utf8JsonReader(json);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return default;
        }

        OpenAIWireUsage? usage = null;
        bool hasChoices = false, choicesEmpty = false, hasData = false, hasError = false, hasFinish = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    usage = ReadUsage(ref reader);
                }
                else
                {
                    reader.Skip();
                }
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
                var isText = false;
                while (reader.Read() && !(reader.TokenType == JsonTokenType.EndArray && reader.CurrentDepth == depth))
                {
                    choicesEmpty = false;
                    if (reader.TokenType == JsonTokenType.PropertyName)
                    {
                        if (reader.ValueTextEquals("finish_reason"u8))
                        {
                            reader.Read();
                            hasFinish |= reader.TokenType == JsonTokenType.String;
                            continue;
                        }

                        // Only what the model generated counts as output: not roles, ids or types.
                        isText = reader.ValueTextEquals("content"u8) || reader.ValueTextEquals("arguments"u8)
                            || reader.ValueTextEquals("reasoning_content"u8) || reader.ValueTextEquals("refusal"u8) || reader.ValueTextEquals("text"u8);
                    }
                    else if (reader.TokenType == JsonTokenType.String && isText)
                    {
                        if (choiceText is not null)
                        {
                            CopyUnescaped(ref reader, choiceText);
                        }
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

        return new ResponseFacts(true, usage, hasChoices, choicesEmpty, hasData, hasError, hasFinish);
    }

    private static void CopyUnescaped(ref Utf8JsonReader reader, IBufferWriter<byte> target)
    {
        if (!reader.ValueIsEscaped)
        {
            target.Write(reader.ValueSpan);
            return;
        }

        var span = target.GetSpan(reader.ValueSpan.Length);
        var written = reader.CopyString(span);
        target.Advance(written);
    }

    private static OpenAIWireUsage ReadUsage(ref Utf8JsonReader reader)
    {
        var usage = default(OpenAIWireUsage);
        var depth = reader.CurrentDepth;
        while (reader.Read() && !(reader.TokenType == JsonTokenType.EndObject && reader.CurrentDepth == depth))
        {
            if (reader.TokenType != JsonTokenType.PropertyName)
            {
                continue;
            }

            if (reader.CurrentDepth - depth == 1)
            {
                if (reader.ValueTextEquals("prompt_tokens"u8))
                {
                    usage = usage with { PromptTokens = ReadCount(ref reader) };
                }
                else if (reader.ValueTextEquals("completion_tokens"u8))
                {
                    usage = usage with { CompletionTokens = ReadCount(ref reader) };
                }
                else if (reader.ValueTextEquals("prompt_cache_hit_tokens"u8))
                {
                    usage = usage with { CacheHitTokens = ReadCount(ref reader) };
                }
                else if (reader.ValueTextEquals("prompt_cache_miss_tokens"u8))
                {
                    usage = usage with { CacheMissTokens = ReadCount(ref reader) };
                }
                else if (reader.ValueTextEquals("cost"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Number && reader.TryGetDecimal(out var cost))
                    {
                        usage = usage with { Cost = cost };
                    }
                }
            }
            else if (reader.CurrentDepth - depth == 2)
            {
                if (reader.ValueTextEquals("cached_tokens"u8))
                {
                    usage = usage with { CachedTokens = ReadCount(ref reader) };
                }
                else if (reader.ValueTextEquals("cache_write_tokens"u8))
                {
                    usage = usage with { CacheWriteTokens = ReadCount(ref reader) };
                }
                else if (reader.ValueTextEquals("reasoning_tokens"u8))
                {
                    usage = usage with { ReasoningTokens = ReadCount(ref reader) };
                }
            }
        }

        return usage;
    }

    private static long ReadCount(ref Utf8JsonReader reader)
    {
        reader.Read();
        return reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) && value >= 0 ? value : 0;
    }
}

/// <summary>
/// An OpenAI-compatible <c>usage</c> object as sent, in any of the dialects Tollgate knows:
/// OpenAI (<c>prompt_tokens_details.cached_tokens</c>, <c>completion_tokens_details.reasoning_tokens</c>),
/// DeepSeek (<c>prompt_cache_hit_tokens</c> / <c>prompt_cache_miss_tokens</c>) and OpenRouter
/// (<c>prompt_tokens_details.cache_write_tokens</c>, <c>cost</c>).
/// </summary>
public readonly record struct OpenAIWireUsage(
    long PromptTokens,
    long CompletionTokens,
    long CachedTokens,
    long ReasoningTokens,
    long? CacheHitTokens = null,
    long? CacheMissTokens = null,
    long CacheWriteTokens = 0,
    decimal? Cost = null)
{
    /// <summary>
    /// Maps to disjoint buckets. OpenAI's <c>prompt_tokens</c> includes cached reads and (OpenRouter)
    /// cache writes, and <c>completion_tokens</c> includes reasoning; DeepSeek splits its prompt into
    /// hit + miss itself. See docs/accounting.md.
    /// </summary>
    public UsageBuckets ToBuckets()
    {
        var reasoning = Math.Clamp(ReasoningTokens, 0, CompletionTokens);
        var text = CompletionTokens - reasoning;
        if (CacheHitTokens is not null || CacheMissTokens is not null)
        {
            return new UsageBuckets(CacheMissTokens ?? 0, CacheHitTokens ?? 0, 0, 0, text, reasoning);
        }

        var cached = Math.Clamp(CachedTokens, 0, PromptTokens);
        var written = Math.Clamp(CacheWriteTokens, 0, PromptTokens - cached);
        return new UsageBuckets(PromptTokens - cached - written, cached, written, 0, text, reasoning);
    }

    public MeteredUsage ToMetered() => new(ToBuckets(), UsageSource.Reported, Cost);
}
