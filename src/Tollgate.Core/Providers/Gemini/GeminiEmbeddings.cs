using System.Buffers;
using System.Buffers.Binary;
using System.Text.Json;
using Tollgate.Metering;
using Tollgate.Requests;

namespace Tollgate.Providers.Gemini;

/// <summary>What the embeddings request asked for, needed again to read the answer.</summary>
/// <param name="Batch">An array input, sent to <c>batchEmbedContents</c> (else one string to <c>embedContent</c>).</param>
/// <param name="Count">How many vectors must come back.</param>
/// <param name="Base64"><c>encoding_format: base64</c>: vectors as base64 of little-endian float32, the OpenAI way.</param>
internal readonly record struct EmbeddingShape(bool Batch, int Count, bool Base64)
{
    public string Method => Batch ? "batchEmbedContents" : "embedContent";
}

/// <summary>
/// OpenAI <c>/v1/embeddings</c> ↔ Gemini <c>embedContent</c> (one string) and <c>batchEmbedContents</c> (an
/// array of strings). <c>dimensions</c> → <c>outputDimensionality</c>. Token-array inputs have no Gemini form.
/// Gemini reports no token count for embeddings, so usage is estimated with the gateway's tokenizer (and
/// marked so), unless a <c>usageMetadata.promptTokenCount</c> does come back.
/// </summary>
internal static class GeminiEmbeddings
{
    /// <summary>Writes the Gemini request; returns an error message for a 400, or null.</summary>
    public static string? WriteRequest(ReadOnlyMemory<byte> openAiBody, string upstreamModel, IBufferWriter<byte> output, out EmbeddingShape shape)
    {
        shape = default;
        using var document = JsonDocument.Parse(openAiBody);
        var root = document.RootElement;
        var input = root.TryGetProperty("input"u8, out var i) ? i : default;
        var dimensions = root.TryGetProperty("dimensions"u8, out var d) && d.ValueKind == JsonValueKind.Number ? d : default;
        var base64 = root.TryGetProperty("encoding_format"u8, out var f) && f.ValueKind == JsonValueKind.String && f.ValueEquals("base64"u8);
        var model = GeminiJson.ModelResource(upstreamModel);

        if (input.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in input.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.String)
                {
                    return "This provider embeds text only: 'input' must be a string or an array of strings, not token arrays.";
                }
            }
        }
        else if (input.ValueKind != JsonValueKind.String)
        {
            return "'input' must be a string or an array of strings.";
        }

        using var writer = new Utf8JsonWriter(output, GeminiJson.WriterOptions);
        if (input.ValueKind == JsonValueKind.String)
        {
            shape = new EmbeddingShape(Batch: false, Count: 1, base64);
            WriteEmbedRequest(writer, model, input, dimensions);
            return null;
        }

        shape = new EmbeddingShape(Batch: true, Count: input.GetArrayLength(), base64);
        writer.WriteStartObject();
        writer.WriteStartArray("requests"u8);
        foreach (var item in input.EnumerateArray())
        {
            WriteEmbedRequest(writer, model, item, dimensions);
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
        return null;
    }

    /// <summary>
    /// Gemini's answer → OpenAI's list of embeddings. A body that is not JSON, carries an error, or holds the wrong
    /// number of vectors is an invalid response (another candidate may be tried).
    /// </summary>
    public static AttemptResult ReadResponse(ParsedRequest request, int status, byte[] body, EmbeddingShape shape, string upstreamModel)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            var vectors = new List<JsonElement>(shape.Count);
            if (root.ValueKind == JsonValueKind.Object && !root.TryGetProperty("error"u8, out _))
            {
                if (!shape.Batch && root.TryGetProperty("embedding"u8, out var single))
                {
                    vectors.Add(single);
                }
                else if (shape.Batch && root.TryGetProperty("embeddings"u8, out var many) && many.ValueKind == JsonValueKind.Array)
                {
                    vectors.AddRange(many.EnumerateArray());
                }
            }

            if (vectors.Count != shape.Count || !vectors.TrueForAll(static v => v.ValueKind == JsonValueKind.Object
                && v.TryGetProperty("values"u8, out var values) && values.ValueKind == JsonValueKind.Array))
            {
                return AttemptResult.Fail(new(FailureKind.InvalidResponse, status, "The provider returned an embeddings response without the expected vectors."));
            }

            var usage = ReportedUsage(root) ?? new MeteredUsage(new UsageBuckets(TokenEstimator.CountRequest(request.Body.Span), 0, 0, 0, 0, 0), UsageSource.Estimated);
            return AttemptResult.Ok(new BufferedResponse(status, WriteList(vectors, shape.Base64, upstreamModel, usage.Buckets), usage));
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            // Not JSON, or a vector value that is not a number.
            return AttemptResult.Fail(new(FailureKind.InvalidResponse, status, "The provider returned an embeddings response that is not valid."));
        }
    }

    private static void WriteEmbedRequest(Utf8JsonWriter writer, string model, JsonElement text, JsonElement dimensions)
    {
        writer.WriteStartObject();
        writer.WriteString("model"u8, model);
        writer.WriteStartObject("content"u8);
        writer.WriteStartArray("parts"u8);
        writer.WriteStartObject();
        writer.WriteString("text"u8, text.GetString());
        writer.WriteEndObject();
        writer.WriteEndArray();
        writer.WriteEndObject();
        if (dimensions.ValueKind == JsonValueKind.Number)
        {
            writer.WritePropertyName("outputDimensionality"u8);
            dimensions.WriteTo(writer);
        }

        writer.WriteEndObject();
    }

    private static MeteredUsage? ReportedUsage(JsonElement root) =>
        root.TryGetProperty("usageMetadata"u8, out var usage) && usage.ValueKind == JsonValueKind.Object
            && usage.TryGetProperty("promptTokenCount"u8, out var prompt) && prompt.TryGetInt64(out var tokens) && tokens >= 0
            ? new MeteredUsage(new UsageBuckets(tokens, 0, 0, 0, 0, 0), UsageSource.Reported)
            : null;

    private static byte[] WriteList(List<JsonElement> vectors, bool base64, string model, UsageBuckets usage)
    {
        var buffer = new ArrayBufferWriter<byte>(4096);
        using (var writer = new Utf8JsonWriter(buffer, GeminiJson.WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("object"u8, "list"u8);
            writer.WriteStartArray("data"u8);
            for (var index = 0; index < vectors.Count; index++)
            {
                var values = vectors[index].GetProperty("values"u8);
                writer.WriteStartObject();
                writer.WriteString("object"u8, "embedding"u8);
                writer.WriteNumber("index"u8, index);
                writer.WritePropertyName("embedding"u8);
                if (base64)
                {
                    WriteBase64(writer, values);
                }
                else
                {
                    writer.WriteStartArray();
                    foreach (var value in values.EnumerateArray())
                    {
                        // Copied as the provider wrote it: no float round trip.
                        if (value.ValueKind != JsonValueKind.Number)
                        {
                            throw new FormatException("An embedding value is not a number.");
                        }

                        value.WriteTo(writer);
                    }

                    writer.WriteEndArray();
                }

                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteString("model"u8, model);
            OpenAIUsageWriter.WriteEmbedding(writer, usage);
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>OpenAI's base64 form: the float32 values, little-endian, base64-encoded.</summary>
    private static void WriteBase64(Utf8JsonWriter writer, JsonElement values)
    {
        var count = values.GetArrayLength();
        var bytes = ArrayPool<byte>.Shared.Rent(count * sizeof(float));
        try
        {
            var offset = 0;
            foreach (var value in values.EnumerateArray())
            {
                BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(offset), value.GetSingle());
                offset += sizeof(float);
            }

            writer.WriteBase64StringValue(bytes.AsSpan(0, offset));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bytes);
        }
    }
}
