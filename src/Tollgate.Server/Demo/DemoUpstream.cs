using System.Buffers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Tollgate.Server.Hosting;

namespace Tollgate.Server.Demo;

/// <summary>
/// The demo's fake providers: one loopback Kestrel server answering <c>POST /{provider}/v1/chat/completions</c> in
/// OpenAI's wire format (buffered and SSE with usage), with each deployment's latency and occasional 500s and 429s.
/// Every answer says it comes from a demo. Started only by <c>tollgate demo</c>.
/// </summary>
internal sealed class DemoUpstream : IAsyncDisposable
{
    private static readonly string[] Words =
        "the demo provider answers with a short made up paragraph so that token counts latency and cost look like real traffic".Split(' ');

    private readonly WebApplication _app;
    private readonly Random _random;
    private readonly Lock _randomLock = new();

    private DemoUpstream(WebApplication app, int seed)
    {
        _app = app;
        _random = new Random(seed);
    }

    public Uri BaseUrl { get; private set; } = null!;

    public static async Task<DemoUpstream> StartAsync(int seed, CancellationToken cancellationToken)
    {
        var builder = GatewayHost.CreateBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.WebHost.ConfigureKestrel(k => k.AddServerHeader = false);
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var upstream = new DemoUpstream(app, seed);
        app.MapPost("/{provider}/v1/chat/completions", (Delegate)upstream.ChatAsync);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        upstream.BaseUrl = new Uri(address.TrimEnd('/') + "/");
        return upstream;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }

    private double Next()
    {
        lock (_randomLock)
        {
            return _random.NextDouble();
        }
    }

