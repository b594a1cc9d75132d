using System.Text.Json;

namespace Tollgate.Providers.Anthropic;

/// <summary>
/// Turns OpenAI <c>messages</c> into Anthropic's <c>system</c> blocks and strictly alternating
/// <c>user</c>/<c>assistant</c> turns. Works in two steps: <see cref="Collect"/> sorts every message's
/// content into blocks that still point into the request's <see cref="JsonDocument"/>, merging
/// consecutive same-role turns; <see cref="WriteBlock"/> then writes each block. Nothing is copied
/// into an object model of its own.
/// </summary>
internal static class AnthropicMessageTranslator
{
    /// <summary>The system blocks and the turns of one request.</summary>
    public sealed record Conversation(List<ContentBlock> System, List<Turn> Turns);

    /// <summary>Sorts the messages. Throws <see cref="RequestTranslationException"/> for content Anthropic cannot take.</summary>
    public static Conversation Collect(JsonElement messages)
    {
        var system = new List<ContentBlock>();
        var turns = new List<Turn>();
        var index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            var at = $"messages[{index++}]";
            var role = message.TryGetProperty("role"u8, out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : string.Empty;
            message.TryGetProperty("content"u8, out var content);
            switch (role)
            {
                case "system" or "developer":
                    // Anthropic has one top-level system prompt: every system/developer message goes there, in order.
                    AddContent(system, content, at, ContentRole.System);
                    break;
                case "user":
                    AddToTurn(turns, "user", content, at, ContentRole.User);
                    break;
                case "assistant":
                    AddAssistant(turns, message, content, at);
                    break;
                case "tool":
                    AddToolResult(turns, message, at);
                    break;
                case "function":
                    throw new RequestTranslationException($"{at}: the legacy 'function' role is not supported by Anthropic; use 'tool' messages with tool_call_id.");
                default:
                    throw new RequestTranslationException($"{at}: unknown role '{role}'.");
            }
        }

        if (turns.Count == 0)
        {
            throw new RequestTranslationException("Anthropic needs at least one user or assistant message besides the system prompt.");
        }

        return new Conversation(system, turns);
    }

    private enum ContentRole
    {
        System,
        User,
        Assistant,
        ToolResult,
    }

    private static void AddToTurn(List<Turn> turns, string role, JsonElement content, string at, ContentRole contentRole)
    {
        var blocks = new List<ContentBlock>();
        AddContent(blocks, content, at, contentRole);
        Append(turns, role, blocks);
    }

    private static void AddAssistant(List<Turn> turns, JsonElement message, JsonElement content, string at)
    {
        var blocks = new List<ContentBlock>();
        AddContent(blocks, content, at, ContentRole.Assistant);
        if (message.TryGetProperty("tool_calls"u8, out var calls) && calls.ValueKind == JsonValueKind.Array)
        {
            var i = 0;
            foreach (var call in calls.EnumerateArray())
            {
                var callAt = $"{at}.tool_calls[{i++}]";
                if (call.ValueKind != JsonValueKind.Object
                    || !call.TryGetProperty("function"u8, out var function) || function.ValueKind != JsonValueKind.Object
                    || !function.TryGetProperty("name"u8, out var name) || name.ValueKind != JsonValueKind.String
                    || !call.TryGetProperty("id"u8, out var id) || id.ValueKind != JsonValueKind.String || id.GetString()!.Length == 0)
                {
                    throw new RequestTranslationException($"{callAt}: a tool call needs an 'id' and a 'function' with a 'name'.");
                }

                blocks.Add(new ContentBlock(BlockKind.ToolUse, call, default, callAt));
            }
        }

        Append(turns, "assistant", blocks);
    }

    private static void AddToolResult(List<Turn> turns, JsonElement message, string at)
    {
        if (!message.TryGetProperty("tool_call_id"u8, out var id) || id.ValueKind != JsonValueKind.String || id.GetString()!.Length == 0)
        {
            throw new RequestTranslationException($"{at}: a 'tool' message needs a 'tool_call_id'.");
        }

        if (message.TryGetProperty("content"u8, out var content))
        {
            // Validates the parts now, so writing cannot fail half way.
            AddContent([], content, at, ContentRole.ToolResult);
        }

        // Tool results are user-role content in Anthropic's API.
        Append(turns, "user", [new ContentBlock(BlockKind.ToolResult, message, default, at)]);
    }

