using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace Tollgate.Tests.Fakes;

/// <summary>How each <see cref="FakeBehaviorKind"/> is played out on the wire.</summary>
public sealed partial class FakeUpstream
{
    private static readonly byte[] GarbageBody = "<html><body>this is not json at all {"u8.ToArray();
    private static readonly byte[] GarbageEvent = "data: not json at all\n\n"u8.ToArray();

    private async Task HandleChatAsync(HttpContext context, RecordedRequest request)
    {
        if (request.Json is not { } json)
        {
            await WriteErrorAsync(context, StatusCodes.Status400BadRequest, "We could not parse the JSON body of your request.", "invalid_request_error", null);
            return;
        }

        var behavior = NextBehavior();
        if (!await PassGateAsync(context, behavior) || await TryPlayFailureAsync(context, behavior, request.IsStream))
        {
            return;
        }

        var call = new ChatCall(
            Id: "chatcmpl-" + Guid.NewGuid().ToString("N"),
            Created: TimeProvider.System.GetUtcNow().ToUnixTimeSeconds(),
            Model: request.Model ?? ModelId,
            Choices: Math.Max(1, RecordedRequest.IntMember(json, "n") ?? 1),
            Stream: request.IsStream,
            IncludeUsage: RecordedRequest.BoolMember(json["stream_options"] as JsonObject, "include_usage"));
        var toolCallId = "call_" + Guid.NewGuid().ToString("N")[..24];
        if (call.Stream)
        {
            await StreamChatAsync(context, call, behavior, toolCallId);
        }
        else
        {
            await WriteJsonAsync(context, StatusCodes.Status200OK, OpenAiWire.Completion(call, behavior, toolCallId));
        }
    }

    private async Task HandleEmbeddingsAsync(HttpContext context, RecordedRequest request)
    {
        var inputs = FakeEmbedding.ParseInputs(request.Json?["input"]);
        if (inputs is null)
        {
            await WriteErrorAsync(context, StatusCodes.Status400BadRequest, "'input' must be a string, an array of strings or an array of token arrays.", "invalid_request_error", null);
            return;
        }

        var behavior = NextBehavior();
        if (!await PassGateAsync(context, behavior) || await TryPlayFailureAsync(context, behavior, stream: false))
        {
            return;
        }

        var body = OpenAiWire.Embeddings(
            request.Model ?? ModelId,
            inputs,
            Math.Max(1, RecordedRequest.IntMember(request.Json, "dimensions") ?? FakeEmbedding.DefaultDimensions),
            RecordedRequest.StringMember(request.Json, "encoding_format") == "base64",
            behavior.SendUsage);
        await WriteJsonAsync(context, StatusCodes.Status200OK, body);
    }

    /// <summary>
    /// Plays the behaviours that are not a normal answer and returns true; returns false for Ok and
    /// ToolCall, and for CutStream / HangMidStream on a stream request, which <see cref="StreamChatAsync"/> plays.
    /// On a non-stream request (or embeddings) CutStream is a body cut short and HangMidStream a body
    /// that stalls half way.
    /// </summary>
    private async Task<bool> TryPlayFailureAsync(HttpContext context, FakeBehavior behavior, bool stream)
    {
        switch (behavior.Kind)
        {
            case FakeBehaviorKind.Status:
                if (behavior.RetryAfter is not null)
                {
                    context.Response.Headers.RetryAfter = behavior.RetryAfter;
                }

                var (type, code, message) = DescribeStatus(behavior.StatusCode);
                await WriteErrorAsync(context, behavior.StatusCode, behavior.ErrorMessage ?? message, type, code);
                return true;
            case FakeBehaviorKind.DropConnection:
                context.Abort();
                return true;
            case FakeBehaviorKind.EndlessError:
                await WriteEndlessErrorAsync(context);
                return true;
            case FakeBehaviorKind.EndlessEvent:
                await WriteEndlessEventAsync(context, behavior);
                return true;
            case FakeBehaviorKind.Hang:
                await HoldUntilAbortedAsync(context);
                return true;
            case FakeBehaviorKind.Garbage when stream:
                StartEventStream(context);
                for (var i = 0; i < 3; i++)
                {
                    await WriteFlushedAsync(context, GarbageEvent);
                }

                return true;
            case FakeBehaviorKind.Garbage:
                await WriteJsonAsync(context, StatusCodes.Status200OK, GarbageBody);
                return true;
            case FakeBehaviorKind.Truncated when stream:
                await WriteHalfEventStreamAsync(context, behavior);
                context.Abort();
                return true;
            case FakeBehaviorKind.Truncated or FakeBehaviorKind.CutStream when !stream:
                await WriteHalfBodyAsync(context, behavior);
                context.Abort();
                return true;
            case FakeBehaviorKind.HangMidStream when !stream:
                await WriteThenHoldAsync(context, () => WriteHalfBodyAsync(context, behavior));
                return true;
            default:
                return false;
        }
    }

