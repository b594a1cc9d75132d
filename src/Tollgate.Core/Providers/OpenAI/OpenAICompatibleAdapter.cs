using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text.Json;
using Tollgate.Metering;
using Tollgate.Requests;
using Tollgate.Routing;

namespace Tollgate.Providers.OpenAI;

/// <summary>
/// Any OpenAI-compatible API (OpenAI, DeepSeek, OpenRouter, Groq, Together, Mistral, vLLM, Ollama...).
/// The request body is forwarded with only <c>model</c> rewritten (and usage requested for streams);
/// the answer is validated and relayed as received.
/// </summary>
public sealed class OpenAICompatibleAdapter : IProviderAdapter
{
    private static readonly MediaTypeHeaderValue JsonContentType = new("application/json");

    public string Type => Configuration.ProviderTypes.OpenAI;

    public async Task<AttemptResult> SendAsync(Deployment deployment, ParsedRequest request, AttemptCancellation cancellation, TimeSpan streamIdleTimeout)
    {
        var path = request.Kind == RequestKind.Embedding ? "embeddings" : "chat/completions";
        var body = UpstreamBodyWriter.Write(request, deployment.UpstreamModelJson);
        HttpResponseMessage? response = null;
        try
        {
            using var message = new HttpRequestMessage(HttpMethod.Post, deployment.Provider.Endpoint(path))
            {
                Content = new ReadOnlyMemoryContent(body.Memory) { Headers = { ContentType = JsonContentType } },
                Version = HttpVersion.Version11,
                VersionPolicy = HttpVersionPolicy.RequestVersionOrHigher,
            };
            // Constant header values are added as text: parsing them into header objects per request buys nothing.
            if (deployment.Provider.BearerAuthorization is { } authorization)
            {
                message.Headers.TryAddWithoutValidation("Authorization", authorization);
            }

            if (request.Stream)
            {
                message.Headers.TryAddWithoutValidation("Accept", "text/event-stream");
            }

            response = await deployment.Provider.Http.SendAsync(message, cancellation.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                var failure = await ReadFailureAsync(response, cancellation.Token).ConfigureAwait(false);
                response.Dispose();
                return AttemptResult.Fail(failure);
            }

            if (request.Stream)
            {
                var stream = new OpenAIStreamingResponse(response, request, cancellation, streamIdleTimeout);
                response = null; // owned by the stream now
                var started = await stream.StartAsync().ConfigureAwait(false);
                if (started is { } failure)
                {
                    await stream.DisposeAsync().ConfigureAwait(false);
                    return AttemptResult.Fail(failure);
                }

                return AttemptResult.Ok(stream);
            }

            var bytes = await UpstreamBodies.ReadAnswerAsync(response.Content, cancellation.Token).ConfigureAwait(false);
            return Validate(request, (int)response.StatusCode, bytes);
        }
        catch (Exception ex) when (Classify(ex, cancellation) is { } failure)
        {
            return AttemptResult.Fail(failure);
        }
        finally
        {
            response?.Dispose();
            body.Dispose();
        }
    }

    /// <summary>Maps transport exceptions to failure values: the one documented place where exceptions become results.</summary>
    internal static UpstreamFailure? Classify(Exception ex, AttemptCancellation cancellation) => ex switch
    {
        OperationCanceledException when cancellation.ClientAborted => new(FailureKind.ClientAborted, null, "The client closed the request."),
        OperationCanceledException => new(FailureKind.Timeout, null, "The provider did not answer within the attempt timeout."),
        HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError or HttpRequestError.SecureConnectionError }
            => new(FailureKind.Connect, null, "Could not connect to the provider."),
        HttpRequestException or IOException or SocketException
            => new(FailureKind.InvalidResponse, null, "The provider closed the connection before the response was complete."),
        _ => null,
    };

    private static AttemptResult Validate(ParsedRequest request, int status, byte[] body)
    {
        OpenAIResponseScanner.ResponseFacts facts;
        try
        {
            facts = OpenAIResponseScanner.Scan(body);
        }
        catch (JsonException)
        {
            return AttemptResult.Fail(new(FailureKind.InvalidResponse, status, "The provider returned a response that is not valid JSON."));
        }

        var shapeOk = facts.IsObject && !facts.HasError && (request.Kind == RequestKind.Embedding ? facts.HasData : facts.HasChoices);
        if (!shapeOk)
        {
            return AttemptResult.Fail(new(FailureKind.InvalidResponse, status, "The provider returned a response without the expected fields."));
        }

        return AttemptResult.Ok(new BufferedResponse(status, body, facts.Usage?.ToMetered() ?? Estimate(request, body)));
    }

    /// <summary>No usage in the response: count the request and the answer's text with the tokenizer.</summary>
    private static MeteredUsage Estimate(ParsedRequest request, byte[] body)
    {
        var text = new ArrayBufferWriter<byte>(body.Length);
        OpenAIResponseScanner.Scan(body, text);
        return TokenEstimator.Estimate(request.Body.Span, text.WrittenSpan);
    }

    private static async Task<UpstreamFailure> ReadFailureAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var status = (int)response.StatusCode;
        var message = $"The provider answered HTTP {status}.";
        try
        {
            var bytes = await UpstreamBodies.ReadErrorAsync(response.Content, cancellationToken).ConfigureAwait(false);
            if (ProviderErrorMessage.TryRead(bytes.Span, out var upstreamMessage))
            {
                message = $"The provider answered HTTP {status}: {upstreamMessage}";
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException)
        {
            // The status alone is enough to classify the failure.
        }

        return UpstreamFailure.FromStatus(status, message, RetryAfter(response));
    }

    internal static TimeSpan? RetryAfter(HttpResponseMessage response)
    {
        var header = response.Headers.RetryAfter;
        if (header?.Delta is { } delta)
        {
            return delta < TimeSpan.Zero ? TimeSpan.Zero : delta;
        }

        if (header?.Date is { } date && response.Headers.Date is { } now)
        {
            var wait = date - now;
            return wait < TimeSpan.Zero ? TimeSpan.Zero : wait;
        }

        return null;
    }
}
