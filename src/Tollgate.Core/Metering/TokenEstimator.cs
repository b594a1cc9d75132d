using System.Buffers;
using System.Text;
using System.Text.Json;

namespace Tollgate.Metering;

/// <summary>
/// Counts tokens with tiktoken's <c>o200k_base</c> (its vocabulary ships in a NuGet data package, nothing
/// downloaded) when a provider reports no usage: some OpenAI-compatible servers, Ollama streams, or a
/// stream the client cut; and to reserve a request's input against a tenant's limits. The result is marked
/// <see cref="UsageSource.Estimated"/>. Other providers' tokenizers differ; o200k is a close, consistent
/// yardstick, and the record says it is an estimate. The counting is <see cref="O200kTokenCounter"/>'s, a
/// count-only encoder that keeps 4.3 MB where a general tokenizer keeps ~42 MB.
/// </summary>
public static class TokenEstimator
{
    // OpenAI's documented chat framing: about 3 tokens per message plus 3 to prime the reply.
    private const int TokensPerMessage = 3;
    private const int ReplyPriming = 3;

    // Strings up to this many chars are decoded on the stack; longer ones into a buffer from the shared pool.
    private const int StackChars = 256;

    /// <summary>
    /// Loads the vocabulary now (decompressing it takes tens of milliseconds) so that no request pays for it.
    /// Without this the first request to count tokens would load it on whatever thread it runs on: with inline
    /// I/O, the socket thread every other connection is waiting on.
    /// </summary>
    public static void LoadVocabulary() => _ = O200kTokenCounter.Shared;

    public static int Count(string text) => text.Length == 0 ? 0 : O200kTokenCounter.Shared.Count(text);

    /// <summary>Tokens of UTF-8 text; invalid bytes count as U+FFFD, as they would after <see cref="Encoding.GetString(byte[])"/>.</summary>
    public static int CountUtf8(ReadOnlySpan<byte> utf8)
    {
        if (utf8.IsEmpty)
        {
            return 0;
        }

        var maxChars = Encoding.UTF8.GetMaxCharCount(utf8.Length);
        char[]? rented = null;
        var chars = maxChars <= StackChars ? stackalloc char[StackChars] : (rented = ArrayPool<char>.Shared.Rent(maxChars));
        try
        {
            return O200kTokenCounter.Shared.Count(chars[..Encoding.UTF8.GetChars(utf8, chars)]);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<char>.Shared.Return(rented);
            }
        }
    }

    /// <summary>Input tokens of an OpenAI chat or embeddings request body: every string in messages / input, tools, plus framing.</summary>
    public static long CountRequest(ReadOnlySpan<byte> body)
    {
        var reader = new Utf8JsonReader(body);
        long tokens = 0;
        var messages = 0;
        Span<char> stackChars = stackalloc char[StackChars];
        char[]? rentedChars = null;
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
                    tokens += CountString(ref reader, stackChars, ref rentedChars);
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
                        tokens += CountString(ref reader, stackChars, ref rentedChars);
                    }
                }
            }
        }
        catch (JsonException)
        {
            // The body was validated on the way in; a partial count is still the best estimate.
        }
        finally
        {
            if (rentedChars is not null)
            {
                ArrayPool<char>.Shared.Return(rentedChars);
            }
        }

        return tokens + (messages * TokensPerMessage) + (messages > 0 ? ReplyPriming : 0);
    }

    /// <summary>
    /// Counts the current JSON string, unescaped into <paramref name="stackChars"/> or, when longer, a pooled
    /// buffer kept for the rest of the body (no string per value, as <c>GetString</c> would make).
    /// </summary>
    private static int CountString(ref Utf8JsonReader reader, scoped Span<char> stackChars, ref char[]? rentedChars)
    {
        // Unescaping never makes a value longer: at most one char per byte of its JSON form.
        var maxChars = reader.HasValueSequence ? checked((int)reader.ValueSequence.Length) : reader.ValueSpan.Length;
        var chars = stackChars;
        if (maxChars > stackChars.Length)
        {
            if (rentedChars is null || rentedChars.Length < maxChars)
            {
                if (rentedChars is not null)
                {
                    ArrayPool<char>.Shared.Return(rentedChars);
                }

                rentedChars = ArrayPool<char>.Shared.Rent(maxChars);
            }

            chars = rentedChars;
        }

        int length;
        try
        {
            length = reader.CopyString(chars);
        }
        catch (InvalidOperationException)
        {
            // Valid JSON whose escapes make no valid UTF-16 (a lone "\ud800"): count the value as written.
            return reader.HasValueSequence ? CountUtf8(reader.ValueSequence.ToArray()) : CountUtf8(reader.ValueSpan);
        }

        return O200kTokenCounter.Shared.Count(chars[..length]);
    }

    /// <summary>An estimated usage record: the request's input and the relayed output text.</summary>
    public static MeteredUsage Estimate(ReadOnlySpan<byte> requestBody, ReadOnlySpan<byte> outputText) =>
        new(new UsageBuckets(CountRequest(requestBody), 0, 0, 0, CountUtf8(outputText), 0), UsageSource.Estimated);
}
