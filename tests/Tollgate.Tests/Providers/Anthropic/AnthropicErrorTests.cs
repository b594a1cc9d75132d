using System.Text.Json.Nodes;
using Tollgate.Metering;
using Tollgate.Providers;

namespace Tollgate.Tests.Providers.Anthropic;

/// <summary>Anthropic's error statuses, error events and broken streams, as failure values the dispatcher acts on.</summary>
public sealed class AnthropicErrorTests
{
    [Theory]
    [InlineData(400, "invalid_request_error", FailureKind.BadRequest, false)]
    [InlineData(401, "authentication_error", FailureKind.ProviderRejected, true)]
    [InlineData(403, "permission_error", FailureKind.ProviderRejected, true)]
    [InlineData(404, "not_found_error", FailureKind.ProviderRejected, true)]
    [InlineData(413, "request_too_large", FailureKind.BadRequest, false)]
    [InlineData(429, "rate_limit_error", FailureKind.RateLimited, true)]
    [InlineData(500, "api_error", FailureKind.ServerError, true)]
    [InlineData(529, "overloaded_error", FailureKind.ServerError, true)]
    public async Task Send_ErrorStatus_MapsToFailure(int status, string type, FailureKind kind, bool failsOver)
    {
        await using var rig = await AnthropicRig.StartAsync();
        rig.Fake.Enqueue(AnthropicBehavior.Error(status, type, "Something is wrong (fake)."));

        var result = await rig.SendAsync(AnthropicRig.Body());

        var failure = Assert.IsType<UpstreamFailure>(result.Failure);
        Assert.Equal(kind, failure.Kind);
        Assert.Equal(status, failure.Status);
        Assert.Equal(failsOver, failure.ShouldFailOver);
        Assert.Equal($"The provider answered HTTP {status} ({type}): Something is wrong (fake).", failure.Message);
    }

