namespace Tollgate.Providers;

/// <summary>
/// Wraps an upstream's SSE body and fails the read once more than <see cref="MaxEventBytes"/> bytes arrive without an
/// event boundary (a blank line). <see cref="System.Net.ServerSentEvents.SseParser"/> buffers an event until its
/// blank line without a limit, and an upstream that keeps sending one line never trips the idle timeout: without
/// this guard it could fill the gateway's memory. It looks for line ends only (a vectorised search per read), so a
/// stream of ordinary events costs a few comparisons per event. It does not own <paramref name="inner"/>: the
/// response it belongs to disposes it.
/// </summary>
internal sealed class EventSizeGuardStream(Stream inner, long maxEventBytes = EventSizeGuardStream.DefaultMaxEventBytes) : Stream
{
    /// <summary>Far above any text or tool-call event, with room for an inline image (base64) in one event.</summary>
    public const long DefaultMaxEventBytes = 32 * 1024 * 1024;

    private long _sinceBoundary;
    private bool _atLineStart = true;
    private bool _afterCarriageReturn;

    public long MaxEventBytes => maxEventBytes;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        Observe(buffer.Span[..read]);
        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(Span<byte> buffer)
    {
        var read = inner.Read(buffer);
        Observe(buffer[..read]);
        return read;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    /// <summary>
    /// Follows line ends (CRLF, LF or CR, as SSE allows) across reads; a line end at the start of a line is a blank
    /// line, which ends an event.
    /// </summary>
    private void Observe(ReadOnlySpan<byte> bytes)
    {
        var afterBoundary = -1;
        var position = 0;
        while (position < bytes.Length)
        {
            var offset = bytes[position..].IndexOfAny((byte)'\r', (byte)'\n');
            if (offset != 0)
            {
                // Ordinary bytes first (all the rest, when no line end follows): the line has content.
                _atLineStart = false;
                _afterCarriageReturn = false;
                if (offset < 0)
                {
                    break;
                }
            }

            position += offset;
            if (bytes[position] == (byte)'\n' && _afterCarriageReturn)
            {
                // The LF of a CRLF: the line already ended at its CR.
                _afterCarriageReturn = false;
            }
            else
            {
                if (_atLineStart)
                {
                    afterBoundary = position + 1;
                }

                _atLineStart = true;
                _afterCarriageReturn = bytes[position] == (byte)'\r';
            }

            position++;
        }

        _sinceBoundary = afterBoundary < 0 ? _sinceBoundary + bytes.Length : bytes.Length - afterBoundary;
        if (_sinceBoundary > maxEventBytes)
        {
            throw new IOException($"The provider sent more than {maxEventBytes} bytes without ending an event.");
        }
    }
}
