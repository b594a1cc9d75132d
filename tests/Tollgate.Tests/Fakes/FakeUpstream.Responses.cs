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

        // The stream-only failure modes stream even for a non-stream request: they exist to break streams.
        if (call.Stream || behavior.Kind is FakeBehaviorKind.CutStream or FakeBehaviorKind.HangMidStream)
        {
            try
            {
                await StreamChatAsync(context, call, behavior, toolCallId);
            }
            catch (OperationCanceledException) when (behavior.Kind == FakeBehaviorKind.HangMidStream && context.RequestAborted.IsCancellationRequested)
            {
                // The caller may read the last chunk and cancel before our flush of it has returned;
                // that is still the cancellation the test is waiting for.
                _cancelled.Increment();
            }
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
    /// Plays the behaviours that are not a normal answer. Returns false for Ok / ToolCall, and for
    /// CutStream / HangMidStream on chat, which the streaming path handles.
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
                // A role chunk, then half of the next event: the cut lands inside a JSON object.
                var call = new ChatCall("chatcmpl-truncated", TimeProvider.System.GetUtcNow().ToUnixTimeSeconds(), ModelId, 1, true, false);
                StartEventStream(context);
                await WriteFlushedAsync(context, OpenAiWire.Sse(OpenAiWire.RoleChunk(call, behavior, 0, string.Empty)));
                var next = OpenAiWire.Sse(OpenAiWire.PartChunk(call, behavior, 0, behavior.Content));
                await WriteFlushedAsync(context, next.AsMemory(0, next.Length / 2));
                context.Abort();
                return true;
            case FakeBehaviorKind.Truncated:
                // Content-Length promises the whole body, so the client sees a premature end, not short JSON.
                var whole = OpenAiWire.Completion(
                    new ChatCall("chatcmpl-truncated", TimeProvider.System.GetUtcNow().ToUnixTimeSeconds(), ModelId, 1, false, false),
                    behavior,
                    string.Empty);
                context.Response.StatusCode = StatusCodes.Status200OK;
                context.Response.ContentType = "application/json";
                context.Response.ContentLength = whole.Length;
                await WriteFlushedAsync(context, whole.AsMemory(0, whole.Length / 2));
                context.Abort();
                return true;
            case FakeBehaviorKind.CutStream when !stream:
                // Embeddings have no stream to cut: the closest failure is a body cut short.
                return await TryPlayFailureAsync(context, FakeBehavior.Truncated(), stream: false);
            case FakeBehaviorKind.HangMidStream when !stream:
                await HoldUntilAbortedAsync(context);
                return true;
            default:
                return false;
        }
    }

    private async Task StreamChatAsync(HttpContext context, ChatCall call, FakeBehavior behavior, string toolCallId)
    {
        var parts = behavior.Kind == FakeBehaviorKind.ToolCall
            ? OpenAiWire.SplitFragments(behavior.ToolArguments ?? string.Empty)
            : OpenAiWire.SplitWords(behavior.Content);
        var stopsEarly = behavior.Kind is FakeBehaviorKind.CutStream or FakeBehaviorKind.HangMidStream;
        var partsToSend = stopsEarly ? Math.Min(behavior.AfterContentChunks, parts.Count) : parts.Count;

        StartEventStream(context);
        for (var choice = 0; choice < call.Choices; choice++)
        {
            await WriteFlushedAsync(context, OpenAiWire.Sse(OpenAiWire.RoleChunk(call, behavior, choice, toolCallId)));
        }

        for (var part = 0; part < partsToSend; part++)
        {
            for (var choice = 0; choice < call.Choices; choice++)
            {
                await WriteFlushedAsync(context, OpenAiWire.Sse(OpenAiWire.PartChunk(call, behavior, choice, parts[part])));
            }
        }

        if (behavior.Kind == FakeBehaviorKind.CutStream)
        {
            context.Abort();
            return;
        }

        if (behavior.Kind == FakeBehaviorKind.HangMidStream)
        {
            await HoldUntilAbortedAsync(context);
            return;
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
