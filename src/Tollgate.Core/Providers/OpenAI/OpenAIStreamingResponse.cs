using System.Buffers;
using System.Net.ServerSentEvents;
using System.Text.Json;
using Tollgate.Metering;
using Tollgate.Requests;

namespace Tollgate.Providers.OpenAI;

/// <summary>
/// Reads an OpenAI SSE stream event by event with <see cref="SseParser"/>, validating each chunk and
/// noting usage. Chunks are passed on as received; only the trailing usage chunk is flagged so the
/// relay can hide it from clients that did not ask for it.
/// </summary>
internal sealed class OpenAIStreamingResponse : StreamingResponse
{
    private static ReadOnlySpan<byte> Done => "[DONE]"u8;

    private readonly HttpResponseMessage _response;
    private readonly ParsedRequest _request;
    private readonly AttemptCancellation _cancellation;
    private readonly TimeSpan _idleTimeout;
    private IAsyncEnumerator<SseItem<ReadOnlyMemory<byte>>>? _events;
    private StreamChunk _first;

    // Every event after the first is copied here, over the one before: the relay has written an event out
    // before it asks for the next (see StreamingResponse.ReadAsync), so a stream needs no array per event.
    private byte[] _event = new byte[1024];
    private OpenAIWireUsage? _reported;

    // The text relayed so far, unescaped: what an estimate counts when the stream carries no usage or is cut.
    private readonly ArrayBufferWriter<byte> _text = new(256);
    private bool _finished;
    private bool _sawFinishReason;

    public OpenAIStreamingResponse(HttpResponseMessage response, ParsedRequest request, AttemptCancellation cancellation, TimeSpan idleTimeout)
    {
        _response = response;
        _request = request;
        _cancellation = cancellation;
        _idleTimeout = idleTimeout;
    }

    public override StreamChunk First => _first;

    public override MeteredUsage Usage => _reported?.ToMetered() ?? TokenEstimator.Estimate(_request.Body.Span, _text.WrittenSpan);

    /// <summary>Reads up to the first chunk. Returns a failure when the stream ends or breaks before it.</summary>
    public async Task<UpstreamFailure?> StartAsync()
    {
        try
        {
            var body = await _response.Content.ReadAsStreamAsync(_cancellation.Token).ConfigureAwait(false);
            _events = SseParser.Create(new EventSizeGuardStream(body), CopyEvent).EnumerateAsync(_cancellation.Token).GetAsyncEnumerator(_cancellation.Token);
            var first = await NextAsync().ConfigureAwait(false);
            if (first is null)
            {
                return new UpstreamFailure(FailureKind.InvalidResponse, (int)_response.StatusCode, "The provider's stream ended before its first event.");
            }

            // First stays valid for the whole stream (StreamingResponse's contract), so it keeps its own copy.
            _first = first.Value with { Data = first.Value.Data.ToArray() };
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
        return await NextAsync().ConfigureAwait(false);
    }

    private async ValueTask<StreamChunk?> NextAsync()
    {
        if (_finished)
        {
            return null;
        }

        try
        {
            while (await _events!.MoveNextAsync().ConfigureAwait(false))
            {
                var data = _events.Current.Data;
                if (data.Span.SequenceEqual(Done))
                {
                    _finished = true;
                    return null;
                }

                if (data.Length == 0)
                {
                    continue;
                }

                return Inspect(data);
            }
        }
        catch (Exception ex) when (OpenAICompatibleAdapter.Classify(ex, _cancellation) is { } failure)
        {
            throw new UpstreamStreamException(failure.Kind == FailureKind.InvalidResponse ? failure with { Kind = FailureKind.StreamBroken, Message = "The provider's stream was cut." } : failure, ex);
        }

        _finished = true;
        if (_sawFinishReason)
        {
            // Some OpenAI-compatible servers end a complete stream without [DONE]; the finish reason says it is whole.
            return null;
        }

        throw new UpstreamStreamException(new UpstreamFailure(FailureKind.StreamBroken, null, "The provider's stream ended before it was complete."));
    }

    private ReadOnlyMemory<byte> CopyEvent(string eventType, ReadOnlySpan<byte> data)
    {
        if (data.Length > _event.Length)
        {
            _event = new byte[Math.Max(data.Length, _event.Length * 2)];
        }

        data.CopyTo(_event);
        return _event.AsMemory(0, data.Length);
    }

    private StreamChunk Inspect(ReadOnlyMemory<byte> data)
    {
        OpenAIResponseScanner.ResponseFacts facts;
        try
        {
            facts = OpenAIResponseScanner.Scan(data.Span, _text);
        }
        catch (JsonException ex)
        {
            throw new UpstreamStreamException(new UpstreamFailure(FailureKind.StreamBroken, null, "The provider sent an event that is not valid JSON."), ex);
        }

        if (!facts.IsObject || facts.HasError)
        {
            throw new UpstreamStreamException(new UpstreamFailure(FailureKind.StreamBroken, null, "The provider sent an error in the middle of the stream."));
        }

        _sawFinishReason |= facts.HasFinishReason;
        if (facts.Usage is { } usage)
        {
            _reported = usage;
        }

        return new StreamChunk(data, UsageOnly: facts.Usage is not null && facts.ChoicesEmpty);
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
    }
}
