using System.Buffers;
using System.Text;
using System.Text.Json;

namespace Tollgate.Providers.Gemini;

/// <summary>
/// OpenAI <c>messages</c> → Gemini <c>systemInstruction</c> + <c>contents</c>. System and developer messages
/// become the system instruction (wherever they stand); user → <c>user</c>, assistant → <c>model</c>, tool
/// results → <c>user</c> turns of <c>functionResponse</c> parts; consecutive turns of one role are merged
/// (Gemini wants the answers to parallel calls together in one turn). Errors are messages for a 400.
/// </summary>
internal sealed class GeminiContentBuilder
{
    private const string User = "user";
    private const string Model = "model";

    // Tool call id → function name, from the assistant messages read so far: a later call with the same id
    // replaces an earlier one, so a tool result finds the nearest preceding call (ids like call_0 repeat across turns).
    private readonly Dictionary<string, string> _callNames = new(StringComparer.Ordinal);

    public List<GeminiPart> System { get; } = [];

    public List<GeminiTurn> Turns { get; } = [];

    /// <summary>Reads every message; returns an error message for the client, or null.</summary>
    public string? Add(JsonElement messages)
    {
        var index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            if (AddMessage(message, index++) is { } error)
            {
                return error;
            }
        }

        if (Turns.Count == 0 && System.Count > 0)
        {
            // Gemini needs at least one turn; OpenAI accepts a conversation that is only a system message.
            Turns.Add(new GeminiTurn(User, [.. System]));
            System.Clear();
        }

