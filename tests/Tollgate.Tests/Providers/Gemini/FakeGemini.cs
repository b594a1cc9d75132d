using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Tollgate.Tests.Fakes;

using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Providers.Gemini;

/// <summary>
/// A fake Gemini API on real Kestrel (loopback, ephemeral port) speaking the v1beta wire format:
/// <c>POST /v1beta/models/{model}:generateContent</c>, <c>:streamGenerateContent?alt=sse</c>,
/// <c>:embedContent</c> and <c>:batchEmbedContents</c>, authenticated by <c>x-goog-api-key</c> (a wrong
/// key gets Gemini's real answer: 400 INVALID_ARGUMENT with reason API_KEY_INVALID). Every request is
/// recorded; each one takes the next queued <see cref="GeminiReply"/>, or a default answer built from the request.
/// </summary>
public sealed class FakeGemini : IAsyncDisposable
{
    public const string ApiKey = "gm-test-key-0123";
    public const string DefaultText = "Hello from Gemini.";

    private readonly WebApplication _app;
    private readonly Lock _sync = new();
    private readonly Queue<GeminiReply> _queue = new();
    private readonly List<RecordedRequest> _requests = [];
    private readonly CancellationTokenSource _stopping = new();

    private FakeGemini(WebApplication app)
    {
        _app = app;
        _app.Run(HandleAsync);
    }

    /// <summary>"http://127.0.0.1:PORT/v1beta/", the provider's baseUrl.</summary>
    public Uri BaseUrl { get; private set; } = null!;

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

    public static async Task<FakeGemini> StartAsync(CancellationToken cancellationToken)
    {
        var builder = LoopbackServer.CreateBuilder();

        var fake = new FakeGemini(builder.Build());
        try
        {
            await fake._app.StartAsync(cancellationToken);
            fake.BaseUrl = new Uri(LoopbackServer.AddressOf(fake._app) + "/v1beta/");
            return fake;
        }
        catch
        {
            await fake.DisposeAsync();
            throw;
        }
    }

