namespace Tollgate.Tests.Fakes;

/// <summary>What the fake upstream does with one request.</summary>
public enum FakeBehaviorKind
{
    /// <summary>A normal completion (or embeddings) response.</summary>
    Ok,

    /// <summary>A completion whose only output is one function tool call.</summary>
    ToolCall,

    /// <summary>A non-2xx status with an OpenAI error object.</summary>
    Status,

    /// <summary>200 with a body (or SSE data) that is not JSON.</summary>
    Garbage,

    /// <summary>200 whose body (or stream, inside an event) stops half way and the connection is aborted.</summary>
    Truncated,

    /// <summary>An SSE stream aborted after some content chunks; without "stream": true, same as <see cref="Truncated"/>.</summary>
    CutStream,

    /// <summary>No response (not even headers) until the caller gives up.</summary>
    Hang,

    /// <summary>
    /// An SSE stream that stalls after some content chunks until the caller gives up; without
    /// "stream": true, headers and half of a JSON body, then the same stall.
    /// </summary>
    HangMidStream,

    /// <summary>The connection is aborted before any response byte.</summary>
    DropConnection,

    /// <summary>A 500 whose body, an error object followed by padding, never ends (until the caller gives up).</summary>
    EndlessError,

    /// <summary>An SSE stream: a role chunk, then an event whose data line never ends (until the caller gives up).</summary>
    EndlessEvent,
}

/// <summary>
/// One scripted reaction of <see cref="FakeUpstream"/>. Immutable: derive variants with
/// <c>with</c> expressions or <see cref="WithGate"/> / <see cref="WithoutUsage"/>, so one instance
/// can be enqueued several times or kept as <see cref="FakeUpstream.Default"/> safely.
/// </summary>
public sealed record FakeBehavior
{
    public const string DefaultContent = "Hello from the fake upstream.";

    private FakeBehavior(FakeBehaviorKind kind) => Kind = kind;

    public FakeBehaviorKind Kind { get; }

    /// <summary>Assistant text for <see cref="FakeBehaviorKind.Ok"/> and the streaming kinds.</summary>
    public string Content { get; init; } = DefaultContent;

    public int PromptTokens { get; init; } = 12;

    public int CompletionTokens { get; init; } = 7;

    public int CachedTokens { get; init; }

    public int ReasoningTokens { get; init; }

    /// <summary>
    /// When false, no usage is reported at all: the non-streaming body has no <c>usage</c> member and
    /// a stream never sends the usage chunk even when <c>stream_options.include_usage</c> was asked for,
    /// as some OpenAI-compatible servers do.
    /// </summary>
    public bool SendUsage { get; init; } = true;

    public string? ToolName { get; init; }

    /// <summary>The function arguments as a JSON text (sent as a JSON string, the OpenAI way).</summary>
    public string? ToolArguments { get; init; }

    public int StatusCode { get; init; } = 200;

    /// <summary>Raw <c>Retry-After</c> header value, e.g. "2" or an HTTP date.</summary>
    public string? RetryAfter { get; init; }

    public string? ErrorMessage { get; init; }

    /// <summary>Content chunks sent before <see cref="FakeBehaviorKind.CutStream"/> / <see cref="FakeBehaviorKind.HangMidStream"/> stop.</summary>
    public int AfterContentChunks { get; init; }

    /// <summary>
    /// Optional gate awaited (after the request is recorded, before any response byte) so a test can
    /// hold a request in flight deterministically and release it with <c>Gate.SetResult()</c>.
    /// </summary>
    public TaskCompletionSource? Gate { get; init; }

    /// <summary>
    /// Optional gate awaited in a stream after its content chunks, before the finish chunk: a test holds the end
    /// of a stream until it releases it with <c>StreamEndGate.SetResult()</c>.
    /// </summary>
    public TaskCompletionSource? StreamEndGate { get; init; }

    public static FakeBehavior Ok(
        string content = DefaultContent,
        int promptTokens = 12,
        int completionTokens = 7,
        int cachedTokens = 0,
        int reasoningTokens = 0) =>
        new(FakeBehaviorKind.Ok)
        {
            Content = content,
            PromptTokens = promptTokens,
            CompletionTokens = completionTokens,
            CachedTokens = cachedTokens,
            ReasoningTokens = reasoningTokens,
        };

    /// <summary>Like <see cref="Ok"/> but never reports usage.</summary>
    public static FakeBehavior NoUsage(string content = DefaultContent) =>
        Ok(content) with { SendUsage = false };

    public static FakeBehavior ToolCall(
        string name,
        string argumentsJson,
        int promptTokens = 12,
        int completionTokens = 7,
        int cachedTokens = 0,
        int reasoningTokens = 0)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(argumentsJson);
        return new(FakeBehaviorKind.ToolCall)
        {
            Content = string.Empty,
            ToolName = name,
            ToolArguments = argumentsJson,
            PromptTokens = promptTokens,
            CompletionTokens = completionTokens,
            CachedTokens = cachedTokens,
            ReasoningTokens = reasoningTokens,
        };
    }

    public static FakeBehavior Status(int statusCode, string? retryAfter = null, string? message = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(statusCode, 400);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(statusCode, 599);
        return new(FakeBehaviorKind.Status) { StatusCode = statusCode, RetryAfter = retryAfter, ErrorMessage = message };
    }

    public static FakeBehavior Garbage() => new(FakeBehaviorKind.Garbage);

    public static FakeBehavior Truncated() => new(FakeBehaviorKind.Truncated);

    public static FakeBehavior CutStream(int afterContentChunks)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(afterContentChunks);
        return new(FakeBehaviorKind.CutStream) { AfterContentChunks = afterContentChunks };
    }

    public static FakeBehavior Hang() => new(FakeBehaviorKind.Hang);

    public static FakeBehavior HangMidStream(int afterContentChunks)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(afterContentChunks);
        return new(FakeBehaviorKind.HangMidStream) { AfterContentChunks = afterContentChunks };
    }

    public static FakeBehavior DropConnection() => new(FakeBehaviorKind.DropConnection);

    public static FakeBehavior EndlessError() => new(FakeBehaviorKind.EndlessError);

    public static FakeBehavior EndlessEvent() => new(FakeBehaviorKind.EndlessEvent);

    public FakeBehavior WithGate(TaskCompletionSource gate)
    {
        ArgumentNullException.ThrowIfNull(gate);
        return this with { Gate = gate };
    }

    public FakeBehavior WithoutUsage() => this with { SendUsage = false };
}
