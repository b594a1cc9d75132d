namespace Tollgate.Providers;

/// <summary>What went wrong with one upstream attempt, as a value (the dispatcher decides what to do with it).</summary>
public enum FailureKind
{
    /// <summary>The connection could not be made (refused, DNS, TLS).</summary>
    Connect,

    /// <summary>No first byte (or, for non-streaming, no complete body) within the attempt timeout.</summary>
    Timeout,

    /// <summary>429: the deployment cools down for Retry-After.</summary>
    RateLimited,

    /// <summary>5xx or 408.</summary>
    ServerError,

    /// <summary>401/403/404 from the upstream: the provider's key or model is wrong; another provider may work.</summary>
    ProviderRejected,

    /// <summary>400/413/422: the request itself is wrong; trying elsewhere would fail the same way.</summary>
    BadRequest,

    /// <summary>A 2xx whose body is not a valid response (cut, garbage, an error object).</summary>
    InvalidResponse,

    /// <summary>A stream that broke after it started.</summary>
    StreamBroken,

    /// <summary>The client went away. Never counts against the provider.</summary>
    ClientAborted,
}

/// <summary>An attempt's failure.</summary>
/// <param name="Kind">The class of failure.</param>
/// <param name="Status">The upstream HTTP status, when there was one.</param>
/// <param name="Message">A description safe to show the client: no addresses, no keys.</param>
/// <param name="RetryAfter">A 429's Retry-After.</param>
public sealed record UpstreamFailure(FailureKind Kind, int? Status, string Message, TimeSpan? RetryAfter = null)
{
    /// <summary>Whether the next candidate should be tried.</summary>
    public bool ShouldFailOver => Kind is not (FailureKind.BadRequest or FailureKind.ClientAborted);

    /// <summary>Whether this says something about the provider's health.</summary>
    public bool CountsAgainstProvider => Kind is not (FailureKind.BadRequest or FailureKind.ClientAborted);

    /// <summary>A short token for headers and logs, e.g. <c>upstream_503</c>, <c>connect</c>, <c>timeout</c>.</summary>
    public string Code => Kind switch
    {
        FailureKind.Connect => "connect_failed",
        FailureKind.Timeout => "timeout",
        FailureKind.RateLimited => "upstream_429",
        FailureKind.ServerError or FailureKind.ProviderRejected or FailureKind.BadRequest => $"upstream_{Status}",
        FailureKind.InvalidResponse => "invalid_response",
        FailureKind.StreamBroken => "stream_broken",
        FailureKind.ClientAborted => "client_aborted",
        _ => "failed",
    };

    public static UpstreamFailure FromStatus(int status, string message, TimeSpan? retryAfter) => status switch
    {
        429 => new(FailureKind.RateLimited, status, message, retryAfter),
        400 or 413 or 422 => new(FailureKind.BadRequest, status, message),
        401 or 403 or 404 => new(FailureKind.ProviderRejected, status, message),
        _ => new(FailureKind.ServerError, status, message),
    };
}
