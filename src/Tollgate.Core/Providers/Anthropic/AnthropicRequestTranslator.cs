using System.Buffers;
using System.Text.Json;
using Tollgate.Requests;
using Tollgate.Routing;

namespace Tollgate.Providers.Anthropic;

/// <summary>What the response side needs to know about how a request was translated.</summary>
/// <param name="ResponseToolName">The forced tool standing in for <c>response_format: json_schema</c>, whose input is the answer; null when not used.</param>
internal sealed record AnthropicCall(string? ResponseToolName);

/// <summary>
/// Builds an Anthropic Messages API body from a client's OpenAI chat request with <see cref="Utf8JsonWriter"/>.
/// See docs/providers/anthropic.md for every rule; in short: system/developer messages go to <c>system</c>,
/// turns are merged to alternate, <c>max_tokens</c> defaults to the deployment's limit, tools and
/// <c>tool_choice</c> are renamed, <c>json_schema</c> becomes a forced tool, and OpenAI-only knobs
/// (<c>seed</c>, penalties, <c>logprobs</c>, ...) are dropped because Anthropic rejects unknown fields.
/// </summary>
internal static class AnthropicRequestTranslator
{
    /// <summary>Name of the tool that carries a <c>json_schema</c> answer. Reserved: a client tool may not use it.</summary>
    public const string ResponseToolName = "json_response";

    // Used when a deployment is configured with maxOutputTokens 0 and the client sets no limit: Anthropic requires one.
    private const int FallbackMaxTokens = 4_096;

