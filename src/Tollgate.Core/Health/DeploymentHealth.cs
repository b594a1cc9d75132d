namespace Tollgate.Health;

public enum CircuitState
{
    Closed,
    Open,
    HalfOpen,
}

/// <summary>Why a deployment cannot take a request right now.</summary>
public enum Availability
{
    Available,
    CircuitOpen,
    CoolingDown,
}

/// <summary>Thresholds shared by every deployment's breaker.</summary>
/// <param name="FailureThreshold">Consecutive upstream failures that open the circuit.</param>
/// <param name="BreakDuration">How long the circuit stays open before one half-open probe.</param>
/// <param name="DefaultCooldown">Cooldown after a 429 that carries no Retry-After.</param>
/// <param name="MaxCooldown">Upper bound on a Retry-After cooldown, so a bad header cannot park a deployment for days.</param>
public sealed record HealthPolicy(int FailureThreshold, TimeSpan BreakDuration, TimeSpan DefaultCooldown, TimeSpan MaxCooldown)
{
    public static HealthPolicy Default { get; } = new(3, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(5));
}

/// <summary>
/// Live health of one deployment: a circuit breaker with half-open probes, a Retry-After cooldown,
/// latency and error-rate statistics. Only upstream-side failures are recorded here: a client that
/// goes away never counts against a provider.
/// </summary>
/// <remarks>
/// State changes take a lock; it is held for a handful of field updates and is uncontended in
/// practice (one deployment, one short critical section per attempt), which is cheaper and simpler
/// to reason about than a lock-free state machine with the same guarantees (exactly one probe).
/// </remarks>
public sealed class DeploymentHealth
{
    // Weight of the newest sample in the error-rate average (about the last 20 outcomes).
    private const double EwmaAlpha = 0.1;

    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private readonly HealthPolicy _policy;

    // Streams: time to the first event (the first token). Buffered answers: time to the whole answer. Kept
    // apart because they measure different things; mixing them would make both useless for budgets and hedging.
    private readonly LatencyWindow _firstToken = new();
    private readonly LatencyWindow _response = new();

    // Generation speed after the first token (streams) or for the whole answer (buffered: conservative).
    private readonly LatencyWindow _msPerOutputToken = new();
    private readonly LatencyWindow _outputTokens = new();

    private CircuitState _state;
    private int _consecutiveFailures;
    private DateTimeOffset _openUntil;
    private bool _probeInFlight;
    private DateTimeOffset _cooldownUntil;
    private double _errorRate;
    private long _successes;
    private long _failures;
    private string? _lastError;
    private DateTimeOffset? _lastErrorAt;

    public DeploymentHealth(TimeProvider time, HealthPolicy policy)
    {
        _time = time;
        _policy = policy;
    }

    /// <summary>Whether the router may plan a request on this deployment now (a half-open circuit counts as available).</summary>
    public Availability Check()
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            if (_cooldownUntil > now)
            {
                return Availability.CoolingDown;
            }

