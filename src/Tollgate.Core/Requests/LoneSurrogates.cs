namespace Tollgate.Requests;

/// <summary>
/// Finds a JSON <c>\uXXXX</c> escape of half a surrogate pair with no matching half: valid JSON syntax, but text
/// that is not Unicode, which <see cref="System.Text.Json.Utf8JsonReader"/> refuses to read as a string (it
/// throws <see cref="InvalidOperationException"/>, not <see cref="System.Text.Json.JsonException"/>). The parser and
/// the translating adapters use this to tell that case, the client's, from a fault of their own.
/// </summary>
public static class LoneSurrogates
{
    /// <summary>What the client is told (a 400): the body is JSON, but one of its strings is not text.</summary>
    public const string Message =
        "The JSON body of your request contains a \\u escape of half a surrogate pair without its other half, which is not valid Unicode text.";

    public static bool InJsonEscapes(ReadOnlySpan<byte> json)
    {
        var i = 0;
        while (true)
        {
            var next = json[i..].IndexOf((byte)'\\');
            if (next < 0 || i + next + 1 >= json.Length)
            {
                return false;
            }

            i += next;
            if (!TryReadEscape(json, i, out var unit))
            {
                i += 2; // \\, \", \n...: both characters belong to this escape
                continue;
            }

            if (char.IsLowSurrogate(unit))
            {
                return true;
            }

            if (!char.IsHighSurrogate(unit))
            {
                i += 6;
                continue;
            }

            if (!TryReadEscape(json, i + 6, out var low) || !char.IsLowSurrogate(low))
            {
                return true;
            }

            i += 12;
        }
    }

    private static bool TryReadEscape(ReadOnlySpan<byte> json, int at, out char unit)
    {
        unit = default;
        if (at + 6 > json.Length || json[at] != (byte)'\\' || json[at + 1] != (byte)'u')
        {
            return false;
        }

        var value = 0;
        foreach (var b in json.Slice(at + 2, 4))
        {
            var digit = b switch
            {
                >= (byte)'0' and <= (byte)'9' => b - '0',
                >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
                >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
                _ => -1,
            };
            if (digit < 0)
            {
                return false;
            }

            value = (value * 16) + digit;
        }

        unit = (char)value;
        return true;
    }
}
