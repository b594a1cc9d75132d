using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Text.Json;

namespace Tollgate.Routing.Classification;

/// <summary>A JSON string value inside a request body: where its content starts, its raw length, and whether it holds escapes.</summary>
internal readonly record struct TextSegment(int Start, int Length, bool Escaped);

/// <summary>The roles the classifier tells apart.</summary>
internal enum MessageRole : byte
{
    Other,
    System,
    User,
    Assistant,
}

internal static class MessageRoles
{
    /// <summary>The role of the string token at the reader (<c>developer</c> counts as system); anything else is <see cref="MessageRole.Other"/>.</summary>
    public static MessageRole Of(ref Utf8JsonReader reader) =>
        reader.TokenType != JsonTokenType.String ? MessageRole.Other
        : reader.ValueTextEquals("user"u8) ? MessageRole.User
        : reader.ValueTextEquals("system"u8) || reader.ValueTextEquals("developer"u8) ? MessageRole.System
        : reader.ValueTextEquals("assistant"u8) ? MessageRole.Assistant
        : MessageRole.Other;
}

/// <summary>Up to four text segments of one message (content parts beyond the fourth add nothing the caps would keep).</summary>
[InlineArray(ConversationText.SegmentsPerMessage)]
internal struct SegmentQuad
{
    private TextSegment _element;
}

/// <summary>
/// Where the text the classifier reads sits in a chat request body: the system prompt's segments, the last and
/// the previous user turns, the last assistant turn, and the turn counts. Built message by message while the body
/// is read — by <see cref="Requests.RequestParser"/> in its single pass, so classification never reads the body
/// again — and turned into capped, unescaped text by <see cref="RequestText"/>. A value type held inside the parsed
/// request: no allocation of its own.
/// </summary>
public struct ConversationText
{
    internal const int SegmentsPerMessage = 4;

    private SegmentQuad _system;
    private SegmentQuad _lastUser;
    private SegmentQuad _previousUser;
    private SegmentQuad _assistant;

    internal int SystemCount { get; private set; }

    internal int LastUserCount { get; private set; }

    internal int PreviousUserCount { get; private set; }

    internal int AssistantCount { get; private set; }

    /// <summary>Raw length of every system segment kept.</summary>
    internal int SystemLength { get; private set; }

    internal int UserTurns { get; private set; }

    internal int AssistantTurns { get; private set; }

    internal bool LastUserImage { get; private set; }

    [UnscopedRef]
    internal readonly ReadOnlySpan<TextSegment> System => ((ReadOnlySpan<TextSegment>)_system)[..SystemCount];

    [UnscopedRef]
    internal readonly ReadOnlySpan<TextSegment> LastUser => ((ReadOnlySpan<TextSegment>)_lastUser)[..LastUserCount];

    [UnscopedRef]
    internal readonly ReadOnlySpan<TextSegment> PreviousUser => ((ReadOnlySpan<TextSegment>)_previousUser)[..PreviousUserCount];

    [UnscopedRef]
    internal readonly ReadOnlySpan<TextSegment> Assistant => ((ReadOnlySpan<TextSegment>)_assistant)[..AssistantCount];

    /// <summary>Takes in one message: system text accumulates (first segments first); user and assistant turns keep the latest.</summary>
    internal void Add(MessageRole role, ReadOnlySpan<TextSegment> segments, bool image)
    {
        var count = Math.Min(segments.Length, SegmentsPerMessage);
        switch (role)
        {
            case MessageRole.System:
                for (var i = 0; i < count && SystemCount < SegmentsPerMessage; i++)
                {
                    SystemLength += segments[i].Length;
                    _system[SystemCount++] = segments[i];
                }

                break;
            case MessageRole.User:
                if (UserTurns > 0)
                {
                    _previousUser = _lastUser;
                    PreviousUserCount = LastUserCount;
                }

                segments[..count].CopyTo(_lastUser);
                LastUserCount = count;
                LastUserImage = image;
                UserTurns++;
                break;
            case MessageRole.Assistant:
                segments[..count].CopyTo(_assistant);
                AssistantCount = count;
                AssistantTurns++;
                break;
            default:
                break;
        }
    }
}
