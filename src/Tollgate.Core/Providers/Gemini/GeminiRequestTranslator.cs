using System.Buffers;
using System.Text.Json;

namespace Tollgate.Providers.Gemini;

/// <summary>
/// An OpenAI chat completion request → a Gemini <c>GenerateContentRequest</c>: <c>contents</c> and
/// <c>systemInstruction</c> (see <see cref="GeminiContentBuilder"/>), <c>tools</c> and <c>toolConfig</c>,
/// and <c>generationConfig</c>. Fields without a Gemini equivalent (logprobs, logit_bias, user, metadata,
/// parallel_tool_calls, service_tier...) are left out; docs/providers/gemini.md lists them.
/// </summary>
internal static class GeminiRequestTranslator
{
    /// <summary>Writes the Gemini request; returns an error message for a 400, or null.</summary>
    /// <exception cref="JsonException">The body is not JSON (the gateway validated it, so this is a bug upstream of the adapter).</exception>
    public static string? Write(ReadOnlyMemory<byte> openAiBody, IBufferWriter<byte> output)
    {
        using var document = JsonDocument.Parse(openAiBody);
        var root = document.RootElement;
        if (!root.TryGetProperty("messages"u8, out var messages) || messages.ValueKind != JsonValueKind.Array)
        {
            return "'messages' must be an array of messages.";
        }

        var contents = new GeminiContentBuilder();
        if (contents.Add(messages) is { } error)
        {
            return error;
        }

        using var writer = new Utf8JsonWriter(output, GeminiJson.WriterOptions);
        writer.WriteStartObject();
        writer.WriteStartArray("contents"u8);
        foreach (var turn in contents.Turns)
        {
            turn.WriteTo(writer);
        }

        writer.WriteEndArray();
        if (contents.System.Count > 0)
        {
            writer.WriteStartObject("systemInstruction"u8);
            GeminiTurn.WriteParts(writer, contents.System);
            writer.WriteEndObject();
        }

        if (WriteTools(writer, root))
        {
            WriteToolConfig(writer, root);
        }

        WriteGenerationConfig(writer, root);
        writer.WriteEndObject();
        return null;
    }

    /// <summary><c>tools</c> (and the legacy <c>functions</c>) of type function → one Gemini tool of function declarations.</summary>
    private static bool WriteTools(Utf8JsonWriter writer, JsonElement root)
    {
        var count = 0;
        if (root.TryGetProperty("tools"u8, out var tools) && tools.ValueKind == JsonValueKind.Array)
        {
            foreach (var tool in tools.EnumerateArray())
            {
                // Only function tools translate; built-in OpenAI tools (web search...) have no Gemini twin here.
                if (tool.ValueKind == JsonValueKind.Object && tool.TryGetProperty("function"u8, out var function) && function.ValueKind == JsonValueKind.Object
                    && (!tool.TryGetProperty("type"u8, out var type) || type.ValueEquals("function"u8)))
                {
                    WriteDeclaration(writer, function, ref count);
                }
            }
        }

        if (root.TryGetProperty("functions"u8, out var functions) && functions.ValueKind == JsonValueKind.Array)
        {
            foreach (var function in functions.EnumerateArray())
            {
                if (function.ValueKind == JsonValueKind.Object)
                {
                    WriteDeclaration(writer, function, ref count);
                }
            }
        }

        if (count > 0)
        {
            writer.WriteEndArray();
            writer.WriteEndObject();
            writer.WriteEndArray();
        }

        return count > 0;
    }

    private static void WriteDeclaration(Utf8JsonWriter writer, JsonElement function, ref int count)
    {
        if (!function.TryGetProperty("name"u8, out var name) || name.ValueKind != JsonValueKind.String)
        {
            return;
        }

        if (count++ == 0)
        {
            writer.WriteStartArray("tools"u8);
            writer.WriteStartObject();
            writer.WriteStartArray("functionDeclarations"u8);
        }

        writer.WriteStartObject();
        writer.WriteString("name"u8, name.GetString());
        if (function.TryGetProperty("description"u8, out var description) && description.ValueKind == JsonValueKind.String)
        {
            writer.WriteString("description"u8, description.GetString());
        }

        if (function.TryGetProperty("parameters"u8, out var parameters))
        {
            GeminiSchema.WriteParameters(writer, parameters);
        }

        writer.WriteEndObject();
    }

