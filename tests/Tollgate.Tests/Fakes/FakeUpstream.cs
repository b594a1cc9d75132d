using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;

using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Fakes;

/// <summary>
/// A scriptable OpenAI-compatible provider on real Kestrel (loopback, ephemeral port) for gateway
/// integration tests. Each POST to /v1/chat/completions or /v1/embeddings consumes one behaviour from
/// the queue (<see cref="Enqueue"/>), or uses <see cref="Default"/> when the queue is empty.
/// </summary>
public sealed partial class FakeUpstream : IAsyncDisposable
{
    public const string ModelId = "fake-model";

    private readonly WebApplication _app;
    private readonly string? _expectedApiKey;
    private readonly Lock _sync = new();
    private readonly Queue<FakeBehavior> _queue = new();
    private readonly List<RecordedRequest> _requests = [];
    private readonly CountSignal _received = new();
    private readonly CountSignal _cancelled = new();

    // Cancelled on dispose so hung requests end at once instead of holding Kestrel's graceful shutdown.
    private readonly CancellationTokenSource _stopping = new();
    private FakeBehavior _default = FakeBehavior.Ok();
    private int _disposed;

    private FakeUpstream(WebApplication app, string? expectedApiKey)
    {
        _app = app;
        _expectedApiKey = expectedApiKey;
        _app.Run(HandleAsync);
    }

    /// <summary>"http://127.0.0.1:PORT/v1", no trailing slash: append "/chat/completions" etc. as strings.</summary>
    public Uri BaseUrl { get; private set; } = null!;

    /// <summary>Behaviour used when the queue is empty; initially <see cref="FakeBehavior.Ok"/>.</summary>
    public FakeBehavior Default
    {
        get => Volatile.Read(ref _default);
        set => Volatile.Write(ref _default, value ?? throw new ArgumentNullException(nameof(value)));
    }

    /// <summary>Snapshot of every request received so far, in arrival order (including rejected ones).</summary>
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

    public int RequestCount => _received.Count;

    /// <summary>How many held requests (Hang, HangMidStream or a Gate) saw their caller abort.</summary>
    public int CancelledCount => _cancelled.Count;

    /// <summary>Enqueued behaviours not consumed yet.</summary>
    public int QueuedCount
    {
        get
        {
            lock (_sync)
            {
                return _queue.Count;
            }
        }
    }

    public static async Task<FakeUpstream> StartAsync(string? expectedApiKey = null, CancellationToken cancellationToken = default)
    {
        var builder = LoopbackServer.CreateBuilder();

        var upstream = new FakeUpstream(builder.Build(), expectedApiKey);
        try
        {
            await upstream._app.StartAsync(cancellationToken);
            upstream.BaseUrl = new Uri(LoopbackServer.AddressOf(upstream._app) + "/v1");
            return upstream;
        }
        catch
        {
            await upstream.DisposeAsync();
            throw;
        }
    }

    /// <summary>"http://127.0.0.1:PORT/v1" for a port nothing listens on, so connecting is refused.</summary>
    public static Uri UnusedLoopbackUrl()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)socket.LocalEndPoint!).Port;
        return new Uri($"http://127.0.0.1:{port}/v1");
    }

    /// <summary>Queues one-shot behaviours; each chat/embeddings request takes the next one.</summary>
    public void Enqueue(params FakeBehavior[] behaviors)
    {
        ArgumentNullException.ThrowIfNull(behaviors);
        lock (_sync)
        {
            foreach (var behavior in behaviors)
            {
                _queue.Enqueue(behavior ?? throw new ArgumentException("A behaviour is null.", nameof(behaviors)));
            }
        }
    }

    /// <summary>Completes once at least <paramref name="count"/> requests have been received (body read, recorded).</summary>
    public Task WaitForRequestsAsync(int count, CancellationToken cancellationToken) =>
        _received.WaitAsync(count, cancellationToken);

    /// <summary>Completes once a held request (Hang, HangMidStream or a Gate) saw its caller abort.</summary>
    public Task WaitForCancelledAsync(CancellationToken cancellationToken) =>
        _cancelled.WaitAsync(1, cancellationToken);

    /// <summary>Completes once at least <paramref name="count"/> held requests saw their caller abort.</summary>
    public Task WaitForCancelledAsync(int count, CancellationToken cancellationToken) =>
        _cancelled.WaitAsync(count, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        var disposed = new ObjectDisposedException(nameof(FakeUpstream));
        _received.Fail(disposed);
        _cancelled.Fail(disposed);
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
        if (_expectedApiKey is not null && request.Authorization != "Bearer " + _expectedApiKey)
        {
            await WriteErrorAsync(context, StatusCodes.Status401Unauthorized, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key");
            return;
        }

        switch (request.Method, request.Path)
        {
            case ("GET", "/v1/models"):
                await WriteJsonAsync(context, StatusCodes.Status200OK, OpenAiWire.Models([ModelId]));
                break;
            case ("POST", "/v1/chat/completions"):
                await HandleChatAsync(context, request);
                break;
            case ("POST", "/v1/embeddings"):
                await HandleEmbeddingsAsync(context, request);
                break;
            default:
                await WriteErrorAsync(context, StatusCodes.Status404NotFound, $"Unknown request URL: {request.Method} {request.Path}.", "invalid_request_error", "unknown_url");
                break;
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

        var request = new RecordedRequest(http.Method, http.Path.Value ?? string.Empty, http.QueryString.Value ?? string.Empty, headers, body, ParseObject(body));
        lock (_sync)
        {
            _requests.Add(request);
        }

        _received.Increment();
        return request;
    }

    private FakeBehavior NextBehavior()
    {
        lock (_sync)
        {
            return _queue.TryDequeue(out var behavior) ? behavior : Default;
        }
    }

    /// <summary>
    /// Awaits the behaviour's gate, if any. Returns false when the request must not be answered
    /// (the caller went away, which counts as a cancellation, or the fake is shutting down).
    /// </summary>
    private async Task<bool> PassGateAsync(HttpContext context, FakeBehavior behavior)
    {
        if (behavior.Gate is not { } gate)
        {
            return true;
        }

        using var held = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _stopping.Token);
        try
        {
            await gate.Task.WaitAsync(held.Token);
            return true;
        }
        catch (OperationCanceledException) when (held.IsCancellationRequested)
        {
            EndHeld(context);
            return false;
        }
    }

    /// <summary>Holds the request until the caller aborts (counted for WaitForCancelledAsync) or the fake stops.</summary>
    private async Task HoldUntilAbortedAsync(HttpContext context)
    {
        using var held = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _stopping.Token);
        try
        {
            await Task.Delay(Timeout.Infinite, held.Token);
        }
        catch (OperationCanceledException)
        {
            EndHeld(context);
        }
    }

    private void EndHeld(HttpContext context)
    {
        if (context.RequestAborted.IsCancellationRequested)
        {
            _cancelled.Increment();
        }
        else
        {
            // Shutting down: drop the connection rather than let the request complete normally.
            context.Abort();
        }
    }

    private static JsonObject? ParseObject(string body)
    {
        if (body.Length == 0)
        {
            return null;
        }

        try
        {
            return JsonNode.Parse(body) as JsonObject;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
