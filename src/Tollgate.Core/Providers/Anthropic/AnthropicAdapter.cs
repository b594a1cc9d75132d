using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Tollgate.Providers.OpenAI;
using Tollgate.Requests;
using Tollgate.Routing;

namespace Tollgate.Providers.Anthropic;

/// <summary>
/// The native Anthropic Messages API (<c>POST {baseUrl}/messages</c>), behind the same OpenAI face as every
/// other provider: the client's chat request is translated to a Messages request, and the answer (buffered,
/// or streamed event by event) is translated back to <c>chat.completion</c> / <c>chat.completion.chunk</c>.
/// Usage maps to disjoint buckets with Anthropic's cache reads and 5-minute / 1-hour cache writes kept apart.
/// Rules and limits: docs/providers/anthropic.md.
/// </summary>
public sealed class AnthropicAdapter : IProviderAdapter
{
    /// <summary>The API version this adapter speaks (the <c>anthropic-version</c> header).</summary>
    public const string ApiVersion = "2023-06-01";

    private static readonly MediaTypeHeaderValue JsonContentType = new("application/json");

    private readonly TimeProvider _time;

    public AnthropicAdapter()
        : this(TimeProvider.System)
    {
    }

    /// <param name="time">The clock for <c>created</c> timestamps.</param>
    public AnthropicAdapter(TimeProvider time)
    {
        _time = time;
    }

    public string Type => Configuration.ProviderTypes.Anthropic;

    public async Task<AttemptResult> SendAsync(Deployment deployment, ParsedRequest request, AttemptCancellation cancellation, TimeSpan streamIdleTimeout)
    {
        if (request.Kind != RequestKind.ChatCompletion)
        {
            return AttemptResult.Fail(new(FailureKind.BadRequest, 400, "Anthropic has no embeddings API; route embeddings to another provider."));
        }

        var body = new ArrayBufferWriter<byte>(request.Body.Length + 256);
        AnthropicCall call;
        try
        {
            call = AnthropicRequestTranslator.Write(request, deployment, body);
        }
        catch (RequestTranslationException ex)
        {
            // The request itself cannot be expressed for Anthropic: a 400 for the client, not a provider fault.
            return AttemptResult.Fail(new(FailureKind.BadRequest, 400, ex.Message));
        }
        catch (JsonException ex)
        {
            return AttemptResult.Fail(new(FailureKind.BadRequest, 400, $"The request could not be read for Anthropic: {ex.Message}"));
        }
        catch (InvalidOperationException) when (LoneSurrogates.InJsonEscapes(request.Body.Span))
        {
            // A string the translation must read is not valid UTF-16: the client's error, not a fault of ours.
            return AttemptResult.Fail(new(FailureKind.BadRequest, 400, LoneSurrogates.Message));
        }

        HttpResponseMessage? response = null;
        try
        {
            using var message = new HttpRequestMessage(HttpMethod.Post, deployment.Provider.Endpoint("messages"))
            {
                Content = new ReadOnlyMemoryContent(body.WrittenMemory) { Headers = { ContentType = JsonContentType } },
                Version = HttpVersion.Version11,
                VersionPolicy = HttpVersionPolicy.RequestVersionOrHigher,
            };
            if (deployment.Provider.ApiKey is { } key)
            {
                message.Headers.TryAddWithoutValidation("x-api-key", key);
            }

            message.Headers.TryAddWithoutValidation("anthropic-version", ApiVersion);
            if (request.Stream)
            {
                message.Headers.TryAddWithoutValidation("Accept", "text/event-stream");
            }

            response = await deployment.Provider.Http.SendAsync(message, cancellation.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                var failure = await ReadFailureAsync(response, cancellation.Token).ConfigureAwait(false);
                return AttemptResult.Fail(failure);
            }

            var created = _time.GetUtcNow().ToUnixTimeSeconds();
            if (request.Stream)
            {
                var translator = new AnthropicStreamTranslator(call, deployment.UpstreamModel, created);
                var stream = new AnthropicStreamingResponse(response, request, cancellation, streamIdleTimeout, translator);
                response = null; // owned by the stream now
                if (await stream.StartAsync().ConfigureAwait(false) is { } failure)
                {
                    await stream.DisposeAsync().ConfigureAwait(false);
                    return AttemptResult.Fail(failure);
                }

                return AttemptResult.Ok(stream);
            }

            var bytes = await UpstreamBodies.ReadAnswerAsync(response.Content, cancellation.Token).ConfigureAwait(false);
            return Translate(request, deployment, call, created, (int)response.StatusCode, bytes);
        }
        catch (Exception ex) when (OpenAICompatibleAdapter.Classify(ex, cancellation) is { } failure)
        {
            return AttemptResult.Fail(failure);
        }
        finally
        {
            response?.Dispose();
        }
    }

    private static AttemptResult Translate(ParsedRequest request, Deployment deployment, AnthropicCall call, long created, int status, byte[] bytes)
    {
        try
        {
            if (AnthropicResponseTranslator.TryTranslate(bytes, call, deployment.UpstreamModel, created, request.Body.Span, out var openAi, out var usage))
            {
                return AttemptResult.Ok(new BufferedResponse(status, openAi, usage));
            }
        }
        catch (JsonException)
        {
            return AttemptResult.Fail(new(FailureKind.InvalidResponse, status, "The provider returned a response that is not valid JSON."));
        }

        return AttemptResult.Fail(new(FailureKind.InvalidResponse, status, "The provider returned a response that is not an Anthropic message."));
    }

    private static async Task<UpstreamFailure> ReadFailureAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var status = (int)response.StatusCode;
        string? errorType = null, message = null;
        try
        {
            var bytes = await UpstreamBodies.ReadErrorAsync(response.Content, cancellationToken).ConfigureAwait(false);
            AnthropicErrors.TryRead(bytes.Span, out errorType, out message);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException)
        {
            // The status alone is enough to classify the failure.
        }

        // 529 overloaded_error falls in FromStatus's 5xx class: counted against the provider, failed over.
        return UpstreamFailure.FromStatus(status, AnthropicErrors.Describe(status, errorType, message), OpenAICompatibleAdapter.RetryAfter(response));
    }
}