    // As deep as RequestParser accepts, so a body that passed validation always parses here (deep tool schemas).
    internal static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 128 };

    private const string JsonObjectInstruction =
        "Respond with a single valid JSON object and nothing else: no prose before or after it and no Markdown code fences.";

    private const string ResponseToolInstruction =
        "When you give your final answer, call the json_response tool with it instead of answering in text.";

    /// <summary>Writes the upstream body. Throws <see cref="RequestTranslationException"/> for requests Anthropic cannot serve.</summary>
    public static AnthropicCall Write(ParsedRequest request, Deployment deployment, IBufferWriter<byte> output)
    {
        if (request.Choices > 1)
        {
            throw new RequestTranslationException($"Anthropic does not support n>1 (n={request.Choices}): it returns one choice per request. Send n=1, or several requests.");
        }

        using var document = JsonDocument.Parse(request.Body, DocumentOptions);
        var root = document.RootElement;
        if (root.TryGetProperty("functions"u8, out var functions) && functions.ValueKind != JsonValueKind.Null)
        {
            throw new RequestTranslationException("The legacy 'functions' parameter is not supported for Anthropic deployments; send 'tools' instead.");
        }

        var conversation = AnthropicMessageTranslator.Collect(root.GetProperty("messages"u8));
        var tools = root.TryGetProperty("tools"u8, out var t) && t.ValueKind == JsonValueKind.Array && t.GetArrayLength() > 0 ? t : default;
        var format = ReadResponseFormat(root, tools, out var schema);

        using var writer = new Utf8JsonWriter(output);
        writer.WriteStartObject();
        writer.WriteString("model"u8, deployment.UpstreamModel);
        writer.WriteNumber("max_tokens"u8, request.MaxTokens ?? (deployment.MaxOutputTokens > 0 ? deployment.MaxOutputTokens : FallbackMaxTokens));
        WriteSystem(writer, conversation.System, format, tools);
        writer.WriteStartArray("messages"u8);
        foreach (var turn in conversation.Turns)
        {
            writer.WriteStartObject();
            writer.WriteString("role"u8, turn.Role);
            writer.WriteStartArray("content"u8);
            foreach (var block in turn.Blocks)
            {
                AnthropicMessageTranslator.WriteBlock(writer, block);
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        WriteSampling(writer, root);
        if (request.Stream)
        {
            writer.WriteBoolean("stream"u8, true);
        }

        if (root.TryGetProperty("user"u8, out var user) && user.ValueKind == JsonValueKind.String && user.GetString()!.Length > 0)
        {
            writer.WriteStartObject("metadata"u8);
            writer.WritePropertyName("user_id"u8);
            user.WriteTo(writer);
            writer.WriteEndObject();
        }

        WriteTools(writer, root, tools, format == ResponseFormat.JsonSchema ? schema : default);
        writer.WriteEndObject();
        writer.Flush();
        return new AnthropicCall(format == ResponseFormat.JsonSchema ? ResponseToolName : null);
    }

    private enum ResponseFormat
    {
        Text,
        JsonObject,
        JsonSchema,
    }

    private static ResponseFormat ReadResponseFormat(JsonElement root, JsonElement tools, out JsonElement jsonSchema)
    {
        jsonSchema = default;
        if (!root.TryGetProperty("response_format"u8, out var format) || format.ValueKind != JsonValueKind.Object
            || !format.TryGetProperty("type"u8, out var type))
        {
            return ResponseFormat.Text;
        }

        if (type.ValueEquals("json_object"u8))
        {
            return ResponseFormat.JsonObject;
        }

        if (!type.ValueEquals("json_schema"u8))
        {
            return ResponseFormat.Text;
        }

        if (!format.TryGetProperty("json_schema"u8, out jsonSchema) || jsonSchema.ValueKind != JsonValueKind.Object)
        {
            throw new RequestTranslationException("response_format.json_schema must be an object with a 'schema'.");
        }

        if (tools.ValueKind == JsonValueKind.Array)
        {
            foreach (var tool in tools.EnumerateArray())
            {
                if (tool.TryGetProperty("function"u8, out var f) && f.ValueKind == JsonValueKind.Object
                    && f.TryGetProperty("name"u8, out var name) && name.ValueKind == JsonValueKind.String && name.ValueEquals(ResponseToolName))
                {
                    throw new RequestTranslationException($"The tool name '{ResponseToolName}' is reserved for response_format json_schema on Anthropic deployments.");
                }
            }
        }

        return ResponseFormat.JsonSchema;
    }

    private static void WriteSystem(Utf8JsonWriter writer, List<ContentBlock> system, ResponseFormat format, JsonElement tools)
    {
        // json_schema with client tools: tool_choice cannot force the answer tool, so the model is told to use it.
        var instruction = format switch
        {
            ResponseFormat.JsonObject => JsonObjectInstruction,
            ResponseFormat.JsonSchema when tools.ValueKind == JsonValueKind.Array => ResponseToolInstruction,
            _ => null,
        };
        if (system.Count == 0 && instruction is null)
        {
            return;
        }

        writer.WriteStartArray("system"u8);
        foreach (var block in system)
        {
            AnthropicMessageTranslator.WriteBlock(writer, block);
        }

        if (instruction is not null)
        {
            writer.WriteStartObject();
            writer.WriteString("type"u8, "text"u8);
            writer.WriteString("text"u8, instruction);
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }

    private static void WriteSampling(Utf8JsonWriter writer, JsonElement root)
    {
        if (Number(root, "temperature"u8) is { } temperature)
        {
            // OpenAI accepts 0..2, Anthropic 0..1: values above 1 are clamped rather than refused.
            writer.WriteNumber("temperature"u8, Math.Clamp(temperature, 0, 1));
        }

        if (Number(root, "top_p"u8) is { } topP)
        {
            writer.WriteNumber("top_p"u8, topP);
        }

        // CUSTOM: top_k is not OpenAI's, but several OpenAI-compatible servers accept it and Anthropic has it.
        if (root.TryGetProperty("top_k"u8, out var topK) && topK.ValueKind == JsonValueKind.Number && topK.TryGetInt32(out var k) && k > 0)
        {
            writer.WriteNumber("top_k"u8, k);
        }

        if (!root.TryGetProperty("stop"u8, out var stop) || stop.ValueKind is not (JsonValueKind.String or JsonValueKind.Array))
        {
            return;
        }

        var sequences = new List<string>();
        if (stop.ValueKind == JsonValueKind.String)
        {
            sequences.Add(stop.GetString()!);
        }
        else
        {
            foreach (var item in stop.EnumerateArray())
            {
                if (item.ValueKind == JsonValueKind.String)
                {
                    sequences.Add(item.GetString()!);
                }
            }
        }

        // Anthropic refuses stop sequences that are empty or only whitespace (OpenAI accepts "\n"); those are dropped.
        sequences.RemoveAll(string.IsNullOrWhiteSpace);
        if (sequences.Count == 0)
        {
            return;
        }

        writer.WriteStartArray("stop_sequences"u8);
        foreach (var sequence in sequences)
        {
            writer.WriteStringValue(sequence);
        }

        writer.WriteEndArray();
    }

    private static double? Number(JsonElement root, ReadOnlySpan<byte> name)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number
            ? value.GetDouble()
            : throw new RequestTranslationException($"'{System.Text.Encoding.UTF8.GetString(name)}' must be a number.");
    }

    private static void WriteTools(Utf8JsonWriter writer, JsonElement root, JsonElement tools, JsonElement jsonSchema)
    {
        var hasClientTools = tools.ValueKind == JsonValueKind.Array;
        var answerTool = jsonSchema.ValueKind == JsonValueKind.Object;
        if (!hasClientTools && !answerTool)
        {
            return;
        }

        writer.WriteStartArray("tools"u8);
        if (hasClientTools)
        {
            var index = 0;
            foreach (var tool in tools.EnumerateArray())
            {
                WriteTool(writer, tool, $"tools[{index++}]");
            }
        }

        if (answerTool)
        {
            writer.WriteStartObject();
            writer.WriteString("name"u8, ResponseToolName);
            var description = jsonSchema.TryGetProperty("description"u8, out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
            writer.WriteString("description"u8, description ?? "Give the final answer as JSON matching this schema.");
            writer.WritePropertyName("input_schema"u8);
            WriteSchema(writer, jsonSchema.TryGetProperty("schema"u8, out var schema) ? schema : default);
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        WriteToolChoice(writer, root, hasClientTools, answerTool);
    }

    private static void WriteTool(Utf8JsonWriter writer, JsonElement tool, string at)
    {
        if (tool.ValueKind != JsonValueKind.Object || !tool.TryGetProperty("type"u8, out var type) || !type.ValueEquals("function"u8))
        {
            throw new RequestTranslationException($"{at}: only tools of type 'function' can be sent to Anthropic.");
        }

        if (!tool.TryGetProperty("function"u8, out var function) || function.ValueKind != JsonValueKind.Object
            || !function.TryGetProperty("name"u8, out var name) || name.ValueKind != JsonValueKind.String)
        {
            throw new RequestTranslationException($"{at}.function must be an object with a 'name'.");
        }

        writer.WriteStartObject();
        writer.WritePropertyName("name"u8);
        name.WriteTo(writer);
        if (function.TryGetProperty("description"u8, out var description) && description.ValueKind == JsonValueKind.String)
        {
            writer.WritePropertyName("description"u8);
            description.WriteTo(writer);
        }

        writer.WritePropertyName("input_schema"u8);
        WriteSchema(writer, function.TryGetProperty("parameters"u8, out var parameters) ? parameters : default);
        writer.WriteEndObject();
    }

    /// <summary>The JSON schema as given; a missing one is "an object with no properties" (OpenAI's meaning of no parameters).</summary>
    private static void WriteSchema(Utf8JsonWriter writer, JsonElement schema)
    {
        if (schema.ValueKind == JsonValueKind.Object)
        {
            schema.WriteTo(writer);
            return;
        }

        writer.WriteStartObject();
        writer.WriteString("type"u8, "object"u8);
        writer.WriteStartObject("properties"u8);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    /// <summary>
    /// auto/none/required/{function} become auto/none/any/tool. <c>parallel_tool_calls: false</c> becomes
    /// <c>disable_parallel_tool_use</c>. A json_schema answer tool is forced when the client has no tools of
    /// its own; with client tools the model must call one of them or the answer tool (<c>any</c>).
    /// </summary>
    private static void WriteToolChoice(Utf8JsonWriter writer, JsonElement root, bool hasClientTools, bool answerTool)
    {
        string type;
        string? name = null;
        var choice = root.TryGetProperty("tool_choice"u8, out var c) ? c : default;
        if (choice.ValueKind == JsonValueKind.String)
        {
            type = choice.GetString() switch
            {
                "none" => "none",
                "required" => "any",
                "auto" => "auto",
                var other => throw new RequestTranslationException($"tool_choice '{other}' is not one of none, auto, required."),
            };
        }
        else if (choice.ValueKind == JsonValueKind.Object)
        {
            if (!choice.TryGetProperty("function"u8, out var function) || function.ValueKind != JsonValueKind.Object
                || !function.TryGetProperty("name"u8, out var n) || n.ValueKind != JsonValueKind.String)
            {
                throw new RequestTranslationException("tool_choice must name a function: {\"type\":\"function\",\"function\":{\"name\":...}}.");
            }

            type = "tool";
            name = n.GetString();
        }
        else
        {
            type = "auto";
        }

        if (answerTool && !hasClientTools)
        {
            (type, name) = ("tool", ResponseToolName);
        }
        else if (answerTool && type is "auto" or "none")
        {
            // With "none" the client's tools may not be called, so the answer tool is the only way out.
            (type, name) = type == "none" ? ("tool", ResponseToolName) : ("any", null);
        }

        writer.WriteStartObject("tool_choice"u8);
        writer.WriteString("type"u8, type);
        if (name is not null)
        {
            writer.WriteString("name"u8, name);
        }

        if (type != "none" && root.TryGetProperty("parallel_tool_calls"u8, out var parallel) && parallel.ValueKind == JsonValueKind.False)
        {
            writer.WriteBoolean("disable_parallel_tool_use"u8, true);
        }

        writer.WriteEndObject();
    }
}
