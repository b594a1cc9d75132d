using System.Text.Json;
using Tollgate.Metering;

namespace Tollgate.Providers.Anthropic;

/// <summary>
/// An Anthropic <c>usage</c> object as sent. Every count is nullable so two partial reports (a stream's
/// <c>message_start</c> and <c>message_delta</c>) can be combined field by field without double counting.
/// </summary>
/// <remarks>
/// Anthropic's counts are already disjoint: <c>input_tokens</c> excludes both cache reads and cache writes,
/// so each maps to one bucket with no subtraction. <c>output_tokens</c> includes extended-thinking tokens,
/// which Anthropic does not report separately: they are billed at the output rate and land in
/// <see cref="UsageBuckets.OutputText"/> (<see cref="UsageBuckets.OutputReasoning"/> stays 0).
/// </remarks>
internal readonly record struct AnthropicUsage(
    long? InputTokens,
    long? CacheReadInputTokens,
    long? CacheCreationInputTokens,
    long? Ephemeral5mInputTokens,
    long? Ephemeral1hInputTokens,
    long? OutputTokens)
{
    /// <summary>Reads a <c>usage</c> object; absent, null or negative counts stay null.</summary>
    public static AnthropicUsage Read(JsonElement usage)
    {
        if (usage.ValueKind != JsonValueKind.Object)
        {
            return default;
        }

        long? ephemeral5m = null, ephemeral1h = null;
        if (usage.TryGetProperty("cache_creation"u8, out var creation) && creation.ValueKind == JsonValueKind.Object)
        {
            ephemeral5m = Count(creation, "ephemeral_5m_input_tokens"u8);
            ephemeral1h = Count(creation, "ephemeral_1h_input_tokens"u8);
        }

        return new AnthropicUsage(
            Count(usage, "input_tokens"u8),
            Count(usage, "cache_read_input_tokens"u8),
            Count(usage, "cache_creation_input_tokens"u8),
            ephemeral5m,
            ephemeral1h,
            Count(usage, "output_tokens"u8));
    }

    /// <summary>
    /// Combines a stream's two reports. <c>message_delta</c> counts are cumulative totals (not increments),
    /// so a field it carries replaces the <c>message_start</c> value; fields it omits keep the earlier value.
    /// </summary>
    public AnthropicUsage UpdatedBy(AnthropicUsage later) => new(
        later.InputTokens ?? InputTokens,
        later.CacheReadInputTokens ?? CacheReadInputTokens,
        later.CacheCreationInputTokens ?? CacheCreationInputTokens,
        later.Ephemeral5mInputTokens ?? Ephemeral5mInputTokens,
        later.Ephemeral1hInputTokens ?? Ephemeral1hInputTokens,
        later.OutputTokens ?? OutputTokens);

    /// <summary>
    /// The disjoint buckets. Cache writes use the <c>cache_creation</c> TTL breakdown when present; a total
    /// with no breakdown is all 5-minute (Anthropic's default TTL); a total larger than its breakdown puts the
    /// remainder in 5-minute too, so no written token is ever dropped.
    /// </summary>
    public UsageBuckets ToBuckets()
    {
        var write1h = Ephemeral1hInputTokens ?? 0;
        var write5m = Ephemeral5mInputTokens ?? 0;
        if (CacheCreationInputTokens is { } total && total > write5m + write1h)
        {
            write5m = total - write1h;
        }

        return new UsageBuckets(InputTokens ?? 0, CacheReadInputTokens ?? 0, write5m, write1h, OutputTokens ?? 0, 0);
    }

    private static long? Count(JsonElement parent, ReadOnlySpan<byte> name) =>
        parent.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var count) && count >= 0
            ? count
            : null;
}

/// <summary>Writes usage in OpenAI's shape, derived from the buckets so what the client sees always matches what is billed.</summary>
internal static class OpenAIUsageWriter
{
    public static void Write(Utf8JsonWriter writer, UsageBuckets buckets)
    {
        var usage = buckets.ToOpenAI();
        writer.WriteStartObject("usage"u8);
        writer.WriteNumber("prompt_tokens"u8, usage.PromptTokens);
        writer.WriteNumber("completion_tokens"u8, usage.CompletionTokens);
        writer.WriteNumber("total_tokens"u8, usage.TotalTokens);
        writer.WriteStartObject("prompt_tokens_details"u8);
        writer.WriteNumber("cached_tokens"u8, usage.CachedTokens);

        // CUSTOM: OpenRouter's field for prompt-cache writes, so a client (or another gateway) can see them;
        // prompt_tokens already includes them, as OpenRouter's dialect expects.
        var written = buckets.CacheWrite5m + buckets.CacheWrite1h;
        if (written > 0)
        {
            writer.WriteNumber("cache_write_tokens"u8, written);
        }

        writer.WriteEndObject();
        writer.WriteStartObject("completion_tokens_details"u8);
        writer.WriteNumber("reasoning_tokens"u8, usage.ReasoningTokens);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }
}
