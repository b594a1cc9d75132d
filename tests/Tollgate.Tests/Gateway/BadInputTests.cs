using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Gateway;

/// <summary>Every bad request gets an OpenAI error object with the right status, and reaches no provider.</summary>
public sealed class BadInputTests : IAsyncLifetime
{
    private GatewayScenario _scenario = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync() =>
        _scenario = await GatewayScenario.StartAsync(providers: 1, configure: c => c["server"] = new JsonObject { ["maxRequestBodyBytes"] = 4096 }, cancellationToken: Ct);

    public async ValueTask DisposeAsync() => await _scenario.DisposeAsync();

    private async Task AssertErrorAsync(HttpResponseMessage response, HttpStatusCode status, string code, string? param = null)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var error = (await response.Content.ReadFromJsonAsync<JsonObject>(Ct))!["error"]!.AsObject();
        Assert.Equal(["message", "type", "param", "code"], error.Select(p => p.Key));
        Assert.False(string.IsNullOrWhiteSpace((string?)error["message"]));
        Assert.Equal(code, (string?)error["code"]);
        Assert.Equal(param, (string?)error["param"]);
        Assert.Equal(0, _scenario.Fakes[0].RequestCount);
    }

    private Task<HttpResponseMessage> PostRawAsync(string body, string contentType = "application/json", HttpClient? client = null)
    {
        var content = new StringContent(body, Encoding.UTF8);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        return (client ?? _scenario.Client).PostAsync("v1/chat/completions", content, Ct);
    }

    [Theory]
    [InlineData("{not json", "invalid_json", null)]
    [InlineData("", "invalid_json", null)]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "missing_required_parameter", "model")]
    [InlineData("{\"model\":[\"gpt-4o\"],\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "invalid_type", "model")]
    [InlineData("{\"model\":\"gpt-4o\"}", "missing_required_parameter", "messages")]
    [InlineData("{\"model\":\"gpt-4o\",\"messages\":[]}", "empty_array", "messages")]
    [InlineData("{\"model\":\"gpt-4o\",\"messages\":[1]}", "invalid_value", "messages")]
    [InlineData("\"just a string\"", "invalid_request_body", null)]
    public async Task Post_InvalidBody_Is400(string body, string code, string? param)
    {
        using var response = await PostRawAsync(body);

        await AssertErrorAsync(response, HttpStatusCode.BadRequest, code, param);
    }

    [Fact]
    public async Task Post_UnknownModel_Is404NamingIt()
    {
        using var response = await PostRawAsync("""{"model":"gpt-9-ultra","messages":[{"role":"user","content":"hi"}]}""");

        Assert.Contains("gpt-9-ultra", await response.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        response.Content = new StringContent(await response.Content.ReadAsStringAsync(Ct), Encoding.UTF8, "application/json");
        await AssertErrorAsync(response, HttpStatusCode.NotFound, "model_not_found", "model");
    }

    [Fact]
    public async Task Post_DeclaredBodyOverLimit_Is413()
    {
        var big = GatewayScenario.ChatBody(content: new string('x', 10_000)).ToJsonString();

        using var response = await PostRawAsync(big);

        await AssertErrorAsync(response, HttpStatusCode.RequestEntityTooLarge, "request_too_large");
    }

    [Fact]
    public async Task Post_ChunkedBodyOverLimit_Is413()
    {
        var big = Encoding.UTF8.GetBytes(GatewayScenario.ChatBody(content: new string('x', 10_000)).ToJsonString());
        var content = new StreamContent(new MemoryStream(big));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = content };
        request.Headers.TransferEncodingChunked = true;

        using var response = await _scenario.Client.SendAsync(request, Ct);

        await AssertErrorAsync(response, HttpStatusCode.RequestEntityTooLarge, "request_too_large");
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/x-www-form-urlencoded")]
    public async Task Post_WrongContentType_Is415(string contentType)
    {
        using var response = await PostRawAsync(GatewayScenario.ChatBody().ToJsonString(), contentType);

        await AssertErrorAsync(response, HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
    }

    [Fact]
    public async Task Post_JsonWithCharset_IsAccepted()
    {
        using var response = await PostRawAsync(GatewayScenario.ChatBody().ToJsonString(), "Application/JSON; charset=utf-8");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Post_NoKey_Is401()
    {
        using var response = await PostRawAsync(GatewayScenario.ChatBody().ToJsonString(), client: _scenario.Gateway.Anonymous);

        await AssertErrorAsync(response, HttpStatusCode.Unauthorized, "missing_api_key");
    }

    [Theory]
    [InlineData("tg-not-a-real-key")]
    [InlineData("sk-openai-style-key")]
    [InlineData(TestGateway.AdminKeyValue)]
    public async Task Post_WrongKey_Is401WithoutEchoingIt(string key)
    {
        using var client = _scenario.Gateway.NewClient(key);

        using var response = await PostRawAsync(GatewayScenario.ChatBody().ToJsonString(), client: client);
        var text = await response.Content.ReadAsStringAsync(Ct);

        Assert.DoesNotContain(key, text, StringComparison.Ordinal);
        response.Content = new StringContent(text, Encoding.UTF8, "application/json");
        await AssertErrorAsync(response, HttpStatusCode.Unauthorized, "invalid_api_key");
    }

    [Fact]
    public async Task Get_UnknownV1Endpoint_Is404OpenAIError()
    {
        using var response = await _scenario.Client.GetAsync("v1/assistants", Ct);

        await AssertErrorAsync(response, HttpStatusCode.NotFound, "unknown_url");
    }

    [Fact]
    public async Task Post_DeeplyNestedJson_Is400NotA500()
    {
        var nested = string.Concat(Enumerable.Repeat("[", 1000)) + string.Concat(Enumerable.Repeat("]", 1000));

        using var response = await PostRawAsync("{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":" + nested + "}]}");

        await AssertErrorAsync(response, HttpStatusCode.BadRequest, "invalid_json");
    }

    [Theory]
    [InlineData("{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"half a pair \\ud800\"}]}")]
    [InlineData("{\"model\":\"gpt-4o\\udc00\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}")]
    [InlineData("{\"model\":\"gpt-4o\",\"user\":\"\\ud800\",\"messages\":[{\"role\":\"user\\ud800\",\"content\":\"hi\"}]}")]
    public async Task Post_LoneSurrogateEscape_IsNeverA500(string body)
    {
        using var response = await PostRawAsync(body);

        Assert.True((int)response.StatusCode < 500, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken)}");
    }
}
