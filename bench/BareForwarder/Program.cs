using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http.Features;

// One endpoint, framework defaults, no auth, routing, metering or ledger: what "one .NET proxy hop" costs.
// The upstream's base URL comes from configuration (`--upstream http://127.0.0.1:19080/v1`).
var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.ClearProviders();
var app = builder.Build();

var upstreamBase = app.Configuration["upstream"] ?? "http://127.0.0.1:19080/v1";
var completions = new Uri(upstreamBase.TrimEnd('/') + "/chat/completions");
using var upstream = new HttpClient(new SocketsHttpHandler { UseProxy = false, UseCookies = false, AllowAutoRedirect = false });
var jsonType = new MediaTypeHeaderValue("application/json");

app.MapPost("/v1/chat/completions", async (HttpContext context) =>
{
    var aborted = context.RequestAborted;
    if (await JsonNode.ParseAsync(context.Request.Body, cancellationToken: aborted) is not JsonObject body)
    {
        context.Response.StatusCode = StatusCodes.Status400BadRequest;
        return;
    }

    // The one rewrite a gateway always does: the public model name becomes the upstream's.
    body["model"] = body["model"]?.GetValue<string>();
    using var request = new HttpRequestMessage(HttpMethod.Post, completions)
    {
        Content = new ByteArrayContent(System.Text.Encoding.UTF8.GetBytes(body.ToJsonString())),
    };
    request.Content.Headers.ContentType = jsonType;

    using var response = await upstream.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, aborted);
    context.Response.StatusCode = (int)response.StatusCode;
    context.Response.ContentType = response.Content.Headers.ContentType?.ToString();
    context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();

    // Copied as it arrives, flushed after every read: streams are relayed, not buffered.
    await using var answer = await response.Content.ReadAsStreamAsync(aborted);
    var buffer = new byte[16 * 1024];
    int read;
    while ((read = await answer.ReadAsync(buffer, aborted)) > 0)
    {
        await context.Response.Body.WriteAsync(buffer.AsMemory(0, read), aborted);
        await context.Response.Body.FlushAsync(aborted);
    }
});

await app.RunAsync();
