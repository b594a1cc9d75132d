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

        // At most three edits, applied in document order: model replaced, stream_options replaced (or added
        // before the closing brace), the gateway's own "tollgate" member removed.
        Span<Splice> splices = stackalloc Splice[3];
        var count = 0;
        var (modelStart, modelEnd) = Offsets(request.ModelToken, body.Length);
        splices[count++] = new Splice(modelStart, modelEnd, Replacement.Model);
        if (request.Stream)
        {
            if (request.StreamOptionsValue is { } options)
            {
                var (optionsStart, optionsEnd) = Offsets(options, body.Length);
                splices[count++] = new Splice(optionsStart, optionsEnd, Replacement.UsageValue);
            }
            else
            {
                splices[count++] = new Splice(request.ObjectEnd, request.ObjectEnd, Replacement.UsageProperty);
            }
        }

        if (request.TollgateMember is { } member)
        {
            var (memberStart, memberEnd) = MemberWithComma(body, Offsets(member, body.Length));
            splices[count++] = new Splice(memberStart, memberEnd, Replacement.Nothing);
        }

        splices = splices[..count];
        splices.Sort(static (a, b) => a.Start.CompareTo(b.Start));

        var buffer = ArrayPool<byte>.Shared.Rent(body.Length + upstreamModelJson.Length + IncludeUsageProperty.Length);
        var written = 0;
        var at = 0;
        foreach (var splice in splices)
        {
            Copy(body[at..splice.Start], buffer, ref written);
            Copy(splice.With switch
            {
                Replacement.Model => upstreamModelJson,
                Replacement.UsageValue => IncludeUsageValue,
                Replacement.UsageProperty => IncludeUsageProperty,
                _ => [],
            }, buffer, ref written);
            at = splice.End;
        }

        Copy(body[at..], buffer, ref written);
        return new PooledBody(buffer, written);
    }

    private static void Copy(ReadOnlySpan<byte> source, byte[] target, ref int at)
    {
        source.CopyTo(target.AsSpan(at));
        at += source.Length;
    }

    /// <summary>
    /// Widens a member's range to one of its separating commas so that removing it leaves valid JSON: the
    /// comma before it, or when it is the first member, the comma after it.
    /// </summary>
    private static (int Start, int End) MemberWithComma(ReadOnlySpan<byte> body, (int Start, int End) member)
    {
        var before = member.Start - 1;
        while (before >= 0 && IsWhitespace(body[before]))
        {
            before--;
        }

        if (before >= 0 && body[before] == (byte)',')
        {
            return (before, member.End);
        }

        var after = member.End;
        while (after < body.Length && IsWhitespace(body[after]))
        {
            after++;
        }

        return after < body.Length && body[after] == (byte)',' ? (member.Start, after + 1) : member;
    }

    private static bool IsWhitespace(byte b) => b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n';

    private enum Replacement : byte
    {
        Nothing,
        Model,
        UsageValue,
        UsageProperty,
    }

    private readonly record struct Splice(int Start, int End, Replacement With);

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
