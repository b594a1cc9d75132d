using System.Text.Json;

namespace Tollgate.Providers.OpenAI;

/// <summary>Pulls the human message out of a provider error body (<c>{"error":{"message":...}}</c> or <c>{"error":"..."}</c>).</summary>
internal static class ProviderErrorMessage
{
    private const int MaxLength = 500;

    public static bool TryRead(ReadOnlySpan<byte> body, out string message)
    {
        message = string.Empty;
        try
        {
            var reader = new Utf8JsonReader(body);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isError = reader.ValueTextEquals("error"u8);
                var isMessage = reader.ValueTextEquals("message"u8);
                reader.Read();
                if (isError && reader.TokenType == JsonTokenType.String || isMessage && reader.TokenType == JsonTokenType.String)
                {
                    message = Trim(reader.GetString()!);
                    return message.Length > 0;
                }

                if (isError && reader.TokenType == JsonTokenType.StartObject)
                {
                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        var inner = reader.ValueTextEquals("message"u8);
                        reader.Read();
                        if (inner && reader.TokenType == JsonTokenType.String)
                        {
                            message = Trim(reader.GetString()!);
                            return message.Length > 0;
                        }

                        reader.Skip();
                    }

                    return false;
                }

                reader.Skip();
            }
        }
        catch (JsonException)
        {
            // Not JSON: the status code says enough.
        }

        return false;
    }

    private static string Trim(string message) => message.Length <= MaxLength ? message : message[..MaxLength] + "…";
}