    public void Enqueue(params GeminiReply[] replies)
    {
        lock (_sync)
        {
            foreach (var reply in replies)
            {
                _queue.Enqueue(reply);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        try
        {
            await _app.StopAsync(CancellationToken.None);
        }
        finally
        {
            await _app.DisposeAsync();
            _stopping.Dispose();
        }
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = await RecordAsync(context);
        var (model, method) = ParsePath(request.Path);
        if (request.Method != "POST" || model is null)
        {
            await WriteErrorAsync(context, 404, "NOT_FOUND", $"Unknown path {request.Path}.");
            return;
        }

        if (request.Header("x-goog-api-key") != ApiKey)
        {
            await WriteJsonAsync(context, 400, GeminiWire.Error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", GeminiWire.ApiKeyInvalidDetail));
            return;
        }

        GeminiReply? reply;
        lock (_sync)
        {
            _queue.TryDequeue(out reply);
        }

        reply ??= DefaultReply(method, request.Json);
        if (reply is null)
        {
            await WriteErrorAsync(context, 404, "NOT_FOUND", $"Method {method} is not found.");
            return;
        }

        await PlayAsync(context, reply);
    }

    private static GeminiReply? DefaultReply(string method, JsonObject? json) => method switch
    {
        "generateContent" => GeminiReply.Json(GeminiWire.Answer(DefaultText, promptTokens: 12, candidateTokens: 5)),
        "streamGenerateContent" => GeminiReply.Stream(GeminiWire.AnswerEvents(["Hello", " from", " Gemini."], promptTokens: 12, candidateTokens: 5)),
        "embedContent" => GeminiReply.Json(GeminiWire.Embedding(Dimensions(json), 1)),
        "batchEmbedContents" => GeminiReply.Json(GeminiWire.BatchEmbeddings((json?["requests"] as JsonArray)?.Count ?? 0, Dimensions(json?["requests"]?[0]))),
        _ => null,
    };

    private static int Dimensions(JsonNode? request) =>
        request?["outputDimensionality"] is JsonValue value && value.TryGetValue(out int n) ? n : 4;

    private async Task PlayAsync(HttpContext context, GeminiReply reply)
    {
        if (reply.RetryAfter is not null)
        {
            context.Response.Headers.RetryAfter = reply.RetryAfter;
        }

        if (reply.Events is null)
        {
            await WriteJsonAsync(context, reply.Status, reply.Body ?? string.Empty);
            return;
        }

        context.Response.StatusCode = reply.Status;
        context.Response.ContentType = "text/event-stream";
        foreach (var data in reply.Events)
        {
            // Google frames each event with CRLFs.
            await context.Response.Body.WriteAsync(Encoding.UTF8.GetBytes("data: " + data + "\r\n\r\n"), context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
        }

        if (reply.RawTail is { } tail)
        {
            await context.Response.Body.WriteAsync(Encoding.UTF8.GetBytes(tail), context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
        }

        if (reply.Cut)
        {
            context.Abort();
        }
    }

    private async Task<RecordedRequest> RecordAsync(HttpContext context)
    {
        var http = context.Request;
        using var reader = new StreamReader(http.Body, Encoding.UTF8);
        var body = await reader.ReadToEndAsync(context.RequestAborted);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, values) in http.Headers)
        {
            headers[name] = values.ToString();
        }

        JsonObject? json = null;
        try
        {
            json = body.Length > 0 ? JsonNode.Parse(body) as JsonObject : null;
        }
        catch (JsonException)
        {
            // Recorded as text only.
        }

        var request = new RecordedRequest(http.Method, http.Path.Value ?? string.Empty, http.QueryString.Value ?? string.Empty, headers, body, json);
        lock (_sync)
        {
            _requests.Add(request);
        }

        return request;
    }

    /// <summary>"/v1beta/models/gemini-2.5-flash:generateContent" → ("gemini-2.5-flash", "generateContent").</summary>
    private static (string? Model, string Method) ParsePath(string path)
    {
        const string Prefix = "/v1beta/models/";
        var colon = path.LastIndexOf(':');
        return path.StartsWith(Prefix, StringComparison.Ordinal) && colon > Prefix.Length
            ? (path[Prefix.Length..colon], path[(colon + 1)..])
            : (null, string.Empty);
    }

    private static Task WriteErrorAsync(HttpContext context, int status, string word, string message) =>
        WriteJsonAsync(context, status, GeminiWire.Error(status, word, message));

    private static async Task WriteJsonAsync(HttpContext context, int status, string body)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json; charset=UTF-8";
        context.Response.ContentLength = bytes.Length;
        await context.Response.Body.WriteAsync(bytes, context.RequestAborted);
    }
}

/// <summary>One scripted answer of <see cref="FakeGemini"/>.</summary>
public sealed record GeminiReply
{
    public int Status { get; init; } = 200;

    /// <summary>The JSON body (for non-stream answers and errors).</summary>
    public string? Body { get; init; }

    /// <summary>SSE data payloads, each sent as <c>data: ...\r\n\r\n</c> and flushed.</summary>
    public IReadOnlyList<string>? Events { get; init; }

    /// <summary>Bytes written after the events (e.g. half an event before a cut).</summary>
    public string? RawTail { get; init; }

    /// <summary>Abort the connection after the events: a cut stream.</summary>
    public bool Cut { get; init; }

    public string? RetryAfter { get; init; }

    public static GeminiReply Json(string body) => new() { Body = body };

    public static GeminiReply Stream(IReadOnlyList<string> events) => new() { Events = events };

    public static GeminiReply CutStream(IReadOnlyList<string> events, string? tail = null) => new() { Events = events, Cut = true, RawTail = tail };

    public static GeminiReply Error(int status, string word, string message, string? retryAfter = null, JsonObject? detail = null) =>
        new() { Status = status, Body = GeminiWire.Error(status, word, message, detail), RetryAfter = retryAfter };

    /// <summary>An SSE transcript (a fixture file) replayed as recorded: each blank-line-separated event's data.</summary>
    public static GeminiReply Transcript(string sse) => new()
    {
        Events = [.. sse.Replace("\r\n", "\n", StringComparison.Ordinal).Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(e => e.Trim())
            .Where(e => e.StartsWith("data:", StringComparison.Ordinal))
            .Select(e => e["data:".Length..].Trim())],
    };
}
