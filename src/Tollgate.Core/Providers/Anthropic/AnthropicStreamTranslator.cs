using System.Buffers;
using System.Text;
using System.Text.Json;

namespace Tollgate.Providers.Anthropic;

/// <summary>
/// Translates Anthropic stream events, one at a time, into OpenAI <c>chat.completion.chunk</c> payloads:
/// <c>message_start</c> gives the role chunk, text/thinking/tool deltas give content, reasoning and
/// incremental <c>tool_calls</c>, and <c>message_stop</c> gives the finish chunk and the usage-only chunk.
/// Holds the stream's state: open blocks, tool call indexes, stop reason and both usage reports.
/// </summary>
internal sealed class AnthropicStreamTranslator : IDisposable
{
    private readonly AnthropicCall _call;
    private readonly string _model;
    private readonly long _created;
    private readonly ArrayBufferWriter<byte> _chunk = new(512);
    private readonly Utf8JsonWriter _writer;
    private readonly Dictionary<int, Block> _blocks = [];
    private string _id = AnthropicIds.CompletionId(null);
    private string? _stopReason;
    private int _clientToolCalls;

    public AnthropicStreamTranslator(AnthropicCall call, string model, long created)
    {
        _call = call;
        _model = model;
        _created = created;
        _writer = new Utf8JsonWriter(_chunk);
    }

    /// <summary><c>message_start</c> has arrived.</summary>
    public bool Started { get; private set; }

    /// <summary>A chunk with content (text, reasoning or a tool call) has been produced, or the message is complete.</summary>
    public bool HasContent { get; private set; }

    /// <summary><c>message_stop</c> has arrived: the answer is whole.</summary>
    public bool Completed { get; private set; }

    /// <summary>The input-side report of <c>message_start</c>.</summary>
    public AnthropicUsage? StartUsage { get; private set; }

    /// <summary>The cumulative report of the latest <c>message_delta</c>.</summary>
    public AnthropicUsage? DeltaUsage { get; private set; }

    /// <summary>An <c>error</c> event: its Anthropic error type and message.</summary>
    public (string? Type, string Message)? Error { get; private set; }

    /// <summary>The unescaped UTF-8 of the text relayed so far (content, reasoning, tool arguments), for estimates.</summary>
    public ArrayBufferWriter<byte> RelayedText { get; } = new(256);

