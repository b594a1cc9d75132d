using System.Buffers;
using System.Text;
using System.Text.Json;

namespace Tollgate.Providers.Gemini;

/// <summary>One function call a candidate asked for. Gemini sends whole calls, never fragments.</summary>
/// <param name="Name">The function name.</param>
/// <param name="ArgumentsJson">The <c>args</c> object as JSON text (<c>{}</c> when absent), what OpenAI calls <c>arguments</c>.</param>
internal readonly record struct GeminiFunctionCall(string Name, string ArgumentsJson);

/// <summary>What one candidate of a <c>GenerateContentResponse</c> (or one stream chunk of it) says.</summary>
internal sealed class GeminiCandidate(int index)
{
    /// <summary>The candidate's <c>index</c> (Gemini omits it when 0), which becomes the OpenAI choice index.</summary>
    public int Index { get; } = index;

    /// <summary>The visible text parts, concatenated. Parts marked <c>thought: true</c> are left out.</summary>
    public string Text { get; set; } = string.Empty;

    public List<GeminiFunctionCall> Calls { get; } = [];

    /// <summary><c>finishReason</c> (STOP, MAX_TOKENS, SAFETY...), or null while a stream is still going.</summary>
    public string? FinishReason { get; set; }
}

/// <summary>The <c>{"error": {code, message, status}}</c> object Gemini sends for failures, also inside a stream.</summary>
internal sealed record GeminiError(int? Code, string? Message, string? Status);

/// <summary>The parts of a <c>GenerateContentResponse</c> the translation needs.</summary>
internal sealed class GeminiResponse
{
    public string? ResponseId { get; set; }

    public string? ModelVersion { get; set; }

    public List<GeminiCandidate> Candidates { get; } = [];

    /// <summary><c>promptFeedback.blockReason</c>: the prompt itself was refused and there are no candidates.</summary>
    public string? BlockReason { get; set; }

    public GeminiUsage? Usage { get; set; }

    public GeminiError? Error { get; set; }

    /// <summary>The generated text (content and call arguments) as UTF-8, for estimating usage when none is reported.</summary>
    public void AppendOutputText(IBufferWriter<byte> target)
    {
        foreach (var candidate in Candidates)
        {
            Encoding.UTF8.GetBytes(candidate.Text, target);
            foreach (var call in candidate.Calls)
            {
                Encoding.UTF8.GetBytes(call.ArgumentsJson, target);
            }
        }
    }
}

/// <summary>
/// Parses a Gemini <c>GenerateContentResponse</c> (a whole body, or one SSE event of a stream: the same
/// shape). Throws <see cref="JsonException"/> when the payload is not a JSON object.
/// </summary>
internal static class GeminiResponseReader
{
    public static GeminiResponse Read(ReadOnlyMemory<byte> json)
    {
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new JsonException("The response is not a JSON object.");
        }

        var response = new GeminiResponse
        {
            ResponseId = StringOf(root, "responseId"u8),
            ModelVersion = StringOf(root, "modelVersion"u8),
        };

        if (root.TryGetProperty("error"u8, out var error) && error.ValueKind != JsonValueKind.Null)
        {
            response.Error = ReadError(error);
        }

        if (root.TryGetProperty("candidates"u8, out var candidates) && candidates.ValueKind == JsonValueKind.Array)
        {
            var position = 0;
            foreach (var candidate in candidates.EnumerateArray())
            {
                if (candidate.ValueKind == JsonValueKind.Object)
                {
                    response.Candidates.Add(ReadCandidate(candidate, position));
                }

                position++;
            }
        }

        if (root.TryGetProperty("promptFeedback"u8, out var feedback) && feedback.ValueKind == JsonValueKind.Object)
        {
            response.BlockReason = StringOf(feedback, "blockReason"u8);
        }

        if (root.TryGetProperty("usageMetadata"u8, out var usage) && usage.ValueKind == JsonValueKind.Object)
        {
            response.Usage = GeminiUsage.Read(usage);
        }

        return response;
    }

    /// <summary>Reads an <c>error</c> value: Google's object, or a bare string from a proxy in between.</summary>
    public static GeminiError ReadError(JsonElement error)
    {
        if (error.ValueKind == JsonValueKind.String)
        {
            return new GeminiError(null, error.GetString(), null);
        }

        if (error.ValueKind != JsonValueKind.Object)
        {
            return new GeminiError(null, null, null);
        }

        int? code = error.TryGetProperty("code"u8, out var c) && c.ValueKind == JsonValueKind.Number && c.TryGetInt32(out var n) ? n : null;
        return new GeminiError(code, StringOf(error, "message"u8), StringOf(error, "status"u8));
    }

    private static GeminiCandidate ReadCandidate(JsonElement candidate, int position)
    {
        var index = candidate.TryGetProperty("index"u8, out var i) && i.ValueKind == JsonValueKind.Number && i.TryGetInt32(out var value) && value >= 0
            ? value
            : position;
        var result = new GeminiCandidate(index) { FinishReason = StringOf(candidate, "finishReason"u8) };
        if (!candidate.TryGetProperty("content"u8, out var content) || content.ValueKind != JsonValueKind.Object
            || !content.TryGetProperty("parts"u8, out var parts) || parts.ValueKind != JsonValueKind.Array)
        {
            return result;
        }

        StringBuilder? text = null;
        string? single = null;
        foreach (var part in parts.EnumerateArray())
        {
            if (part.ValueKind != JsonValueKind.Object)
            {
                continue;
            }

            // Thinking summaries (thought: true) are not the answer; they are billed but never shown as content.
            if (part.TryGetProperty("thought"u8, out var thought) && thought.ValueKind == JsonValueKind.True)
            {
                continue;
            }

            if (part.TryGetProperty("text"u8, out var t) && t.ValueKind == JsonValueKind.String)
            {
                var piece = t.GetString()!;
                if (single is null)
                {
                    single = piece;
                }
                else
                {
                    (text ??= new StringBuilder(single)).Append(piece);
                }
            }
            else if (part.TryGetProperty("functionCall"u8, out var call) && call.ValueKind == JsonValueKind.Object)
            {
                var name = StringOf(call, "name"u8) ?? string.Empty;
                // Re-written compactly: the same call reads the same whether it came pretty-printed (generateContent) or not (SSE).
                var args = call.TryGetProperty("args"u8, out var a) && a.ValueKind == JsonValueKind.Object ? GeminiJson.Compact(a) : "{}";
                result.Calls.Add(new GeminiFunctionCall(name, args));
            }

            // Other parts (inlineData output, executableCode, codeExecutionResult) have no OpenAI chat equivalent.
        }

        result.Text = text?.ToString() ?? single ?? string.Empty;
        return result;
    }

    private static string? StringOf(JsonElement element, ReadOnlySpan<byte> name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
