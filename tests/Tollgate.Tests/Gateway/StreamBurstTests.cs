using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Tollgate.Tests.Infrastructure;
using Tollgate.Tests.Tenancy;

namespace Tollgate.Tests.Gateway;

/// <summary>
/// Streams whose events arrive in bursts, as from a fast or buffering upstream. The relay flushes the first event at
/// once, continues the rest of such a burst off the I/O thread, and flushes a burst that never pauses every 64 KiB
/// (<c>GatewayDispatcher.Relay</c>). These check that what the client receives, and what the ledger keeps, is the same
/// as for events that arrive one by one, and that an endless burst reaches the client while it is still being sent.
/// </summary>
public sealed class StreamBurstTests : IAsyncLifetime
{
    private const string Id = "chatcmpl-burst";

    private WebApplication _upstream = null!;
    private TestGateway _gateway = null!;
    private byte[] _body = [];
    private Func<HttpContext, Task>? _answer;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _upstream = LoopbackServer.CreateBuilder().Build();
        _upstream.Run(async context =>
        {
            await context.Request.Body.CopyToAsync(Stream.Null, context.RequestAborted);
            context.Response.ContentType = "text/event-stream";
            if (_answer is not null)
            {
                await _answer(context);
                return;
            }

            await context.Response.Body.WriteAsync(_body, context.RequestAborted);
        });
        await _upstream.StartAsync(Ct);

