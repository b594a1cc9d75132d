namespace Tollgate.Providers;

/// <summary>Reads an upstream's non-streaming bodies into memory: an answer whole, an error body only up to a cap.</summary>
internal static class UpstreamBodies
{
    /// <summary>The most of an error body read: enough for any provider's error object, never a flood.</summary>
    private const int ErrorBodyLimit = 64 * 1024;

    /// <summary>The largest declared length read straight into an array of that length.</summary>
    private const int ExactReadLimit = 16 * 1024 * 1024;

    /// <summary>
    /// The whole answer. With a declared length it is read into one array of that length:
    /// <see cref="HttpContent.ReadAsByteArrayAsync(CancellationToken)"/> fills a buffer stream and then copies it
    /// out, two arrays and a copy for every answer. A body shorter than declared throws an <see cref="IOException"/>.
    /// </summary>
    public static async Task<byte[]> ReadAnswerAsync(HttpContent content, CancellationToken cancellationToken)
    {
        if (content.Headers.ContentLength is not { } length || length > ExactReadLimit)
        {
            return await content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        }

        var body = new byte[length];
        var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            await stream.ReadExactlyAsync(body, cancellationToken).ConfigureAwait(false);
        }

        return body;
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
