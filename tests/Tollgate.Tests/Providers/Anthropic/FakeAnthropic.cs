using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Tollgate.Tests.Fakes;

using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Providers.Anthropic;

/// <summary>What the fake does with one request.</summary>
public sealed record AnthropicBehavior
{
    /// <summary>The answer to render (as a message, or as events when the request streams).</summary>
    public AnthropicAnswer? Answer { get; init; }

    /// <summary>An HTTP error: status plus Anthropic's error envelope.</summary>
    public int ErrorStatus { get; init; }

    public string ErrorType { get; init; } = "api_error";

    public string ErrorMessage { get; init; } = "Internal server error (fake).";

    public string? RetryAfter { get; init; }

    /// <summary>An exact non-streaming body (a fixture).</summary>
    public string? RawBody { get; init; }

    /// <summary>An exact SSE transcript (a fixture), sent frame by frame.</summary>
    public string? RawTranscript { get; init; }

    /// <summary>Stream only this many events, then drop the connection.</summary>
    public int? CutAfterEvents { get; init; }

    /// <summary>Stream this many events, then an error event, then end the body.</summary>
    public int? ErrorEventAfter { get; init; }

    public static AnthropicBehavior Text(string text, JsonObject? usage = null) => new() { Answer = AnthropicAnswer.Text(text, usage) };

    public static AnthropicBehavior Reply(AnthropicAnswer answer) => new() { Answer = answer };

    public static AnthropicBehavior Error(int status, string type, string message, string? retryAfter = null) =>
        new() { ErrorStatus = status, ErrorType = type, ErrorMessage = message, RetryAfter = retryAfter };

    public static AnthropicBehavior Raw(string? body = null, string? transcript = null) => new() { RawBody = body, RawTranscript = transcript };
}

/// <summary>
/// A fake Anthropic Messages API on real Kestrel (loopback, ephemeral port). It checks what the real API
/// checks at the door (x-api-key, anthropic-version, model/max_tokens/messages), records every request, and
/// answers each with the next queued <see cref="AnthropicBehavior"/> (or <see cref="Default"/>).
/// </summary>
public sealed class FakeAnthropic : IAsyncDisposable
{
    public const string ApiKey = "sk-ant-fake-key";

    private readonly WebApplication _app;
    private readonly Lock _sync = new();
    private readonly Queue<AnthropicBehavior> _queue = new();
    private readonly List<RecordedRequest> _requests = [];

    private FakeAnthropic(WebApplication app)
    {
        _app = app;
        _app.Run(HandleAsync);
    }

    /// <summary>"http://127.0.0.1:PORT/v1", as an Anthropic base URL is configured.</summary>
    public Uri BaseUrl { get; private set; } = null!;

    public AnthropicBehavior Default { get; set; } = AnthropicBehavior.Text("Hello from Claude.");

    public IReadOnlyList<RecordedRequest> Requests
    {
        get
        {
            lock (_sync)
            {
                return [.. _requests];
            }
        }
    }

    /// <summary>The body of the only request received.</summary>
    public JsonObject SingleBody => Requests.Single().Json!;

    public static async Task<FakeAnthropic> StartAsync(CancellationToken cancellationToken)
    {
        var builder = LoopbackServer.CreateBuilder();

        var fake = new FakeAnthropic(builder.Build());
        try
        {
            await fake._app.StartAsync(cancellationToken);
            fake.BaseUrl = new Uri(LoopbackServer.AddressOf(fake._app) + "/v1");
            return fake;
        }
        catch
        {
            await fake.DisposeAsync();
            throw;
        }
    }

