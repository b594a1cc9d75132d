using System.Buffers;
using System.Text.Json;

namespace Tollgate.Providers.Anthropic;

/// <summary>
/// An OpenAI <c>image_url</c> part as an Anthropic image <c>source</c>: a <c>data:</c> URL becomes a base64
/// source with its media type, an http(s) URL a url source. The <c>detail</c> hint has no Anthropic equivalent.
/// </summary>
internal readonly record struct ImageSource(string Url, int DataStart, string? MediaType)
{
    public static ImageSource Parse(JsonElement part, string at)
    {
        var image = part.TryGetProperty("image_url"u8, out var i) ? i : default;
        var urlElement = image.ValueKind == JsonValueKind.Object && image.TryGetProperty("url"u8, out var u) ? u : image;
        if (urlElement.ValueKind != JsonValueKind.String)
        {
            throw new RequestTranslationException($"{at}.image_url.url must be a string.");
        }

        var url = urlElement.GetString()!;
        if (DataUrl.TryParse(url, out var mediaType, out var dataStart))
        {
            return new ImageSource(url, dataStart, mediaType);
        }

        if (url.StartsWith("https://", StringComparison.OrdinalIgnoreCase) || url.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
        {
            return new ImageSource(url, -1, null);
        }

        throw new RequestTranslationException($"{at}.image_url.url must be an http(s) URL or a base64 data: URL.");
    }

    public void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject("source"u8);
        if (MediaType is null)
        {
            writer.WriteString("type"u8, "url"u8);
            writer.WriteString("url"u8, Url);
        }
        else
        {
            writer.WriteString("type"u8, "base64"u8);
            writer.WriteString("media_type"u8, MediaType);
            writer.WriteString("data"u8, Url.AsSpan(DataStart));
        }

        writer.WriteEndObject();
    }
}

/// <summary>An OpenAI <c>file</c> part holding a PDF as <c>file_data</c> (a data: URL) becomes an Anthropic document block.</summary>
internal readonly record struct DocumentSource(string Url, int DataStart, string MediaType)
{
    public static DocumentSource Parse(JsonElement part, string at)
    {
        var file = part.TryGetProperty("file"u8, out var f) && f.ValueKind == JsonValueKind.Object ? f : default;
        if (file.ValueKind != JsonValueKind.Object
            || !file.TryGetProperty("file_data"u8, out var data) || data.ValueKind != JsonValueKind.String)
        {
            throw new RequestTranslationException($"{at}: only inline files (file.file_data) can be sent to Anthropic; file_id references cannot.");
        }

        var url = data.GetString()!;
        if (!DataUrl.TryParse(url, out var mediaType, out var dataStart) || !mediaType.Equals("application/pdf", StringComparison.OrdinalIgnoreCase))
        {
            throw new RequestTranslationException($"{at}.file.file_data must be a base64 data: URL of a PDF (application/pdf).");
        }

        return new DocumentSource(url, dataStart, "application/pdf");
    }

    public void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject("source"u8);
        writer.WriteString("type"u8, "base64"u8);
        writer.WriteString("media_type"u8, MediaType);
        writer.WriteString("data"u8, Url.AsSpan(DataStart));
        writer.WriteEndObject();
    }
}

/// <summary>Parses <c>data:&lt;media-type&gt;[;params];base64,&lt;data&gt;</c>.</summary>
internal static class DataUrl
{
    public static bool TryParse(string url, out string mediaType, out int dataStart)
    {
        mediaType = string.Empty;
        dataStart = -1;
        if (!url.StartsWith("data:", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        var comma = url.IndexOf(',', StringComparison.Ordinal);
        if (comma < 0)
        {
            return false;
        }

        var header = url.AsSpan(5, comma - 5);
        if (!header.EndsWith(";base64", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        var semicolon = header.IndexOf(';');
        var media = header[..semicolon].Trim();
        if (media.IsEmpty)
        {
            return false;
        }

        mediaType = media.ToString().ToLowerInvariant();
        dataStart = comma + 1;
        return true;
    }
}

/// <summary>
/// Tool call ids cross providers inside a conversation: one started on another provider may carry ids with
/// characters Anthropic refuses (it accepts <c>[A-Za-z0-9_-]</c>). They are rewritten the same way in
/// <c>tool_use</c> and <c>tool_result</c>, so the pairs still match.
/// </summary>
internal static class ToolIds
{
    private static readonly SearchValues<char> Allowed = SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");

    public static string ToAnthropic(string id)
    {
        if (!id.AsSpan().ContainsAnyExcept(Allowed))
        {
            return id;
        }

        return string.Create(id.Length, id, static (span, source) =>
        {
            for (var i = 0; i < source.Length; i++)
            {
                span[i] = Allowed.Contains(source[i]) ? source[i] : '_';
            }
        });
    }
}
