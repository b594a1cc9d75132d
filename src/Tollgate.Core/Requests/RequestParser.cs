using System.Text.Json;
using Tollgate.Configuration;
using Tollgate.Routing.Classification;

namespace Tollgate.Requests;

/// <summary>
/// Validates an OpenAI request body and extracts routing facts in a single forward pass of
/// <see cref="Utf8JsonReader"/>: no DOM, no deserialisation of messages.
/// </summary>
public static class RequestParser
{
    // Per-message framing overhead in tokens (role, separators), as OpenAI's own counting guide uses.
    private const int TokensPerMessage = 4;

    private static readonly JsonReaderOptions ReaderOptions = new() { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 128 };

    public static bool TryParse(RequestKind kind, ReadOnlyMemory<byte> body, out ParsedRequest? request, out RequestError? error)
    {
        request = null;
        try
        {
            return kind == RequestKind.ChatCompletion
                ? TryParseChat(body, out request, out error)
                : TryParseEmbedding(body, out request, out error);
        }
        catch (JsonException ex)
        {
            error = new RequestError(
                $"We could not parse the JSON body of your request: {ex.Message} (The OpenAI API expects a JSON payload.)",
                null,
                "invalid_json");
            return false;
        }
        catch (InvalidOperationException) when (LoneSurrogates.InJsonEscapes(body.Span))
        {
            // The reader refuses a string it needs (the model, a role) whose escapes are no valid UTF-16.
            error = new RequestError(LoneSurrogates.Message, null, "invalid_json");
            return false;
        }
    }

    private static bool TryParseChat(ReadOnlyMemory<byte> body, out ParsedRequest? request, out RequestError? error)
    {
        request = null;
        var reader = new Utf8JsonReader(body.Span, ReaderOptions);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            error = new RequestError("The request body must be a JSON object.", null, "invalid_request_body");
            return false;
        }