    /// <summary>
    /// <c>tool_choice</c> → <c>toolConfig.functionCallingConfig</c>: auto → AUTO, none → NONE, required → ANY,
    /// a named function → ANY limited to it. The legacy <c>function_call</c> is read the same way.
    /// </summary>
    private static void WriteToolConfig(Utf8JsonWriter writer, JsonElement root)
    {
        var choice = root.TryGetProperty("tool_choice"u8, out var c) ? c : root.TryGetProperty("function_call"u8, out var legacy) ? legacy : default;
        string? mode = null;
        var allowed = new List<string>();
        if (choice.ValueKind == JsonValueKind.String)
        {
            mode = choice.GetString() switch
            {
                "auto" => "AUTO",
                "none" => "NONE",
                "required" => "ANY",
                _ => null,
            };
        }
        else if (choice.ValueKind == JsonValueKind.Object)
        {
            if (choice.TryGetProperty("allowed_tools"u8, out var allowedTools) && allowedTools.ValueKind == JsonValueKind.Object)
            {
                // Gemini limits the callable functions only in ANY mode; "auto" over a subset stays plain AUTO.
                var required = allowedTools.TryGetProperty("mode"u8, out var m) && m.ValueEquals("required"u8);
                mode = required ? "ANY" : "AUTO";
                if (required && allowedTools.TryGetProperty("tools"u8, out var list) && list.ValueKind == JsonValueKind.Array)
                {
                    foreach (var tool in list.EnumerateArray())
                    {
                        AddName(tool, allowed);
                    }
                }
            }
            else
            {
                AddName(choice, allowed);
                mode = allowed.Count > 0 ? "ANY" : null;
            }
        }

        if (mode is null)
        {
            return;
        }

        writer.WriteStartObject("toolConfig"u8);
        writer.WriteStartObject("functionCallingConfig"u8);
        writer.WriteString("mode"u8, mode);
        if (allowed.Count > 0)
        {
            writer.WriteStartArray("allowedFunctionNames"u8);
            foreach (var name in allowed)
            {
                writer.WriteStringValue(name);
            }

            writer.WriteEndArray();
        }

        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    /// <summary>The name of <c>{"type": "function", "function": {"name"}}</c> or of the legacy <c>{"name"}</c>.</summary>
    private static void AddName(JsonElement tool, List<string> names)
    {
        var holder = tool.ValueKind == JsonValueKind.Object && tool.TryGetProperty("function"u8, out var function) ? function : tool;
        if (holder.ValueKind == JsonValueKind.Object && holder.TryGetProperty("name"u8, out var name) && name.ValueKind == JsonValueKind.String)
        {
            names.Add(name.GetString()!);
        }
    }

    private static void WriteGenerationConfig(Utf8JsonWriter writer, JsonElement root)
    {
        var section = new LazyObject(writer, "generationConfig");
        var maxTokens = Number(root, "max_completion_tokens"u8) ?? Number(root, "max_tokens"u8);
        if (maxTokens is { } max)
        {
            section.Open().WritePropertyName("maxOutputTokens"u8);
            max.WriteTo(writer);
        }

        CopyNumber(section, root, "temperature"u8, "temperature"u8);
        CopyNumber(section, root, "top_p"u8, "topP"u8);
        CopyNumber(section, root, "top_k"u8, "topK"u8); // not an OpenAI field, but several SDKs send it
        CopyNumber(section, root, "n"u8, "candidateCount"u8);
        CopyNumber(section, root, "seed"u8, "seed"u8);

        // Penalties are sent only when set to something other than OpenAI's default 0: several Gemini models reject them outright.
        CopyNumber(section, root, "presence_penalty"u8, "presencePenalty"u8, skipZero: true);
        CopyNumber(section, root, "frequency_penalty"u8, "frequencyPenalty"u8, skipZero: true);

        if (root.TryGetProperty("stop"u8, out var stop) && stop.ValueKind is JsonValueKind.String or JsonValueKind.Array)
        {
            section.Open().WriteStartArray("stopSequences"u8);
            if (stop.ValueKind == JsonValueKind.String)
            {
                writer.WriteStringValue(stop.GetString());
            }
            else
            {
                foreach (var sequence in stop.EnumerateArray())
                {
                    if (sequence.ValueKind == JsonValueKind.String)
                    {
                        writer.WriteStringValue(sequence.GetString());
                    }
                }
            }

            writer.WriteEndArray();
        }

        WriteResponseFormat(section, root);
        WriteThinking(section, root);
        section.Close();
    }

    /// <summary>
    /// json_object → <c>responseMimeType: application/json</c>; json_schema → the same plus <c>responseJsonSchema</c>,
    /// the client's JSON Schema as is (Gemini accepts JSON Schema there, $ref and additionalProperties included),
    /// rather than a lossy conversion to the OpenAPI subset of <c>responseSchema</c>.
    /// </summary>
    private static void WriteResponseFormat(LazyObject section, JsonElement root)
    {
        if (!root.TryGetProperty("response_format"u8, out var format) || format.ValueKind != JsonValueKind.Object
            || !format.TryGetProperty("type"u8, out var type) || type.ValueKind != JsonValueKind.String)
        {
            return;
        }

        if (type.ValueEquals("json_object"u8))
        {
            section.Open().WriteString("responseMimeType"u8, "application/json"u8);
        }
        else if (type.ValueEquals("json_schema"u8))
        {
            var writer = section.Open();
            writer.WriteString("responseMimeType"u8, "application/json"u8);
            if (format.TryGetProperty("json_schema"u8, out var jsonSchema) && jsonSchema.ValueKind == JsonValueKind.Object
                && jsonSchema.TryGetProperty("schema"u8, out var schema) && schema.ValueKind == JsonValueKind.Object)
            {
                writer.WritePropertyName("responseJsonSchema"u8);
                schema.WriteTo(writer);
            }
        }
    }

    /// <summary>
    /// <c>reasoning_effort</c> → <c>thinkingConfig.thinkingBudget</c>, with the budgets Google documents for its own
    /// OpenAI-compatible endpoint: none → 0 (thinking off), minimal/low → 1024, medium → 8192, high → 24576.
    /// </summary>
    private static void WriteThinking(LazyObject section, JsonElement root)
    {
        if (!root.TryGetProperty("reasoning_effort"u8, out var effort) || effort.ValueKind != JsonValueKind.String)
        {
            return;
        }

        int? budget = effort.GetString() switch
        {
            "none" => 0,
            "minimal" or "low" => 1024,
            "medium" => 8192,
            "high" => 24576,
            _ => null,
        };
        if (budget is { } tokens)
        {
            var writer = section.Open();
            writer.WriteStartObject("thinkingConfig"u8);
            writer.WriteNumber("thinkingBudget"u8, tokens);
            writer.WriteEndObject();
        }
    }

    private static JsonElement? Number(JsonElement root, ReadOnlySpan<byte> name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number ? value : null;

    private static void CopyNumber(LazyObject section, JsonElement root, ReadOnlySpan<byte> from, ReadOnlySpan<byte> to, bool skipZero = false)
    {
        if (Number(root, from) is not { } value || (skipZero && value.TryGetDouble(out var number) && number == 0))
        {
            return;
        }

        section.Open().WritePropertyName(to);
        value.WriteTo(section.Writer);
    }

    /// <summary>An object property written only if something goes into it (Gemini needs no empty generationConfig).</summary>
    private sealed class LazyObject(Utf8JsonWriter writer, string name)
    {
        private bool _open;

        public Utf8JsonWriter Writer => writer;

        public Utf8JsonWriter Open()
        {
            if (!_open)
            {
                writer.WriteStartObject(name);
                _open = true;
            }

            return writer;
        }

        public void Close()
        {
            if (_open)
            {
                writer.WriteEndObject();
            }
        }
    }
}
