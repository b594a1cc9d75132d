using Tollgate.Configuration;
using Tollgate.Routing;

namespace Tollgate.Tests.Routing;

public sealed class ProviderEndpointTests : IDisposable
{
    private readonly HttpMessageInvoker _http = new(new SocketsHttpHandler());

    [Theory]
    [InlineData("https://api.deepseek.com/v1/", "chat/completions", "https://api.deepseek.com/v1/chat/completions")]
    [InlineData("http://127.0.0.1:11434/v1/", "embeddings", "http://127.0.0.1:11434/v1/embeddings")]
    [InlineData("https://generativelanguage.googleapis.com/v1beta/", "models/gemini-2.5-flash:streamGenerateContent?alt=sse", "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")]
    public void Endpoint_resolves_the_path_under_the_base_url(string baseUrl, string path, string expected)
    {
        var provider = new Provider("p", ProviderTypes.OpenAI, new Uri(baseUrl), "sk-test", "P_KEY", TimeSpan.FromSeconds(30), _http);

        Assert.Equal(expected, provider.Endpoint(path).AbsoluteUri);
    }

    [Fact]
    public void Endpoint_is_built_once_per_path()
    {
        var provider = new Provider("p", ProviderTypes.OpenAI, new Uri("https://api.example.com/v1/"), "sk-test", "P_KEY", TimeSpan.FromSeconds(30), _http);

        var first = provider.Endpoint("chat/completions");

        Assert.Same(first, provider.Endpoint("chat/completions"));
        Assert.NotSame(first, provider.Endpoint("embeddings"));
    }

    [Fact]
    public void Bearer_authorization_is_formatted_from_the_key_and_absent_without_one()
    {
        var keyed = new Provider("p", ProviderTypes.OpenAI, new Uri("https://api.example.com/v1/"), "sk-test", "P_KEY", TimeSpan.FromSeconds(30), _http);
        var keyless = new Provider("ollama", ProviderTypes.OpenAI, new Uri("http://127.0.0.1:11434/v1/"), null, null, TimeSpan.FromSeconds(30), _http);

        Assert.Equal("Bearer sk-test", keyed.BearerAuthorization);
        Assert.Null(keyless.BearerAuthorization);
    }

    public void Dispose() => _http.Dispose();
}
