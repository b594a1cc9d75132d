using Tollgate.Metering;

namespace Tollgate.Providers;

/// <summary>The outcome of starting one attempt: a response ready to relay, or a failure.</summary>
public readonly record struct AttemptResult(UpstreamResponse? Response, UpstreamFailure? Failure)
{
    public static AttemptResult Fail(UpstreamFailure failure) => new(null, failure);

    public static AttemptResult Ok(UpstreamResponse response) => new(response, null);
}

/// <summary>A successful upstream answer in OpenAI's wire format.</summary>
public abstract class UpstreamResponse : IAsyncDisposable
{
    public abstract ValueTask DisposeAsync();
}

/// <summary>A complete, validated non-streaming body (already in OpenAI shape) and its usage.</summary>
public sealed class BufferedResponse(int status, byte[] body, MeteredUsage usage) : UpstreamResponse
{
    public int Status { get; } = status;

    public byte[] Body { get; } = body;

    public MeteredUsage Usage { get; } = usage;

    public override ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>One OpenAI <c>chat.completion.chunk</c> payload (the bytes after <c>data: </c>).</summary>
/// <param name="Data">The JSON payload.</param>
/// <param name="UsageOnly">The trailing usage chunk (empty choices), shown only to clients that asked for usage.</param>
public readonly record struct StreamChunk(ReadOnlyMemory<byte> Data, bool UsageOnly);

/// <summary>
/// A started stream. The first chunk has already arrived (that is what lets the dispatcher fail over
/// until then); the rest are read one at a time as the client consumes them, never buffered.
/// </summary>
public abstract class StreamingResponse : UpstreamResponse
{
    /// <summary>The chunk that proved the stream alive.</summary>
    public abstract StreamChunk First { get; }

    /// <summary>
    /// The next chunk, or null when the stream ended cleanly (<c>[DONE]</c>, or a final chunk with a
    /// finish reason). Throws <see cref="UpstreamStreamException"/> when the stream breaks. A chunk's data is
    /// valid until the next call (a stream may reuse one buffer for every chunk); <see cref="First"/>'s always.
    /// </summary>
    public abstract ValueTask<StreamChunk?> ReadAsync();

    /// <summary>
    /// Restarts the idle timer of a read in flight: the relay stops it while the client is slow to take what
    /// was written (that wait is not upstream silence) and restarts it here once the client has caught up.
    /// </summary>
    public abstract void RestartIdleTimer();

    /// <summary>Usage reported by the upstream, or estimated from what was relayed so far.</summary>
    public abstract MeteredUsage Usage { get; }
}

/// <summary>A stream that broke after it had started: cut, garbage, an error event, or silence past the idle timeout.</summary>
public sealed class UpstreamStreamException(UpstreamFailure failure, Exception? inner = null) : Exception(failure.Message, inner)
{
    public UpstreamFailure Failure { get; } = failure;
}
