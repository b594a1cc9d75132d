using System.IO.Pipelines;

namespace Tollgate.Bench.Upstream;

/// <summary>The single request delegate: no routing, no model binding, no JSON parsing.</summary>
internal sealed class FakeHandler(bool flushEachEvent)
{
    private const string JsonType = "application/json";
    private const string SseType = "text/event-stream; charset=utf-8";

    public Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var path = request.Path.Value;
        if (HttpMethods.IsPost(request.Method) && string.Equals(path, "/v1/chat/completions", StringComparison.Ordinal))
        {
            return ChatAsync(context);
        }

        if (HttpMethods.IsGet(request.Method))
        {
            if (string.Equals(path, "/v1/models", StringComparison.Ordinal))
            {
                return WriteJsonAsync(context.Response, StatusCodes.Status200OK, Payloads.Models);
            }

            if (string.Equals(path, "/health", StringComparison.Ordinal))
            {
                return WriteJsonAsync(context.Response, StatusCodes.Status200OK, Payloads.Health);
            }
        }

        return WriteJsonAsync(context.Response, StatusCodes.Status404NotFound, Payloads.NotFound);
    }

    private static async Task WriteJsonAsync(HttpResponse response, int status, byte[] body)
    {
        response.StatusCode = status;
        response.ContentType = JsonType;
        response.ContentLength = body.Length;
        await response.BodyWriter.WriteAsync(body).ConfigureAwait(false);
    }

    private async Task ChatAsync(HttpContext context)
    {
        var ct = context.RequestAborted;
        var reader = context.Request.BodyReader;
        ReadResult read;
        while (true)
        {
            read = await reader.ReadAsync(ct).ConfigureAwait(false);
            if (read.IsCompleted || read.IsCanceled)
            {
                break;
            }

            reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
        }

        var (stream, delayMs) = RequestScan.Scan(read.Buffer);
        reader.AdvanceTo(read.Buffer.End);

        var response = context.Response;
        if (!stream)
        {
            if (delayMs > 0)
            {
                await Task.Delay(delayMs, ct).ConfigureAwait(false);
            }

            await WriteJsonAsync(response, StatusCodes.Status200OK, Payloads.ChatJson).ConfigureAwait(false);
            return;
        }

        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = SseType;
        response.Headers.CacheControl = "no-cache";
        var writer = response.BodyWriter;
        if (delayMs == 0 && !flushEachEvent)
        {
            await writer.WriteAsync(Payloads.StreamAll, ct).ConfigureAwait(false);
            return;
        }

        var events = Payloads.StreamEvents;
        for (var i = 0; i < events.Length; i++)
        {
            if (i > 0 && delayMs > 0)
            {
                await Task.Delay(delayMs, ct).ConfigureAwait(false);
            }

            // WriteAsync on the pipe writer copies and flushes: one SSE event per flush.
            var result = await writer.WriteAsync(events[i], ct).ConfigureAwait(false);
            if (result.IsCanceled || result.IsCompleted)
            {
                return;
            }
        }
    }
}
