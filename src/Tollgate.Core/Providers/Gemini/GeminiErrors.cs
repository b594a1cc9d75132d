using System.Globalization;
using System.Text.Json;
using Tollgate.Providers.OpenAI;

namespace Tollgate.Providers.Gemini;

/// <summary>
/// Gemini's error responses (<c>{"error": {"code", "message", "status", "details"}}</c>) as failure values.
/// The HTTP status decides, as for every provider (400 → no failover; 401/403/404 → provider rejected;
/// 429 → rate limited; 5xx → fail over), with two Gemini specifics read from <c>details</c>:
/// a 400 whose <c>ErrorInfo.reason</c> says the API key is bad is the provider's fault, not the request's,
/// and a 429 carries its wait in <c>RetryInfo.retryDelay</c> rather than (only) a Retry-After header.
/// </summary>
internal static class GeminiErrors
{
    private const int MaxMessageLength = 500;

    public static async Task<UpstreamFailure> ReadFailureAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var status = (int)response.StatusCode;
        var message = $"The provider answered HTTP {status}.";
        var keyRejected = false;
        TimeSpan? retryDelay = null;
        try
        {
            var bytes = await UpstreamBodies.ReadErrorAsync(response.Content, cancellationToken).ConfigureAwait(false);
            if (TryRead(bytes, out var error, out keyRejected, out retryDelay))
            {
                message = Describe(status, error);
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException)
        {
            // The status alone is enough to classify the failure.
        }

        if (status == 400 && keyRejected)
        {
            // Gemini answers a bad API key with 400 INVALID_ARGUMENT; another provider may well work.
            return new UpstreamFailure(FailureKind.ProviderRejected, status, message);
        }

        return UpstreamFailure.FromStatus(status, message, OpenAICompatibleAdapter.RetryAfter(response) ?? retryDelay);
    }

    /// <summary>A message safe to show the client: the status, Gemini's status word and its (trimmed) message.</summary>
    public static string Describe(int status, GeminiError error)
    {
        var text = error.Message is { Length: > MaxMessageLength } full ? full[..MaxMessageLength] + "…" : error.Message;
        return (error.Status, text) switch
        {
            (not null, { Length: > 0 }) => $"The provider answered HTTP {status} ({error.Status}): {text}",
            (null, { Length: > 0 }) => $"The provider answered HTTP {status}: {text}",
            (not null, _) => $"The provider answered HTTP {status} ({error.Status}).",
            _ => $"The provider answered HTTP {status}.",
        };
    }

    private static bool TryRead(ReadOnlyMemory<byte> body, out GeminiError error, out bool keyRejected, out TimeSpan? retryDelay)
    {
        error = new GeminiError(null, null, null);
        keyRejected = false;
        retryDelay = null;
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;

            // Google sends an object; some fronting proxies wrap it in a one-element array.
            if (root.ValueKind == JsonValueKind.Array && root.GetArrayLength() > 0)
            {
                root = root[0];
            }

            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("error"u8, out var value))
            {
                return false;
            }

            error = GeminiResponseReader.ReadError(value);
            if (value.ValueKind == JsonValueKind.Object && value.TryGetProperty("details"u8, out var details) && details.ValueKind == JsonValueKind.Array)
            {
                foreach (var detail in details.EnumerateArray())
                {
                    ReadDetail(detail, ref keyRejected, ref retryDelay);
                }
            }

            return true;
        }
        catch (JsonException)
        {
            // Not JSON (an HTML error page from a proxy): the status code says enough.
            return false;
        }
    }

    private static void ReadDetail(JsonElement detail, ref bool keyRejected, ref TimeSpan? retryDelay)
    {
        if (detail.ValueKind != JsonValueKind.Object)
        {
            return;
        }

        if (detail.TryGetProperty("reason"u8, out var reason) && reason.ValueKind == JsonValueKind.String)
        {
            var text = reason.GetString();
            keyRejected |= text is "API_KEY_INVALID" or "API_KEY_EXPIRED" or "API_KEY_SERVICE_BLOCKED";
        }

        // google.rpc.RetryInfo: "retryDelay": "37s" (a protobuf Duration: decimal seconds and an "s").
        if (detail.TryGetProperty("retryDelay"u8, out var delay) && delay.ValueKind == JsonValueKind.String
            && delay.GetString() is { Length: > 1 } seconds && seconds.EndsWith('s')
            && double.TryParse(seconds.AsSpan(0, seconds.Length - 1), NumberStyles.Float, CultureInfo.InvariantCulture, out var value)
            && value >= 0 && value < TimeSpan.MaxValue.TotalSeconds)
        {
            retryDelay = TimeSpan.FromSeconds(value);
        }
    }
}
