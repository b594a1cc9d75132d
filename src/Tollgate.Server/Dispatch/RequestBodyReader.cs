using System.Buffers;
using Tollgate.Requests;

namespace Tollgate.Server.Dispatch;

/// <summary>Reads a request body into one rented buffer, refusing it as soon as it passes the size limit.</summary>
internal static class RequestBodyReader
{
    public enum Outcome
    {
        Ok,
        TooLarge,
    }

    public static async Task<(Outcome Outcome, PooledBody? Body)> ReadAsync(HttpRequest request, long limit, CancellationToken cancellationToken)
    {
        // Checked before reading anything: a declared length over the limit is refused unread.
        if (request.ContentLength > limit)
        {
            return (Outcome.TooLarge, null);
        }

        var reader = request.BodyReader;
        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (buffer.Length > limit)
            {
                reader.AdvanceTo(buffer.Start, buffer.End);
                return (Outcome.TooLarge, null);
            }

            if (result.IsCompleted)
            {
                var length = (int)buffer.Length;
                var rented = ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
                buffer.CopyTo(rented);
                reader.AdvanceTo(buffer.End);
                return (Outcome.Ok, new PooledBody(rented, length));
            }

            // Nothing consumed, everything examined: wait for more.
            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }
}
