using System.Buffers;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Tollgate.Tests.Fakes;

/// <summary>The shape of one chat completion call, fixed when the request arrives.</summary>
/// <param name="Id">"chatcmpl-..." shared by every chunk of a stream, as OpenAI does.</param>
/// <param name="Created">Unix seconds.</param>
/// <param name="Model">The request's model, echoed back.</param>
/// <param name="Choices">The request's "n" (at least 1).</param>
/// <param name="Stream">The request asked for SSE.</param>
/// <param name="IncludeUsage">The request asked for stream_options.include_usage.</param>
internal sealed record ChatCall(string Id, long Created, string Model, int Choices, bool Stream, bool IncludeUsage);

/// <summary>Serialises OpenAI wire-format bodies with <see cref="Utf8JsonWriter"/>.</summary>
internal static class OpenAiWire
{
    public const string Fingerprint = "fp_fake";

    public static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();

    // Real servers send raw UTF-8 rather than \uXXXX escapes for non-ASCII text and quotes.
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static byte[] Sse(byte[] json)
    {
        var frame = new byte[6 + json.Length + 2];
        "data: "u8.CopyTo(frame);
        json.CopyTo(frame, 6);
        "\n\n"u8.CopyTo(frame.AsSpan(6 + json.Length));
        return frame;
    }

    public static byte[] Error(string message, string type, string? code) => Build(w =>
    {
        w.WriteStartObject();
        w.WriteStartObject("error");
        w.WriteString("message", message);
        w.WriteString("type", type);
        w.WriteNull("param");
        WriteStringOrNull(w, "code", code);
        w.WriteEndObject();
        w.WriteEndObject();
    });

    public static byte[] Completion(ChatCall call, FakeBehavior behavior, string toolCallId) => Build(w =>
    {
        var isToolCall = behavior.Kind == FakeBehaviorKind.ToolCall;
        w.WriteStartObject();
        WriteHeader(w, call, "chat.completion");
        w.WriteStartArray("choices");
        for (var index = 0; index < call.Choices; index++)
        {
            w.WriteStartObject();
            w.WriteNumber("index", index);
            w.WriteStartObject("message");
            w.WriteString("role", "assistant");
            WriteStringOrNull(w, "content", isToolCall ? null : behavior.Content);
            w.WriteNull("refusal");
            if (isToolCall)
            {
                w.WriteStartArray("tool_calls");
                WriteToolCall(w, index: null, toolCallId, behavior.ToolName, behavior.ToolArguments);
                w.WriteEndArray();
            }

            w.WriteEndObject();
            w.WriteNull("logprobs");
            w.WriteString("finish_reason", isToolCall ? "tool_calls" : "stop");
            w.WriteEndObject();
        }

        w.WriteEndArray();
        if (behavior.SendUsage)
        {
            WriteUsage(w, behavior);
        }

        w.WriteString("system_fingerprint", Fingerprint);
        w.WriteEndObject();
    });

    /// <summary>The first chunk of a choice: the role, plus the tool call's id and name when there is one.</summary>
    public static byte[] RoleChunk(ChatCall call, FakeBehavior behavior, int choice, string toolCallId) =>
        Chunk(call, behavior, choice, finishReason: null, w =>
        {
            w.WriteString("role", "assistant");
            if (behavior.Kind == FakeBehaviorKind.ToolCall)
            {
                w.WriteNull("content");
                w.WriteStartArray("tool_calls");
                WriteToolCall(w, index: 0, toolCallId, behavior.ToolName, arguments: string.Empty);
                w.WriteEndArray();
            }
            else
            {
                w.WriteString("content", string.Empty);
            }
        });

    /// <summary>One piece of content, or of the tool call's arguments.</summary>
    public static byte[] PartChunk(ChatCall call, FakeBehavior behavior, int choice, string part) =>
        Chunk(call, behavior, choice, finishReason: null, w =>
        {
            if (behavior.Kind != FakeBehaviorKind.ToolCall)
            {
                w.WriteString("content", part);
                return;
            }

            w.WriteStartArray("tool_calls");
            w.WriteStartObject();
            w.WriteNumber("index", 0);
            w.WriteStartObject("function");
            w.WriteString("arguments", part);
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteEndArray();
        });

    public static byte[] FinishChunk(ChatCall call, FakeBehavior behavior, int choice) =>
        Chunk(call, behavior, choice, behavior.Kind == FakeBehaviorKind.ToolCall ? "tool_calls" : "stop", static _ => { });

    /// <summary>The trailing include_usage chunk: no choices, only usage.</summary>
    public static byte[] UsageChunk(ChatCall call, FakeBehavior behavior) => Build(w =>
    {
        w.WriteStartObject();
        WriteHeader(w, call, "chat.completion.chunk");
        w.WriteStartArray("choices");
        w.WriteEndArray();
        WriteUsage(w, behavior);
        w.WriteEndObject();
    });

