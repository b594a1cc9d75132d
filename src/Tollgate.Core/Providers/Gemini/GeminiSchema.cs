using System.Text.Json;

namespace Tollgate.Providers.Gemini;

/// <summary>
/// JSON Schema, as OpenAI function tools carry it, → Gemini's <c>Schema</c> (an OpenAPI 3.0 subset) for
/// <c>functionDeclarations[].parameters</c>. Gemini rejects keywords outside its subset, so the schema is
/// rewritten rather than copied: types in upper case (<c>["string","null"]</c> → <c>STRING</c> + <c>nullable</c>),
/// local <c>$ref</c>s inlined (bounded depth), <c>oneOf</c> → <c>anyOf</c>, <c>const</c> → a one-value
/// <c>enum</c>, string formats other than <c>enum</c>/<c>date-time</c> dropped, <c>required</c> limited to
/// declared properties; everything else (<c>additionalProperties</c>, <c>$schema</c>, <c>not</c>...) is left out.
/// </summary>
internal static class GeminiSchema
{
    // Nesting limit, resolved $refs included: recursive schemas are cut here instead of looping.
    private const int MaxDepth = 24;

    // Gemini Schema keywords whose JSON Schema meaning is the same and whose values are copied as they are.
    private static readonly string[] CopiedKeywords =
        ["minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties", "minimum", "maximum", "pattern", "default", "example", "propertyOrdering"];

    /// <summary>Writes <c>"parameters": {...}</c>, or nothing for a function without parameters (Gemini rejects an OBJECT with no properties).</summary>
    public static void WriteParameters(Utf8JsonWriter writer, JsonElement schema)
    {
        if (schema.ValueKind != JsonValueKind.Object)
        {
            return;
        }

        var resolved = Resolve(schema, schema, 0, out _);
        if (!resolved.TryGetProperty("properties"u8, out var properties) || properties.ValueKind != JsonValueKind.Object
            || !HasAny(properties))
        {
            return;
        }

        writer.WritePropertyName("parameters"u8);
        Write(writer, schema, schema, 0, null);
    }

