using System.Buffers;
using System.Globalization;
using System.Text.Json;
using Tollgate.Metering;

namespace Tollgate.Providers.Gemini;

/// <summary>The fields every OpenAI response or chunk of one answer repeats.</summary>
/// <param name="Id"><c>chatcmpl-</c> + Gemini's <c>responseId</c> (or a fresh id when it sends none).</param>
/// <param name="Created">Unix seconds when the gateway received the answer.</param>
/// <param name="Model">Gemini's <c>modelVersion</c>, else the deployment's upstream model.</param>
internal readonly record struct CompletionMeta(string Id, long Created, string Model)
{
    public static CompletionMeta Of(GeminiResponse response, long created, string upstreamModel) =>
        new("chatcmpl-" + (response.ResponseId ?? Guid.NewGuid().ToString("N")), created, response.ModelVersion ?? upstreamModel);
}

/// <summary>Gemini finish reasons and tool call ids in OpenAI's terms; shared by the buffered and streaming paths.</summary>
internal static class GeminiFinish
{
    /// <summary>
    /// STOP → <c>stop</c> (<c>tool_calls</c> when the choice called functions), MAX_TOKENS → <c>length</c>,
    /// the safety family → <c>content_filter</c>. Anything else (OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL...)
    /// ends the answer without a better OpenAI word for it: <c>stop</c>.
    /// </summary>
    public static string ToOpenAI(string? reason, bool hasToolCalls) => reason switch
    {
        "MAX_TOKENS" => "length",
        "SAFETY" or "RECITATION" or "BLOCKLIST" or "PROHIBITED_CONTENT" or "SPII"
            or "IMAGE_SAFETY" or "IMAGE_PROHIBITED_CONTENT" or "IMAGE_RECITATION" => "content_filter",
        _ => hasToolCalls ? "tool_calls" : "stop",
    };

    /// <summary>
    /// CUSTOM: Gemini function calls usually carry no id, and OpenAI clients need one to answer the call.
    /// The id is the call's position in its choice, so the buffered and streamed forms of an answer agree;
    /// a tool result is matched to the nearest earlier assistant call with that id (see <see cref="GeminiContentBuilder"/>).
    /// </summary>
    public static string ToolCallId(int index) => "call_" + index.ToString(CultureInfo.InvariantCulture);
}

/// <summary>A non-streaming <c>GenerateContentResponse</c> → an OpenAI <c>chat.completion</c>.</summary>
internal static class GeminiResponseTranslator
{
    public static byte[] ToCompletion(GeminiResponse response, CompletionMeta meta, int requestedChoices, UsageBuckets usage)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var writer = new Utf8JsonWriter(buffer, GeminiJson.WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("id"u8, meta.Id);
            writer.WriteString("object"u8, "chat.completion"u8);
            writer.WriteNumber("created"u8, meta.Created);
            writer.WriteString("model"u8, meta.Model);
            writer.WriteStartArray("choices"u8);
            if (response.Candidates.Count == 0)
            {
                // promptFeedback.blockReason: the prompt was refused before any candidate; every asked-for choice is filtered.
                for (var index = 0; index < Math.Max(1, requestedChoices); index++)
                {
                    WriteChoice(writer, index, string.Empty, [], "content_filter");
                }
            }
            else
            {
                var candidates = response.Candidates.ToArray();
                Array.Sort(candidates, static (a, b) => a.Index.CompareTo(b.Index));
                foreach (var candidate in candidates)
                {
                    WriteChoice(writer, candidate.Index, candidate.Text, candidate.Calls, GeminiFinish.ToOpenAI(candidate.FinishReason, candidate.Calls.Count > 0));
                }
            }

            writer.WriteEndArray();
            OpenAIUsageWriter.Write(writer, usage);
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteChoice(Utf8JsonWriter writer, int index, string text, List<GeminiFunctionCall> calls, string finishReason)
    {
        writer.WriteStartObject();
        writer.WriteNumber("index"u8, index);
        writer.WriteStartObject("message"u8);
        writer.WriteString("role"u8, "assistant"u8);

        // OpenAI sends null content beside tool calls, and a string otherwise (empty when filtered).
        if (text.Length == 0 && calls.Count > 0)
        {
            writer.WriteNull("content"u8);
        }
        else
        {
            writer.WriteString("content"u8, text);
        }

        if (calls.Count > 0)
        {
            writer.WriteStartArray("tool_calls"u8);
            for (var i = 0; i < calls.Count; i++)
            {
                writer.WriteStartObject();
                writer.WriteString("id"u8, GeminiFinish.ToolCallId(i));
                writer.WriteString("type"u8, "function"u8);
                WriteFunction(writer, calls[i]);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
        }

        writer.WriteNull("refusal"u8);
        writer.WriteEndObject();
        writer.WriteNull("logprobs"u8);
        writer.WriteString("finish_reason"u8, finishReason);
        writer.WriteEndObject();
    }

    /// <summary><c>"function": {"name", "arguments"}</c>, the arguments as a JSON string the OpenAI way.</summary>
    public static void WriteFunction(Utf8JsonWriter writer, GeminiFunctionCall call)
    {
        writer.WriteStartObject("function"u8);
        writer.WriteString("name"u8, call.Name);
        writer.WriteString("arguments"u8, call.ArgumentsJson);
        writer.WriteEndObject();
    }
}
