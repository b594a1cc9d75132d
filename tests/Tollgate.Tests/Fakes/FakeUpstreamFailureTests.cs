using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using static Tollgate.Tests.Fakes.FakeHttp;

namespace Tollgate.Tests.Fakes;

/// <summary>Self-tests of <see cref="FakeUpstream"/>'s failure behaviours, as a real client sees them.</summary>
[SuppressMessage("Naming", "CA1707:Identifiers should not contain underscores", Justification = "Test names follow Method_Scenario_Expected.")]
public sealed class FakeUpstreamFailureTests
{
    private const int TimeoutMs = 15_000;

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_Status429WithRetryAfter_ReturnsErrorObjectAndHeader()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Enqueue(FakeBehavior.Status(429, retryAfter: "2", message: "slow down"));

        using var response = await PostAsync(upstream, "chat/completions", ChatBody(stream: true));
        var error = (await ReadObjectAsync(response))["error"]!.AsObject();

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(2), response.Headers.RetryAfter?.Delta);
        Assert.Equal("slow down", (string?)error["message"]);
        Assert.Equal("rate_limit_exceeded", (string?)error["code"]);
        Assert.NotNull((string?)error["type"]);
        Assert.True(error.ContainsKey("param"));
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_Status503_ReturnsServerErrorWithoutRetryAfter()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Enqueue(FakeBehavior.Status(503));

        using var response = await PostAsync(upstream, "chat/completions", ChatBody());

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Null(response.Headers.RetryAfter);
        Assert.Equal("server_error", (string?)(await ReadObjectAsync(response))["error"]!["type"]);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_Garbage_Returns200JsonContentTypeWithNonJsonBody()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Enqueue(FakeBehavior.Garbage());

        using var response = await PostAsync(upstream, "chat/completions", ChatBody());
        var body = await response.Content.ReadAsStringAsync(Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.ThrowsAny<System.Text.Json.JsonException>(() => JsonNode.Parse(body));
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_GarbageStream_SendsNonJsonEventsWithoutDone()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Enqueue(FakeBehavior.Garbage());

        using var response = await PostAsync(upstream, "chat/completions", ChatBody(stream: true), HttpCompletionOption.ResponseHeadersRead);
        var sse = await ReadEventsAsync(response);

        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Null(sse.Error);
        Assert.NotEmpty(sse.Data);
        Assert.All(sse.Data, data => Assert.Equal("not json at all", data));
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_Truncated_ClientSeesPrematureEndAfterPartialBody()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Enqueue(FakeBehavior.Truncated());

        using var response = await PostAsync(upstream, "chat/completions", ChatBody(), HttpCompletionOption.ResponseHeadersRead);
        await using var body = await response.Content.ReadAsStreamAsync(Ct);
        var received = new MemoryStream();
        var error = await Record.ExceptionAsync(() => body.CopyToAsync(received, Ct));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(received.Length > 0);
        Assert.IsType<IOException>(error, exactMatch: false);
        Assert.True(received.Length < response.Content.Headers.ContentLength);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_TruncatedStream_CutsInsideAnEvent()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Enqueue(FakeBehavior.Truncated());

        using var response = await PostAsync(upstream, "chat/completions", ChatBody(stream: true), HttpCompletionOption.ResponseHeadersRead);
        var sse = await ReadEventsAsync(response);

        Assert.NotNull(sse.Error);
        Assert.Equal("assistant", (string?)Assert.Single(sse.Chunks)["choices"]![0]!["delta"]!["role"]);
        Assert.NotNull(sse.PartialLine);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_CutStream_DeliversRoleAndTwoContentChunksThenFails()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Enqueue(FakeBehavior.CutStream(afterContentChunks: 2));

        using var response = await PostAsync(upstream, "chat/completions", ChatBody(stream: true), HttpCompletionOption.ResponseHeadersRead);
        var sse = await ReadEventsAsync(response);

        Assert.Equal(3, sse.Chunks.Count);
        Assert.IsType<IOException>(sse.Error, exactMatch: false);
        Assert.DoesNotContain("[DONE]", sse.Data);
        Assert.All(sse.Chunks, chunk => Assert.Null(chunk["choices"]![0]!["finish_reason"]));
        Assert.Equal("Hello from", string.Concat(sse.Chunks.Select(chunk => (string?)chunk["choices"]![0]!["delta"]!["content"])));
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_Hang_SignalsCancelledWhenCallerCancels()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Enqueue(FakeBehavior.Hang());
        using var caller = CancellationTokenSource.CreateLinkedTokenSource(Ct);

        var pending = PostAsync(upstream, "chat/completions", ChatBody(), caller: caller);
        await upstream.WaitForRequestsAsync(1, Ct);
        Assert.False(pending.IsCompleted);
        await caller.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending);
        await upstream.WaitForCancelledAsync(Ct);
        Assert.Equal(1, upstream.CancelledCount);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_HangMidStream_DeliversChunksThenSignalsCancelled()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Enqueue(FakeBehavior.HangMidStream(afterContentChunks: 1));
        using var caller = CancellationTokenSource.CreateLinkedTokenSource(Ct);

        using var response = await PostAsync(upstream, "chat/completions", ChatBody(stream: true), HttpCompletionOption.ResponseHeadersRead, caller);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(caller.Token));
        var events = new List<string>();
        while (events.Count < 2)
        {
            var line = await reader.ReadLineAsync(caller.Token);
            if (line is not null && line.StartsWith("data: ", StringComparison.Ordinal))
            {
                events.Add(line);
            }
        }

        // Cancel while a read is pending on the socket: that is what tears the connection down.
        var drain = DrainAsync(reader, caller.Token);
        await caller.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => drain);

        await upstream.WaitForCancelledAsync(Ct);
        Assert.Contains("\"content\":\"Hello\"", events[1], StringComparison.Ordinal);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_HangMidStreamWithoutStream_SendsHeadersThenStallsUntilCancelled()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Enqueue(FakeBehavior.HangMidStream(afterContentChunks: 0));
        using var caller = CancellationTokenSource.CreateLinkedTokenSource(Ct);

        using var response = await PostAsync(upstream, "chat/completions", ChatBody(), HttpCompletionOption.ResponseHeadersRead, caller);
        await using var body = await response.Content.ReadAsStreamAsync(caller.Token);
        var first = new byte[1];
        await body.ReadExactlyAsync(first, caller.Token);
        var rest = body.CopyToAsync(Stream.Null, caller.Token);
        await caller.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => rest);
        await upstream.WaitForCancelledAsync(Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal((byte)'{', first[0]);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_CutStreamWithoutStream_BodyEndsPrematurely()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Enqueue(FakeBehavior.CutStream(afterContentChunks: 1));

        var error = await Record.ExceptionAsync(async () =>
        {
            using var response = await PostAsync(upstream, "chat/completions", ChatBody());
        });

        Assert.IsType<HttpRequestException>(error);
        Assert.IsType<IOException>(error.InnerException, exactMatch: false);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_DropConnection_ClientSeesHttpRequestException()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Enqueue(FakeBehavior.DropConnection());

        await Assert.ThrowsAsync<HttpRequestException>(() => PostAsync(upstream, "chat/completions", ChatBody()));
        Assert.Equal(1, upstream.RequestCount);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_Gate_HoldsRequestUntilReleased()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        upstream.Enqueue(FakeBehavior.Ok("released").WithGate(gate));

        var pending = PostAsync(upstream, "chat/completions", ChatBody());
        await upstream.WaitForRequestsAsync(1, Ct);
        Assert.False(pending.IsCompleted);
        gate.SetResult();

        using var response = await pending;
        Assert.Equal("released", (string?)(await ReadObjectAsync(response))["choices"]![0]!["message"]!["content"]);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_GatedRequestCancelledByCaller_SignalsCancelled()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Default = FakeBehavior.Ok().WithGate(new TaskCompletionSource());
        using var caller = CancellationTokenSource.CreateLinkedTokenSource(Ct);

        var pending = PostAsync(upstream, "chat/completions", ChatBody(), caller: caller);
        await upstream.WaitForRequestsAsync(1, Ct);
        await caller.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending);
        await upstream.WaitForCancelledAsync(Ct);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task ChatCompletions_InvalidJson_Returns400WithoutConsumingBehavior()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Enqueue(FakeBehavior.Status(500));

        using var content = new StringContent("{not json", Encoding.UTF8, "application/json");
        using var response = await Client.PostAsync(Url(upstream, "chat/completions"), content, Ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(1, upstream.QueuedCount);
        Assert.Null(Assert.Single(upstream.Requests).Json);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task UnknownPath_Post_Returns404ErrorObject()
    {
        await using var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);

        using var response = await PostAsync(upstream, "responses", ChatBody());

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.NotNull((string?)(await ReadObjectAsync(response))["error"]!["message"]);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task UnusedLoopbackUrl_Post_ConnectionRefused()
    {
        var url = FakeUpstream.UnusedLoopbackUrl();

        using var content = new StringContent("{}", Encoding.UTF8, "application/json");
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => Client.PostAsync(new Uri(url + "/chat/completions"), content, Ct));

        Assert.EndsWith("/v1", url.ToString(), StringComparison.Ordinal);
        Assert.Equal(SocketError.ConnectionRefused, Assert.IsType<SocketException>(error.InnerException).SocketErrorCode);
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task DisposeAsync_WithHangingRequest_EndsItAndFailsWaiters()
    {
        var upstream = await FakeUpstream.StartAsync(cancellationToken: Ct);
        upstream.Enqueue(FakeBehavior.Hang());
        var pending = PostAsync(upstream, "chat/completions", ChatBody());
        await upstream.WaitForRequestsAsync(1, Ct);
        var neverReached = upstream.WaitForRequestsAsync(5, Ct);

        await upstream.DisposeAsync();

        await Assert.ThrowsAsync<HttpRequestException>(() => pending);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => neverReached);
        Assert.Equal(0, upstream.CancelledCount);
    }
}