    /// <summary>A 500 with an error object, then spaces (still valid JSON so far) until the client leaves.</summary>
    private static async Task WriteEndlessErrorAsync(HttpContext context)
    {
        context.Response.StatusCode = StatusCodes.Status500InternalServerError;
        context.Response.ContentType = "application/json";
        await WriteFlushedAsync(context, """{"error":{"message":"The fake upstream is flooding you.","type":"server_error","code":null}}"""u8.ToArray());
        await WritePaddingUntilAbortedAsync(context);
    }

    /// <summary>A role chunk, then <c>data: {"x":"</c> and spaces with no line end, until the client leaves.</summary>
    private static async Task WriteEndlessEventAsync(HttpContext context, FakeBehavior behavior)
    {
        var call = new ChatCall("chatcmpl-endless", TimeProvider.System.GetUtcNow().ToUnixTimeSeconds(), ModelId, 1, Stream: true, IncludeUsage: false);
        StartEventStream(context);
        await WriteFlushedAsync(context, OpenAiWire.Sse(OpenAiWire.RoleChunk(call, behavior, 0, string.Empty)));
        await WriteFlushedAsync(context, "data: {\"x\":\""u8.ToArray());
        await WritePaddingUntilAbortedAsync(context);
    }

    private static async Task WritePaddingUntilAbortedAsync(HttpContext context)
    {
        var padding = new byte[16 * 1024];
        padding.AsSpan().Fill((byte)' ');
        try
        {
            while (!context.RequestAborted.IsCancellationRequested)
            {
                await context.Response.Body.WriteAsync(padding, context.RequestAborted);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // The gateway stopped reading and closed the connection: what these behaviours are for.
        }
    }

    private async Task StreamChatAsync(HttpContext context, ChatCall call, FakeBehavior behavior, string toolCallId)
    {
        var parts = behavior.Kind == FakeBehaviorKind.ToolCall
            ? OpenAiWire.SplitFragments(behavior.ToolArguments ?? string.Empty)
            : OpenAiWire.SplitWords(behavior.Content);
        switch (behavior.Kind)
        {
            case FakeBehaviorKind.CutStream:
                await WriteStreamStartAsync(context, call, behavior, toolCallId, parts, behavior.AfterContentChunks);
                context.Abort();
                return;
            case FakeBehaviorKind.HangMidStream:
                await WriteThenHoldAsync(context, () => WriteStreamStartAsync(context, call, behavior, toolCallId, parts, behavior.AfterContentChunks));
                return;
        }

        await WriteStreamStartAsync(context, call, behavior, toolCallId, parts, parts.Count);
        if (behavior.StreamEndGate is { } endGate)
        {
            try
            {
                await endGate.Task.WaitAsync(context.RequestAborted);
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                return; // The caller gave up while the end was held: nothing is left to send.
            }
        }

        for (var choice = 0; choice < call.Choices; choice++)
        {
            await WriteFlushedAsync(context, OpenAiWire.Sse(OpenAiWire.FinishChunk(call, behavior, choice)));
        }

        if (call.IncludeUsage && behavior.SendUsage)
        {
            await WriteFlushedAsync(context, OpenAiWire.Sse(OpenAiWire.UsageChunk(call, behavior)));
        }

        await WriteFlushedAsync(context, OpenAiWire.Done);
    }

    /// <summary>SSE headers, the role chunk of every choice, then up to <paramref name="partCount"/> content (or argument) chunks.</summary>
    private static async Task WriteStreamStartAsync(
        HttpContext context, ChatCall call, FakeBehavior behavior, string toolCallId, List<string> parts, int partCount)
    {
        StartEventStream(context);
        for (var choice = 0; choice < call.Choices; choice++)
        {
            await WriteFlushedAsync(context, OpenAiWire.Sse(OpenAiWire.RoleChunk(call, behavior, choice, toolCallId)));
        }

        for (var part = 0; part < Math.Min(partCount, parts.Count); part++)
        {
            for (var choice = 0; choice < call.Choices; choice++)
            {
                await WriteFlushedAsync(context, OpenAiWire.Sse(OpenAiWire.PartChunk(call, behavior, choice, parts[part])));
            }
        }
    }

    /// <summary>A role chunk, then half of the next event, so the cut lands inside a JSON object.</summary>
    private static async Task WriteHalfEventStreamAsync(HttpContext context, FakeBehavior behavior)
    {
        var call = new ChatCall("chatcmpl-truncated", TimeProvider.System.GetUtcNow().ToUnixTimeSeconds(), ModelId, 1, Stream: true, IncludeUsage: false);
        StartEventStream(context);
        await WriteFlushedAsync(context, OpenAiWire.Sse(OpenAiWire.RoleChunk(call, behavior, 0, string.Empty)));
        var next = OpenAiWire.Sse(OpenAiWire.PartChunk(call, behavior, 0, behavior.Content));
        await WriteFlushedAsync(context, next.AsMemory(0, next.Length / 2));
    }

    /// <summary>
    /// Headers announcing a whole completion (Content-Length included) and only half of its bytes, so
    /// the client sees a premature end rather than short but well-framed JSON.
    /// </summary>
    private static async Task WriteHalfBodyAsync(HttpContext context, FakeBehavior behavior)
    {
        var call = new ChatCall("chatcmpl-truncated", TimeProvider.System.GetUtcNow().ToUnixTimeSeconds(), ModelId, 1, Stream: false, IncludeUsage: false);
        var whole = OpenAiWire.Completion(call, behavior, string.Empty);
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = whole.Length;
        await WriteFlushedAsync(context, whole.AsMemory(0, whole.Length / 2));
    }

    /// <summary>Writes the part of the response that precedes a stall, then holds until the caller aborts.</summary>
    private async Task WriteThenHoldAsync(HttpContext context, Func<Task> writeFirst)
    {
        try
        {
            await writeFirst();
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The caller can read the last bytes and cancel before our flush of them has returned:
            // that is the same cancellation the test is waiting for.
            _cancelled.Increment();
            return;
        }

        await HoldUntilAbortedAsync(context);
    }

    private static (string Type, string? Code, string Message) DescribeStatus(int statusCode) => statusCode switch
    {
        400 => ("invalid_request_error", null, "Invalid request (fake)."),
        401 => ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
        403 => ("permission_error", null, "You are not allowed to use this model (fake)."),
        404 => ("invalid_request_error", "model_not_found", "The model does not exist (fake)."),
        408 => ("timeout", null, "Request timed out (fake)."),
        429 => ("requests", "rate_limit_exceeded", "Rate limit reached (fake)."),
        >= 500 => ("server_error", null, $"The server had an error while processing your request (fake {statusCode})."),
        _ => ("invalid_request_error", null, $"Request failed (fake {statusCode})."),
    };

    private static void StartEventStream(HttpContext context)
    {
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
    }

    private static Task WriteErrorAsync(HttpContext context, int statusCode, string message, string type, string? code) =>
        WriteJsonAsync(context, statusCode, OpenAiWire.Error(message, type, code));

    private static async Task WriteJsonAsync(HttpContext context, int statusCode, byte[] body)
    {
        context.Response.StatusCode = statusCode;
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = body.Length;
        await context.Response.Body.WriteAsync(body, context.RequestAborted);
    }

    /// <summary>Writes and flushes at once, so every SSE event reaches the client as its own read.</summary>
    private static async Task WriteFlushedAsync(HttpContext context, ReadOnlyMemory<byte> bytes)
    {
        await context.Response.Body.WriteAsync(bytes, context.RequestAborted);
        await context.Response.Body.FlushAsync(context.RequestAborted);
    }
}