    [Fact]
    public async Task Send_RateLimitedWithRetryAfter_CarriesTheDelay()
    {
        await using var rig = await AnthropicRig.StartAsync();
        rig.Fake.Enqueue(AnthropicBehavior.Error(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit", retryAfter: "17"));

        var result = await rig.SendAsync(AnthropicRig.Body(stream: true));

        Assert.Equal(FailureKind.RateLimited, result.Failure?.Kind);
        Assert.Equal(TimeSpan.FromSeconds(17), result.Failure!.RetryAfter);
    }

    [Fact]
    public async Task Send_OverloadedOnStreamRequest_FailsBeforeStreaming()
    {
        await using var rig = await AnthropicRig.StartAsync();
        rig.Fake.Enqueue(AnthropicBehavior.Error(529, "overloaded_error", "Overloaded"));

        var result = await rig.SendAsync(AnthropicRig.Body(stream: true));

        Assert.Equal(FailureKind.ServerError, result.Failure?.Kind);
        Assert.True(result.Failure!.ShouldFailOver);
        Assert.True(result.Failure.CountsAgainstProvider);
    }

    [Fact]
    public async Task Send_ErrorEventBeforeAnyContent_IsAFailureThatFailsOver()
    {
        await using var rig = await AnthropicRig.StartAsync();

        // message_start and ping, then the error: nothing with content has been produced yet.
        rig.Fake.Enqueue(new AnthropicBehavior { Answer = AnthropicAnswer.Text("Never sent."), ErrorEventAfter = 2 });

        var result = await rig.SendAsync(AnthropicRig.Body(stream: true));

        var failure = Assert.IsType<UpstreamFailure>(result.Failure);
        Assert.Equal(FailureKind.ServerError, failure.Kind);
        Assert.Equal(529, failure.Status);
        Assert.True(failure.ShouldFailOver);
        Assert.Contains("overloaded_error", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stream_ErrorEventMidStream_ThrowsStreamBroken()
    {
        await using var rig = await AnthropicRig.StartAsync();

        // message_start, ping, content_block_start, two text deltas, then the error.
        rig.Fake.Enqueue(new AnthropicBehavior { Answer = AnthropicAnswer.Text("One two three four"), ErrorEventAfter = 5 });

        var read = await rig.StreamAsync(AnthropicRig.Body());

        Assert.Equal("One two", read.Content);
        Assert.NotNull(read.Broken);
        Assert.Equal(FailureKind.StreamBroken, read.Broken.Failure.Kind);
        Assert.Contains("overloaded_error", read.Broken.Failure.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(read.Chunks, c => c.UsageOnly);
    }

    [Fact]
    public async Task Stream_CutBeforeMessageStop_ThrowsStreamBrokenAndEstimatesOutput()
    {
        await using var rig = await AnthropicRig.StartAsync();
        var usage = new JsonObject { ["input_tokens"] = 1_000, ["cache_read_input_tokens"] = 200, ["output_tokens"] = 99 };

        // Everything up to the text deltas, then the connection drops: no message_delta, no message_stop.
        rig.Fake.Enqueue(new AnthropicBehavior { Answer = AnthropicAnswer.Text("Hello there world", usage), CutAfterEvents = 6 });

        var read = await rig.StreamAsync(AnthropicRig.Body());

        Assert.Equal("Hello there world", read.Content);
        Assert.Equal(FailureKind.StreamBroken, read.Broken?.Failure.Kind);

        // The input side came in message_start and stays as reported; the output is counted from the relayed text.
        Assert.Equal(UsageSource.Estimated, read.Usage.Source);
        Assert.Equal(new UsageBuckets(1_000, 200, 0, 0, TokenEstimator.Count("Hello there world"), 0), read.Usage.Buckets);
    }

    [Fact]
    public async Task Stream_CutBeforeFirstEvent_IsAFailureThatFailsOver()
    {
        await using var rig = await AnthropicRig.StartAsync();
        rig.Fake.Enqueue(new AnthropicBehavior { Answer = AnthropicAnswer.Text("Never."), CutAfterEvents = 0 });

        var result = await rig.SendAsync(AnthropicRig.Body(stream: true));

        Assert.True(result.Failure?.ShouldFailOver);
        Assert.Null(result.Response);
    }

    [Fact]
    public async Task Stream_EndsCleanlyWithoutMessageStop_ThrowsStreamBroken()
    {
        await using var rig = await AnthropicRig.StartAsync();
        var events = AnthropicWire.Events(AnthropicAnswer.Text("Hi there"), AnthropicRig.UpstreamModel);
        rig.Fake.Enqueue(AnthropicBehavior.Raw(transcript: string.Concat(events.SkipLast(1))));

        var read = await rig.StreamAsync(AnthropicRig.Body());

        Assert.Equal("Hi there", read.Content);
        Assert.Equal(FailureKind.StreamBroken, read.Broken?.Failure.Kind);
        Assert.Contains("message_stop", read.Broken!.Failure.Message, StringComparison.Ordinal);

        // message_delta did arrive: its final usage is the provider's own.
        Assert.Equal(UsageSource.Reported, read.Usage.Source);
    }

    [Fact]
    public async Task Complete_NotAMessage_IsInvalidResponse()
    {
        await using var rig = await AnthropicRig.StartAsync();
        rig.Fake.Enqueue(AnthropicBehavior.Raw(body: """{"type":"error","error":{"type":"api_error","message":"Oops"}}"""));

        var result = await rig.SendAsync(AnthropicRig.Body());

        Assert.Equal(FailureKind.InvalidResponse, result.Failure?.Kind);
        Assert.True(result.Failure!.ShouldFailOver);
    }

    [Fact]
    public async Task Complete_GarbageBody_IsInvalidResponse()
    {
        await using var rig = await AnthropicRig.StartAsync();
        rig.Fake.Enqueue(AnthropicBehavior.Raw(body: "<html>bad gateway"));

        var result = await rig.SendAsync(AnthropicRig.Body());

        Assert.Equal(FailureKind.InvalidResponse, result.Failure?.Kind);
    }

    [Fact]
    public async Task Send_WrongProviderKey_IsProviderRejected()
    {
        await using var rig = await AnthropicRig.StartAsync();
        var provider = new Tollgate.Routing.Provider("claude", "anthropic", rig.Deployment.Provider.BaseUri, "sk-ant-wrong", "K", TimeSpan.FromSeconds(30), rig.Deployment.Provider.Http);
        var deployment = new Tollgate.Routing.Deployment("d", provider, "m", AnthropicRig.Prices, 1_000, 100, Tollgate.Configuration.Capability.None, rig.Deployment.Health);
        using var cancellation = new AttemptCancellation(TestContext.Current.CancellationToken);

        var result = await rig.Adapter.SendAsync(deployment, AnthropicRig.Parse(AnthropicRig.Body()), cancellation, TimeSpan.FromSeconds(30));

        Assert.Equal(FailureKind.ProviderRejected, result.Failure?.Kind);
        Assert.Equal(401, result.Failure!.Status);
        Assert.Contains("authentication_error", result.Failure.Message, StringComparison.Ordinal);
    }
}