    public void Enqueue(params AnthropicBehavior[] behaviors)
    {
        lock (_sync)
        {
            foreach (var behavior in behaviors)
            {
                _queue.Enqueue(behavior);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync(CancellationToken.None);
        await _app.DisposeAsync();
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = await RecordAsync(context);
        if (request.Method != "POST" || request.Path != "/v1/messages")
        {
            await WriteErrorAsync(context, 404, "not_found_error", $"Not found: {request.Method} {request.Path}");
            return;
        }

        if (request.Header("x-api-key") != ApiKey)
        {
            await WriteErrorAsync(context, 401, "authentication_error", "invalid x-api-key");
            return;
        }

        if (request.Header("anthropic-version") is null)
        {
            await WriteErrorAsync(context, 400, "invalid_request_error", "anthropic-version: header is required");
            return;
        }

        if (request.Json is not { } json || json["model"] is null || json["max_tokens"] is null || json["messages"] is not JsonArray)
        {
            await WriteErrorAsync(context, 400, "invalid_request_error", "model, max_tokens and messages are required");
            return;
        }

        AnthropicBehavior behavior;
        lock (_sync)
        {
            behavior = _queue.TryDequeue(out var next) ? next : Default;
        }

        await PlayAsync(context, behavior, json, request.IsStream);
    }

    private static async Task PlayAsync(HttpContext context, AnthropicBehavior behavior, JsonObject request, bool stream)
    {
        if (behavior.ErrorStatus != 0)
        {
            if (behavior.RetryAfter is not null)
            {
                context.Response.Headers.RetryAfter = behavior.RetryAfter;
            }

            await WriteErrorAsync(context, behavior.ErrorStatus, behavior.ErrorType, behavior.ErrorMessage);
            return;
        }

        var model = (string)request["model"]!;
        if (!stream)
        {
            var body = behavior.RawBody is { } raw ? Encoding.UTF8.GetBytes(raw) : AnthropicWire.Message(behavior.Answer!, model);
            await WriteJsonAsync(context, 200, body);
            return;
        }

        var events = behavior.RawTranscript is { } transcript ? AnthropicWire.SplitTranscript(transcript) : AnthropicWire.Events(behavior.Answer!, model);
        context.Response.StatusCode = 200;
        context.Response.ContentType = "text/event-stream; charset=utf-8";
        context.Response.Headers.CacheControl = "no-cache";
        var limit = behavior.CutAfterEvents ?? behavior.ErrorEventAfter ?? events.Count;
        for (var i = 0; i < Math.Min(limit, events.Count); i++)
        {
            await WriteFlushedAsync(context, events[i]);
        }

        if (behavior.ErrorEventAfter is not null)
        {
            await WriteFlushedAsync(context, AnthropicWire.ErrorEvent("overloaded_error", "Overloaded"));
        }
        else if (behavior.CutAfterEvents is not null)
        {
            context.Abort();
        }
    }

    private async Task<RecordedRequest> RecordAsync(HttpContext context)
    {
        using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
        var body = await reader.ReadToEndAsync(context.RequestAborted);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, values) in context.Request.Headers)
        {
            headers[name] = values.ToString();
        }

        JsonObject? json = null;
        try
        {
            json = body.Length > 0 ? JsonNode.Parse(body, documentOptions: new JsonDocumentOptions { MaxDepth = 256 }) as JsonObject : null;
        }
        catch (JsonException)
        {
            // Recorded as text; the handler answers 400.
        }

        var recorded = new RecordedRequest(context.Request.Method, context.Request.Path.Value ?? string.Empty, context.Request.QueryString.Value ?? string.Empty, headers, body, json);
        lock (_sync)
        {
            _requests.Add(recorded);
        }

        return recorded;
    }

    private static Task WriteErrorAsync(HttpContext context, int status, string type, string message) =>
        WriteJsonAsync(context, status, Encoding.UTF8.GetBytes(AnthropicWire.ErrorObject(type, message).ToJsonString()));

    private static async Task WriteJsonAsync(HttpContext context, int status, byte[] body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = body.Length;
        await context.Response.Body.WriteAsync(body, context.RequestAborted);
    }

    private static async Task WriteFlushedAsync(HttpContext context, string frame)
    {
        await context.Response.Body.WriteAsync(Encoding.UTF8.GetBytes(frame), context.RequestAborted);
        await context.Response.Body.FlushAsync(context.RequestAborted);
    }
}
