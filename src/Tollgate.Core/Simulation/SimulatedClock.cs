namespace Tollgate.Simulation;

/// <summary>
/// Simulated time for the routing simulation: it stands still until the simulator moves it, so breaker
/// durations, Retry-After cooldowns and latency samples play out in simulated time at whatever speed the
/// machine runs. It has no timers: nothing in the simulation waits, every event happens at a request's arrival.
/// </summary>
/// <remarks>
/// Microsoft.Extensions.TimeProvider.Testing has the same idea, but it is a test-only package here; this is the
/// few lines the simulator needs.
/// </remarks>
internal sealed class SimulatedClock : TimeProvider
{
    /// <summary>A fixed start, so the same seed gives the same report on any day.</summary>
    public static readonly DateTimeOffset DefaultStart = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly DateTimeOffset _start;
    private DateTimeOffset _now;

    public SimulatedClock(DateTimeOffset start)
    {
        _start = start;
        _now = start;
    }

    /// <summary>Simulated time since the start.</summary>
    public TimeSpan Elapsed => _now - _start;

    public override DateTimeOffset GetUtcNow() => _now;

    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => (_now - _start).Ticks;

    /// <summary>Not supported: a timer would fire in wall time, which has no meaning inside a simulation.</summary>
    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        throw new NotSupportedException("The simulated clock has no timers; the simulator advances time itself.");

    public void Advance(TimeSpan by)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(by, TimeSpan.Zero);
        _now += by;
    }
}