    public static byte[] Embeddings(
        string model, IReadOnlyList<EmbeddingInput> inputs, int dimensions, bool base64, bool sendUsage) => Build(w =>
    {
        w.WriteStartObject();
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        var tokens = 0;
        for (var index = 0; index < inputs.Count; index++)
        {
            tokens += inputs[index].Tokens;
            var vector = FakeEmbedding.Vector(inputs[index].Key, dimensions);
            w.WriteStartObject();
            w.WriteString("object", "embedding");
            w.WriteNumber("index", index);
            if (base64)
            {
                // OpenAI's base64 format is the little-endian float32 array; x64 and arm64 are little-endian.
                w.WriteBase64String("embedding", MemoryMarshal.AsBytes(vector.AsSpan()));
            }
            else
            {
                w.WriteStartArray("embedding");
                foreach (var value in vector)
                {
                    w.WriteNumberValue(value);
                }

                w.WriteEndArray();
            }

            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteString("model", model);
        if (sendUsage)
        {
            w.WriteStartObject("usage");
            w.WriteNumber("prompt_tokens", tokens);
            w.WriteNumber("total_tokens", tokens);
            w.WriteEndObject();
        }

        w.WriteEndObject();
    });

    public static byte[] Models(IEnumerable<string> ids) => Build(w =>
    {
        w.WriteStartObject();
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        foreach (var id in ids)
        {
            w.WriteStartObject();
            w.WriteString("id", id);
            w.WriteString("object", "model");
            w.WriteNumber("created", 0);
            w.WriteString("owned_by", "fake");
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteEndObject();
    });

    /// <summary>Splits text into word-sized pieces whose concatenation is the text (spaces lead each piece).</summary>
    public static List<string> SplitWords(string text)
    {
        var parts = new List<string>();
        var start = 0;
        for (var i = 1; i < text.Length; i++)
        {
            if (char.IsWhiteSpace(text[i]) && !char.IsWhiteSpace(text[i - 1]))
            {
                parts.Add(text[start..i]);
                start = i;
            }
        }

        if (start < text.Length)
        {
            parts.Add(text[start..]);
        }

        return parts;
    }

    /// <summary>Splits tool arguments into a few fragments, mimicking how OpenAI streams them.</summary>
    public static List<string> SplitFragments(string text, int size = 8)
    {
        var parts = new List<string>();
        for (var start = 0; start < text.Length; start += size)
        {
            parts.Add(text.Substring(start, Math.Min(size, text.Length - start)));
        }

        return parts;
    }

    private static byte[] Chunk(ChatCall call, FakeBehavior behavior, int choice, string? finishReason, Action<Utf8JsonWriter> writeDelta) =>
        Build(w =>
        {
            w.WriteStartObject();
            WriteHeader(w, call, "chat.completion.chunk");
            w.WriteStartArray("choices");
            w.WriteStartObject();
            w.WriteNumber("index", choice);
            w.WriteStartObject("delta");
            writeDelta(w);
            w.WriteEndObject();
            w.WriteNull("logprobs");
            WriteStringOrNull(w, "finish_reason", finishReason);
            w.WriteEndObject();
            w.WriteEndArray();
            // With include_usage OpenAI puts "usage": null on every chunk but the last; a server that
            // ignores usage (SendUsage false) has no usage member at all.
            if (call.IncludeUsage && behavior.SendUsage)
            {
                w.WriteNull("usage");
            }

            w.WriteEndObject();
        });

    private static void WriteHeader(Utf8JsonWriter w, ChatCall call, string objectType)
    {
        w.WriteString("id", call.Id);
        w.WriteString("object", objectType);
        w.WriteNumber("created", call.Created);
        w.WriteString("model", call.Model);
        if (objectType == "chat.completion.chunk")
        {
            // In chunks OpenAI sends the fingerprint up front; the full completion has it last.
            w.WriteString("system_fingerprint", Fingerprint);
        }
    }

    private static void WriteToolCall(Utf8JsonWriter w, int? index, string id, string? name, string? arguments)
    {
        w.WriteStartObject();
        if (index is { } value)
        {
            w.WriteNumber("index", value);
        }

        w.WriteString("id", id);
        w.WriteString("type", "function");
        w.WriteStartObject("function");
        w.WriteString("name", name);
        w.WriteString("arguments", arguments);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void WriteUsage(Utf8JsonWriter w, FakeBehavior behavior)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", behavior.PromptTokens);
        w.WriteNumber("completion_tokens", behavior.CompletionTokens);
        w.WriteNumber("total_tokens", behavior.PromptTokens + behavior.CompletionTokens);
        w.WriteStartObject("prompt_tokens_details");
        w.WriteNumber("cached_tokens", behavior.CachedTokens);
        w.WriteEndObject();
        w.WriteStartObject("completion_tokens_details");
        w.WriteNumber("reasoning_tokens", behavior.ReasoningTokens);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void WriteStringOrNull(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null)
        {
            w.WriteNull(name);
        }
        else
        {
            w.WriteString(name, value);
        }
    }

    private static byte[] Build(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            write(writer);
        }

        return buffer.WrittenSpan.ToArray();
    }
}
