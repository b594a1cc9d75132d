using System.Text;
using System.Text.Json;

namespace Tollgate.Routing.Classification;

/// <summary>
/// The parts of a chat request the classifier looks at, unescaped into a caller-owned buffer and
/// capped so that a 1 MB pasted document costs no more to analyse than a 3 KB one: the system
/// prompt's head, the last user turn's head and tail (where instructions sit), the previous user
/// turn's head and the last assistant turn's head. Raw lengths are kept, because a long paste is
/// itself a signal (summaries and extraction).
/// </summary>
internal ref struct RequestText
{
    /// <summary>Bytes of system/developer text analysed; instructions sit at the start.</summary>
    public const int SystemCap = 1536;

    /// <summary>Bytes analysed from the start of the last user turn.</summary>
    public const int HeadCap = 1024;

    /// <summary>Bytes analysed from the end of the last user turn (an instruction after a paste).</summary>
    public const int TailCap = 512;

    /// <summary>Bytes analysed from the previous user turn and from the last assistant turn.</summary>
    public const int EarlierCap = 384;

    public const int AssistantCap = 256;

    /// <summary>The buffer size <c>TryRead</c> needs.</summary>
    public const int BufferSize = SystemCap + HeadCap + TailCap + EarlierCap + AssistantCap;

    public ReadOnlySpan<byte> System;
    public ReadOnlySpan<byte> UserHead;

    /// <summary>Empty when the whole last user turn fits in <see cref="UserHead"/>.</summary>
    public ReadOnlySpan<byte> UserTail;

    public ReadOnlySpan<byte> EarlierUser;
    public ReadOnlySpan<byte> Assistant;

    /// <summary>Raw (escaped JSON) length of the last user turn, uncapped.</summary>
    public int UserLength;

    public int SystemLength;
    public int UserTurns;
    public int AssistantTurns;
    public bool JsonResponse;
    public bool Tools;
    public bool UserHasImage;


    /// <summary>
    /// Reads an OpenAI chat completion body. Returns false when it is not valid JSON or not an object;
    /// the <see cref="JsonException"/> is the documented way <see cref="Utf8JsonReader"/> reports that.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> body, Span<byte> buffer, out RequestText text)
    {
        text = default;
        if (buffer.Length < BufferSize)
        {
            return false;
        }

        var conversation = default(ConversationText);
        var jsonResponse = false;
        var tools = false;
        Span<TextSegment> current = stackalloc TextSegment[ConversationText.SegmentsPerMessage];
        try
        {
            var reader = new Utf8JsonReader(body, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("messages"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.StartArray)
                    {
                        reader.Skip();
                        continue;
                    }

                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                    {
                        if (reader.TokenType != JsonTokenType.StartObject)
                        {
                            reader.Skip();
                            continue;
                        }

                        var (role, count, image) = ReadMessage(ref reader, current);
                        conversation.Add(role, current[..count], image);
                    }
                }
                else if (reader.ValueTextEquals("response_format"u8))
                {
                    reader.Read();
                    jsonResponse = ReadResponseFormat(ref reader);
                }
                else if (reader.ValueTextEquals("tools"u8) || reader.ValueTextEquals("functions"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartArray)
                    {
                        var peek = reader;
                        tools = peek.Read() && peek.TokenType != JsonTokenType.EndArray;
                    }

                    reader.Skip();
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
        }
        catch (JsonException)
        {
            // Malformed JSON: the caller maps "not readable" to Chat with confidence 0.
            return false;
        }

        return TryRead(body, in conversation, jsonResponse, tools, buffer, out text);
    }

    /// <summary>
    /// Builds the capped text from a conversation already located in <paramref name="body"/> (by the request
    /// parser's single pass), without reading the body again.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> body, scoped in ConversationText conversation, bool jsonResponse, bool tools, Span<byte> buffer, out RequestText text)
    {
        text = default;
        if (buffer.Length < BufferSize)
        {
            return false;
        }

        text.JsonResponse = jsonResponse;
        text.Tools = tools;
        text.SystemLength = conversation.SystemLength;
        text.UserTurns = conversation.UserTurns;
        text.AssistantTurns = conversation.AssistantTurns;
        var lastUser = conversation.LastUser;
        var offset = 0;
        text.System = Gather(body, conversation.System, buffer.Slice(offset, SystemCap));
        offset += SystemCap;
        foreach (var segment in lastUser)
        {
            text.UserLength += segment.Length;
        }

        if (text.UserLength <= HeadCap + TailCap)
        {
            text.UserHead = Gather(body, lastUser, buffer.Slice(offset, HeadCap + TailCap));
        }
        else
        {
            text.UserHead = Gather(body, lastUser, buffer.Slice(offset, HeadCap));
            text.UserTail = Tail(body, lastUser[^1], buffer.Slice(offset + HeadCap, TailCap));
        }

        offset += HeadCap + TailCap;
        text.EarlierUser = Gather(body, conversation.PreviousUser, buffer.Slice(offset, EarlierCap));
        offset += EarlierCap;
        text.Assistant = Gather(body, conversation.Assistant, buffer.Slice(offset, AssistantCap));
        text.UserHasImage = conversation.LastUserImage;
        return true;
    }

    private static (MessageRole Role, int Count, bool Image) ReadMessage(ref Utf8JsonReader reader, scoped Span<TextSegment> segments)
    {
        var role = MessageRole.Other;
        var count = 0;
        var image = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("role"u8))
            {
                reader.Read();
                role = MessageRoles.Of(ref reader);
            }
            else if (reader.ValueTextEquals("content"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    AddSegment(ref reader, segments, ref count);
                }
                else if (reader.TokenType == JsonTokenType.StartArray)
                {
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                    {
                        if (reader.TokenType == JsonTokenType.String)
                        {
                            AddSegment(ref reader, segments, ref count);
                            continue;
                        }

                        if (reader.TokenType != JsonTokenType.StartObject)
                        {
                            reader.Skip();
                            continue;
                        }

                        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                        {
                            var isText = reader.ValueTextEquals("text"u8);
                            var isType = reader.ValueTextEquals("type"u8);
                            reader.Read();
                            if (isText && reader.TokenType == JsonTokenType.String)
                            {
                                AddSegment(ref reader, segments, ref count);
                            }
                            else if (isType && reader.TokenType == JsonTokenType.String
                                && (reader.ValueTextEquals("image_url"u8) || reader.ValueTextEquals("input_image"u8) || reader.ValueTextEquals("image"u8)))
                            {
                                image = true;
                            }
                            else
                            {
                                reader.Skip();
                            }
                        }
                    }
                }
                else
                {
                    reader.Skip();
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        return (role, count, image);
    }

    private static void AddSegment(ref Utf8JsonReader reader, scoped Span<TextSegment> segments, ref int count)
    {
        // The reader runs over one contiguous span, so ValueSpan is a slice of the body right after the quote.
        if (count < segments.Length && reader.ValueSpan.Length > 0)
        {
            segments[count++] = new TextSegment(checked((int)reader.TokenStartIndex + 1), reader.ValueSpan.Length, reader.ValueIsEscaped);
        }
    }

    private static bool ReadResponseFormat(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return false;
        }

        var json = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isType = reader.ValueTextEquals("type"u8);
            reader.Read();
            if (isType && reader.TokenType == JsonTokenType.String)
            {
                json = reader.ValueTextEquals("json_schema"u8) || reader.ValueTextEquals("json_object"u8);
            }
            else
            {
                reader.Skip();
            }
        }

        return json;
    }

    /// <summary>Unescapes segments one after the other (newline-separated) until the destination is full.</summary>
    private static ReadOnlySpan<byte> Gather(ReadOnlySpan<byte> body, scoped ReadOnlySpan<TextSegment> segments, Span<byte> destination)
    {
        var written = 0;
        foreach (var segment in segments)
        {
            if (written > 0 && written < destination.Length)
            {
                destination[written++] = (byte)'\n';
            }

            written += Unescape(body.Slice(segment.Start, segment.Length), segment.Escaped, destination[written..]);
            if (written >= destination.Length)
            {
                break;
            }
        }

        return destination[..written];
    }

    /// <summary>The last bytes of a long segment, started after a space so that no word or character is cut.</summary>
    private static ReadOnlySpan<byte> Tail(ReadOnlySpan<byte> body, TextSegment segment, Span<byte> destination)
    {
        var take = Math.Min(segment.Length, destination.Length);
        var raw = body.Slice(segment.Start + segment.Length - take, take);
        var space = raw[..Math.Min(24, raw.Length)].IndexOf((byte)' ');
        raw = raw[(space + 1)..];
        while (raw.Length > 0 && (raw[0] & 0xC0) == 0x80)
        {
            raw = raw[1..];
        }

        return destination[..Unescape(raw, segment.Escaped, destination)];
    }

    /// <summary>JSON string unescaping into UTF-8, stopping when the destination is full; bad escapes are dropped.</summary>
    internal static int Unescape(ReadOnlySpan<byte> raw, bool escaped, Span<byte> destination)
    {
        if (!escaped)
        {
            var n = Math.Min(raw.Length, destination.Length);
            raw[..n].CopyTo(destination);
            return n;
        }

        var written = 0;
        var i = 0;
        while (i < raw.Length && written < destination.Length)
        {
            var next = raw[i..].IndexOf((byte)'\\');
            var plain = next < 0 ? raw.Length - i : next;
            var copy = Math.Min(plain, destination.Length - written);
            raw.Slice(i, copy).CopyTo(destination[written..]);
            written += copy;
            i += copy;
            // Full (the plain run may fill the destination exactly, right before an escape), or nothing left to unescape.
            if (copy < plain || next < 0 || i + 1 >= raw.Length || written == destination.Length)
            {
                break;
            }

            var c = raw[i + 1];
            i += 2;
            byte simple = c switch
            {
                (byte)'n' => (byte)'\n',
                (byte)'t' => (byte)'\t',
                (byte)'r' => (byte)'\r',
                (byte)'b' or (byte)'f' => (byte)' ',
                (byte)'u' => 0,
                _ => c,
            };
            if (simple != 0)
            {
                destination[written++] = simple;
                continue;
            }

            if (!TryHex(raw, i, out var unit))
            {
                continue;
            }

            i += 4;
            var value = (int)unit;
            if (char.IsHighSurrogate((char)unit) && i + 5 < raw.Length && raw[i] == (byte)'\\' && raw[i + 1] == (byte)'u'
                && TryHex(raw, i + 2, out var low) && char.IsLowSurrogate((char)low))
            {
                value = char.ConvertToUtf32((char)unit, (char)low);
                i += 6;
            }

            if (Rune.IsValid(value) && new Rune(value).TryEncodeToUtf8(destination[written..], out var encoded))
            {
                written += encoded;
            }
            else if (!Rune.IsValid(value))
            {
                continue;
            }
            else
            {
                break;
            }
        }

        return written;
    }

    private static bool TryHex(ReadOnlySpan<byte> raw, int start, out uint value)
    {
        value = 0;
        if (start + 4 > raw.Length)
        {
            return false;
        }

        for (var k = 0; k < 4; k++)
        {
            var d = raw[start + k];
            var digit = d is >= (byte)'0' and <= (byte)'9' ? d - '0'
                : (d | 0x20) is >= 'a' and <= 'f' ? (d | 0x20) - 'a' + 10
                : -1;
            if (digit < 0)
            {
                return false;
            }

            value = (value << 4) | (uint)digit;
        }

        return true;
    }
}