    private async Task ChatAsync(HttpContext context, string provider)
    {
        using var document = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted).ConfigureAwait(false);
        var root = document.RootElement;
        var model = root.TryGetProperty("model", out var m) ? m.GetString() ?? string.Empty : string.Empty;
        if (DemoCatalog.Find(provider, model) is not { } deployment)
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            await context.Response.WriteAsJsonAsync(new DemoError(new DemoErrorBody($"The demo provider '{provider}' has no model '{model}'.", "invalid_request_error")), DemoJsonContext.Default.DemoError, cancellationToken: context.RequestAborted).ConfigureAwait(false);
            return;
        }

        var behavior = deployment.Behavior;
        var roll = Next();
        if (roll < behavior.ServerErrorRate || roll < behavior.ServerErrorRate + behavior.RateLimitRate)
        {
            var limited = roll >= behavior.ServerErrorRate;
            context.Response.StatusCode = limited ? StatusCodes.Status429TooManyRequests : StatusCodes.Status500InternalServerError;
            if (limited)
            {
                context.Response.Headers.RetryAfter = "1";
            }

            await context.Response.WriteAsJsonAsync(new DemoError(new DemoErrorBody(limited ? "Demo rate limit." : "Demo provider error.", limited ? "rate_limit_error" : "server_error")), DemoJsonContext.Default.DemoError, cancellationToken: context.RequestAborted).ConfigureAwait(false);
            return;
        }

        var promptTokens = Math.Max(8, (int)(context.Request.ContentLength ?? 400) / 4);
        var cap = root.TryGetProperty("max_tokens", out var max) && max.TryGetInt32(out var maxTokens) ? maxTokens : 600;
        var outputTokens = Math.Clamp((int)(40 + (Next() * 360)), 1, cap);
        var cachedTokens = promptTokens > 200 && Next() < 0.3 ? promptTokens / 2 : 0;
        var stream = root.TryGetProperty("stream", out var s) && s.ValueKind == JsonValueKind.True;
        var jitter = 0.7 + (Next() * 0.6);
        var firstToken = TimeSpan.FromMilliseconds(behavior.FirstTokenMs * jitter / DemoCatalog.TimeCompression);
        var generation = TimeSpan.FromMilliseconds(behavior.MsPerOutputToken * outputTokens * jitter / DemoCatalog.TimeCompression);
        var text = Text(outputTokens);
        var id = "chatcmpl-demo" + Guid.NewGuid().ToString("N")[..12];
        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        await Task.Delay(firstToken, context.RequestAborted).ConfigureAwait(false);
        if (!stream)
        {
            await Task.Delay(generation, context.RequestAborted).ConfigureAwait(false);
            context.Response.ContentType = "application/json";
            await WriteAsync(context.Response.BodyWriter, w => WriteCompletion(w, id, created, model, text, promptTokens, cachedTokens, outputTokens), context.RequestAborted).ConfigureAwait(false);
            return;
        }

        context.Response.ContentType = "text/event-stream";
        var pieces = text.Split(' ');
        var perPiece = generation / Math.Max(1, pieces.Length);
        for (var i = 0; i < pieces.Length; i++)
        {
            var piece = (i == 0 ? string.Empty : " ") + pieces[i];
            await WriteEventAsync(context.Response.BodyWriter, w => WriteChunk(w, id, created, model, piece, finish: null), context.RequestAborted).ConfigureAwait(false);
            if (i % 8 == 7)
            {
                await Task.Delay(perPiece * 8, context.RequestAborted).ConfigureAwait(false);
            }
        }

        await WriteEventAsync(context.Response.BodyWriter, w => WriteChunk(w, id, created, model, null, "stop"), context.RequestAborted).ConfigureAwait(false);
        await WriteEventAsync(context.Response.BodyWriter, w => WriteUsageChunk(w, id, created, model, promptTokens, cachedTokens, outputTokens), context.RequestAborted).ConfigureAwait(false);
        await context.Response.BodyWriter.WriteAsync("data: [DONE]\n\n"u8.ToArray(), context.RequestAborted).ConfigureAwait(false);
    }

    private string Text(int tokens)
    {
        var words = new StringBuilder("[demo answer]");
        for (var i = 0; i < tokens; i++)
        {
            words.Append(' ').Append(Words[(int)(Next() * Words.Length)]);
        }

        return words.ToString();
    }

    private static async Task WriteAsync(System.IO.Pipelines.PipeWriter pipe, Action<Utf8JsonWriter> write, CancellationToken cancellationToken)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            write(writer);
        }

        await pipe.WriteAsync(buffer.WrittenMemory, cancellationToken).ConfigureAwait(false);
    }

    private static async Task WriteEventAsync(System.IO.Pipelines.PipeWriter pipe, Action<Utf8JsonWriter> write, CancellationToken cancellationToken)
    {
        await pipe.WriteAsync("data: "u8.ToArray(), cancellationToken).ConfigureAwait(false);
        await WriteAsync(pipe, write, cancellationToken).ConfigureAwait(false);
        await pipe.WriteAsync("\n\n"u8.ToArray(), cancellationToken).ConfigureAwait(false);
    }

    private static void WriteCompletion(Utf8JsonWriter w, string id, long created, string model, string text, int prompt, int cached, int output)
    {
        WriteEnvelope(w, id, "chat.completion", created, model);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        w.WriteStartObject("message");
        w.WriteString("role", "assistant");
        w.WriteString("content", text);
        w.WriteEndObject();
        w.WriteString("finish_reason", "stop");
        w.WriteEndObject();
        w.WriteEndArray();
        WriteUsage(w, prompt, cached, output);
        w.WriteEndObject();
    }

    private static void WriteChunk(Utf8JsonWriter w, string id, long created, string model, string? text, string? finish)
    {
        WriteEnvelope(w, id, "chat.completion.chunk", created, model);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        w.WriteStartObject("delta");
        if (text is not null)
        {
            w.WriteString("content", text);
        }

        w.WriteEndObject();
        if (finish is null)
        {
            w.WriteNull("finish_reason");
        }
        else
        {
            w.WriteString("finish_reason", finish);
        }

        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteUsageChunk(Utf8JsonWriter w, string id, long created, string model, int prompt, int cached, int output)
    {
        WriteEnvelope(w, id, "chat.completion.chunk", created, model);
        w.WriteStartArray("choices");
        w.WriteEndArray();
        WriteUsage(w, prompt, cached, output);
        w.WriteEndObject();
    }

    /// <summary>Opens the object and writes the fields every completion and chunk starts with.</summary>
    private static void WriteEnvelope(Utf8JsonWriter w, string id, string kind, long created, string model)
    {
        w.WriteStartObject();
        w.WriteString("id", id);
        w.WriteString("object", kind);
        w.WriteNumber("created", created);
        w.WriteString("model", model);
    }

    private static void WriteUsage(Utf8JsonWriter w, int prompt, int cached, int output)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", prompt);
        w.WriteNumber("completion_tokens", output);
        w.WriteNumber("total_tokens", prompt + output);
        w.WriteStartObject("prompt_tokens_details");
        w.WriteNumber("cached_tokens", cached);
        w.WriteEndObject();
        w.WriteEndObject();
    }
}

internal sealed record DemoError(DemoErrorBody Error);

internal sealed record DemoErrorBody(string Message, string Type);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.SnakeCaseLower)]
[System.Text.Json.Serialization.JsonSerializable(typeof(DemoError))]
internal sealed partial class DemoJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