            return _state switch
            {
                CircuitState.Open when now < _openUntil => Availability.CircuitOpen,
                CircuitState.HalfOpen when _probeInFlight => Availability.CircuitOpen,
                _ => Availability.Available,
            };
        }
    }

    /// <summary>
    /// Claims the right to send one attempt. When the break duration of an open circuit has passed,
    /// exactly one caller gets through as the half-open probe; everyone else is refused until it reports.
    /// </summary>
    public bool TryBeginAttempt()
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            if (_cooldownUntil > now)
            {
                return false;
            }

            switch (_state)
            {
                case CircuitState.Closed:
                    return true;
                case CircuitState.Open when now >= _openUntil:
                    _state = CircuitState.HalfOpen;
                    _probeInFlight = true;
                    return true;
                case CircuitState.HalfOpen when !_probeInFlight:
                    _probeInFlight = true;
                    return true;
                default:
                    return false;
            }
        }
    }

    /// <summary>
    /// An attempt that answered: <paramref name="latency"/> is the time to the first event of a stream, or to
    /// the whole body of a buffered answer.
    /// </summary>
    public void RecordSuccess(TimeSpan latency, bool streamed = false)
    {
        var ms = latency.TotalMilliseconds;
        lock (_lock)
        {
            _successes++;
            _consecutiveFailures = 0;
            _state = CircuitState.Closed;
            _probeInFlight = false;
            _errorRate *= 1 - EwmaAlpha;
            (streamed ? _firstToken : _response).Add(ms);
        }
    }

    /// <summary>
    /// Generation speed of an answer that finished: for a stream, the time after its first token per output
    /// token; for a buffered answer, its whole time per output token (it has no visible first token).
    /// </summary>
    public void RecordCompletion(TimeSpan total, TimeSpan firstToken, long outputTokens, bool streamed)
    {
        if (outputTokens <= 0)
        {
            return;
        }

        var generatingMs = streamed ? Math.Max(0, (total - firstToken).TotalMilliseconds) : total.TotalMilliseconds;
        lock (_lock)
        {
            _msPerOutputToken.Add(generatingMs / outputTokens);
            _outputTokens.Add(outputTokens);
        }
    }

    /// <summary>What the router needs to predict this deployment's latency for one request.</summary>
    public LatencyEstimate Latency()
    {
        lock (_lock)
        {
            return new LatencyEstimate(
                _firstToken.Ewma,
                _firstToken.Count,
                _firstToken.Percentile(95),
                _response.Ewma,
                _response.Count,
                _response.Percentile(95),
                _msPerOutputToken.Ewma,
                _outputTokens.Ewma);
        }
    }

    /// <summary>
    /// Records an upstream failure. A <paramref name="cooldown"/> (429) parks the deployment without tripping the
    /// breaker; the cooldown it set is returned (for the other instances), null for any other failure.
    /// </summary>
    public TimeSpan? RecordFailure(string error, bool rateLimited, TimeSpan? cooldown)
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            _failures++;
            _errorRate += EwmaAlpha * (1 - _errorRate);
            _lastError = error;
            _lastErrorAt = now;
            if (rateLimited)
            {
                var wait = cooldown ?? _policy.DefaultCooldown;
                wait = wait > _policy.MaxCooldown ? _policy.MaxCooldown : wait;
                _cooldownUntil = now + wait;
                _probeInFlight = false;
                return wait;
            }

            _consecutiveFailures++;
            if (_state == CircuitState.HalfOpen || _consecutiveFailures >= _policy.FailureThreshold)
            {
                _state = CircuitState.Open;
                _openUntil = now + _policy.BreakDuration;
            }

            _probeInFlight = false;
            return null;
        }
    }

    /// <summary>
    /// Parks the deployment for <paramref name="remaining"/> because another instance met its rate limit (capped like
    /// a Retry-After; a longer cooldown already running is kept).
    /// </summary>
    public void CoolDown(TimeSpan remaining)
    {
        var until = _time.GetUtcNow() + (remaining > _policy.MaxCooldown ? _policy.MaxCooldown : remaining);
        lock (_lock)
        {
            if (until > _cooldownUntil)
            {
                _cooldownUntil = until;
            }
        }
    }

    /// <summary>An attempt that ended for a reason that says nothing about the provider (client abort, 4xx from bad input).</summary>
    public void RecordNeutral()
    {
        lock (_lock)
        {
            _probeInFlight = false;
        }
    }

    /// <summary>Forgets circuit and cooldown state (operator action after an incident). Statistics are kept.</summary>
    public void Reset()
    {
        lock (_lock)
        {
            _state = CircuitState.Closed;
            _consecutiveFailures = 0;
            _probeInFlight = false;
            _cooldownUntil = default;
            _openUntil = default;
        }
    }

    public HealthSnapshot Snapshot()
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            var state = _state == CircuitState.Open && now >= _openUntil ? CircuitState.HalfOpen : _state;

            // The headline latency is what a client waits for its first token: a stream's first event when
            // streams were served, else the whole buffered answer.
            var headline = _firstToken.Count > 0 ? _firstToken : _response;
            return new HealthSnapshot(
                state,
                _cooldownUntil > now ? _cooldownUntil : null,
                headline.Percentile(50),
                headline.Ewma,
                _errorRate,
                _successes,
                _failures,
                _lastError,
                _lastErrorAt)
            {
                FirstTokenP50Ms = _firstToken.Percentile(50),
                FirstTokenP95Ms = _firstToken.Percentile(95),
                FirstTokenEwmaMs = _firstToken.Ewma,
                ResponseP50Ms = _response.Percentile(50),
                ResponseP95Ms = _response.Percentile(95),
                MsPerOutputToken = _msPerOutputToken.Ewma,
            };
        }
    }
}