    /// <summary>
    /// Translates one event's data into zero or more chunks. Returns false on an <c>error</c> event (see
    /// <see cref="Error"/>). Throws <see cref="UpstreamStreamException"/> for events that break the protocol.
    /// </summary>
    public bool Translate(ReadOnlyMemory<byte> data, Queue<StreamChunk> output)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(data);
        }
        catch (JsonException ex)
        {
            throw Broken("The provider sent an event that is not valid JSON.", ex);
        }

        using (document)
        {
            var root = document.RootElement;
            var type = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("type"u8, out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
            if (!Started && type is "content_block_start" or "content_block_delta" or "content_block_stop" or "message_delta" or "message_stop")
            {
                throw Broken($"The provider's stream sent '{type}' before message_start.");
            }

            switch (type)
            {
                case "message_start":
                    OnMessageStart(root, output);
                    break;
                case "content_block_start":
                    OnBlockStart(root, output);
                    break;
                case "content_block_delta":
                    OnBlockDelta(root, output);
                    break;
                case "content_block_stop":
                    OnBlockStop(root, output);
                    break;
                case "message_delta":
                    OnMessageDelta(root);
                    break;
                case "message_stop":
                    OnMessageStop(output);
                    break;
                case "error":
                    var error = root.TryGetProperty("error"u8, out var e) ? e : default;
                    Error = (String(error, "type"u8), String(error, "message"u8) ?? "The provider sent an error event.");
                    return false;
                default:
                    // ping, and event types added after this was written, carry nothing to relay.
                    break;
            }
        }

        return true;
    }

    private void OnMessageStart(JsonElement root, Queue<StreamChunk> output)
    {
        if (Started)
        {
            throw Broken("The provider's stream sent a second message_start.");
        }

        Started = true;
        var message = root.TryGetProperty("message"u8, out var m) ? m : default;
        _id = AnthropicIds.CompletionId(String(message, "id"u8));
        if (message.ValueKind == JsonValueKind.Object && message.TryGetProperty("usage"u8, out var usage) && usage.ValueKind == JsonValueKind.Object)
        {
            StartUsage = AnthropicUsage.Read(usage);
        }

        Begin();
        _writer.WriteString("role"u8, "assistant"u8);
        _writer.WriteString("content"u8, ""u8);
        output.Enqueue(End(null));
    }

    private void OnBlockStart(JsonElement root, Queue<StreamChunk> output)
    {
        var index = Index(root);
        var block = root.TryGetProperty("content_block"u8, out var b) ? b : default;
        var kind = String(block, "type"u8);
        switch (kind)
        {
            case "text":
                _blocks[index] = new Block(BlockType.Text, -1);
                if (block.TryGetProperty("text"u8, out var text) && text.ValueKind == JsonValueKind.String && !text.ValueEquals(""u8))
                {
                    output.Enqueue(Content("content"u8, text, default));
                }

                break;
            case "thinking":
                _blocks[index] = new Block(BlockType.Thinking, -1);
                break;
            case "tool_use" when _call.ResponseToolName is { } answer && block.TryGetProperty("name"u8, out var n) && n.ValueEquals(answer):
                _blocks[index] = new Block(BlockType.AnswerTool, -1);
                break;
            case "tool_use":
                var toolIndex = _clientToolCalls++;
                _blocks[index] = new Block(BlockType.ToolUse, toolIndex);
                Begin();
                _writer.WriteStartArray("tool_calls"u8);
                _writer.WriteStartObject();
                _writer.WriteNumber("index"u8, toolIndex);
                _writer.WriteString("id"u8, String(block, "id"u8) ?? string.Empty);
                _writer.WriteString("type"u8, "function"u8);
                _writer.WriteStartObject("function"u8);
                _writer.WriteString("name"u8, String(block, "name"u8) ?? string.Empty);
                _writer.WriteString("arguments"u8, ""u8);
                _writer.WriteEndObject();
                _writer.WriteEndObject();
                _writer.WriteEndArray();
                output.Enqueue(End(null));
                HasContent = true;
                break;
            default:
                // redacted_thinking, server tool blocks: nothing a Chat Completions client can use.
                _blocks[index] = new Block(BlockType.Ignored, -1);
                break;
        }
    }

    private void OnBlockDelta(JsonElement root, Queue<StreamChunk> output)
    {
        if (!_blocks.TryGetValue(Index(root), out var block))
        {
            throw Broken("The provider's stream sent a delta for a content block it had not started.");
        }

        var delta = root.TryGetProperty("delta"u8, out var d) ? d : default;
        var kind = String(delta, "type"u8);
        switch (kind)
        {
            case "text_delta" when block.Type == BlockType.Text && delta.TryGetProperty("text"u8, out var text) && text.ValueKind == JsonValueKind.String:
                output.Enqueue(Content("content"u8, text, default));
                break;
            case "thinking_delta" when delta.TryGetProperty("thinking"u8, out var thinking) && thinking.ValueKind == JsonValueKind.String:
                // CUSTOM: extended thinking streams as DeepSeek-style reasoning_content; OpenAI clients ignore it.
                output.Enqueue(Content("reasoning_content"u8, thinking, default));
                break;
            case "input_json_delta" when delta.TryGetProperty("partial_json"u8, out var json) && json.ValueKind == JsonValueKind.String && !json.ValueEquals(""u8):
                if (block.Type == BlockType.AnswerTool)
                {
                    output.Enqueue(Content("content"u8, json, default));
                }
                else if (block.Type == BlockType.ToolUse)
                {
                    output.Enqueue(Arguments(block.ToolIndex, json, default));
                }

                _blocks[Index(root)] = block with { SentArguments = true };
                break;
            default:
                // signature_delta, citations_delta and future delta types are not relayed.
                break;
        }
    }

    private void OnBlockStop(JsonElement root, Queue<StreamChunk> output)
    {
        var index = Index(root);
        if (!_blocks.TryGetValue(index, out var block))
        {
            return;
        }

        // A tool called with no arguments streams no fragment: send "{}" so the client's arguments parse,
        // as in the non-streaming answer.
        if (!block.SentArguments && block.Type is BlockType.ToolUse or BlockType.AnswerTool)
        {
            output.Enqueue(block.Type == BlockType.ToolUse ? Arguments(block.ToolIndex, default, "{}"u8) : Content("content"u8, default, "{}"u8));
        }

        _blocks.Remove(index);
    }

    private void OnMessageDelta(JsonElement root)
    {
        if (root.TryGetProperty("delta"u8, out var delta) && String(delta, "stop_reason"u8) is { } stopReason)
        {
            _stopReason = stopReason;
        }

        if (root.TryGetProperty("usage"u8, out var usage) && usage.ValueKind == JsonValueKind.Object)
        {
            // Cumulative totals: the latest report replaces the previous one, never adds to it.
            DeltaUsage = AnthropicUsage.Read(usage);
        }
    }

    private void OnMessageStop(Queue<StreamChunk> output)
    {
        Begin();
        output.Enqueue(End(AnthropicStopReason.ToFinishReason(_stopReason, _clientToolCalls > 0)));

        // The usage-only chunk (empty choices), as OpenAI sends with stream_options.include_usage.
        _chunk.ResetWrittenCount();
        _writer.Reset(_chunk);
        WriteHeader();
        _writer.WriteStartArray("choices"u8);
        _writer.WriteEndArray();
        OpenAIUsageWriter.Write(_writer, CombinedUsage().ToBuckets());
        _writer.WriteEndObject();
        _writer.Flush();
        output.Enqueue(new StreamChunk(_chunk.WrittenSpan.ToArray(), UsageOnly: true));
        Completed = true;
        HasContent = true;
    }

    public void Dispose() => _writer.Dispose();

    /// <summary>message_start's report updated by the latest message_delta's.</summary>
    public AnthropicUsage CombinedUsage() => (StartUsage ?? default).UpdatedBy(DeltaUsage ?? default);

    /// <summary>A delta with one text property: the string <paramref name="text"/> when defined, else <paramref name="literal"/>.</summary>
    private StreamChunk Content(ReadOnlySpan<byte> property, JsonElement text, ReadOnlySpan<byte> literal)
    {
        Begin();
        _writer.WritePropertyName(property);
        WriteText(text, literal);
        HasContent = true;
        return End(null);
    }

    /// <summary>A tool call's arguments fragment: <paramref name="fragment"/> when defined, else <paramref name="literal"/>.</summary>
    private StreamChunk Arguments(int toolIndex, JsonElement fragment, ReadOnlySpan<byte> literal)
    {
        Begin();
        _writer.WriteStartArray("tool_calls"u8);
        _writer.WriteStartObject();
        _writer.WriteNumber("index"u8, toolIndex);
        _writer.WriteStartObject("function"u8);
        _writer.WritePropertyName("arguments"u8);
        WriteText(fragment, literal);
        _writer.WriteEndObject();
        _writer.WriteEndObject();
        _writer.WriteEndArray();
        HasContent = true;
        return End(null);
    }

    /// <summary>Writes the string value and records its unescaped UTF-8 as relayed text.</summary>
    private void WriteText(JsonElement text, ReadOnlySpan<byte> literal)
    {
        if (text.ValueKind != JsonValueKind.String)
        {
            _writer.WriteStringValue(literal);
            RelayedText.Write(literal);
            return;
        }

        text.WriteTo(_writer);
        var value = text.GetString()!;
        var span = RelayedText.GetSpan(Encoding.UTF8.GetMaxByteCount(value.Length));
        RelayedText.Advance(Encoding.UTF8.GetBytes(value, span));
    }

    /// <summary>Starts a chunk with one choice and opens its <c>delta</c>.</summary>
    private void Begin()
    {
        _chunk.ResetWrittenCount();
        _writer.Reset(_chunk);
        WriteHeader();
        _writer.WriteStartArray("choices"u8);
        _writer.WriteStartObject();
        _writer.WriteNumber("index"u8, 0);
        _writer.WriteStartObject("delta"u8);
    }

    private StreamChunk End(string? finishReason)
    {
        _writer.WriteEndObject();
        _writer.WriteNull("logprobs"u8);
        if (finishReason is null)
        {
            _writer.WriteNull("finish_reason"u8);
        }
        else
        {
            _writer.WriteString("finish_reason"u8, finishReason);
        }

        _writer.WriteEndObject();
        _writer.WriteEndArray();
        _writer.WriteEndObject();
        _writer.Flush();

        // A copy per chunk: the relay may still hold the previous one (the first chunk) while this is built.
        return new StreamChunk(_chunk.WrittenSpan.ToArray(), UsageOnly: false);
    }

    private void WriteHeader()
    {
        _writer.WriteStartObject();
        _writer.WriteString("id"u8, _id);
        _writer.WriteString("object"u8, "chat.completion.chunk"u8);
        _writer.WriteNumber("created"u8, _created);
        _writer.WriteString("model"u8, _model);
    }

    private static int Index(JsonElement root) =>
        root.TryGetProperty("index"u8, out var index) && index.ValueKind == JsonValueKind.Number && index.TryGetInt32(out var value)
            ? value
            : throw Broken("The provider's stream sent a content block event without an index.");

    private static string? String(JsonElement parent, ReadOnlySpan<byte> name) =>
        parent.ValueKind == JsonValueKind.Object && parent.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static UpstreamStreamException Broken(string message, Exception? inner = null) =>
        new(new UpstreamFailure(FailureKind.StreamBroken, null, message), inner);

    private enum BlockType
    {
        Text,
        Thinking,
        ToolUse,
        AnswerTool,
        Ignored,
    }

    private readonly record struct Block(BlockType Type, int ToolIndex, bool SentArguments = false);
}
