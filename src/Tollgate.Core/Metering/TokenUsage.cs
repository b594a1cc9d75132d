namespace Tollgate.Metering;

/// <summary>
/// Token counts of one response in OpenAI's inclusion rules: <see cref="PromptTokens"/> includes
/// <see cref="CachedTokens"/>, <see cref="CompletionTokens"/> includes <see cref="ReasoningTokens"/>.
/// </summary>
public readonly record struct TokenUsage(long PromptTokens, long CompletionTokens, long CachedTokens, long ReasoningTokens)
{
    public long TotalTokens => PromptTokens + CompletionTokens;
}

/// <summary>Usage and where it came from.</summary>
/// <param name="Usage">The counts.</param>
/// <param name="Estimated">True when the provider reported nothing and the gateway estimated.</param>
public readonly record struct MeteredUsage(TokenUsage Usage, bool Estimated);
