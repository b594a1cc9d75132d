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
    private const int LatencySamples = 128;

    // Weight of the newest sample in the error-rate and latency averages (about the last 20 outcomes).
    private const double EwmaAlpha = 0.1;

    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private readonly HealthPolicy _policy;
    private readonly double[] _latencies = new double[LatencySamples];

    private CircuitState _state;
    private int _consecutiveFailures;
    private DateTimeOffset _openUntil;
    private bool _probeInFlight;
    private DateTimeOffset _cooldownUntil;
    private int _latencyCount;
    private int _latencyNext;
    private double _latencyEwmaMs;
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

    public void RecordSuccess(TimeSpan latency)
    {
        var ms = latency.TotalMilliseconds;
        lock (_lock)
        {
            _successes++;
            _consecutiveFailures = 0;
            _state = CircuitState.Closed;
            _probeInFlight = false;
            _errorRate *= 1 - EwmaAlpha;
            _latencyEwmaMs = _latencyCount == 0 ? ms : _latencyEwmaMs + (EwmaAlpha * (ms - _latencyEwmaMs));
            _latencies[_latencyNext] = ms;
            _latencyNext = (_latencyNext + 1) % LatencySamples;
            _latencyCount = Math.Min(_latencyCount + 1, LatencySamples);
        }
    }

    /// <summary>Records an upstream failure. A <paramref name="cooldown"/> (429) parks the deployment without tripping the breaker.</summary>
    public void RecordFailure(string error, bool rateLimited, TimeSpan? cooldown)
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
                _cooldownUntil = now + (wait > _policy.MaxCooldown ? _policy.MaxCooldown : wait);
                _probeInFlight = false;
                return;
            }

            _consecutiveFailures++;
            if (_state == CircuitState.HalfOpen || _consecutiveFailures >= _policy.FailureThreshold)
            {
                _state = CircuitState.Open;
                _openUntil = now + _policy.BreakDuration;
            }

            _probeInFlight = false;
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
            double? p50 = null;
            if (_latencyCount > 0)
            {
                var copy = _latencies.AsSpan(0, _latencyCount).ToArray();
                Array.Sort(copy);
                p50 = copy[copy.Length / 2];
            }

            return new HealthSnapshot(
                state,
                _cooldownUntil > now ? _cooldownUntil : null,
                p50,
                _latencyCount > 0 ? _latencyEwmaMs : null,
                _errorRate,
                _successes,
                _failures,
                _lastError,
                _lastErrorAt);
        }
    }
}

/// <summary>A consistent copy of a deployment's health for <c>/providers</c>.</summary>
public sealed record HealthSnapshot(
    CircuitState Circuit,
    DateTimeOffset? CoolingDownUntil,
    double? LatencyP50Ms,
    double? LatencyEwmaMs,
    double ErrorRate,
    long Successes,
    long Failures,
    string? LastError,
    DateTimeOffset? LastErrorAt);
