using System.Text.Json.Nodes;
using Tollgate.Configuration;
using Tollgate.Providers;
using Tollgate.Providers.Gemini;
using Tollgate.Routing;
using Tollgate.Tests.Fakes;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Providers.Gemini;

/// <summary>Gemini's error answers as failure values: what fails over, what cools down, what goes back to the client.</summary>
public sealed class GeminiErrorTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(400, "INVALID_ARGUMENT", FailureKind.BadRequest, false)]
    [InlineData(400, "FAILED_PRECONDITION", FailureKind.BadRequest, false)]
    [InlineData(401, "UNAUTHENTICATED", FailureKind.ProviderRejected, true)]
    [InlineData(403, "PERMISSION_DENIED", FailureKind.ProviderRejected, true)]
    [InlineData(404, "NOT_FOUND", FailureKind.ProviderRejected, true)]
    [InlineData(429, "RESOURCE_EXHAUSTED", FailureKind.RateLimited, true)]
    [InlineData(500, "INTERNAL", FailureKind.ServerError, true)]
    [InlineData(503, "UNAVAILABLE", FailureKind.ServerError, true)]
    [InlineData(504, "DEADLINE_EXCEEDED", FailureKind.ServerError, true)]
    public async Task SendAsync_ErrorStatus_MapsToAFailureKind(int status, string word, FailureKind kind, bool failOver)
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        fake.Enqueue(GeminiReply.Error(status, word, "Something specific went wrong."), GeminiReply.Error(status, word, "Something specific went wrong."));

        var buffered = await harness.SendAsync(GeminiHarness.Chat());
        var streamed = await harness.SendAsync(GeminiHarness.Chat(stream: true));

        foreach (var failure in new[] { buffered.Failure, streamed.Failure })
        {
            Assert.NotNull(failure);
            Assert.Equal(kind, failure.Kind);
            Assert.Equal(status, failure.Status);
            Assert.Equal(failOver, failure.ShouldFailOver);
            Assert.Equal($"The provider answered HTTP {status} ({word}): Something specific went wrong.", failure.Message);
        }
    }

    [Fact]
    public async Task SendAsync_RateLimitedWithRetryAfterHeader_HonoursIt()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        fake.Enqueue(GeminiReply.Error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", retryAfter: "7", detail: GeminiWire.RetryInfo("37s")));

        var result = await harness.SendAsync(GeminiHarness.Chat());

        Assert.Equal(FailureKind.RateLimited, result.Failure?.Kind);
        Assert.Equal(TimeSpan.FromSeconds(7), result.Failure!.RetryAfter);
    }

    [Fact]
    public async Task SendAsync_RateLimitedWithRetryInfoOnly_TakesTheRetryDelay()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        fake.Enqueue(GeminiReply.Error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", detail: GeminiWire.RetryInfo("12.5s")));

        var result = await harness.SendAsync(GeminiHarness.Chat());

        Assert.Equal(TimeSpan.FromSeconds(12.5), result.Failure?.RetryAfter);
    }

    [Fact]
    public async Task SendAsync_WrongApiKey_IsProviderRejectedNotABadRequest()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        var config = new JsonObject
        {
            ["useDefaults"] = false,
            ["providers"] = new JsonObject { ["google"] = GeminiHarness.Provider(fake.BaseUrl) },
            ["models"] = new JsonObject { ["flash"] = Configs.Model("google", "gemini-2.5-flash", 0.30m, 2.50m) },
        };
        using var catalog = Catalog.Build(
            ConfigurationLoader.Load(config, new Dictionary<string, string>()),
            new SecretSource(new Dictionary<string, string> { ["GEMINI_API_KEY"] = "wrong-key" }),
            TimeProvider.System);
        using var cancellation = new AttemptCancellation(Ct);
        cancellation.Arm(TimeSpan.FromSeconds(30));

        var result = await new GeminiAdapter(TimeProvider.System).SendAsync(catalog.Deployments["flash"], GeminiHarness.Parse(GeminiHarness.Chat()), cancellation, TimeSpan.FromSeconds(30));

        Assert.Equal(FailureKind.ProviderRejected, result.Failure?.Kind);
        Assert.True(result.Failure!.ShouldFailOver);
        Assert.Contains("API key not valid", result.Failure.Message, StringComparison.Ordinal);
        Assert.Equal("wrong-key", fake.Requests.Single().Header("x-goog-api-key"));
    }

    [Fact]
    public async Task SendAsync_NothingListening_IsAConnectFailure()
    {
        var config = new JsonObject
        {
            ["useDefaults"] = false,
            ["providers"] = new JsonObject { ["google"] = GeminiHarness.Provider(FakeUpstream.UnusedLoopbackUrl()) },
            ["models"] = new JsonObject { ["flash"] = Configs.Model("google", "gemini-2.5-flash", 0.30m, 2.50m) },
        };
        using var catalog = Catalog.Build(
            ConfigurationLoader.Load(config, new Dictionary<string, string>()),
            new SecretSource(new Dictionary<string, string> { ["GEMINI_API_KEY"] = FakeGemini.ApiKey }),
            TimeProvider.System);
        using var cancellation = new AttemptCancellation(Ct);
        cancellation.Arm(TimeSpan.FromSeconds(30));

        var result = await new GeminiAdapter(TimeProvider.System).SendAsync(catalog.Deployments["flash"], GeminiHarness.Parse(GeminiHarness.Chat()), cancellation, TimeSpan.FromSeconds(30));

        Assert.Equal(FailureKind.Connect, result.Failure?.Kind);
    }

    [Fact]
    public async Task SendAsync_ErrorBodyThatIsNotJson_StillMapsByStatus()
    {
        await using var fake = await FakeGemini.StartAsync(Ct);
        using var harness = GeminiHarness.For(fake);
        fake.Enqueue(new GeminiReply { Status = 502, Body = "<html>Bad Gateway</html>" });

        var result = await harness.SendAsync(GeminiHarness.Chat());

        Assert.Equal(FailureKind.ServerError, result.Failure?.Kind);
        Assert.Equal("The provider answered HTTP 502.", result.Failure!.Message);
    }
}