    /// <summary>Adds a turn's blocks, merging into the previous turn when it has the same role (Anthropic requires alternation).</summary>
    private static void Append(List<Turn> turns, string role, List<ContentBlock> blocks)
    {
        if (blocks.Count == 0)
        {
            // An empty message (content "" and no tool calls) carries nothing, and Anthropic rejects empty turns.
            return;
        }

        if (turns.Count == 0 || turns[^1].Role != role)
        {
            turns.Add(new Turn(role));
        }

        foreach (var block in blocks)
        {
            turns[^1].Add(block);
        }
    }

    /// <summary>Sorts a message's <c>content</c> (a string, an array of parts, or null) into blocks, skipping empty text.</summary>
    private static void AddContent(List<ContentBlock> blocks, JsonElement content, string at, ContentRole role)
    {
        switch (content.ValueKind)
        {
            case JsonValueKind.Undefined or JsonValueKind.Null:
                return;
            case JsonValueKind.String:
                AddText(blocks, content, default, at);
                return;
            case JsonValueKind.Array:
                break;
            default:
                throw new RequestTranslationException($"{at}.content must be a string or an array of content parts.");
        }

        var index = 0;
        foreach (var part in content.EnumerateArray())
        {
            var partAt = $"{at}.content[{index++}]";
            var type = part.ValueKind == JsonValueKind.Object && part.TryGetProperty("type"u8, out var t) && t.ValueKind == JsonValueKind.String
                ? t.GetString()
                : null;
            part.TryGetProperty("cache_control"u8, out var cacheControl);
            switch (type)
            {
                case "text" when part.TryGetProperty("text"u8, out var text) && text.ValueKind == JsonValueKind.String:
                    AddText(blocks, text, cacheControl, partAt);
                    break;
                case "refusal" when role == ContentRole.Assistant && part.TryGetProperty("refusal"u8, out var refusal) && refusal.ValueKind == JsonValueKind.String:
                    AddText(blocks, refusal, default, partAt);
                    break;
                case "image_url" when role is ContentRole.User or ContentRole.ToolResult:
                    _ = ImageSource.Parse(part, partAt);
                    blocks.Add(new ContentBlock(BlockKind.Image, part, cacheControl, partAt));
                    break;
                case "file" when role == ContentRole.User:
                    _ = DocumentSource.Parse(part, partAt);
                    blocks.Add(new ContentBlock(BlockKind.Document, part, cacheControl, partAt));
                    break;
                case "input_audio":
                    throw new RequestTranslationException($"{partAt}: Anthropic does not accept audio input.");
                default:
                    throw new RequestTranslationException($"{partAt}: content part type '{type ?? "(none)"}' is not supported here by Anthropic.");
            }
        }
    }

    private static void AddText(List<ContentBlock> blocks, JsonElement text, JsonElement cacheControl, string at)
    {
        // Anthropic rejects empty text blocks; an empty string adds nothing anyway.
        if (text.ValueEquals(""u8))
        {
            return;
        }

        blocks.Add(new ContentBlock(BlockKind.Text, text, cacheControl, at));
    }

    /// <summary>Writes one block as an Anthropic content block.</summary>
    public static void WriteBlock(Utf8JsonWriter writer, ContentBlock block)
    {
        writer.WriteStartObject();
        switch (block.Kind)
        {
            case BlockKind.Text:
                writer.WriteString("type"u8, "text"u8);
                writer.WritePropertyName("text"u8);
                block.Source.WriteTo(writer);
                break;
            case BlockKind.Image:
                writer.WriteString("type"u8, "image"u8);
                ImageSource.Parse(block.Source, block.At).Write(writer);
                break;
            case BlockKind.Document:
                writer.WriteString("type"u8, "document"u8);
                DocumentSource.Parse(block.Source, block.At).Write(writer);
                break;
            case BlockKind.ToolUse:
                WriteToolUse(writer, block);
                break;
            case BlockKind.ToolResult:
                WriteToolResult(writer, block);
                break;
        }

        if (block.CacheControl.ValueKind == JsonValueKind.Object)
        {
            // CUSTOM: a cache_control marker on a content part (the convention OpenRouter and others use)
            // passes through, so clients can use Anthropic prompt caching via the gateway.
            writer.WritePropertyName("cache_control"u8);
            block.CacheControl.WriteTo(writer);
        }

        writer.WriteEndObject();
    }

