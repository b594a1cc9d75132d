using System.Buffers;

namespace Tollgate.Providers;

/// <summary>
/// Reads an upstream's non-streaming bodies into memory, each within a limit, so a misbehaving provider cannot fill
/// the gateway's memory: an answer whole (up to <see cref="MaxAnswerBytes"/>), an error body only its start.
/// Streams are guarded by <see cref="EventSizeGuardStream"/>.
/// </summary>
internal static class UpstreamBodies
{
    /// <summary>The most of an error body read: enough for any provider's error object, never a flood.</summary>
    private const int ErrorBodyLimit = 64 * 1024;

    /// <summary>The largest declared length read straight into an array of that length.</summary>
    private const int ExactReadLimit = 16 * 1024 * 1024;

    /// <summary>
    /// The most of an answer read: far above any completion, room for the largest embeddings batch as JSON
    /// (2,048 inputs of 3,072 floats). An upstream sending more, or an answer without end, fails the attempt.
    /// </summary>
    public const long MaxAnswerBytes = 256 * 1024 * 1024;

    /// <summary>
    /// The whole answer. With a declared length it is read into one array of that length:
    /// <see cref="HttpContent.ReadAsByteArrayAsync(CancellationToken)"/> fills a buffer stream and then copies it
    /// out, two arrays and a copy for every answer. A body shorter than declared, or longer than
    /// <paramref name="maxBytes"/>, throws an <see cref="IOException"/>.
    /// </summary>
    public static async Task<byte[]> ReadAnswerAsync(HttpContent content, CancellationToken cancellationToken, long maxBytes = MaxAnswerBytes)
    {
        var declared = content.Headers.ContentLength;
        if (declared > maxBytes)
        {
            throw new IOException($"The provider declared an answer of {declared} bytes, over the {maxBytes}-byte limit.");
        }

        var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            if (declared is { } length && length <= ExactReadLimit)
            {
                var body = new byte[length];
                await stream.ReadExactlyAsync(body, cancellationToken).ConfigureAwait(false);
                return body;
            }

            return await ReadCappedAsync(stream, maxBytes, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task<byte[]> ReadCappedAsync(Stream stream, long maxBytes, CancellationToken cancellationToken)
    {
        using var body = new MemoryStream();
        var chunk = ArrayPool<byte>.Shared.Rent(81920);
        try
        {
            int read;
            while ((read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
            {
                if (body.Length + read > maxBytes)
                {
                    throw new IOException($"The provider's answer went over the {maxBytes}-byte limit.");
                }

                body.Write(chunk, 0, read);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }

        return body.ToArray();
    }

    /// <summary>
    /// At most 64 KiB of an error body; the rest is left unread (the connection is
    /// drained or closed when the response is disposed). An upstream failing with an endless body costs
    /// the gateway 64 KiB, not its memory.
    /// </summary>
    public static async Task<ReadOnlyMemory<byte>> ReadErrorAsync(HttpContent content, CancellationToken cancellationToken)
    {
        var buffer = new byte[content.Headers.ContentLength is { } declared ? (int)Math.Min(declared, ErrorBodyLimit) : ErrorBodyLimit];
        var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            var read = await stream.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
            return buffer.AsMemory(0, read);
        }
    }
}