        string? model = null;
        Range modelToken = default;
        var stream = false;
        Range? streamOptions = null;
        var wantsUsage = false;
        int? maxTokens = null;
        int? maxCompletionTokens = null;
        var needs = Capability.None;
        var inputBytes = 0;
        var messageCount = -1;
        var choices = 1;
        var constraints = Routing.RequestConstraints.None;
        Range? tollgateMember = null;
        Range? responseSchema = null;
        var conversation = default(ConversationText);

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("tollgate"u8))
            {
                if (!TryReadTollgateMember(ref reader, out constraints, out tollgateMember, out error))
                {
                    return false;
                }
            }
            else if (reader.ValueTextEquals("model"u8))
            {
                if (!TryReadModel(ref reader, out model, out modelToken, out error))
                {
                    return false;
                }
            }
            else if (reader.ValueTextEquals("stream"u8))
            {
                reader.Read();
                if (reader.TokenType is not (JsonTokenType.True or JsonTokenType.False or JsonTokenType.Null))
                {
                    return Fail(out error, "'stream' must be a boolean.", "stream", "invalid_type");
                }

                stream = reader.TokenType == JsonTokenType.True;
            }
            else if (reader.ValueTextEquals("stream_options"u8))
            {
                reader.Read();
                var start = (int)reader.TokenStartIndex;
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    wantsUsage = ReadIncludeUsage(ref reader);
                }
                else if (reader.TokenType != JsonTokenType.Null)
                {
                    return Fail(out error, "'stream_options' must be an object.", "stream_options", "invalid_type");
                }

                streamOptions = new Range(start, (int)reader.BytesConsumed);
            }
            else if (reader.ValueTextEquals("messages"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartArray)
                {
                    return Fail(out error, "'messages' must be an array of messages.", "messages", "invalid_type");
                }

                messageCount = ReadMessages(ref reader, ref inputBytes, ref needs, ref conversation, out var badMessage);
                if (badMessage is not null)
                {
                    return Fail(out error, badMessage, "messages", "invalid_value");
                }
            }
            else if (reader.ValueTextEquals("tools"u8) || reader.ValueTextEquals("functions"u8))
            {
                reader.Read();
                var start = reader.BytesConsumed;
                var peek = reader;
                var nonEmptyArray = reader.TokenType == JsonTokenType.StartArray && peek.Read() && peek.TokenType != JsonTokenType.EndArray;
                reader.Skip();
                if (nonEmptyArray)
                {
                    // Tool definitions are part of the prompt the provider bills.
                    needs |= Capability.Tools;
                    inputBytes += (int)(reader.BytesConsumed - start);
                }
            }
            else if (reader.ValueTextEquals("response_format"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                }
                else if (ReadResponseFormat(ref reader, out responseSchema))
                {
                    needs |= Capability.Json;
                }
            }
            else if (reader.ValueTextEquals("max_tokens"u8))
            {
                reader.Read();
                if (!TryReadOptionalCount(ref reader, out maxTokens))
                {
                    return Fail(out error, "'max_tokens' must be a positive integer.", "max_tokens", "invalid_value");
                }
            }
            else if (reader.ValueTextEquals("max_completion_tokens"u8))
            {
                reader.Read();
                if (!TryReadOptionalCount(ref reader, out maxCompletionTokens))
                {
                    return Fail(out error, "'max_completion_tokens' must be a positive integer.", "max_completion_tokens", "invalid_value");
                }
            }
            else if (reader.ValueTextEquals("n"u8))
            {
                reader.Read();
                if (!TryReadOptionalCount(ref reader, out var n))
                {
                    return Fail(out error, "'n' must be a positive integer.", "n", "invalid_value");
                }

                choices = n ?? 1;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        var objectEnd = (int)reader.TokenStartIndex;
        if (reader.Read())
        {
            return Fail(out error, "Unexpected data after the JSON object.", null, "invalid_json");
        }

        if (model is null)
        {
            return Fail(out error, "You must provide a model parameter.", "model", "missing_required_parameter");
        }

        if (model.Length == 0)
        {
            return Fail(out error, "'model' must not be empty.", "model", "invalid_value");
        }

        if (messageCount < 0)
        {
            return Fail(out error, "Missing required parameter: 'messages'.", "messages", "missing_required_parameter");
        }

        if (messageCount == 0)
        {
            return Fail(out error, "'messages' must contain at least one message.", "messages", "empty_array");
        }

        error = null;
        request = new ParsedRequest
        {
            Kind = RequestKind.ChatCompletion,
            Body = body,
            Model = model,
            ModelToken = modelToken,
            ObjectEnd = objectEnd,
            Stream = stream,
            StreamOptionsValue = streamOptions,
            ClientWantsUsage = stream && wantsUsage,
            MaxTokens = maxCompletionTokens ?? maxTokens,
            Needs = needs,
            EstimatedInputTokens = (inputBytes / 4) + (messageCount * TokensPerMessage),
            Choices = choices,
            Constraints = constraints,
            TollgateMember = tollgateMember,
            ResponseSchema = responseSchema,
            Conversation = conversation,
        };
        return true;
    }

    private static bool TryParseEmbedding(ReadOnlyMemory<byte> body, out ParsedRequest? request, out RequestError? error)
    {
        request = null;
        var reader = new Utf8JsonReader(body.Span, ReaderOptions);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            error = new RequestError("The request body must be a JSON object.", null, "invalid_request_body");
            return false;
        }

        string? model = null;
        Range modelToken = default;
        var inputBytes = -1;
        var constraints = Routing.RequestConstraints.None;
        Range? tollgateMember = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("tollgate"u8))
            {
                if (!TryReadTollgateMember(ref reader, out constraints, out tollgateMember, out error))
                {
                    return false;
                }
            }
            else if (reader.ValueTextEquals("model"u8))
            {
                if (!TryReadModel(ref reader, out model, out modelToken, out error))
                {
                    return false;
                }
            }
            else if (reader.ValueTextEquals("input"u8))
            {
                reader.Read();
                var start = reader.TokenStartIndex;
                switch (reader.TokenType)
                {
                    case JsonTokenType.String:
                        inputBytes = reader.ValueSpan.Length;
                        break;
                    case JsonTokenType.StartArray:
                        reader.Skip();
                        inputBytes = (int)(reader.BytesConsumed - start - 2);
                        break;
                    default:
                        return Fail(out error, "'input' must be a string or an array.", "input", "invalid_type");
                }

                if (inputBytes <= 0)
                {
                    return Fail(out error, "'input' must not be empty.", "input", "invalid_value");
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        var objectEnd = (int)reader.TokenStartIndex;
        if (reader.Read())
        {
            return Fail(out error, "Unexpected data after the JSON object.", null, "invalid_json");
        }

        if (string.IsNullOrEmpty(model))
        {
            return Fail(out error, "You must provide a model parameter.", "model", "missing_required_parameter");
        }

        if (inputBytes < 0)
        {
            return Fail(out error, "Missing required parameter: 'input'.", "input", "missing_required_parameter");
        }

        error = null;
        request = new ParsedRequest
        {
            Kind = RequestKind.Embedding,
            Body = body,
            Model = model,
            ModelToken = modelToken,
            ObjectEnd = objectEnd,
            Needs = Capability.Embeddings,
            EstimatedInputTokens = inputBytes / 4,
            MaxTokens = 0,
            Constraints = constraints,
            TollgateMember = tollgateMember,
        };
        return true;
    }

    /// <summary>
    /// Counts messages and the bytes of their text; notes images; and locates each message's text (<c>content</c> as
    /// a string, or the <c>text</c> of its parts) for the task classifier. Returns -1 with a message on a malformed entry.
    /// </summary>
    private static int ReadMessages(ref Utf8JsonReader reader, ref int inputBytes, ref Capability needs, ref ConversationText conversation, out string? badMessage)
    {
        badMessage = null;
        var count = 0;
        Span<TextSegment> segments = stackalloc TextSegment[ConversationText.SegmentsPerMessage];
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                badMessage = $"messages[{count}] must be an object with a 'role'.";
                reader.Skip();
                return -1;
            }

            var depth = reader.CurrentDepth;
            var hasRole = false;
            var role = MessageRole.Other;
            var image = false;
            var texts = 0;

            // Depth of the "content" value while inside it (its string, or its array of parts); -1 elsewhere.
            var contentDepth = -1;
            var partText = false;
            while (reader.Read() && !(reader.TokenType == JsonTokenType.EndObject && reader.CurrentDepth == depth))
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.PropertyName when reader.CurrentDepth == depth + 1:
                        contentDepth = reader.ValueTextEquals("content"u8) ? depth + 1 : -1;
                        if (reader.ValueTextEquals("role"u8))
                        {
                            reader.Read();
                            hasRole = reader.TokenType == JsonTokenType.String;
                            role = MessageRoles.Of(ref reader);
                        }

                        break;
                    case JsonTokenType.PropertyName when reader.ValueTextEquals("image_url"u8):
                        needs |= Capability.Vision;
                        image |= contentDepth >= 0;
                        break;
                    case JsonTokenType.PropertyName:
                        // A part's "text" (content[i].text) is conversation text; other strings in a part are not.
                        partText = contentDepth >= 0 && reader.CurrentDepth == depth + 3 && reader.ValueTextEquals("text"u8);
                        break;
                    case JsonTokenType.String:
                        inputBytes += reader.ValueSpan.Length;
                        var isText = contentDepth >= 0 && (reader.CurrentDepth == depth + 1 || reader.CurrentDepth == depth + 2 || (partText && reader.CurrentDepth == depth + 3));
                        if (isText && texts < segments.Length && reader.ValueSpan.Length > 0)
                        {
                            segments[texts++] = new TextSegment((int)reader.TokenStartIndex + 1, reader.ValueSpan.Length, reader.ValueIsEscaped);
                        }

                        partText = false;
                        break;
                    case JsonTokenType.EndArray when reader.CurrentDepth == depth + 1:
                        contentDepth = -1;
                        break;
                }
            }

            if (!hasRole)
            {
                badMessage = $"messages[{count}] must have a string 'role'.";
                return -1;
            }

            conversation.Add(role, segments[..texts], image);
            count++;
        }

        return count;
    }

    private static bool ReadIncludeUsage(ref Utf8JsonReader reader)
    {
        var include = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isIncludeUsage = reader.ValueTextEquals("include_usage"u8);
            reader.Read();
            if (isIncludeUsage)
            {
                include = reader.TokenType == JsonTokenType.True;
            }
            else
            {
                reader.Skip();
            }
        }

        return include;
    }

    /// <summary>Whether the format asks for JSON, and where its <c>json_schema.schema</c> is (what verify-then-escalate checks).</summary>
    private static bool ReadResponseFormat(ref Utf8JsonReader reader, out Range? schema)
    {
        schema = null;
        var needsJson = false;
        var isSchema = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isType = reader.ValueTextEquals("type"u8);
            var isJsonSchema = reader.ValueTextEquals("json_schema"u8);
            reader.Read();
            if (isType && reader.TokenType == JsonTokenType.String)
            {
                needsJson = !reader.ValueTextEquals("text"u8);
                isSchema = reader.ValueTextEquals("json_schema"u8);
            }
            else if (isJsonSchema && reader.TokenType == JsonTokenType.StartObject)
            {
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var isSchemaValue = reader.ValueTextEquals("schema"u8);
                    reader.Read();
                    var start = (int)reader.TokenStartIndex;
                    reader.Skip();
                    if (isSchemaValue && reader.TokenType is JsonTokenType.EndObject)
                    {
                        schema = start..(int)reader.BytesConsumed;
                    }
                }
            }
            else
            {
                reader.Skip();
            }
        }

        if (!isSchema)
        {
            schema = null;
        }

        return needsJson;
    }

    private static bool TryReadOptionalCount(ref Utf8JsonReader reader, out int? value)
    {
        value = null;
        if (reader.TokenType == JsonTokenType.Null)
        {
            return true;
        }

        if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var n) && n > 0)
        {
            value = n;
            return true;
        }

        return false;
    }

    /// <summary>The <c>tollgate</c> member (routing constraints) and where it sits, so the body sent upstream can leave it out.</summary>
    private static bool TryReadTollgateMember(ref Utf8JsonReader reader, out Routing.RequestConstraints constraints, out Range? member, out RequestError? error)
    {
        var start = (int)reader.TokenStartIndex;
        if (!TollgateMemberReader.TryRead(ref reader, out constraints, out error))
        {
            member = null;
            return false;
        }

        member = start..(int)reader.BytesConsumed;
        return true;
    }

    /// <summary>The <c>model</c> member: its value, and where its token sits so it can be replaced in place.</summary>
    private static bool TryReadModel(ref Utf8JsonReader reader, out string? model, out Range token, out RequestError? error)
    {
        reader.Read();
        if (reader.TokenType != JsonTokenType.String)
        {
            model = null;
            token = default;
            return Fail(out error, "'model' must be a string naming a model.", "model", "invalid_type");
        }

        model = reader.GetString();
        token = new Range((int)reader.TokenStartIndex, (int)reader.BytesConsumed);
        error = null;
        return true;
    }

    private static bool Fail(out RequestError? error, string message, string? param, string code)
    {
        error = new RequestError(message, param, code);
        return false;
    }
}
