using System.Text.Json;
using Tollgate.Metering;

namespace Tollgate.Providers.Gemini;

/// <summary>
/// Gemini's <c>usageMetadata</c> and its mapping to disjoint buckets. Gemini's inclusion rules differ from
/// OpenAI's: <c>promptTokenCount</c> includes <c>cachedContentTokenCount</c>, but <c>thoughtsTokenCount</c>
/// is outside <c>candidatesTokenCount</c>, and <c>toolUsePromptTokenCount</c> (the results of built-in tools
/// such as search, fed back to the model) is outside <c>promptTokenCount</c>. Its
/// <c>totalTokenCount</c> is the sum prompt + toolUsePrompt + candidates + thoughts.
/// </summary>
/// <param name="PromptTokens"><c>promptTokenCount</c>: the whole prompt, cached part included.</param>
/// <param name="CachedTokens"><c>cachedContentTokenCount</c>: the part of the prompt read from the context cache.</param>
/// <param name="CandidatesTokens"><c>candidatesTokenCount</c>: the visible answer (all candidates).</param>
/// <param name="ThoughtsTokens"><c>thoughtsTokenCount</c>: thinking, billed at the output rate.</param>
/// <param name="ToolUsePromptTokens"><c>toolUsePromptTokenCount</c>: billed as input.</param>
internal readonly record struct GeminiUsage(
    long PromptTokens,
    long CachedTokens,
    long CandidatesTokens,
    long ThoughtsTokens,
    long ToolUsePromptTokens)
{
    /// <summary>
    /// InputUncached = prompt − cached + toolUsePrompt; InputCached = cached; OutputText = candidates;
    /// OutputReasoning = thoughts. Nothing is in two buckets, so the cost is a plain sum.
    /// </summary>
    public UsageBuckets ToBuckets()
    {
        var cached = Math.Clamp(CachedTokens, 0, PromptTokens);
        return new UsageBuckets(PromptTokens - cached + ToolUsePromptTokens, cached, 0, 0, CandidatesTokens, ThoughtsTokens);
    }

    public MeteredUsage ToMetered() => new(ToBuckets(), UsageSource.Reported);

    /// <summary>Reads a <c>usageMetadata</c> object; absent or malformed counts are 0.</summary>
    public static GeminiUsage Read(JsonElement usage) => new(
        Count(usage, "promptTokenCount"u8),
        Count(usage, "cachedContentTokenCount"u8),
        Count(usage, "candidatesTokenCount"u8),
        Count(usage, "thoughtsTokenCount"u8),
        Count(usage, "toolUsePromptTokenCount"u8));

    private static long Count(JsonElement usage, ReadOnlySpan<byte> name) =>
        usage.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var count) && count >= 0
            ? count
            : 0;
}

/// <summary>Writes OpenAI's <c>usage</c> object from buckets, so what the client sees always matches what is billed.</summary>
internal static class OpenAIUsageWriter
{
    /// <summary>Writes <c>"usage": {prompt_tokens, completion_tokens, total_tokens, prompt_tokens_details, completion_tokens_details}</c>.</summary>
    public static void Write(Utf8JsonWriter writer, UsageBuckets buckets)
    {
        var usage = buckets.ToOpenAI();
        writer.WriteStartObject("usage"u8);
        writer.WriteNumber("prompt_tokens"u8, usage.PromptTokens);
        writer.WriteNumber("completion_tokens"u8, usage.CompletionTokens);
        writer.WriteNumber("total_tokens"u8, usage.TotalTokens);
        writer.WriteStartObject("prompt_tokens_details"u8);
        writer.WriteNumber("cached_tokens"u8, usage.CachedTokens);
        writer.WriteEndObject();
        writer.WriteStartObject("completion_tokens_details"u8);
        writer.WriteNumber("reasoning_tokens"u8, usage.ReasoningTokens);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    /// <summary>The embeddings shape: <c>"usage": {prompt_tokens, total_tokens}</c>.</summary>
    public static void WriteEmbedding(Utf8JsonWriter writer, UsageBuckets buckets)
    {
        writer.WriteStartObject("usage"u8);
        writer.WriteNumber("prompt_tokens"u8, buckets.InputTotal);
        writer.WriteNumber("total_tokens"u8, buckets.Total);
        writer.WriteEndObject();
    }
}
