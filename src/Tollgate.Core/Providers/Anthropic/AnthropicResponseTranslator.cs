using System.Buffers;
using System.Text;
using System.Text.Json;
using Tollgate.Metering;

namespace Tollgate.Providers.Anthropic;

/// <summary>
/// Turns an Anthropic <c>message</c> into an OpenAI <c>chat.completion</c>: text blocks are concatenated
/// into <c>content</c>, <c>tool_use</c> blocks become <c>tool_calls</c> (the json_schema answer tool becomes
/// <c>content</c>), <c>stop_reason</c> becomes <c>finish_reason</c>, and <c>usage</c> is rebuilt from the buckets.
/// </summary>
internal static class AnthropicResponseTranslator
{
    /// <summary>Translates a 2xx body. Returns false when it is not an Anthropic message; throws <see cref="JsonException"/> when it is not JSON.</summary>
    public static bool TryTranslate(
        byte[] body, AnthropicCall call, string model, long created, ReadOnlySpan<byte> requestBody, out byte[] openAi, out MeteredUsage usage)
    {
        openAi = [];
        usage = null!;
        using var document = JsonDocument.Parse(body);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object
            || !root.TryGetProperty("type"u8, out var type) || !type.ValueEquals("message"u8)
            || !root.TryGetProperty("content"u8, out var content) || content.ValueKind != JsonValueKind.Array)
        {
            return false;
        }

        var text = new StringBuilder();
        var reasoning = new StringBuilder();
        var toolCalls = new List<JsonElement>();
        foreach (var block in content.EnumerateArray())
        {
            var kind = block.TryGetProperty("type"u8, out var k) ? k : default;
            if (kind.ValueEquals("text"u8) && block.TryGetProperty("text"u8, out var t) && t.ValueKind == JsonValueKind.String)
            {
                text.Append(t.GetString());
            }
            else if (kind.ValueEquals("thinking"u8) && block.TryGetProperty("thinking"u8, out var th) && th.ValueKind == JsonValueKind.String)
            {
                reasoning.Append(th.GetString());
            }
            else if (kind.ValueEquals("tool_use"u8))
            {
                if (call.ResponseToolName is { } answerTool && block.TryGetProperty("name"u8, out var n) && n.ValueEquals(answerTool))
                {
                    text.Append(block.TryGetProperty("input"u8, out var input) ? input.GetRawText() : "{}");
                }
                else
                {
                    toolCalls.Add(block);
                }
            }

            // Other blocks (redacted_thinking, server tool results) have no OpenAI equivalent and are left out.
        }

        var stopReason = root.TryGetProperty("stop_reason"u8, out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null;
        var output = new ArrayBufferWriter<byte>(body.Length + 256);
        using (var writer = new Utf8JsonWriter(output))
        {
            writer.WriteStartObject();
            writer.WriteString("id"u8, AnthropicIds.CompletionId(root.TryGetProperty("id"u8, out var id) && id.ValueKind == JsonValueKind.String ? id.GetString() : null));
            writer.WriteString("object"u8, "chat.completion"u8);
            writer.WriteNumber("created"u8, created);
            writer.WriteString("model"u8, model);
            writer.WriteStartArray("choices"u8);
            writer.WriteStartObject();
            writer.WriteNumber("index"u8, 0);
            writer.WriteStartObject("message"u8);
            writer.WriteString("role"u8, "assistant"u8);
            if (text.Length == 0 && toolCalls.Count > 0)
            {
                writer.WriteNull("content"u8);
            }
            else
            {
                writer.WriteString("content"u8, text.ToString());
            }

            writer.WriteNull("refusal"u8);
            if (reasoning.Length > 0)
            {
                // CUSTOM: extended thinking as DeepSeek's reasoning_content; OpenAI clients ignore the field.
                writer.WriteString("reasoning_content"u8, reasoning.ToString());
            }

            if (toolCalls.Count > 0)
            {
                WriteToolCalls(writer, toolCalls);
            }

            writer.WriteEndObject();
            writer.WriteNull("logprobs"u8);
            writer.WriteString("finish_reason"u8, AnthropicStopReason.ToFinishReason(stopReason, toolCalls.Count > 0));
            writer.WriteEndObject();
            writer.WriteEndArray();

            usage = root.TryGetProperty("usage"u8, out var u) && u.ValueKind == JsonValueKind.Object
                ? new MeteredUsage(AnthropicUsage.Read(u).ToBuckets(), UsageSource.Reported)
                : TokenEstimator.Estimate(requestBody, Encoding.UTF8.GetBytes(text.Append(reasoning).ToString()));
            OpenAIUsageWriter.Write(writer, usage.Buckets);
            writer.WriteEndObject();
        }

        openAi = output.WrittenSpan.ToArray();
        return true;
    }

    private static void WriteToolCalls(Utf8JsonWriter writer, List<JsonElement> toolCalls)
    {
        writer.WriteStartArray("tool_calls"u8);
        for (var i = 0; i < toolCalls.Count; i++)
        {
            var block = toolCalls[i];
            writer.WriteStartObject();
            writer.WriteNumber("index"u8, i);
            writer.WritePropertyName("id"u8);
            WriteStringOrEmpty(writer, block, "id"u8);
            writer.WriteString("type"u8, "function"u8);
            writer.WriteStartObject("function"u8);
            writer.WritePropertyName("name"u8);
            WriteStringOrEmpty(writer, block, "name"u8);

            // OpenAI carries arguments as a JSON string holding the JSON object.
            writer.WriteString("arguments"u8, block.TryGetProperty("input"u8, out var input) && input.ValueKind == JsonValueKind.Object ? input.GetRawText() : "{}");
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }

    private static void WriteStringOrEmpty(Utf8JsonWriter writer, JsonElement parent, ReadOnlySpan<byte> name)
    {
        if (parent.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String)
        {
            value.WriteTo(writer);
        }
        else
        {
            writer.WriteStringValue(""u8);
        }
    }
}

/// <summary>Anthropic <c>stop_reason</c> to OpenAI <c>finish_reason</c>.</summary>
internal static class AnthropicStopReason
{
    /// <param name="stopReason">Anthropic's value, or null when none came.</param>
    /// <param name="clientToolCalls">Whether the answer holds tool calls for the client (the json_schema answer tool is not one).</param>
    public static string ToFinishReason(string? stopReason, bool clientToolCalls) => stopReason switch
    {
        "max_tokens" or "model_context_window_exceeded" => "length",
        "tool_use" => clientToolCalls ? "tool_calls" : "stop",
        "refusal" => "content_filter",

        // end_turn, stop_sequence, pause_turn (server tools, which the gateway never sends) and anything new.
        _ => clientToolCalls ? "tool_calls" : "stop",
    };
}

internal static class AnthropicIds
{
    /// <summary><c>msg_01AbC...</c> becomes <c>chatcmpl-01AbC...</c>, so the id still leads back to Anthropic's logs.</summary>
    public static string CompletionId(string? messageId) =>
        "chatcmpl-" + (messageId is null ? "anthropic" : messageId.StartsWith("msg_", StringComparison.Ordinal) ? messageId[4..] : messageId);
}
