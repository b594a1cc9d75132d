using Tollgate.Configuration;

namespace Tollgate.Requests;

/// <summary>The two body shapes the gateway routes.</summary>
public enum RequestKind
{
    ChatCompletion,
    Embedding,
}

/// <summary>
/// What the gateway needs to know about a request body, read in one pass by <see cref="RequestParser"/>,
/// plus the byte offsets that let <see cref="UpstreamBodyWriter"/> rewrite <c>model</c> (and
/// <c>stream_options</c>) without re-serialising anything else. Unknown fields stay in the bytes
/// and so pass through to OpenAI-compatible upstreams untouched.
/// </summary>
public sealed class ParsedRequest
{
    public required RequestKind Kind { get; init; }

    /// <summary>The body as received. Not owned: valid for the duration of the request.</summary>
    public required ReadOnlyMemory<byte> Body { get; init; }

    public required string Model { get; init; }

    /// <summary>Offsets of the <c>model</c> string token, quotes included.</summary>
    public required Range ModelToken { get; init; }

    /// <summary>Offset of the closing brace of the top-level object.</summary>
    public required int ObjectEnd { get; init; }

    public bool Stream { get; init; }

    /// <summary>Offsets of the value of <c>stream_options</c>, when present.</summary>
    public Range? StreamOptionsValue { get; init; }

    /// <summary>Whether the client itself asked for the usage chunk (<c>stream_options.include_usage</c>).</summary>
    public bool ClientWantsUsage { get; init; }

    /// <summary><c>max_completion_tokens</c>, else <c>max_tokens</c>.</summary>
    public int? MaxTokens { get; init; }

    /// <summary>Capabilities the request needs from a deployment.</summary>
    public Capability Needs { get; init; }

    /// <summary>Rough input size in tokens (UTF-8 bytes of message text / 4, plus per-message overhead), for routing and context checks.</summary>
    public int EstimatedInputTokens { get; init; }

    /// <summary>Number of choices asked for (<c>n</c>), 1 when absent.</summary>
    public int Choices { get; init; } = 1;

    /// <summary>Routing constraints from the body's <c>tollgate</c> object (the server lays header values over them).</summary>
    public Routing.RequestConstraints Constraints { get; set; } = Routing.RequestConstraints.None;

    /// <summary>Offsets of the whole <c>"tollgate": {...}</c> member, which never goes upstream.</summary>
    public Range? TollgateMember { get; init; }

    /// <summary>Where the conversation's text sits in <see cref="Body"/>, located in the parser's one pass for the task classifier.</summary>
    public Routing.Classification.ConversationText Conversation { get; init; }

    /// <summary>Offsets of <c>response_format.json_schema.schema</c> when the format is <c>json_schema</c>.</summary>
    public Range? ResponseSchema { get; init; }
}

/// <summary>A request the gateway refuses before any provider sees it.</summary>
public sealed record RequestError(string Message, string? Param, string Code);
