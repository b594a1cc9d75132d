using System.Net.ServerSentEvents;
using System.Text.Json;
using Tollgate.Metering;
using Tollgate.Providers.OpenAI;
using Tollgate.Requests;

namespace Tollgate.Providers.Gemini;

/// <summary>
/// Reads <c>streamGenerateContent?alt=sse</c> event by event with <see cref="SseParser"/> and hands out the
/// OpenAI chunks <see cref="GeminiStreamTranslator"/> makes of them, one at a time. Gemini sends no
/// <c>[DONE]</c>: a stream is whole when it ends after every choice has had a finish reason; an end before
/// that is a break.
/// </summary>
internal sealed class GeminiStreamingResponse : StreamingResponse
{
    private readonly HttpResponseMessage _response;
    private readonly ParsedRequest _request;
    private readonly AttemptCancellation _cancellation;
    private readonly TimeSpan _idleTimeout;
    private readonly GeminiStreamTranslator _translator;

    // One Gemini event may make several OpenAI chunks (role, content, tool calls, finish).
    private readonly Queue<StreamChunk> _pending = new();
    private IAsyncEnumerator<SseItem<byte[]>>? _events;
    private StreamChunk _first;
    private bool _started;
    private bool _upstreamEnded;

    public GeminiStreamingResponse(
        HttpResponseMessage response, ParsedRequest request, string upstreamModel, long created, AttemptCancellation cancellation, TimeSpan idleTimeout)
    {
        _response = response;
        _request = request;
        _cancellation = cancellation;
        _idleTimeout = idleTimeout;
        _translator = new GeminiStreamTranslator(created, upstreamModel, request.Choices);
    }

    public override StreamChunk First => _first;

    /// <summary>The last <c>usageMetadata</c> received, else an estimate of the request and of what was relayed.</summary>
    public override MeteredUsage Usage => _translator.Usage?.ToMetered() ?? TokenEstimator.Estimate(_request.Body.Span, _translator.RelayedText);

    /// <summary>Reads up to the first chunk. Returns a failure (so the dispatcher may fail over) when the stream ends or breaks before it.</summary>
    public async Task<UpstreamFailure?> StartAsync()
    {
        try
        {
            var body = await _response.Content.ReadAsStreamAsync(_cancellation.Token).ConfigureAwait(false);
            _events = SseParser.Create(new EventSizeGuardStream(body), static (_, data) => data.ToArray()).EnumerateAsync(_cancellation.Token).GetAsyncEnumerator(_cancellation.Token);
            var first = await NextAsync().ConfigureAwait(false);
            if (first is null)
            {
                return new UpstreamFailure(FailureKind.InvalidResponse, (int)_response.StatusCode, "The provider's stream ended before its first event.");
            }

            _first = first.Value;
            _started = true;
            return null;
        }
        catch (UpstreamStreamException ex)
        {
            // Nothing has gone to the client yet: a broken start is an invalid response, and another candidate may be tried.
            return ex.Failure with { Kind = ex.Failure.Kind == FailureKind.StreamBroken ? FailureKind.InvalidResponse : ex.Failure.Kind };
        }
        catch (Exception ex) when (OpenAICompatibleAdapter.Classify(ex, _cancellation) is { } failure)
        {
            return failure;
        }
    }

    public override void RestartIdleTimer() => _cancellation.Arm(_idleTimeout);

    public override async ValueTask<StreamChunk?> ReadAsync()
    {
        RestartIdleTimer();
        return await NextAsync().ConfigureAwait(false);
    }

    private async ValueTask<StreamChunk?> NextAsync()
    {
        while (true)
        {
            if (_pending.TryDequeue(out var chunk))
            {
                return chunk;
            }

            if (_upstreamEnded)
            {
                return null;
            }

            bool moved;
            try
            {
                moved = await _events!.MoveNextAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (OpenAICompatibleAdapter.Classify(ex, _cancellation) is { } failure)
            {
                throw new UpstreamStreamException(
                    failure.Kind == FailureKind.InvalidResponse ? failure with { Kind = FailureKind.StreamBroken, Message = "The provider's stream was cut." } : failure,
                    ex);
            }

            if (!moved)
            {
                _upstreamEnded = true;
                if (!_translator.Complete)
                {
                    throw new UpstreamStreamException(new UpstreamFailure(FailureKind.StreamBroken, null, "The provider's stream ended before it was complete."));
                }

                _pending.Enqueue(_translator.UsageChunk(Usage.Buckets));
                continue;
            }

            var data = _events.Current.Data;
            if (data.Length > 0)
            {
                _translator.Translate(Parse(data), _pending);
            }
        }
    }

    private GeminiResponse Parse(byte[] data)
    {
        GeminiResponse response;
        try
        {
            response = GeminiResponseReader.Read(data);
        }
        catch (JsonException ex)
        {
            throw new UpstreamStreamException(new UpstreamFailure(FailureKind.StreamBroken, null, "The provider sent an event that is not valid JSON."), ex);
        }

        if (response.Error is { } error)
        {
            var message = GeminiErrors.Describe(error.Code ?? 500, error);
            throw new UpstreamStreamException(_started
                ? new UpstreamFailure(FailureKind.StreamBroken, error.Code, "The provider sent an error in the middle of the stream: " + message)
                : UpstreamFailure.FromStatus(error.Code ?? 500, message, null));
        }

        return response;
    }

    public override async ValueTask DisposeAsync()
    {
        if (_events is not null)
        {
            try
            {
                await _events.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException or OperationCanceledException)
            {
                // Disposing a broken stream may rethrow its failure; it has been reported already.
            }
        }

        _translator.Dispose();
        _response.Dispose();
    }
}
