namespace Tollgate.Metering;

/// <summary>
/// Token counts in OpenAI's shape and inclusion rules: <see cref="PromptTokens"/> includes
/// <see cref="CachedTokens"/>, <see cref="CompletionTokens"/> includes <see cref="ReasoningTokens"/>.
/// This is what clients see in <c>usage</c>; billing works on <see cref="UsageBuckets"/>.
/// </summary>
public readonly record struct TokenUsage(long PromptTokens, long CompletionTokens, long CachedTokens, long ReasoningTokens)
{
    public long TotalTokens => PromptTokens + CompletionTokens;
}

/// <summary>
/// One response's usage in disjoint buckets: no token is in two buckets, so cost is a plain sum of
/// bucket × rate with no subtraction step (the source of most double-count bugs in gateways).
/// </summary>
/// <param name="InputUncached">Input tokens read at the full input rate.</param>
/// <param name="InputCached">Input tokens served from the provider's prompt cache.</param>
/// <param name="CacheWrite5m">Input tokens written to a 5-minute cache (Anthropic's default TTL).</param>
/// <param name="CacheWrite1h">Input tokens written to a 1-hour cache.</param>
/// <param name="OutputText">Output tokens the client sees (text and tool calls).</param>
/// <param name="OutputReasoning">Output tokens spent on reasoning / thinking.</param>
public readonly record struct UsageBuckets(
    long InputUncached,
    long InputCached,
    long CacheWrite5m,
    long CacheWrite1h,
    long OutputText,
    long OutputReasoning)
{
    public long InputTotal => InputUncached + InputCached + CacheWrite5m + CacheWrite1h;

    public long OutputTotal => OutputText + OutputReasoning;

    public long Total => InputTotal + OutputTotal;

    /// <summary>The same usage in OpenAI's shape, as the client receives it.</summary>
    public TokenUsage ToOpenAI() => new(InputTotal, OutputTotal, InputCached, OutputReasoning);
}

/// <summary>Where a usage record came from.</summary>
public enum UsageSource
{
    /// <summary>The provider reported it.</summary>
    Reported,

    /// <summary>The provider reported nothing (or the stream was cut); counted by the gateway's tokenizer.</summary>
    Estimated,
}

/// <summary>A response's usage in the gateway's disjoint buckets, and whether the provider reported it.</summary>
/// <param name="Buckets">The disjoint buckets.</param>
/// <param name="Source">Reported or estimated.</param>
/// <param name="ProviderReportedCostUsd">A cost the provider itself reported (OpenRouter's <c>usage.cost</c>), or null.</param>
public sealed record MeteredUsage(UsageBuckets Buckets, UsageSource Source, decimal? ProviderReportedCostUsd = null)
{
    public bool Estimated => Source == UsageSource.Estimated;
}
