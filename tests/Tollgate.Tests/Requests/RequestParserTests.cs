using System.Text;
using System.Text.Json.Nodes;
using Tollgate.Configuration;
using Tollgate.Requests;

namespace Tollgate.Tests.Requests;

public sealed class RequestParserTests
{
    private static ParsedRequest Parse(string json, RequestKind kind = RequestKind.ChatCompletion)
    {
        Assert.True(RequestParser.TryParse(kind, Encoding.UTF8.GetBytes(json), out var request, out var error), error?.Message);
        return request!;
    }

    private static RequestError Reject(string json, RequestKind kind = RequestKind.ChatCompletion)
    {
        Assert.False(RequestParser.TryParse(kind, Encoding.UTF8.GetBytes(json), out _, out var error));
        return error!;
    }

    [Fact]
    public void TryParse_FullRequest_ExtractsRoutingFacts()
    {
        var request = Parse("""
            {"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"what is this"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}],
             "tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"response_format":{"type":"json_object"},"max_tokens":50,"n":2,"stream":true}
            """);

        Assert.Equal("gpt-4o", request.Model);
        Assert.True(request.Stream);
        Assert.False(request.ClientWantsUsage);
        Assert.Equal(50, request.MaxTokens);
        Assert.Equal(2, request.Choices);
        Assert.Equal(Capability.Tools | Capability.Vision | Capability.Json, request.Needs);
        Assert.True(request.EstimatedInputTokens > 4);
    }

    [Theory]
    [InlineData("not json", "invalid_json", null)]
    [InlineData("[1,2]", "invalid_request_body", null)]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "missing_required_parameter", "model")]
    [InlineData("{\"model\":42,\"messages\":[]}", "invalid_type", "model")]
    [InlineData("{\"model\":\"m\"}", "missing_required_parameter", "messages")]
    [InlineData("{\"model\":\"m\",\"messages\":[]}", "empty_array", "messages")]
    [InlineData("{\"model\":\"m\",\"messages\":\"hi\"}", "invalid_type", "messages")]
    [InlineData("{\"model\":\"m\",\"messages\":[{\"content\":\"no role\"}]}", "invalid_value", "messages")]
    [InlineData("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":\"yes\"}", "invalid_type", "stream")]
    [InlineData("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":-1}", "invalid_value", "max_tokens")]
    [InlineData("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]} trailing", "invalid_json", null)]
    public void TryParse_BadChatBody_ReturnsCodeAndParam(string json, string code, string? param)
    {
        var error = Reject(json);

        Assert.Equal(code, error.Code);
        Assert.Equal(param, error.Param);
    }

    [Theory]
    [InlineData("{\"model\":\"e\"}", "missing_required_parameter")]
    [InlineData("{\"model\":\"e\",\"input\":\"\"}", "invalid_value")]
    [InlineData("{\"model\":\"e\",\"input\":5}", "invalid_type")]
    public void TryParse_BadEmbeddingBody_IsRejected(string json, string code)
    {
        Assert.Equal(code, Reject(json, RequestKind.Embedding).Code);
    }

    [Fact]
    public void Write_NonStream_RewritesOnlyTheModel()
    {
        const string Original = """{"temperature":0.2,"model":"gpt-4o","messages":[{"role":"user","content":"hi \u00e9"}],"seed":7,"x_custom":{"a":[1,2]}}""";
        var request = Parse(Original);

        using var body = UpstreamBodyWriter.Write(request, Encoding.UTF8.GetBytes("\"deepseek-chat\""));

        Assert.Equal(Original.Replace("\"gpt-4o\"", "\"deepseek-chat\"", StringComparison.Ordinal), Encoding.UTF8.GetString(body.Memory.Span));
    }

    [Theory]
    [InlineData("""{"tollgate":{"min_tier":2},"model":"m","messages":[{"role":"user","content":"hi"}]}""", RequestKind.ChatCompletion)]
    [InlineData("""{"model":"m", "tollgate" : {"providers":["a","b"]} ,"messages":[{"role":"user","content":"hi"}]}""", RequestKind.ChatCompletion)]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"tollgate":{"task":"code"}}""", RequestKind.ChatCompletion)]
    [InlineData("""{"model":"m","stream":true,"tollgate":{"best_effort":true},"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"hi"}]}""", RequestKind.ChatCompletion)]
    [InlineData("""{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}],"tollgate":{"max_cost_usd":0.01}}""", RequestKind.ChatCompletion)]
    [InlineData("""{"tollgate":{"exclude_providers":["x"]},"input":"hello","model":"m"}""", RequestKind.Embedding)]
    [InlineData("{\n  \"model\": \"m\",\n  \"tollgate\": { \"max_latency_ms\": 500 }\n  , \"input\": [\"a\", \"b\"]\n}", RequestKind.Embedding)]
    public void Write_StripsTheTollgateMember_WhereverItIs(string original, RequestKind kind)
    {
        var request = Parse(original, kind);
        Assert.NotSame(Tollgate.Routing.RequestConstraints.None, request.Constraints);

        using var body = UpstreamBodyWriter.Write(request, Encoding.UTF8.GetBytes("\"up\""));
        var sent = JsonNode.Parse(body.Memory.Span)!.AsObject();
        var expected = JsonNode.Parse(original)!.AsObject();
        expected.Remove("tollgate");
        expected["model"] = "up";
        if (request.Stream)
        {
            expected["stream_options"] = new JsonObject { ["include_usage"] = true };
        }

        Assert.False(sent.ContainsKey("tollgate"));
        Assert.True(JsonNode.DeepEquals(expected, sent), sent.ToJsonString());
    }

    [Fact]
    public void Write_StreamWithoutOptions_AddsIncludeUsage()
    {
        var request = Parse("""{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}""");

        using var body = UpstreamBodyWriter.Write(request, Encoding.UTF8.GetBytes("\"up\""));
        var json = JsonNode.Parse(body.Memory.Span)!;

        Assert.Equal("up", (string?)json["model"]);
        Assert.True((bool)json["stream_options"]!["include_usage"]!);
    }

    [Theory]
    [InlineData("""{"stream_options":{"include_usage":false},"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}""", false)]
    [InlineData("""{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}""", true)]
    [InlineData("""{"model":"m","stream":true,"stream_options":null,"messages":[{"role":"user","content":"hi"}]}""", false)]
    public void Write_StreamWithOptions_ReplacesThemAndRemembersWhatTheClientAsked(string original, bool clientWantsUsage)
    {
        var request = Parse(original);

        using var body = UpstreamBodyWriter.Write(request, Encoding.UTF8.GetBytes("\"up\""));
        var json = JsonNode.Parse(body.Memory.Span)!;

        Assert.Equal(clientWantsUsage, request.ClientWantsUsage);
        Assert.Equal("up", (string?)json["model"]);
        Assert.True((bool)json["stream_options"]!["include_usage"]!);
        Assert.Equal("hi", (string?)json["messages"]![0]!["content"]);
    }
}
