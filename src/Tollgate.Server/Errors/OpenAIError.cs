using System.Text.Json;

namespace Tollgate.Server.Errors;

/// <summary>
/// Writes OpenAI error objects: <c>{"error":{"message","type","param","code"}}</c>. Every <c>/v1</c>
/// failure goes through here so SDKs parse them the way they parse OpenAI's own.
/// </summary>
internal static class OpenAIError
{
    public const string InvalidRequest = "invalid_request_error";
    public const string Authentication = "authentication_error";
    public const string Permission = "permission_error";
    public const string RateLimit = "rate_limit_error";
    public const string NotFound = "not_found_error";
    public const string Api = "api_error";
    public const string Upstream = "upstream_error";

    /// <summary>Messages quote model names; the default encoder would turn every apostrophe into \u0027. This is a JSON API, never HTML.</summary>
    public static readonly JsonWriterOptions WriterOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static async Task WriteAsync(HttpContext context, int status, string message, string type, string? param, string? code)
    {
        var response = context.Response;
        if (response.HasStarted)
        {
            return;
        }

        response.StatusCode = status;
        response.ContentType = "application/json";
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            Write(writer, message, type, param, code);
        }

        response.ContentLength = buffer.WrittenCount;
        await response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>Writes the envelope to a writer (also used for the SSE error event of a cut stream).</summary>
    public static void Write(Utf8JsonWriter writer, string message, string type, string? param, string? code)
    {
        writer.WriteStartObject();
        writer.WriteStartObject("error"u8);
        writer.WriteString("message"u8, message);
        writer.WriteString("type"u8, type);
        WriteNullable(writer, "param"u8, param);
        WriteNullable(writer, "code"u8, code);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    private static void WriteNullable(Utf8JsonWriter writer, ReadOnlySpan<byte> name, string? value)
    {
        if (value is null)
        {
            writer.WriteNull(name);
        }
        else
        {
            writer.WriteString(name, value);
        }
    }
}
