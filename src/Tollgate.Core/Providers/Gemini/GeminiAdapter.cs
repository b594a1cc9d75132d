using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Tollgate.Configuration;
using Tollgate.Metering;
using Tollgate.Providers.OpenAI;
using Tollgate.Requests;
using Tollgate.Routing;

namespace Tollgate.Providers.Gemini;

/// <summary>
/// The native Google Gemini API (<c>generativelanguage.googleapis.com/v1beta</c>), provider type <c>gemini</c>.
/// Translates OpenAI chat and embeddings requests to <c>generateContent</c>, <c>streamGenerateContent?alt=sse</c>,
/// <c>embedContent</c> and <c>batchEmbedContents</c>, and the answers back, so a Gemini deployment sits in a
/// route beside OpenAI-compatible ones without the client noticing. See docs/providers/gemini.md.
/// </summary>
public sealed class GeminiAdapter(TimeProvider time) : IProviderAdapter
{
    private const int BadRequestStatus = 400;

    private static readonly MediaTypeHeaderValue JsonContentType = new("application/json");

    public string Type => ProviderTypes.Gemini;

    public async Task<AttemptResult> SendAsync(Deployment deployment, ParsedRequest request, AttemptCancellation cancellation, TimeSpan streamIdleTimeout)
    {
        var body = new ArrayBufferWriter<byte>(request.Body.Length + 256);
        EmbeddingShape embedding = default;
        string method;
        try
        {
            string? error;
            if (request.Kind == RequestKind.Embedding)
            {
                error = GeminiEmbeddings.WriteRequest(request.Body, deployment.UpstreamModel, body, out embedding);
                method = embedding.Method;
            }
            else
            {
                error = GeminiRequestTranslator.Write(request.Body, body);
                method = request.Stream ? "streamGenerateContent?alt=sse" : "generateContent";
            }

            if (error is not null)
            {
                // The request cannot be said in Gemini's terms: the same would happen at any Gemini deployment.
                return AttemptResult.Fail(new UpstreamFailure(FailureKind.BadRequest, BadRequestStatus, error));
            }
        }
        catch (JsonException)
        {
            return AttemptResult.Fail(new UpstreamFailure(FailureKind.BadRequest, BadRequestStatus, "The request body could not be translated for this provider."));
        }
        catch (InvalidOperationException) when (LoneSurrogates.InJsonEscapes(request.Body.Span))
        {
            // A string the translation must read is not valid UTF-16: the client's error, not a fault of ours.
            return AttemptResult.Fail(new UpstreamFailure(FailureKind.BadRequest, BadRequestStatus, LoneSurrogates.Message));
        }

        HttpResponseMessage? response = null;
        try
        {
            using var message = new HttpRequestMessage(HttpMethod.Post, GeminiJson.MethodUri(deployment, method))
            {
                Content = new ReadOnlyMemoryContent(body.WrittenMemory) { Headers = { ContentType = JsonContentType } },
                Version = HttpVersion.Version11,
                VersionPolicy = HttpVersionPolicy.RequestVersionOrHigher,
            };

            // The provider's key, in a header (never in the URL, where proxies and logs would keep it).
            if (deployment.Provider.ApiKey is { } key)
            {
                message.Headers.TryAddWithoutValidation("x-goog-api-key", key);
            }

            if (request.Stream)
            {
                message.Headers.TryAddWithoutValidation("Accept", "text/event-stream");
            }

            response = await deployment.Provider.Http.SendAsync(message, cancellation.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                return AttemptResult.Fail(await GeminiErrors.ReadFailureAsync(response, cancellation.Token).ConfigureAwait(false));
            }

            var created = time.GetUtcNow().ToUnixTimeSeconds();
            if (request.Stream && request.Kind == RequestKind.ChatCompletion)
            {
                var stream = new GeminiStreamingResponse(response, request, deployment.UpstreamModel, created, cancellation, streamIdleTimeout);
                response = null; // owned by the stream now
                if (await stream.StartAsync().ConfigureAwait(false) is { } failure)
                {
                    await stream.DisposeAsync().ConfigureAwait(false);
                    return AttemptResult.Fail(failure);
                }

                return AttemptResult.Ok(stream);
            }

            var bytes = await UpstreamBodies.ReadAnswerAsync(response.Content, cancellation.Token).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            return request.Kind == RequestKind.Embedding
                ? GeminiEmbeddings.ReadResponse(request, status, bytes, embedding, deployment.UpstreamModel)
                : Translate(request, deployment, status, bytes, created);
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

    /// <summary>A whole <c>GenerateContentResponse</c> → an OpenAI <c>chat.completion</c> and its usage.</summary>
    private static AttemptResult Translate(ParsedRequest request, Deployment deployment, int status, byte[] body, long created)
    {
        GeminiResponse response;
        try
        {
            response = GeminiResponseReader.Read(body);
        }
        catch (JsonException)
        {
            return AttemptResult.Fail(new(FailureKind.InvalidResponse, status, "The provider returned a response that is not valid JSON."));
        }

        if (response.Error is not null || (response.Candidates.Count == 0 && response.BlockReason is null))
        {
            return AttemptResult.Fail(new(FailureKind.InvalidResponse, status, "The provider returned a response without the expected fields."));
        }

        MeteredUsage usage;
        if (response.Usage is { } reported)
        {
            usage = reported.ToMetered();
        }
        else
        {
            var text = new ArrayBufferWriter<byte>(256);
            response.AppendOutputText(text);
            usage = TokenEstimator.Estimate(request.Body.Span, text.WrittenSpan);
        }

        var meta = CompletionMeta.Of(response, created, deployment.UpstreamModel);
        return AttemptResult.Ok(new BufferedResponse(status, GeminiResponseTranslator.ToCompletion(response, meta, request.Choices, usage.Buckets), usage));
    }
}
