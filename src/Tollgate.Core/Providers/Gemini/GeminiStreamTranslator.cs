using System.Buffers;
using System.Text;
using System.Text.Json;
using Tollgate.Metering;

namespace Tollgate.Providers.Gemini;

/// <summary>
/// Turns the events of a Gemini stream (each one a <c>GenerateContentResponse</c>) into OpenAI
/// <c>chat.completion.chunk</c> payloads: per choice a role chunk first, then content and tool call deltas,
/// then a chunk with the finish reason; the usage-only chunk is written once the upstream stream has ended.
/// Holds the state of one stream; not thread-safe (a stream is read by one consumer).
/// </summary>
internal sealed class GeminiStreamTranslator(long created, string upstreamModel, int requestedChoices) : IDisposable
{
    private readonly Dictionary<int, ChoiceState> _choices = [];
    private readonly ArrayBufferWriter<byte> _text = new(256);

    // One buffer and writer for every chunk of the stream; each chunk is copied out (several may be pending at once).
    private readonly ArrayBufferWriter<byte> _buffer = new(512);
    private Utf8JsonWriter? _writer;
    private CompletionMeta? _meta;

    /// <summary>The last <c>usageMetadata</c> seen. Gemini repeats it, cumulatively, on chunks: the last one is the total.</summary>
    public GeminiUsage? Usage { get; private set; }

    /// <summary>UTF-8 of the text and call arguments relayed so far: what an estimate counts when no usage came.</summary>
    public ReadOnlySpan<byte> RelayedText => _text.WrittenSpan;

    /// <summary>Every choice that started has a finish reason: the answer is whole.</summary>
    public bool Complete
    {
        get
        {
            if (_choices.Count == 0)
            {
                return false;
            }

            foreach (var choice in _choices.Values)
            {
                if (!choice.Finished)
                {
                    return false;
                }
            }

            return true;
        }
    }

    /// <summary>Appends the OpenAI chunks for one Gemini event to <paramref name="output"/> (possibly none).</summary>
    public void Translate(GeminiResponse response, Queue<StreamChunk> output)
    {
        _meta ??= CompletionMeta.Of(response, created, upstreamModel);
        if (response.Usage is { } usage)
        {
            Usage = usage;
        }

        if (response.Candidates.Count == 0 && response.BlockReason is not null)
        {
            // The prompt was refused: no candidates will come. Every asked-for choice ends filtered.
            for (var index = 0; index < Math.Max(1, requestedChoices); index++)
            {
                var blocked = Start(index, output);
                if (!blocked.Finished)
                {
                    blocked.Finished = true;
                    output.Enqueue(Write(index, null, null, 0, "content_filter"));
                }
            }

            return;
        }

        foreach (var candidate in response.Candidates)
        {
            var choice = Start(candidate.Index, output);
            if (choice.Finished)
            {
                continue;
            }

            if (candidate.Text.Length > 0)
            {
                Encoding.UTF8.GetBytes(candidate.Text, _text);
                output.Enqueue(Write(candidate.Index, candidate.Text, null, 0, null));
            }

            if (candidate.Calls.Count > 0)
            {
                // Gemini sends whole calls: id, name and complete arguments go out in one delta.
                foreach (var call in candidate.Calls)
                {
                    Encoding.UTF8.GetBytes(call.ArgumentsJson, _text);
                }

                output.Enqueue(Write(candidate.Index, null, candidate.Calls, choice.ToolCalls, null));
                choice.ToolCalls += candidate.Calls.Count;
            }

            if (candidate.FinishReason is { } reason)
            {
                choice.Finished = true;
                output.Enqueue(Write(candidate.Index, null, null, 0, GeminiFinish.ToOpenAI(reason, choice.ToolCalls > 0)));
            }
        }
    }

    /// <summary>The trailing chunk with empty <c>choices</c> and the usage, flagged so only clients that asked for it see it.</summary>
    public StreamChunk UsageChunk(UsageBuckets usage)
    {
        var writer = BeginChunk();
        WriteEnvelope(writer);
        writer.WriteStartArray("choices"u8);
        writer.WriteEndArray();
        OpenAIUsageWriter.Write(writer, usage);
        writer.WriteEndObject();
        return EndChunk(writer, usageOnly: true);
    }

    private ChoiceState Start(int index, Queue<StreamChunk> output)
    {
        if (!_choices.TryGetValue(index, out var choice))
        {
            choice = new ChoiceState();
            _choices.Add(index, choice);
            output.Enqueue(Write(index, string.Empty, null, 0, null, role: true));
        }

        return choice;
    }

    /// <summary>One chunk for one choice: a role, content, tool calls (numbered from <paramref name="firstCall"/>) or a finish reason.</summary>
    private StreamChunk Write(int index, string? content, List<GeminiFunctionCall>? calls, int firstCall, string? finishReason, bool role = false)
    {
        var writer = BeginChunk();
        WriteEnvelope(writer);
        writer.WriteStartArray("choices"u8);
        writer.WriteStartObject();
        writer.WriteNumber("index"u8, index);
        writer.WriteStartObject("delta"u8);
        if (role)
        {
            writer.WriteString("role"u8, "assistant"u8);
        }

        if (content is not null)
        {
            writer.WriteString("content"u8, content);
        }

        if (calls is not null)
        {
            writer.WriteStartArray("tool_calls"u8);
            for (var i = 0; i < calls.Count; i++)
            {
                writer.WriteStartObject();
                writer.WriteNumber("index"u8, firstCall + i);
                writer.WriteString("id"u8, GeminiFinish.ToolCallId(firstCall + i));
                writer.WriteString("type"u8, "function"u8);
                GeminiResponseTranslator.WriteFunction(writer, calls[i]);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
        }

        writer.WriteEndObject();
        writer.WriteNull("logprobs"u8);
        if (finishReason is null)
        {
            writer.WriteNull("finish_reason"u8);
        }
        else
        {
            writer.WriteString("finish_reason"u8, finishReason);
        }

        writer.WriteEndObject();
        writer.WriteEndArray();
        writer.WriteEndObject();

        return EndChunk(writer, usageOnly: false);
    }

    private Utf8JsonWriter BeginChunk()
    {
        _buffer.ResetWrittenCount();
        if (_writer is null)
        {
            _writer = new Utf8JsonWriter(_buffer, GeminiJson.WriterOptions);
        }
        else
        {
            _writer.Reset(_buffer);
        }

        return _writer;
    }

    private StreamChunk EndChunk(Utf8JsonWriter writer, bool usageOnly)
    {
        writer.Flush();
        return new StreamChunk(_buffer.WrittenSpan.ToArray(), usageOnly);
    }

    private void WriteEnvelope(Utf8JsonWriter writer)
    {
        var meta = _meta ?? new CompletionMeta("chatcmpl-" + Guid.NewGuid().ToString("N"), created, upstreamModel);
        _meta = meta;
        writer.WriteStartObject();
        writer.WriteString("id"u8, meta.Id);
        writer.WriteString("object"u8, "chat.completion.chunk"u8);
        writer.WriteNumber("created"u8, meta.Created);
        writer.WriteString("model"u8, meta.Model);
    }

    public void Dispose() => _writer?.Dispose();

    private sealed class ChoiceState
    {
        public int ToolCalls { get; set; }

        public bool Finished { get; set; }
    }
}