        var config = new JsonObject
        {
            ["providers"] = new JsonObject { ["burst"] = Configs.Provider(new Uri(LoopbackServer.AddressOf(_upstream) + "/v1"), "BURST_KEY") },
            ["models"] = new JsonObject { ["burst/m"] = Configs.Model("burst", "upstream-m", 1m, 2m) },
            ["routes"] = new JsonObject { ["m"] = Configs.Route("cheapest", "burst/m") },
        };
        _gateway = await TestGateway.StartAsync(config, new Dictionary<string, string> { ["BURST_KEY"] = "sk-burst" }, cancellationToken: Ct);
    }

    public async ValueTask DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.StopAsync();
        await _upstream.DisposeAsync();
    }

    [Theory]
    [InlineData(3)]
    [InlineData(5_000)]
    public async Task WholeAnswerInOneWrite_EveryEventInOrder_ThenDone_AndTheReportedUsageIsBilled(int parts)
    {
        _body = Answer(parts);

        using var response = await PostAsync();
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync(Ct));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(parts + 3, events.Count);
        Assert.Equal("[DONE]", events[^1]);
        var text = string.Concat(events.Skip(1).Take(parts).Select(e => JsonNode.Parse(e)!["choices"]![0]!["delta"]!["content"]!.GetValue<string>()));
        Assert.Equal(string.Concat(Enumerable.Range(0, parts).Select(Part)), text);
        Assert.Equal("stop", JsonNode.Parse(events[^2])!["choices"]![0]!["finish_reason"]!.GetValue<string>());
        var row = await LedgerRowAsync(response);
        Assert.Equal([200L, null, "reported", 40L, (long)parts, (40 * 1_000_000L) + (parts * 2_000_000L)], row);
    }

    [Fact]
    public async Task WholeAnswerInOneWrite_TheClientAskedForUsage_GetsTheUsageChunkBeforeDone()
    {
        _body = Answer(4);

        using var response = await PostAsync(includeUsage: true);
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync(Ct));

        Assert.Equal(8, events.Count);
        Assert.Equal(40, JsonNode.Parse(events[^2])!["usage"]!["prompt_tokens"]!.GetValue<int>());
        Assert.Equal("[DONE]", events[^1]);
    }

    [Fact]
    public async Task GarbageInsideTheBurst_AfterTheFirstEvent_EndsWithTheTruncationErrorAndNoDone()
    {
        var whole = Encoding.UTF8.GetString(Answer(6));
        var cut = whole.IndexOf("data: ", whole.IndexOf(Part(1), StringComparison.Ordinal), StringComparison.Ordinal);
        _body = Encoding.UTF8.GetBytes(whole[..cut] + "data: {\"choices\": [oops\n\n" + whole[cut..]);

        using var response = await PostAsync();
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync(Ct));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(4, events.Count);
        Assert.Equal("stream_truncated", JsonNode.Parse(events[^1])!["error"]!["code"]!.GetValue<string>());
        Assert.DoesNotContain("[DONE]", events);
        Assert.All(events.Take(3), e => Assert.Null(JsonNode.Parse(e)!["choices"]![0]!["finish_reason"]));
        var row = await LedgerRowAsync(response);
        Assert.Equal(200L, row[0]);
        Assert.Equal("stream_truncated", row[1]);
        Assert.Equal("estimated", row[2]);
    }

    [Fact]
    public async Task AnUpstreamThatNeverPauses_IsRelayedWhileItSends_NotHeldUntilItStops()
    {
        // The upstream writes content events, 400 (70 KB) at a time, until the client has 1 MiB of the answer, and only
        // then ends the stream; it gives up at 64 MiB. A relay that flushed only when the upstream paused could hold
        // the whole answer in memory until then.
        const long giveUpAt = 64L << 20;
        var clientHasData = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        const int eventsPerBlock = 400;
        var block = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat(Event(Chunk("""{"content":"x"}""", "null")), eventsPerBlock)));
        var parts = 0;
        var written = 0L;
        _answer = async context =>
        {
            var body = context.Response.Body;
            await body.WriteAsync(Encoding.UTF8.GetBytes(Event(Chunk("""{"role":"assistant","content":""}""", "null"))), context.RequestAborted);
            while (!clientHasData.Task.IsCompleted && written < giveUpAt)
            {
                await body.WriteAsync(block, context.RequestAborted);
                written += block.Length;
                parts += eventsPerBlock;
            }

            await body.WriteAsync(Encoding.UTF8.GetBytes(Event(Chunk("{}", "\"stop\"")) + Event(UsageChunk(parts)) + "data: [DONE]\n\n"), context.RequestAborted);
        };

        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = ChatContent(includeUsage: false) };
        using var response = await _gateway.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
        var received = new MemoryStream();
        await using (var stream = await response.Content.ReadAsStreamAsync(Ct))
        {
            var buffer = new byte[16 * 1024];
            int read;
            while ((read = await stream.ReadAsync(buffer, Ct)) > 0)
            {
                received.Write(buffer, 0, read);
                if (received.Length >= 1 << 20)
                {
                    clientHasData.TrySetResult();
                }
            }
        }

        var events = Sse.DataEvents(Encoding.UTF8.GetString(received.ToArray()));
        Assert.True(written < giveUpAt, $"the client had nothing until the upstream gave up after {written} bytes");
        Assert.Equal(parts + 3, events.Count);
        Assert.Equal("[DONE]", events[^1]);
        var row = await LedgerRowAsync(response);
        Assert.Equal([200L, null, "reported", 40L, (long)parts], row[..5]);
    }

    private async Task<HttpResponseMessage> PostAsync(bool includeUsage = false) =>
        await _gateway.Client.PostAsync("v1/chat/completions", ChatContent(includeUsage), Ct);

    private static StringContent ChatContent(bool includeUsage)
    {
        var body = new JsonObject
        {
            ["model"] = "m",
            ["stream"] = true,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Count for me." }),
        };
        if (includeUsage)
        {
            body["stream_options"] = new JsonObject { ["include_usage"] = true };
        }

        return new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
    }

    private async Task<object?[]> LedgerRowAsync(HttpResponseMessage response)
    {
        var requestId = response.Headers.GetValues("x-request-id").Single();
        var rows = await Tenants.QueryAsync(_gateway.DataDirectory, "SELECT status, error_code, usage_source, input_uncached, output_text, cost_pusd FROM ledger WHERE request_id = '" + requestId + "'", Ct);
        return Assert.Single(rows);
    }

    private static string Part(int index) => $" w{index}";

    /// <summary>An OpenAI stream: a role chunk, one content chunk per part, the finish chunk, the usage chunk (40 in, one
    /// output token per part) and <c>[DONE]</c>.</summary>
    private static byte[] Answer(int parts)
    {
        var sse = new StringBuilder();
        sse.Append(Event(Chunk("""{"role":"assistant","content":""}""", "null")));
        for (var i = 0; i < parts; i++)
        {
            sse.Append(Event(Chunk($$"""{"content":"{{Part(i)}}"}""", "null")));
        }

        sse.Append(Event(Chunk("{}", "\"stop\""))).Append(Event(UsageChunk(parts))).Append("data: [DONE]\n\n");
        return Encoding.UTF8.GetBytes(sse.ToString());
    }

    private static string Event(string json) => "data: " + json + "\n\n";

    private static string Chunk(string delta, string finish) =>
        $$"""{"id":"{{Id}}","object":"chat.completion.chunk","created":1732300000,"model":"upstream-m","choices":[{"index":0,"delta":{{delta}},"finish_reason":{{finish}}}]}""";

    private static string UsageChunk(int parts) =>
        $$$"""{"id":"{{{Id}}}","object":"chat.completion.chunk","created":1732300000,"model":"upstream-m","choices":[],"usage":{"prompt_tokens":40,"completion_tokens":{{{parts}}},"total_tokens":{{{40 + parts}}}}}""";
}
