using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Tollgate.Tests.Fakes;

/// <summary>Client-side helpers shared by the fake's self-tests.</summary>
internal static class FakeHttp
{
    // One client for all self-tests; each test talks to its own FakeUpstream.
    public static readonly HttpClient Client = new();

    public static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Reads lines until the end; used to leave a read pending on the socket before cancelling.</summary>
    public static async Task DrainAsync(StreamReader reader, CancellationToken cancellationToken)
    {
        while (await reader.ReadLineAsync(cancellationToken) is not null)
        {
        }
    }

    public static JsonObject ChatBody(string model = "gpt-test", bool stream = false, bool includeUsage = false)
    {
        var body = new JsonObject
        {
            ["model"] = model,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Say hello." }),
        };
        if (stream)
        {
            body["stream"] = true;
        }

        if (includeUsage)
        {
            body["stream_options"] = new JsonObject { ["include_usage"] = true };
        }

        return body;
    }

    public static Uri Url(FakeUpstream upstream, string relative) => new($"{upstream.BaseUrl}/{relative}");

    public static async Task<HttpResponseMessage> PostAsync(
        FakeUpstream upstream,
        string relative,
        JsonObject body,
        HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead,
        CancellationTokenSource? caller = null,
        string? apiKey = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, Url(upstream, relative))
        {
            Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        if (apiKey is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }

        return await Client.SendAsync(request, completion, caller?.Token ?? Ct);
    }

    public static async Task<JsonObject> ReadObjectAsync(HttpResponseMessage response) =>
        JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!.AsObject();

    /// <summary>Reads SSE "data:" payloads until the body ends or fails; a failure is returned, not thrown.</summary>
    public static async Task<SseResult> ReadEventsAsync(HttpResponseMessage response)
    {
        var data = new List<string>();
        var pending = new StringBuilder();
        try
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(Ct));
            var buffer = new char[256];
            int read;
            while ((read = await reader.ReadAsync(buffer, Ct)) > 0)
            {
                pending.Append(buffer, 0, read);
                var text = pending.ToString();
                int end;
                while ((end = text.IndexOf("\n\n", StringComparison.Ordinal)) >= 0)
                {
                    var frame = text[..end];
                    data.Add(frame.StartsWith("data: ", StringComparison.Ordinal) ? frame["data: ".Length..] : frame);
                    text = text[(end + 2)..];
                }

                pending.Clear().Append(text);
            }
        }
        catch (HttpRequestException error)
        {
            return new SseResult(data, error, pending.Length > 0 ? pending.ToString() : null);
        }
        catch (IOException error)
        {
            return new SseResult(data, error, pending.Length > 0 ? pending.ToString() : null);
        }

        return new SseResult(data, null, pending.Length > 0 ? pending.ToString() : null);
    }

    public sealed record SseResult(List<string> Data, Exception? Error, string? PartialLine)
    {
        public List<JsonObject> Chunks { get; } =
            [.. Data.Where(item => item.StartsWith('{')).Select(item => JsonNode.Parse(item)!.AsObject())];
    }
}