    private static void WriteToolUse(Utf8JsonWriter writer, ContentBlock block)
    {
        var function = block.Source.GetProperty("function"u8);
        writer.WriteString("type"u8, "tool_use"u8);
        writer.WriteString("id"u8, ToolIds.ToAnthropic(block.Source.GetProperty("id"u8).GetString()!));
        writer.WritePropertyName("name"u8);
        function.GetProperty("name"u8).WriteTo(writer);
        writer.WritePropertyName("input"u8);
        var arguments = function.TryGetProperty("arguments"u8, out var a) && a.ValueKind == JsonValueKind.String ? a.GetString()! : string.Empty;
        if (string.IsNullOrWhiteSpace(arguments))
        {
            writer.WriteStartObject();
            writer.WriteEndObject();
            return;
        }

        try
        {
            using var input = JsonDocument.Parse(arguments, AnthropicRequestTranslator.DocumentOptions);
            if (input.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new RequestTranslationException($"{block.At}.function.arguments must be a JSON object for Anthropic.");
            }

            input.RootElement.WriteTo(writer);
        }
        catch (JsonException ex)
        {
            throw new RequestTranslationException($"{block.At}.function.arguments is not valid JSON: {ex.Message}");
        }
    }

    private static void WriteToolResult(Utf8JsonWriter writer, ContentBlock block)
    {
        writer.WriteString("type"u8, "tool_result"u8);
        writer.WriteString("tool_use_id"u8, ToolIds.ToAnthropic(block.Source.GetProperty("tool_call_id"u8).GetString()!));
        if (!block.Source.TryGetProperty("content"u8, out var content))
        {
            return;
        }

        if (content.ValueKind == JsonValueKind.String)
        {
            if (!content.ValueEquals(""u8))
            {
                writer.WritePropertyName("content"u8);
                content.WriteTo(writer);
            }

            return;
        }

        var parts = new List<ContentBlock>();
        AddContent(parts, content, block.At, ContentRole.ToolResult);
        if (parts.Count == 0)
        {
            return;
        }

        writer.WriteStartArray("content"u8);
        foreach (var part in parts)
        {
            WriteBlock(writer, part);
        }

        writer.WriteEndArray();
    }
}

internal enum BlockKind
{
    Text,
    Image,
    Document,
    ToolUse,
    ToolResult,
}

/// <summary>One Anthropic content block to be written, pointing at the request element it comes from.</summary>
/// <param name="Source">Text: the string; Image/Document: the content part; ToolUse: the tool call; ToolResult: the tool message.</param>
/// <param name="CacheControl">The part's <c>cache_control</c> object, or undefined.</param>
/// <param name="At">Where it is in the request, for error messages.</param>
internal readonly record struct ContentBlock(BlockKind Kind, JsonElement Source, JsonElement CacheControl, string At);

/// <summary>One Anthropic message. Tool results are kept ahead of other blocks, as Anthropic requires in a user turn.</summary>
internal sealed class Turn(string role)
{
    private int _toolResults;

    public string Role { get; } = role;

    public List<ContentBlock> Blocks { get; } = [];

    public void Add(ContentBlock block)
    {
        if (block.Kind == BlockKind.ToolResult)
        {
            Blocks.Insert(_toolResults++, block);
        }
        else
        {
            Blocks.Add(block);
        }
    }
}

/// <summary>A request the adapter cannot express in Anthropic's API: reported as a 400 that does not fail over.</summary>
internal sealed class RequestTranslationException(string message) : Exception(message);
