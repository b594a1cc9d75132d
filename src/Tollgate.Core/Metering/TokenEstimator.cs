using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace Tollgate.Metering;

/// <summary>
/// Counts tokens with a real tokenizer (tiktoken <c>o200k_base</c>, shipped in a NuGet data package, nothing
/// downloaded) when a provider reports no usage: some OpenAI-compatible servers, Ollama streams, or a
/// stream the client cut. The result is marked <see cref="UsageSource.Estimated"/>. Other providers'
/// tokenizers differ; o200k is a close, consistent yardstick, and the record says it is an estimate.
/// </summary>
public static class TokenEstimator
{
    // OpenAI's documented chat framing: about 3 tokens per message plus 3 to prime the reply.
    private const int TokensPerMessage = 3;
    private const int ReplyPriming = 3;

    private static readonly Lazy<Tokenizer> Tokenizer = new(() => TiktokenTokenizer.CreateForModel("gpt-4o"));

    public static int Count(string text) => text.Length == 0 ? 0 : Tokenizer.Value.CountTokens(text);

    public static int CountUtf8(ReadOnlySpan<byte> utf8) => utf8.IsEmpty ? 0 : Count(Encoding.UTF8.GetString(utf8));

    /// <summary>Input tokens of an OpenAI chat or embeddings request body: every string in messages / input, tools, plus framing.</summary>
    public static long CountRequest(ReadOnlySpan<byte> body)
    {
        var reader = new Utf8JsonReader(body);
        long tokens = 0;
        var messages = 0;
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return 0;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var counted = reader.ValueTextEquals("messages"u8) || reader.ValueTextEquals("input"u8) || reader.ValueTextEquals("tools"u8);
                var isMessages = reader.ValueTextEquals("messages"u8);
                reader.Read();
                if (!counted)
                {
                    reader.Skip();
                    continue;
                }

                if (reader.TokenType == JsonTokenType.String)
                {
                    tokens += Count(reader.GetString()!);
                    continue;
                }

                var depth = reader.CurrentDepth;
                while (reader.Read() && reader.CurrentDepth > depth)
                {
                    if (isMessages && reader.TokenType == JsonTokenType.StartObject && reader.CurrentDepth == depth + 1)
                    {
                        messages++;
                    }
                    else if (reader.TokenType == JsonTokenType.String)
                    {
                        tokens += Count(reader.GetString()!);
                    }
                }
            }
        }
        catch (JsonException)
        {
            // The body was validated on the way in; a partial count is still the best estimate.
        }

        return tokens + (messages * TokensPerMessage) + (messages > 0 ? ReplyPriming : 0);
    }

    /// <summary>An estimated usage record: the request's input and the relayed output text.</summary>
    public static MeteredUsage Estimate(ReadOnlySpan<byte> requestBody, ReadOnlySpan<byte> outputText) =>
        new(new UsageBuckets(CountRequest(requestBody), 0, 0, 0, CountUtf8(outputText), 0), UsageSource.Estimated);
}