/// <summary>
/// A deployment's live latency, for latency budgets and hedging. Null values mean not measured yet.
/// </summary>
/// <param name="FirstTokenEwmaMs">Decaying average time to a stream's first event.</param>
/// <param name="FirstTokenSamples">How many stream first-event samples the percentile rests on.</param>
/// <param name="FirstTokenP95Ms">95th percentile of the recent stream first-event times.</param>
/// <param name="ResponseEwmaMs">Decaying average time to a whole buffered answer.</param>
/// <param name="ResponseSamples">How many buffered-answer samples the percentile rests on.</param>
/// <param name="ResponseP95Ms">95th percentile of the recent buffered-answer times.</param>
/// <param name="MsPerOutputToken">Decaying average generation time per output token.</param>
/// <param name="AverageOutputTokens">Decaying average output tokens per answer.</param>
public readonly record struct LatencyEstimate(
    double? FirstTokenEwmaMs,
    int FirstTokenSamples,
    double? FirstTokenP95Ms,
    double? ResponseEwmaMs,
    int ResponseSamples,
    double? ResponseP95Ms,
    double? MsPerOutputToken,
    double? AverageOutputTokens)
{
    /// <summary>Output tokens assumed when neither the request nor past answers say (a short paragraph).</summary>
    public const int DefaultOutputTokens = 256;

    /// <summary>
    /// Expected milliseconds until the client has what it waits for: a stream's first token, or a buffered
    /// answer with <paramref name="maxOutputTokens"/> (else the usual answer length) of output. Null when the
    /// deployment has not been measured in the way this request needs.
    /// </summary>
    public double? Expected(bool stream, int? maxOutputTokens)
    {
        if (stream)
        {
            return FirstTokenEwmaMs;
        }

        var output = maxOutputTokens ?? AverageOutputTokens ?? DefaultOutputTokens;
        if (ResponseEwmaMs is { } response && AverageOutputTokens is { } usual && MsPerOutputToken is { } perToken)
        {
            // Scale the measured answer time by how much longer (or shorter) this answer may be.
            return Math.Max(0, response + ((output - usual) * perToken));
        }

        if (FirstTokenEwmaMs is { } first && MsPerOutputToken is { } rate)
        {
            return first + (output * rate);
        }

        return ResponseEwmaMs;
    }
}

/// <summary>A consistent copy of a deployment's health for <c>/providers</c>.</summary>
/// <param name="LatencyP50Ms">Median time to the first token (streams) or, when no stream was served, to the whole answer.</param>
public sealed record HealthSnapshot(
    CircuitState Circuit,
    DateTimeOffset? CoolingDownUntil,
    double? LatencyP50Ms,
    double? LatencyEwmaMs,
    double ErrorRate,
    long Successes,
    long Failures,
    string? LastError,
    DateTimeOffset? LastErrorAt)
{
    public double? FirstTokenP50Ms { get; init; }

    public double? FirstTokenP95Ms { get; init; }

    public double? FirstTokenEwmaMs { get; init; }

    public double? ResponseP50Ms { get; init; }

    public double? ResponseP95Ms { get; init; }

    public double? MsPerOutputToken { get; init; }
}
