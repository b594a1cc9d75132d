using System.Buffers;

namespace Tollgate.Bench.Upstream;

/// <summary>
/// Finds the two things the fake upstream cares about in a request body without parsing JSON:
/// <c>"stream": true</c> and a <c>delayN</c> inside the <c>"model"</c> value.
/// </summary>
internal static class RequestScan
{
    private const int MaxDelayMs = 60_000;

    public static (bool Stream, int DelayMs) Scan(ReadOnlySequence<byte> body)
    {
        if (body.IsSingleSegment)
        {
            return Scan(body.FirstSpan);
        }

        var length = checked((int)body.Length);
        var rented = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            body.CopyTo(rented);
            return Scan(rented.AsSpan(0, length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    public static (bool Stream, int DelayMs) Scan(ReadOnlySpan<byte> body)
    {
        var stream = false;
        var at = body.IndexOf("\"stream\""u8);
        if (at >= 0)
        {
            var rest = SkipSpace(body[(at + 8)..]);
            if (rest.Length > 0 && rest[0] == (byte)':')
            {
                stream = SkipSpace(rest[1..]).StartsWith("true"u8);
            }
        }

        return (stream, ModelDelay(body));
    }

    private static int ModelDelay(ReadOnlySpan<byte> body)
    {
        if (body.IndexOf("delay"u8) < 0)
        {
            return 0;
        }

        var at = body.IndexOf("\"model\""u8);
        if (at < 0)
        {
            return 0;
        }

        var rest = SkipSpace(body[(at + 7)..]);
        if (rest.Length == 0 || rest[0] != (byte)':')
        {
            return 0;
        }

        rest = SkipSpace(rest[1..]);
        if (rest.Length == 0 || rest[0] != (byte)'"')
        {
            return 0;
        }

        rest = rest[1..];
        var end = rest.IndexOf((byte)'"');
        var model = end < 0 ? rest : rest[..end];
        var d = model.IndexOf("delay"u8);
        if (d < 0)
        {
            return 0;
        }

        var ms = 0;
        foreach (var c in model[(d + 5)..])
        {
            if (c is < (byte)'0' or > (byte)'9')
            {
                break;
            }

            ms = Math.Min(MaxDelayMs, (ms * 10) + (c - '0'));
        }

        return ms;
    }

    private static ReadOnlySpan<byte> SkipSpace(ReadOnlySpan<byte> s)
    {
        var i = 0;
        while (i < s.Length && s[i] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')
        {
            i++;
        }

        return s[i..];
    }
}
