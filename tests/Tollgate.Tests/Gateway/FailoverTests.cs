using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Tollgate.Tests.Fakes;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Gateway;

public sealed class FailoverTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<string> FirstProviderFaults => ["500", "503", "429", "garbage", "truncated", "drop"];

    // A truncated stream delivers its first event before the cut, so it belongs with the mid-stream tests.
    public static TheoryData<string> FirstStreamFaults => ["500", "503", "429", "garbage", "drop"];

    private static FakeBehavior Fault(string name) => name switch
    {
        "500" => FakeBehavior.Status(500),
        "503" => FakeBehavior.Status(503),
        "429" => FakeBehavior.Status(429, retryAfter: "30"),
        "garbage" => FakeBehavior.Garbage(),
        "truncated" => FakeBehavior.Truncated(),
        "drop" => FakeBehavior.DropConnection(),
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    [Theory]
    [MemberData(nameof(FirstProviderFaults))]
    public async Task Post_FirstProviderFails_SecondAnswers(string fault)
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 2, cancellationToken: Ct);
        scenario.Fakes[0].Enqueue(Fault(fault));
        scenario.Fakes[1].Default = FakeBehavior.Ok("from the second");

        using var response = await scenario.PostChatAsync(GatewayScenario.ChatBody(), Ct);
        var json = await scenario.ReadJsonAsync(response, Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("from the second", (string?)json["choices"]![0]!["message"]!["content"]);
        Assert.Equal("p1", response.Headers.GetValues("x-tollgate-provider").Single());
        Assert.Equal("2", response.Headers.GetValues("x-tollgate-attempts").Single());
        Assert.Equal(1, scenario.Fakes[0].RequestCount);
    }

    [Theory]
    [MemberData(nameof(FirstStreamFaults))]
    public async Task PostStream_FirstProviderFailsBeforeFirstEvent_SecondStreams(string fault)
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 2, cancellationToken: Ct);
        scenario.Fakes[0].Enqueue(Fault(fault));
        scenario.Fakes[1].Default = FakeBehavior.Ok("streamed by two");

        using var response = await scenario.PostChatAsync(GatewayScenario.ChatBody(stream: true), Ct);
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync(Ct));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("p1", response.Headers.GetValues("x-tollgate-provider").Single());
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal("streamed by two", string.Concat(events[..^1].Select(e => (string?)JsonNode.Parse(e)!["choices"]![0]!["delta"]!["content"] ?? string.Empty)));
    }

    [Fact]
    public async Task Post_ConnectionRefused_FailsOverToTheNext()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 2, refused: [0], cancellationToken: Ct);

        using var response = await scenario.PostChatAsync(GatewayScenario.ChatBody(), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("d0:connect_failed", response.Headers.GetValues("x-tollgate-route").Single(), StringComparison.Ordinal);
        Assert.Equal(1, scenario.Fakes[1].RequestCount);
    }

    [Fact]
    public async Task Post_ProviderHangs_AttemptTimesOutAndTheNextAnswers()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 2, configure: c => c["providers"]!["p0"]!["timeoutMs"] = 300, cancellationToken: Ct);
        scenario.Fakes[0].Enqueue(FakeBehavior.Hang());

        using var response = await scenario.PostChatAsync(GatewayScenario.ChatBody(), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("d0:timeout", response.Headers.GetValues("x-tollgate-route").Single(), StringComparison.Ordinal);
        await scenario.Fakes[0].WaitForCancelledAsync(Ct);
    }

    [Fact]
    public async Task Post_ErrorWithAnEndlessBody_ReadsItsStartAndFailsOver()
    {
        // Read whole, the body filled memory up to HttpContent's 2 GB buffer limit in seconds, and its message was lost.
        // The long attempt timeout keeps a timeout from passing for a failover.
        await using var scenario = await GatewayScenario.StartAsync(providers: 2, configure: c => c["providers"]!["p0"]!["timeoutMs"] = 120_000, cancellationToken: Ct);
        scenario.Fakes[0].Enqueue(FakeBehavior.EndlessError());

        using var response = await scenario.PostChatAsync(GatewayScenario.ChatBody(), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("tried=d0:upstream_500,d1:ok", response.Headers.GetValues("x-tollgate-route").Single(), StringComparison.Ordinal);
        var providers = (await scenario.Gateway.Admin.GetFromJsonAsync<JsonObject>("providers", Ct))!;
        var p0 = providers["providers"]!.AsArray().Single(p => (string?)p!["name"] == "p0")!;
        Assert.Contains("The fake upstream is flooding you.", (string?)p0["lastError"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Post_429WithRetryAfter_CoolsTheDeploymentDown()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 2, cancellationToken: Ct);
        scenario.Fakes[0].Enqueue(FakeBehavior.Status(429, retryAfter: "120"));

        using (await scenario.PostChatAsync(GatewayScenario.ChatBody(), Ct))
        {
        }

        using var second = await scenario.PostChatAsync(GatewayScenario.ChatBody(), Ct);

        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal(1, scenario.Fakes[0].RequestCount);
        Assert.Contains("skipped=d0:cooling_down", second.Headers.GetValues("x-tollgate-route").Single(), StringComparison.Ordinal);
        var providers = (await scenario.Gateway.Admin.GetFromJsonAsync<JsonObject>("providers", Ct))!;
        var d0 = providers["providers"]!.AsArray().Single(p => (string?)p!["name"] == "p0")!["deployments"]![0]!;
        Assert.NotNull((string?)d0["coolingDownUntil"]);
    }

    [Fact]
    public async Task Post_400FromUpstream_IsRelayedWithoutTryingOthers()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 2, cancellationToken: Ct);
        scenario.Fakes[0].Enqueue(FakeBehavior.Status(400, message: "Invalid 'messages[0].content': too long."));

        using var response = await scenario.PostChatAsync(GatewayScenario.ChatBody(), Ct);
        var json = await scenario.ReadJsonAsync(response, Ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("too long", (string?)json["error"]!["message"], StringComparison.Ordinal);
        Assert.Equal(0, scenario.Fakes[1].RequestCount);
    }

    [Fact]
    public async Task Post_AllProvidersFail_Returns502NamingAttemptsWithoutAddresses()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 2, refused: [1], cancellationToken: Ct);
        scenario.Fakes[0].Enqueue(FakeBehavior.Status(500));

        using var response = await scenario.PostChatAsync(GatewayScenario.ChatBody(), Ct);
        var error = (await scenario.ReadJsonAsync(response, Ct))["error"]!;
        var message = (string?)error["message"]!;

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("all_providers_failed", (string?)error["code"]);
        Assert.Contains("d0:", message, StringComparison.Ordinal);
        Assert.Contains("d1:", message, StringComparison.Ordinal);
        Assert.DoesNotContain("127.0.0.1", message, StringComparison.Ordinal);
        Assert.DoesNotContain("sk-p", message, StringComparison.Ordinal);
        Assert.Equal("2", response.Headers.GetValues("x-tollgate-attempts").Single());
    }

    [Fact]
    public async Task Post_NoProviderConfigured_Returns503()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, configure: config =>
        {
            config["providers"]!["p0"]!["apiKeyEnv"] = "UNSET_VARIABLE";
        }, cancellationToken: Ct);

        using var response = await scenario.PostChatAsync(GatewayScenario.ChatBody(), Ct);
        var error = (await scenario.ReadJsonAsync(response, Ct))["error"]!;

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("no_provider_available", (string?)error["code"]);
        Assert.Contains("UNSET_VARIABLE", (string?)error["message"], StringComparison.Ordinal);
        Assert.Equal(0, scenario.Fakes[0].RequestCount);
    }

    [Fact]
    public async Task Post_DeadProvider_CircuitOpensAndStopsCostingAttempts()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 2, cancellationToken: Ct);
        scenario.Fakes[0].Default = FakeBehavior.Status(500);

        // Threshold is 3 consecutive failures.
        for (var i = 0; i < 3; i++)
        {
            using var failedOver = await scenario.PostChatAsync(GatewayScenario.ChatBody(), Ct);
            Assert.Equal(HttpStatusCode.OK, failedOver.StatusCode);
        }

        using var response = await scenario.PostChatAsync(GatewayScenario.ChatBody(), Ct);

        Assert.Equal(3, scenario.Fakes[0].RequestCount);
        Assert.Equal("1", response.Headers.GetValues("x-tollgate-attempts").Single());
        Assert.Contains("skipped=d0:circuit_open", response.Headers.GetValues("x-tollgate-route").Single(), StringComparison.Ordinal);
        var providers = (await scenario.Gateway.Admin.GetFromJsonAsync<JsonObject>("providers", Ct))!;
        var p0 = providers["providers"]!.AsArray().Single(p => (string?)p!["name"] == "p0")!;
        Assert.Equal("open", (string?)p0["circuit"]);
        Assert.Equal(3, (long)p0["deployments"]![0]!["failures"]!);
        Assert.NotNull((string?)p0["lastError"]);

        // An operator resets health after the incident: the deployment is tried again.
        scenario.Fakes[0].Default = FakeBehavior.Ok();
        using var reset = await scenario.Gateway.Admin.PostAsync("admin/health/reset", null, Ct);
        Assert.Equal(HttpStatusCode.OK, reset.StatusCode);
        using var afterReset = await scenario.PostChatAsync(GatewayScenario.ChatBody(), Ct);
        Assert.Equal("p0", afterReset.Headers.GetValues("x-tollgate-provider").Single());
    }

    [Fact]
    public async Task PostStream_CutAfterFirstEvents_EndsWithAnErrorEventNotAFinishReason()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 2, cancellationToken: Ct);
        scenario.Fakes[0].Enqueue(FakeBehavior.CutStream(afterContentChunks: 2) with { Content = "alpha beta gamma delta epsilon" });

        using var response = await scenario.PostChatAsync(GatewayScenario.ChatBody(stream: true), Ct);
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync(Ct));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.DoesNotContain("[DONE]", events);
        var last = JsonNode.Parse(events[^1])!;
        Assert.Equal("stream_truncated", (string?)last["error"]!["code"]);
        Assert.All(events[..^1], e => Assert.Null((string?)JsonNode.Parse(e)!["choices"]![0]!["finish_reason"]));

        // No other provider's text was spliced in.
        Assert.Equal(0, scenario.Fakes[1].RequestCount);
    }

    [Fact]
    public async Task PostStream_AnEventWithoutEnd_EndsWithAnErrorEventPastTheEventLimit()
    {
        // Bytes keep coming, so the idle timeout never fires: without a limit the gateway buffered the event without end.
        await using var scenario = await GatewayScenario.StartAsync(providers: 2, cancellationToken: Ct);
        scenario.Fakes[0].Enqueue(FakeBehavior.EndlessEvent());

        using var response = await scenario.PostChatAsync(GatewayScenario.ChatBody(stream: true), Ct);
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync(Ct));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("assistant", (string?)JsonNode.Parse(events[0])!["choices"]![0]!["delta"]!["role"]);
        Assert.Equal("stream_truncated", (string?)JsonNode.Parse(events[^1])!["error"]!["code"]);
        Assert.Equal(0, scenario.Fakes[1].RequestCount);
    }

    [Fact]
    public async Task PostStream_HangsMidStream_IdleTimeoutEndsItWithAnErrorEvent()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, configure: c => c["routing"]!["streamIdleTimeoutMs"] = 300, cancellationToken: Ct);
        scenario.Fakes[0].Enqueue(FakeBehavior.HangMidStream(afterContentChunks: 1));

        using var response = await scenario.PostChatAsync(GatewayScenario.ChatBody(stream: true), Ct);
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync(Ct));

        Assert.Equal("stream_truncated", (string?)JsonNode.Parse(events[^1])!["error"]!["code"]);
        await scenario.Fakes[0].WaitForCancelledAsync(Ct);
    }

    [Fact]
    public async Task PostStream_ClientSlowerThanIdleTimeout_StreamIsNotCutForIt()
    {
        // While the relay waits for a slow client to take its data, it reads nothing from the upstream; that
        // wait is the client's, not upstream silence, and must not trip the idle timer.
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, configure: c => c["routing"]!["streamIdleTimeoutMs"] = 750, cancellationToken: Ct);
        // 12 MB: three times what the gateway's socket can hold back for a client that does not read (on loopback
        // its send buffer grows to tcp_wmem's maximum, 4 MiB on Debian).
        var word = " " + new string('w', 1199);
        var content = string.Concat(Enumerable.Repeat(word, 10_000));
        var end = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        scenario.Fakes[0].Default = FakeBehavior.Ok(content) with { StreamEndGate = end };

        // A small receive buffer keeps the client's side from taking megabytes in the gateway's place.
        using var client = new HttpClient(new SocketsHttpHandler
        {
            ConnectCallback = async (context, cancellationToken) =>
            {
                var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
            },
        })
        { BaseAddress = scenario.Gateway.BaseAddress };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", scenario.Gateway.ClientKey);
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = new StringContent(GatewayScenario.ChatBody(stream: true).ToJsonString(), System.Text.Encoding.UTF8, "application/json"),
        };

        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        // The slow client reads nothing for four idle timeouts (long enough that a busy test machine's own pauses stay
        // well inside one, short of the 5 s grace of Kestrel's minimum data rate on both servers). This delay is the
        // behaviour under test, not a synchronisation: a longer stall only makes the check stricter. The upstream holds the end of its stream
        // until then, so once the client catches up the relay must wait on the upstream again: had the timer run
        // during the stall, that read would find the attempt cancelled, the upstream request gone and the stream
        // cut. (Had the relay not been held up by the client at all, the timer would rightly cut the stream while
        // the upstream holds back its end: the test passes only when the client's stall is what held the relay.)
        await Task.Delay(TimeSpan.FromSeconds(3), Ct);
        end.SetResult();
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync(Ct));

        Assert.Equal("[DONE]", events[^1]);
        Assert.DoesNotContain(events, e => e.Contains("stream_truncated", StringComparison.Ordinal));
        var relayed = string.Concat(events[..^1].Select(e => (string?)JsonNode.Parse(e)!["choices"]?.AsArray().FirstOrDefault()?["delta"]?["content"]));
        Assert.Equal(content, relayed);
    }

    [Fact]
    public async Task PostStream_ClientDisconnects_UpstreamRequestIsCancelled()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        scenario.Fakes[0].Enqueue(FakeBehavior.HangMidStream(afterContentChunks: 1));
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = new StringContent(GatewayScenario.ChatBody(stream: true).ToJsonString(), System.Text.Encoding.UTF8, "application/json"),
        };

        var response = await scenario.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
        var stream = await response.Content.ReadAsStreamAsync(Ct);
        var buffer = new byte[64];
        Assert.True(await stream.ReadAsync(buffer, Ct) > 0);
        response.Dispose();

        await scenario.Fakes[0].WaitForCancelledAsync(Ct);
        var providers = (await scenario.Gateway.Admin.GetFromJsonAsync<JsonObject>("providers", Ct))!;
        Assert.Equal(0, (long)providers["providers"]![0]!["deployments"]![0]!["failures"]!);
    }

    [Fact]
    public async Task Post_ClientCancelsWhileWaiting_UpstreamIsCancelledAndNotBlamed()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 2, cancellationToken: Ct);
        scenario.Fakes[0].Enqueue(FakeBehavior.Hang());
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);

        var pending = scenario.PostChatAsync(GatewayScenario.ChatBody(), cts.Token);
        await scenario.Fakes[0].WaitForRequestsAsync(1, Ct);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending);

        await scenario.Fakes[0].WaitForCancelledAsync(Ct);
        Assert.Equal(0, scenario.Fakes[1].RequestCount);
    }

    [Fact]
    public async Task Post_OrderedStrategy_TriesTheListedOrderEvenWhenDearer()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 2, strategy: "ordered", configure: config =>
        {
            config["routes"]!["gpt-4o"]!["candidates"] = new JsonArray("d1", "d0");
        }, cancellationToken: Ct);

        using var response = await scenario.PostChatAsync(GatewayScenario.ChatBody(), Ct);

        Assert.Equal("p1", response.Headers.GetValues("x-tollgate-provider").Single());
    }
}
