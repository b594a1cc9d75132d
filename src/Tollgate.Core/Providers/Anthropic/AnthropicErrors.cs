using System.Text.Json;

namespace Tollgate.Providers.Anthropic;

/// <summary>
/// Anthropic's error envelope, <c>{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}</c>,
/// sent as an HTTP error body or as an <c>error</c> event inside a stream. The status decides the failure
/// class (<see cref="UpstreamFailure.FromStatus"/>): 400/413 do not fail over, 401/403/404 and 429 and
/// 5xx (including Anthropic's 529 <c>overloaded_error</c>) do.
/// </summary>
internal static class AnthropicErrors
{
    private const int MaxMessageLength = 500;

    /// <summary>The HTTP status Anthropic documents for each error type; used for errors that arrive as stream events.</summary>
    public static int StatusOf(string? errorType) => errorType switch
    {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,

        // api_error and anything unknown: the provider's side.
        _ => 500,
    };

    /// <summary>Reads the error type and message from an error body; false when it is not Anthropic's envelope.</summary>
    public static bool TryRead(ReadOnlySpan<byte> body, out string? errorType, out string? message)
    {
        errorType = null;
        message = null;
        try
        {
            var reader = new Utf8JsonReader(body);
            using var document = JsonDocument.ParseValue(ref reader);
            if (!document.RootElement.TryGetProperty("error"u8, out var error) || error.ValueKind != JsonValueKind.Object)
            {
                return false;
            }

            errorType = error.TryGetProperty("type"u8, out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
            message = error.TryGetProperty("message"u8, out var m) && m.ValueKind == JsonValueKind.String ? Trim(m.GetString()!) : null;
            return errorType is not null || message is not null;
        }
        catch (JsonException)
        {
            // Not JSON (a proxy's HTML page): the status alone classifies the failure.
            return false;
        }
        catch (InvalidOperationException)
        {
            // JSON, but not an object.
            return false;
        }
    }

    /// <summary>A client-safe description: the status, Anthropic's error type and its message.</summary>
    public static string Describe(int status, string? errorType, string? message)
    {
        var text = $"The provider answered HTTP {status}";
        if (errorType is not null)
        {
            text += $" ({errorType})";
        }

        return message is null ? text + "." : $"{text}: {message}";
    }

    /// <summary>A client-safe description of an <c>error</c> event inside a stream.</summary>
    public static string DescribeEvent(string? errorType, string message) =>
        errorType is null ? $"The provider's stream reported an error: {Trim(message)}" : $"The provider's stream reported an error ({errorType}): {Trim(message)}";

    private static string Trim(string message) => message.Length <= MaxMessageLength ? message : message[..MaxMessageLength] + "…";
}
