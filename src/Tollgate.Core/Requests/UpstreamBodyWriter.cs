using System.Buffers;

namespace Tollgate.Requests;

/// <summary>
/// Produces the body sent to an OpenAI-compatible upstream by splicing the original bytes:
/// the <c>model</c> token is replaced by the deployment's upstream model and, for streams,
/// <c>stream_options</c> is set to ask for usage. Everything else is copied verbatim, so fields the
/// gateway does not know pass through unchanged and nothing is re-serialised.
/// </summary>
public static class UpstreamBodyWriter
{
    private static ReadOnlySpan<byte> IncludeUsageValue => "{\"include_usage\":true}"u8;

    private static ReadOnlySpan<byte> IncludeUsageProperty => ",\"stream_options\":{\"include_usage\":true}"u8;

    /// <summary>Writes the upstream body into a buffer rented from <see cref="ArrayPool{T}.Shared"/>; the caller returns it.</summary>
    public static PooledBody Write(ParsedRequest request, ReadOnlySpan<byte> upstreamModelJson)
    {
        var body = request.Body.Span;
        var (modelStart, modelEnd) = Offsets(request.ModelToken, body.Length);
        var forceUsage = request.Stream;
        var maxLength = body.Length - (modelEnd - modelStart) + upstreamModelJson.Length + (forceUsage ? IncludeUsageProperty.Length : 0);
        var buffer = ArrayPool<byte>.Shared.Rent(maxLength);
        var written = 0;

        static void Copy(ReadOnlySpan<byte> source, byte[] target, ref int at)
        {
            source.CopyTo(target.AsSpan(at));
            at += source.Length;
        }

        if (forceUsage && request.StreamOptionsValue is { } options)
        {
            var (optStart, optEnd) = Offsets(options, body.Length);

            // Two splices, applied in document order.
            var modelFirst = modelStart < optStart;
            var aStart = modelFirst ? modelStart : optStart;
            var aEnd = modelFirst ? modelEnd : optEnd;
            var bStart = modelFirst ? optStart : modelStart;
            var bEnd = modelFirst ? optEnd : modelEnd;
            Copy(body[..aStart], buffer, ref written);
            Copy(modelFirst ? upstreamModelJson : IncludeUsageValue, buffer, ref written);
            Copy(body[aEnd..bStart], buffer, ref written);
            Copy(modelFirst ? IncludeUsageValue : upstreamModelJson, buffer, ref written);
            Copy(body[bEnd..], buffer, ref written);
        }
        else
        {
            Copy(body[..modelStart], buffer, ref written);
            Copy(upstreamModelJson, buffer, ref written);
            if (forceUsage)
            {
                Copy(body[modelEnd..request.ObjectEnd], buffer, ref written);
                Copy(IncludeUsageProperty, buffer, ref written);
                Copy(body[request.ObjectEnd..], buffer, ref written);
            }
            else
            {
                Copy(body[modelEnd..], buffer, ref written);
            }
        }

        return new PooledBody(buffer, written);
    }

    private static (int Start, int End) Offsets(Range range, int length)
    {
        var (offset, count) = range.GetOffsetAndLength(length);
        return (offset, offset + count);
    }
}

/// <summary>A request body in a rented buffer; <see cref="Dispose"/> returns the buffer.</summary>
public sealed class PooledBody(byte[] buffer, int length) : IDisposable
{
    private byte[]? _buffer = buffer;

    public ReadOnlyMemory<byte> Memory => _buffer is { } b ? b.AsMemory(0, length) : throw new ObjectDisposedException(nameof(PooledBody));

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _buffer, null) is { } b)
        {
            ArrayPool<byte>.Shared.Return(b);
        }
    }
}
