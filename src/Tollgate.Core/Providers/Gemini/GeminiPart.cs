using System.Text.Json;

namespace Tollgate.Providers.Gemini;

/// <summary>The kinds of Gemini <c>Part</c> the request translation produces.</summary>
internal enum GeminiPartKind
{
    /// <summary><c>{"text": Value}</c>.</summary>
    Text,

    /// <summary><c>{"inlineData": {"mimeType", "data": Value}}</c>: base64 bytes from a data: URL.</summary>
    InlineData,

    /// <summary><c>{"fileData": {"mimeType", "fileUri": Value}}</c>: a URL the provider fetches.</summary>
    FileData,

    /// <summary><c>{"functionCall": {"name", "args": Value}}</c>: Value is a JSON object.</summary>
    FunctionCall,

    /// <summary><c>{"functionResponse": {"name", "response": {"content": Value}}}</c>: Value is a JSON object or text.</summary>
    FunctionResponse,
}

/// <summary>
/// One part of a Gemini <c>Content</c>. <see cref="Value"/> is a slice of the client's strings where it can be
/// (a data: URL's base64 is not copied), and is written without re-encoding.
/// </summary>
internal readonly record struct GeminiPart(GeminiPartKind Kind, ReadOnlyMemory<char> Value, string? MimeType = null, string? Name = null, bool ValueIsJson = false)
{
    public static GeminiPart Text(string text) => new(GeminiPartKind.Text, text.AsMemory());

    public void WriteTo(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        switch (Kind)
        {
            case GeminiPartKind.Text:
                writer.WriteString("text"u8, Value.Span);
                break;
            case GeminiPartKind.InlineData:
                writer.WriteStartObject("inlineData"u8);
                writer.WriteString("mimeType"u8, MimeType);
                writer.WriteString("data"u8, Value.Span);
                writer.WriteEndObject();
                break;
            case GeminiPartKind.FileData:
                writer.WriteStartObject("fileData"u8);
                writer.WriteString("mimeType"u8, MimeType);
                writer.WriteString("fileUri"u8, Value.Span);
                writer.WriteEndObject();
                break;
            case GeminiPartKind.FunctionCall:
                writer.WriteStartObject("functionCall"u8);
                writer.WriteString("name"u8, Name);
                writer.WritePropertyName("args"u8);
                writer.WriteRawValue(Value.Span, skipInputValidation: true); // validated as an object when built
                writer.WriteEndObject();
                break;
            case GeminiPartKind.FunctionResponse:
                writer.WriteStartObject("functionResponse"u8);
                writer.WriteString("name"u8, Name);
                writer.WriteStartObject("response"u8);
                writer.WritePropertyName("content"u8);
                if (ValueIsJson)
                {
                    writer.WriteRawValue(Value.Span, skipInputValidation: true); // validated as an object when built
                }
                else
                {
                    writer.WriteStringValue(Value.Span);
                }

                writer.WriteEndObject();
                writer.WriteEndObject();
                break;
        }

        writer.WriteEndObject();
    }
}

/// <summary>One Gemini <c>Content</c>: a role (<c>user</c> or <c>model</c>) and its parts.</summary>
internal sealed class GeminiTurn(string role, List<GeminiPart> parts)
{
    public string Role { get; } = role;

    public List<GeminiPart> Parts { get; } = parts;

    public void WriteTo(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("role"u8, Role);
        WriteParts(writer, Parts);
        writer.WriteEndObject();
    }

    public static void WriteParts(Utf8JsonWriter writer, List<GeminiPart> parts)
    {
        writer.WriteStartArray("parts"u8);
        foreach (var part in parts)
        {
            part.WriteTo(writer);
        }

        writer.WriteEndArray();
    }
}