        return Turns.Count == 0 ? "The conversation has no message with content to send." : null;
    }

    private string? AddMessage(JsonElement message, int index)
    {
        var role = message.TryGetProperty("role"u8, out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null;
        var content = message.TryGetProperty("content"u8, out var c) ? c : default;
        var parts = new List<GeminiPart>();
        string? error;
        switch (role)
        {
            case "system" or "developer":
                return AddContent(content, System, index, textOnly: true);
            case "user":
                error = AddContent(content, parts, index, textOnly: false);
                Append(User, parts);
                return error;
            case "assistant":
                error = AddContent(content, parts, index, textOnly: true) ?? AddToolCalls(message, parts, index);
                Append(Model, parts);
                return error;
            case "tool":
                error = AddToolResult(message, content, parts, index);
                Append(User, parts);
                return error;
            case "function":
                // The legacy form of a tool result: the function's name is on the message itself.
                var name = message.TryGetProperty("name"u8, out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null;
                if (string.IsNullOrEmpty(name))
                {
                    return $"messages[{index}]: a 'function' message needs a 'name'.";
                }

                parts.Add(FunctionResponse(name, TextOf(content)));
                Append(User, parts);
                return null;
            default:
                return $"messages[{index}]: role '{role}' is not supported by this provider.";
        }
    }

    private void Append(string role, List<GeminiPart> parts)
    {
        if (parts.Count == 0)
        {
            return;
        }

        if (Turns.Count > 0 && Turns[^1].Role == role)
        {
            Turns[^1].Parts.AddRange(parts);
        }
        else
        {
            Turns.Add(new GeminiTurn(role, parts));
        }
    }

    /// <summary>A string, or an array of content parts. Empty text is left out: Gemini rejects empty parts.</summary>
    private static string? AddContent(JsonElement content, List<GeminiPart> parts, int index, bool textOnly)
    {
        switch (content.ValueKind)
        {
            case JsonValueKind.String:
                var text = content.GetString()!;
                if (text.Length > 0)
                {
                    parts.Add(GeminiPart.Text(text));
                }

                return null;
            case JsonValueKind.Array:
                foreach (var part in content.EnumerateArray())
                {
                    if (AddContentPart(part, parts, index, textOnly) is { } error)
                    {
                        return error;
                    }
                }

                return null;
            case JsonValueKind.Undefined or JsonValueKind.Null:
                return null;
            default:
                return $"messages[{index}].content must be a string or an array of content parts.";
        }
    }

    private static string? AddContentPart(JsonElement part, List<GeminiPart> parts, int index, bool textOnly)
    {
        var type = part.ValueKind == JsonValueKind.Object && part.TryGetProperty("type"u8, out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        switch (type)
        {
            case "text" or "refusal":
                var text = part.TryGetProperty(type == "text" ? "text"u8 : "refusal"u8, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString()! : string.Empty;
                if (text.Length > 0)
                {
                    parts.Add(GeminiPart.Text(text));
                }

                return null;
            case "image_url" when !textOnly:
                var image = part.TryGetProperty("image_url"u8, out var i) ? i : default;
                var url = image.ValueKind == JsonValueKind.Object && image.TryGetProperty("url"u8, out var u) ? u : image;
                return url.ValueKind == JsonValueKind.String
                    ? AddMedia(url.GetString()!, "image/jpeg", parts, index)
                    : $"messages[{index}]: an image_url part needs a 'url'.";
            case "input_audio" when !textOnly:
                var audio = part.TryGetProperty("input_audio"u8, out var a) && a.ValueKind == JsonValueKind.Object ? a : default;
                if (audio.ValueKind != JsonValueKind.Object || !audio.TryGetProperty("data"u8, out var data) || data.ValueKind != JsonValueKind.String)
                {
                    return $"messages[{index}]: an input_audio part needs 'data'.";
                }

                var format = audio.TryGetProperty("format"u8, out var f) && f.ValueKind == JsonValueKind.String ? f.GetString() : "wav";
                parts.Add(new GeminiPart(GeminiPartKind.InlineData, data.GetString()!.AsMemory(), "audio/" + format));
                return null;
            case "file" when !textOnly:
                var file = part.TryGetProperty("file"u8, out var fl) && fl.ValueKind == JsonValueKind.Object ? fl : default;
                if (file.ValueKind != JsonValueKind.Object || !file.TryGetProperty("file_data"u8, out var fileData) || fileData.ValueKind != JsonValueKind.String)
                {
                    return $"messages[{index}]: only file parts with inline 'file_data' are supported by this provider (not 'file_id').";
                }

                var name = file.TryGetProperty("filename"u8, out var fn) && fn.ValueKind == JsonValueKind.String ? fn.GetString()! : string.Empty;
                var fileText = fileData.GetString()!;
                return fileText.StartsWith("data:", StringComparison.OrdinalIgnoreCase)
                    ? AddMedia(fileText, MimeTypes.Guess(name, "application/pdf"), parts, index)
                    : Added(parts, new GeminiPart(GeminiPartKind.InlineData, fileText.AsMemory(), MimeTypes.Guess(name, "application/pdf")));
            default:
                return textOnly && type is "image_url" or "input_audio" or "file"
                    ? $"messages[{index}]: '{type}' parts are only supported in user messages."
                    : $"messages[{index}]: content part type '{type}' is not supported by this provider.";
        }
    }

    private static string? Added(List<GeminiPart> parts, GeminiPart part)
    {
        parts.Add(part);
        return null;
    }

    /// <summary>A data: URL (base64) becomes inlineData; any other URL becomes fileData, typed by its extension.</summary>
    private static string? AddMedia(string url, string fallbackMime, List<GeminiPart> parts, int index)
    {
        if (!url.StartsWith("data:", StringComparison.OrdinalIgnoreCase))
        {
            parts.Add(new GeminiPart(GeminiPartKind.FileData, url.AsMemory(), MimeTypes.Guess(url, fallbackMime)));
            return null;
        }

        // data:[<mediatype>][;param]*;base64,<data>
        var comma = url.IndexOf(',', StringComparison.Ordinal);
        ReadOnlySpan<char> header = comma > 5 ? url.AsSpan(5, comma - 5) : [];
        if (comma < 0 || !header.EndsWith(";base64", StringComparison.OrdinalIgnoreCase))
        {
            return $"messages[{index}]: data: URLs must be base64-encoded (data:<mime>;base64,...).";
        }

        var semicolon = header.IndexOf(';');
        var mime = header[..semicolon].Trim();
        parts.Add(new GeminiPart(GeminiPartKind.InlineData, url.AsMemory(comma + 1), mime.IsEmpty ? fallbackMime : mime.ToString()));
        return null;
    }

    private string? AddToolCalls(JsonElement message, List<GeminiPart> parts, int index)
    {
        if (message.TryGetProperty("tool_calls"u8, out var calls) && calls.ValueKind == JsonValueKind.Array)
        {
            foreach (var call in calls.EnumerateArray())
            {
                var function = call.ValueKind == JsonValueKind.Object && call.TryGetProperty("function"u8, out var fn) && fn.ValueKind == JsonValueKind.Object ? fn : default;
                var name = function.ValueKind == JsonValueKind.Object && function.TryGetProperty("name"u8, out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null;
                if (string.IsNullOrEmpty(name))
                {
                    return $"messages[{index}].tool_calls: every call needs a function name.";
                }

                if (call.TryGetProperty("id"u8, out var id) && id.ValueKind == JsonValueKind.String)
                {
                    _callNames[id.GetString()!] = name;
                }

                parts.Add(FunctionCall(name, function.TryGetProperty("arguments"u8, out var args) ? args : default));
            }
        }

        // The legacy single call: "function_call": {"name", "arguments"}.
        if (message.TryGetProperty("function_call"u8, out var legacy) && legacy.ValueKind == JsonValueKind.Object
            && legacy.TryGetProperty("name"u8, out var legacyName) && legacyName.ValueKind == JsonValueKind.String)
        {
            parts.Add(FunctionCall(legacyName.GetString()!, legacy.TryGetProperty("arguments"u8, out var args) ? args : default));
        }

        return null;
    }

    private string? AddToolResult(JsonElement message, JsonElement content, List<GeminiPart> parts, int index)
    {
        var id = message.TryGetProperty("tool_call_id"u8, out var i) && i.ValueKind == JsonValueKind.String ? i.GetString() : null;
        if (id is null || !_callNames.TryGetValue(id, out var name))
        {
            return $"messages[{index}]: tool_call_id '{id}' does not match a tool call of an earlier assistant message (Gemini needs the function's name).";
        }

        parts.Add(FunctionResponse(name, TextOf(content)));
        return null;
    }

    /// <summary>
    /// Gemini's <c>args</c> is an object; OpenAI's <c>arguments</c> a JSON string. An empty string is <c>{}</c>;
    /// text that is not a JSON object (which models seldom produce) is kept as <c>{"arguments": text}</c>.
    /// </summary>
    private static GeminiPart FunctionCall(string name, JsonElement arguments)
    {
        var text = arguments.ValueKind switch
        {
            JsonValueKind.String => arguments.GetString()!,
            JsonValueKind.Object => arguments.GetRawText(),
            _ => string.Empty,
        };
        if (string.IsNullOrWhiteSpace(text))
        {
            return new GeminiPart(GeminiPartKind.FunctionCall, "{}".AsMemory(), Name: name);
        }

        if (IsJsonObject(text))
        {
            return new GeminiPart(GeminiPartKind.FunctionCall, text.AsMemory(), Name: name);
        }

        var wrapped = new ArrayBufferWriter<byte>(text.Length + 16);
        using (var writer = new Utf8JsonWriter(wrapped, GeminiJson.WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("arguments"u8, text);
            writer.WriteEndObject();
        }

        return new GeminiPart(GeminiPartKind.FunctionCall, Encoding.UTF8.GetString(wrapped.WrittenSpan).AsMemory(), Name: name);
    }

    /// <summary>The tool output under <c>response.content</c>: as a JSON object when it is one, else as text.</summary>
    private static GeminiPart FunctionResponse(string name, string output) =>
        new(GeminiPartKind.FunctionResponse, output.AsMemory(), Name: name, ValueIsJson: IsJsonObject(output));

    /// <summary>A tool message's content: a string, or the concatenated text parts of an array.</summary>
    private static string TextOf(JsonElement content)
    {
        if (content.ValueKind == JsonValueKind.String)
        {
            return content.GetString()!;
        }

        if (content.ValueKind != JsonValueKind.Array)
        {
            return string.Empty;
        }

        var text = new StringBuilder();
        foreach (var part in content.EnumerateArray())
        {
            if (part.ValueKind == JsonValueKind.Object && part.TryGetProperty("text"u8, out var t) && t.ValueKind == JsonValueKind.String)
            {
                text.Append(t.GetString());
            }
        }

        return text.ToString();
    }

    private static bool IsJsonObject(string text)
    {
        var trimmed = text.AsSpan().TrimStart();
        if (trimmed.IsEmpty || trimmed[0] != '{')
        {
            return false;
        }

        try
        {
            using var document = JsonDocument.Parse(text);
            return document.RootElement.ValueKind == JsonValueKind.Object;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}

/// <summary>MIME types from file extensions, for URLs and file names that carry no type of their own.</summary>
internal static class MimeTypes
{
    public static string Guess(string pathOrUrl, string fallback)
    {
        var path = Uri.TryCreate(pathOrUrl, UriKind.Absolute, out var uri) ? uri.AbsolutePath : pathOrUrl;
        return Path.GetExtension(path).ToLowerInvariant() switch
        {
            ".png" => "image/png",
            ".jpg" or ".jpeg" => "image/jpeg",
            ".gif" => "image/gif",
            ".webp" => "image/webp",
            ".heic" => "image/heic",
            ".heif" => "image/heif",
            ".pdf" => "application/pdf",
            ".txt" => "text/plain",
            ".wav" => "audio/wav",
            ".mp3" => "audio/mp3",
            _ => fallback,
        };
    }
}
