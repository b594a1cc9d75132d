// Fake OpenAI-compatible upstream for the Tollgate load benchmark (bench/load/run.sh).
//
//   POST /v1/chat/completions
//     body without "stream": true -> one chat.completion JSON object with a usage block
//     body with    "stream": true -> text/event-stream: 20 chat.completion.chunk events (role,
//                                    18 content tokens, finish_reason), a usage chunk
//                                    (choices: [], usage {...}) and "data: [DONE]"
//   GET  /v1/models, GET /health  -> small fixed answers
//
// A model name containing "delayN" (e.g. "gpt-4o-mini-delay5") makes it wait N ms before a
// non-stream answer and between stream events (the first event is sent at once): the slowed
// stream lets a client see whether a proxy passes events through or buffers them.
//
// Every answer is precomputed UTF-8 at start-up; a request costs one scan of the body and one
// write (non-stream) or one write + flush per event (stream; --stream-flush once writes the whole
// stream in one go instead).
//
// Usage: Tollgate.Bench.Upstream [--urls http://127.0.0.1:19080] [--stream-flush event|once]

using Microsoft.AspNetCore.Server.Kestrel.Core;
using Tollgate.Bench.Upstream;

var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.ClearProviders();
builder.WebHost.ConfigureKestrel(static (KestrelServerOptions o) =>
{
    o.AddServerHeader = false;
    o.Limits.MaxRequestBodySize = 16 * 1024 * 1024;
});
if (string.IsNullOrEmpty(builder.Configuration["urls"]))
{
    builder.WebHost.UseUrls("http://127.0.0.1:19080");
}

var flushEachEvent = !string.Equals(builder.Configuration["stream-flush"], "once", StringComparison.OrdinalIgnoreCase);
var handler = new FakeHandler(flushEachEvent);

var app = builder.Build();
app.Run(handler.HandleAsync);
await app.RunAsync().ConfigureAwait(false);
