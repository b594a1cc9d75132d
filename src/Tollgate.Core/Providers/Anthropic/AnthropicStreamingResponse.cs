using System.Net.ServerSentEvents;
using Tollgate.Metering;
using Tollgate.Providers.OpenAI;
using Tollgate.Requests;

namespace Tollgate.Providers.Anthropic;

/// <summary>
/// Reads an Anthropic SSE stream with <see cref="SseParser"/> and hands out OpenAI chunks one at a time.
/// <see cref="StartAsync"/> reads until the first chunk that carries content (or the whole answer), so an
/// <c>overloaded_error</c> event right after <c>message_start</c> is still a failure the dispatcher can fail
/// over from; the role chunk alone shows the client nothing worth committing to.
/// </summary>
internal sealed class AnthropicStreamingResponse : StreamingResponse
{
    private readonly HttpResponseMessage _response;
    private readonly ParsedRequest _request;
    private readonly AttemptCancellation _cancellation;
    private readonly TimeSpan _idleTimeout;
    private readonly AnthropicStreamTranslator _translator;
    private readonly Queue<StreamChunk> _pending = new();
    private IAsyncEnumerator<SseItem<byte[]>>? _events;
    private StreamChunk _first;

    public AnthropicStreamingResponse(
        HttpResponseMessage response, ParsedRequest request, AttemptCancellation cancellation, TimeSpan idleTimeout, AnthropicStreamTranslator translator)
    {
        _response = response;
        _request = request;
        _cancellation = cancellation;
        _idleTimeout = idleTimeout;
        _translator = translator;
    }

    public override StreamChunk First => _first;

    /// <summary>
    /// Reported once <c>message_delta</c> (the final, cumulative report) or <c>message_stop</c> has arrived.
    /// A stream cut before that keeps the input side <c>message_start</c> reported, counts the output relayed
    /// so far with the tokenizer, and is marked estimated; with no report at all, both sides are estimated.
    /// </summary>
    public override MeteredUsage Usage
    {
        get
        {
            if (_translator.DeltaUsage is not null || (_translator.Completed && _translator.StartUsage is not null))
            {
                return new MeteredUsage(_translator.CombinedUsage().ToBuckets(), UsageSource.Reported);
            }

            if (_translator.StartUsage is { } start)
            {
                var buckets = start.ToBuckets() with { OutputText = TokenEstimator.CountUtf8(_translator.RelayedText.WrittenSpan) };
                return new MeteredUsage(buckets, UsageSource.Estimated);
            }

            return TokenEstimator.Estimate(_request.Body.Span, _translator.RelayedText.WrittenSpan);
        }
    }

    /// <summary>Reads up to the first chunk with content. Returns a failure when the stream errs, breaks or ends before it.</summary>
    public async Task<UpstreamFailure?> StartAsync()
    {
        try
        {
            var body = await _response.Content.ReadAsStreamAsync(_cancellation.Token).ConfigureAwait(false);
            _events = SseParser.Create(new EventSizeGuardStream(body), static (_, data) => data.ToArray()).EnumerateAsync(_cancellation.Token).GetAsyncEnumerator(_cancellation.Token);
            while (!_translator.HasContent)
            {
                if (!await TranslateNextAsync().ConfigureAwait(false))
                {
                    return new UpstreamFailure(FailureKind.InvalidResponse, (int)_response.StatusCode, "The provider's stream ended before its first content.");
                }

                if (_translator.Error is { } error)
                {
                    // Nothing has reached the client yet: the error is an ordinary failure, classified by its type.
                    var status = AnthropicErrors.StatusOf(error.Type);
                    return UpstreamFailure.FromStatus(status, AnthropicErrors.DescribeEvent(error.Type, error.Message), null);
                }
            }

            _first = _pending.Dequeue();
            return null;
        }
        catch (UpstreamStreamException ex)
        {
            return ex.Failure with { Kind = ex.Failure.Kind == FailureKind.StreamBroken ? FailureKind.InvalidResponse : ex.Failure.Kind };
        }
    }

    public override void RestartIdleTimer() => _cancellation.Arm(_idleTimeout);

    public override async ValueTask<StreamChunk?> ReadAsync()
    {
        RestartIdleTimer();
        while (_pending.Count == 0)
        {
            if (_translator.Completed)
            {
                return null;
            }

            if (!await TranslateNextAsync().ConfigureAwait(false))
            {
                throw new UpstreamStreamException(new UpstreamFailure(FailureKind.StreamBroken, null, "The provider's stream ended before message_stop."));
            }

            if (_translator.Error is { } error)
            {
                throw new UpstreamStreamException(new UpstreamFailure(FailureKind.StreamBroken, null, AnthropicErrors.DescribeEvent(error.Type, error.Message)));
            }
        }

        return _pending.Dequeue();
    }

    /// <summary>Reads and translates one event; false when the body ended. Transport failures become <see cref="UpstreamStreamException"/>.</summary>
    private async ValueTask<bool> TranslateNextAsync()
    {
        try
        {
            while (await _events!.MoveNextAsync().ConfigureAwait(false))
            {
                var data = _events.Current.Data;
                if (data.Length == 0)
                {
                    continue;
                }

                _translator.Translate(data, _pending);
                return true;
            }
        }
        catch (Exception ex) when (OpenAICompatibleAdapter.Classify(ex, _cancellation) is { } failure)
        {
            throw new UpstreamStreamException(
                failure.Kind == FailureKind.InvalidResponse ? failure with { Kind = FailureKind.StreamBroken, Message = "The provider's stream was cut." } : failure, ex);
        }

        return false;
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

        _response.Dispose();
        _translator.Dispose();
    }
}
