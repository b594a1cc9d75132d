using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using Tollgate.Server.Errors;

namespace Tollgate.Server.Dispatch;

/// <summary>Writes Server-Sent Events straight into the response pipe.</summary>
internal static class SseWriter
{
    private static ReadOnlySpan<byte> DataPrefix => "data: "u8;

    private static ReadOnlySpan<byte> EventEnd => "\n\n"u8;

    private static ReadOnlySpan<byte> DoneEvent => "data: [DONE]\n\n"u8;

    /// <summary>What <see cref="WriteData"/> adds around an event's data: the <c>data: </c> prefix and the blank line.</summary>
    public static int EventOverhead => DataPrefix.Length + EventEnd.Length;

    /// <summary>Writes one event without flushing it: the relay decides when to flush (<see cref="GatewayDispatcher"/>).</summary>
    public static void WriteData(PipeWriter writer, ReadOnlySpan<byte> data)
    {
        var length = DataPrefix.Length + data.Length + EventEnd.Length;
        var span = writer.GetSpan(length);
        DataPrefix.CopyTo(span);
        data.CopyTo(span[DataPrefix.Length..]);
        EventEnd.CopyTo(span[(DataPrefix.Length + data.Length)..]);
        writer.Advance(length);
    }

    /// <summary>
    /// Writes the closing <c>[DONE]</c> event without flushing it. It is the response's last write: the server
    /// flushes it with the end of the response (the terminating chunk), so the end of a stream costs one send.
    /// </summary>
    public static void WriteDone(PipeWriter writer) => writer.Write(DoneEvent);

    /// <summary>The event that tells a client its stream is truncated: an OpenAI error object, and no finish_reason, no [DONE].</summary>
    public static ValueTask<FlushResult> WriteErrorAsync(PipeWriter writer, string message, string code, CancellationToken cancellationToken)
    {
        writer.Write(DataPrefix);
        using (var json = new Utf8JsonWriter(writer, OpenAIError.WriterOptions))
        {
            OpenAIError.Write(json, message, OpenAIError.Upstream, null, code);
        }

        writer.Write(EventEnd);
        return writer.FlushAsync(cancellationToken);
    }
}