    private static void Write(Utf8JsonWriter writer, JsonElement schema, JsonElement root, int depth, JsonElement? outerDescription)
    {
        schema = Resolve(schema, root, depth, out depth);
        if (schema.ValueKind != JsonValueKind.Object || depth > MaxDepth)
        {
            // true, {}, or a recursion cut: Gemini has no "any" type; an empty schema leaves the value unconstrained.
            writer.WriteStartObject();
            writer.WriteEndObject();
            return;
        }

        // {"allOf": [X], "description": ...} (how pydantic annotates a $ref) is X with the outer description.
        if (schema.TryGetProperty("allOf"u8, out var allOf) && allOf.ValueKind == JsonValueKind.Array && allOf.GetArrayLength() == 1
            && !schema.TryGetProperty("type"u8, out _) && !schema.TryGetProperty("properties"u8, out _))
        {
            Write(writer, allOf[0], root, depth + 1, schema.TryGetProperty("description"u8, out var d) ? d : outerDescription);
            return;
        }

        writer.WriteStartObject();
        var (type, nullable, otherTypes) = ReadType(schema);
        var variants = schema.TryGetProperty("anyOf"u8, out var anyOf) && anyOf.ValueKind == JsonValueKind.Array ? anyOf
            : schema.TryGetProperty("oneOf"u8, out var oneOf) && oneOf.ValueKind == JsonValueKind.Array ? oneOf
            : default;
        if (variants.ValueKind == JsonValueKind.Array)
        {
            nullable |= WriteVariants(writer, variants, root, depth);
        }
        else if (otherTypes is not null)
        {
            // "type": ["string", "integer"]: one variant per type.
            writer.WriteStartArray("anyOf"u8);
            foreach (var other in otherTypes)
            {
                writer.WriteStartObject();
                writer.WriteString("type"u8, other);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            type = null;
        }

        if (type is not null)
        {
            writer.WriteString("type"u8, type);
        }

        if (nullable || (schema.TryGetProperty("nullable"u8, out var n) && n.ValueKind == JsonValueKind.True))
        {
            writer.WriteBoolean("nullable"u8, true);
        }

        CopyString(writer, schema, "title"u8);
        if (outerDescription is { ValueKind: JsonValueKind.String } description)
        {
            writer.WriteString("description"u8, description.GetString());
        }
        else
        {
            CopyString(writer, schema, "description"u8);
        }

        WriteFormat(writer, schema, type);
        WriteEnum(writer, schema);
        WriteProperties(writer, schema, root, depth);
        if (schema.TryGetProperty("items"u8, out var items))
        {
            var single = items.ValueKind == JsonValueKind.Array ? (items.GetArrayLength() > 0 ? items[0] : default) : items;
            if (single.ValueKind is JsonValueKind.Object or JsonValueKind.True)
            {
                writer.WritePropertyName("items"u8);
                Write(writer, single, root, depth + 1, null);
            }
        }

        foreach (var keyword in CopiedKeywords)
        {
            if (schema.TryGetProperty(keyword, out var value) && value.ValueKind != JsonValueKind.Null)
            {
                writer.WritePropertyName(keyword);
                value.WriteTo(writer);
            }
        }

        writer.WriteEndObject();
    }

    /// <summary>The Gemini type, whether null is allowed, and the types when several non-null ones are listed.</summary>
    private static (string? Type, bool Nullable, List<string>? Others) ReadType(JsonElement schema)
    {
        if (schema.TryGetProperty("type"u8, out var type))
        {
            if (type.ValueKind == JsonValueKind.String)
            {
                var name = type.GetString()!;
                return name == "null" ? (null, true, null) : (name.ToUpperInvariant(), false, null);
            }

            if (type.ValueKind == JsonValueKind.Array)
            {
                var nullable = false;
                var names = new List<string>();
                foreach (var item in type.EnumerateArray())
                {
                    if (item.ValueKind == JsonValueKind.String && item.GetString() is { } name)
                    {
                        if (name == "null")
                        {
                            nullable = true;
                        }
                        else
                        {
                            names.Add(name.ToUpperInvariant());
                        }
                    }
                }

                return names.Count == 1 ? (names[0], nullable, null) : (null, nullable, names.Count > 1 ? names : null);
            }
        }

        // No type: infer it from the keywords that only make sense for one.
        if (schema.TryGetProperty("properties"u8, out _))
        {
            return ("OBJECT", false, null);
        }

        if (schema.TryGetProperty("items"u8, out _))
        {
            return ("ARRAY", false, null);
        }

        return schema.TryGetProperty("enum"u8, out _) || (schema.TryGetProperty("const"u8, out var c) && c.ValueKind == JsonValueKind.String)
            ? ("STRING", false, null)
            : (null, false, null);
    }

    /// <summary>anyOf / oneOf: every variant but <c>{"type": "null"}</c>, which becomes <c>nullable</c>. Returns whether it did.</summary>
    private static bool WriteVariants(Utf8JsonWriter writer, JsonElement variants, JsonElement root, int depth)
    {
        var nullable = false;
        writer.WriteStartArray("anyOf"u8);
        foreach (var variant in variants.EnumerateArray())
        {
            if (variant.ValueKind == JsonValueKind.Object && variant.TryGetProperty("type"u8, out var t)
                && t.ValueKind == JsonValueKind.String && t.ValueEquals("null"u8))
            {
                nullable = true;
                continue;
            }

            Write(writer, variant, root, depth + 1, null);
        }

        writer.WriteEndArray();
        return nullable;
    }

    private static void WriteFormat(Utf8JsonWriter writer, JsonElement schema, string? type)
    {
        if (!schema.TryGetProperty("format"u8, out var format) || format.ValueKind != JsonValueKind.String)
        {
            return;
        }

        var keep = type switch
        {
            "STRING" => format.ValueEquals("enum"u8) || format.ValueEquals("date-time"u8),
            "INTEGER" => format.ValueEquals("int32"u8) || format.ValueEquals("int64"u8),
            "NUMBER" => format.ValueEquals("float"u8) || format.ValueEquals("double"u8),
            _ => false,
        };
        if (keep)
        {
            writer.WriteString("format"u8, format.GetString());
        }
    }

    /// <summary>Gemini enums are lists of strings: string enums are kept, <c>const</c> becomes a one-value enum, others are dropped.</summary>
    private static void WriteEnum(Utf8JsonWriter writer, JsonElement schema)
    {
        if (schema.TryGetProperty("enum"u8, out var values) && values.ValueKind == JsonValueKind.Array && values.GetArrayLength() > 0)
        {
            foreach (var value in values.EnumerateArray())
            {
                if (value.ValueKind != JsonValueKind.String)
                {
                    return;
                }
            }

            writer.WritePropertyName("enum"u8);
            values.WriteTo(writer);
        }
        else if (schema.TryGetProperty("const"u8, out var constant) && constant.ValueKind == JsonValueKind.String)
        {
            writer.WriteStartArray("enum"u8);
            writer.WriteStringValue(constant.GetString());
            writer.WriteEndArray();
        }
    }

    private static void WriteProperties(Utf8JsonWriter writer, JsonElement schema, JsonElement root, int depth)
    {
        if (!schema.TryGetProperty("properties"u8, out var properties) || properties.ValueKind != JsonValueKind.Object
            || !HasAny(properties))
        {
            return;
        }

        writer.WriteStartObject("properties"u8);
        foreach (var property in properties.EnumerateObject())
        {
            writer.WritePropertyName(property.Name);
            Write(writer, property.Value, root, depth + 1, null);
        }

        writer.WriteEndObject();
        if (schema.TryGetProperty("required"u8, out var required) && required.ValueKind == JsonValueKind.Array)
        {
            writer.WriteStartArray("required"u8);
            foreach (var name in required.EnumerateArray())
            {
                // Gemini rejects a required name that is not a declared property.
                if (name.ValueKind == JsonValueKind.String && properties.TryGetProperty(name.GetString()!, out _))
                {
                    writer.WriteStringValue(name.GetString());
                }
            }

            writer.WriteEndArray();
        }
    }

    /// <summary>Follows <c>$ref</c> JSON pointers into the root document (<c>#/$defs/X</c>, <c>#/definitions/X</c>...).</summary>
    private static JsonElement Resolve(JsonElement schema, JsonElement root, int depth, out int resolvedDepth)
    {
        while (depth <= MaxDepth && schema.ValueKind == JsonValueKind.Object && schema.TryGetProperty("$ref"u8, out var reference)
            && reference.ValueKind == JsonValueKind.String && reference.GetString() is { } pointer && pointer.StartsWith('#'))
        {
            var target = root;
            foreach (var token in pointer[1..].Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                var name = token.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
                if (target.ValueKind != JsonValueKind.Object || !target.TryGetProperty(name, out target))
                {
                    target = default;
                    break;
                }
            }

            schema = target;
            depth++;
        }

        resolvedDepth = depth;
        return schema;
    }

    private static bool HasAny(JsonElement obj)
    {
        using var members = obj.EnumerateObject();
        return members.MoveNext();
    }

    private static void CopyString(Utf8JsonWriter writer, JsonElement schema, ReadOnlySpan<byte> name)
    {
        if (schema.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String)
        {
            writer.WriteString(name, value.GetString());
        }
    }
}
