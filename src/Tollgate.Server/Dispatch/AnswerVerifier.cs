using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using NJsonSchema;

namespace Tollgate.Server.Dispatch;

/// <summary>
/// The check of verify-then-escalate: does every choice of a chat completion carry content that parses
/// as JSON and satisfies the request's <c>json_schema</c>? A choice cut by the length limit, a refusal or an
/// empty message fails. Compiled schemas are cached by their text: applications send the same few schemas.
/// </summary>
internal sealed class AnswerVerifier
{
    private const int MaxCachedSchemas = 256;

    private readonly ConcurrentDictionary<string, JsonSchema> _schemas = new(StringComparer.Ordinal);

    /// <summary>Null when the answer passes; otherwise why it failed (for the log and the route header, never the content).</summary>
    public async ValueTask<string?> CheckAsync(ReadOnlyMemory<byte> schemaJson, byte[] completionBody)
    {
        JsonSchema schema;
        try
        {
            schema = await GetSchemaAsync(schemaJson).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is JsonException or Newtonsoft.Json.JsonException or InvalidOperationException or NotSupportedException)
        {
            // The request's own schema is unusable: no answer could be checked, so none is escalated.
            return null;
        }

        List<string> contents;
        try
        {
            contents = ReadContents(completionBody);
        }
        catch (JsonException)
        {
            return "answer_not_json";
        }

        if (contents.Count == 0)
        {
            return "answer_empty";
        }

        foreach (var content in contents)
        {
            if (content.Length == 0)
            {
                return "answer_empty";
            }

            try
            {
                if (schema.Validate(content).Count > 0)
                {
                    return "schema_mismatch";
                }
            }
            catch (Newtonsoft.Json.JsonException)
            {
                return "answer_not_json";
            }
        }

        return null;
    }

    private async ValueTask<JsonSchema> GetSchemaAsync(ReadOnlyMemory<byte> schemaJson)
    {
        var text = Encoding.UTF8.GetString(schemaJson.Span);
        if (_schemas.TryGetValue(text, out var cached))
        {
            return cached;
        }

        var schema = await JsonSchema.FromJsonAsync(text).ConfigureAwait(false);
        if (_schemas.Count >= MaxCachedSchemas)
        {
            _schemas.Clear();
        }

        _schemas[text] = schema;
        return schema;
    }

    /// <summary>Each choice's message content; a choice stopped by the length limit or refused counts as empty.</summary>
    private static List<string> ReadContents(byte[] body)
    {
        using var document = JsonDocument.Parse(body);
        var contents = new List<string>(1);
        if (!document.RootElement.TryGetProperty("choices"u8, out var choices) || choices.ValueKind != JsonValueKind.Array)
        {
            return contents;
        }

        foreach (var choice in choices.EnumerateArray())
        {
            var truncated = choice.TryGetProperty("finish_reason"u8, out var finish) && finish.ValueKind == JsonValueKind.String && finish.ValueEquals("length"u8);
            var content = choice.TryGetProperty("message"u8, out var message)
                && message.TryGetProperty("content"u8, out var c) && c.ValueKind == JsonValueKind.String
                ? c.GetString()!
                : string.Empty;
            contents.Add(truncated ? string.Empty : content);
        }

        return contents;
    }
}
