using Microsoft.Extensions.Time.Testing;
using Tollgate.Health;

namespace Tollgate.Tests.Health;

public sealed class DeploymentHealthTests
{
    private static readonly HealthPolicy Policy = new(3, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(5));

    [Fact]
    public void RecordFailure_ThresholdReached_OpensTheCircuit()
    {
        var time = new FakeTimeProvider();
        var health = new DeploymentHealth(time, Policy);

        health.RecordFailure("boom", rateLimited: false, cooldown: null);
        health.RecordFailure("boom", rateLimited: false, cooldown: null);
        Assert.Equal(Availability.Available, health.Check());
        health.RecordFailure("boom", rateLimited: false, cooldown: null);

        Assert.Equal(Availability.CircuitOpen, health.Check());
        Assert.False(health.TryBeginAttempt());
        Assert.Equal(CircuitState.Open, health.Snapshot().Circuit);
    }

    [Fact]
    public void RateLimit_ReturnsTheCooldownToTell_AndOneHeardFromElsewhereIsCappedAndNeverShortened()
    {
        var time = new FakeTimeProvider();
        var health = new DeploymentHealth(time, Policy);

        Assert.Equal(TimeSpan.FromSeconds(20), health.RecordFailure("429", rateLimited: true, cooldown: TimeSpan.FromSeconds(20)));
        Assert.Equal(TimeSpan.FromMinutes(5), health.RecordFailure("429", rateLimited: true, cooldown: TimeSpan.FromHours(3)));
        Assert.Null(health.RecordFailure("500", rateLimited: false, cooldown: null));

        // Another instance's shorter cooldown does not cut this one's; a longer one extends it, up to the cap.
        var other = new DeploymentHealth(time, Policy);
        other.CoolDown(TimeSpan.FromSeconds(40));
        other.CoolDown(TimeSpan.FromSeconds(10));
        Assert.Equal(time.GetUtcNow() + TimeSpan.FromSeconds(40), other.Snapshot().CoolingDownUntil);
        other.CoolDown(TimeSpan.FromDays(1));
        Assert.Equal(time.GetUtcNow() + TimeSpan.FromMinutes(5), other.Snapshot().CoolingDownUntil);
        Assert.False(other.TryBeginAttempt());

        time.Advance(TimeSpan.FromMinutes(5));
        Assert.True(other.TryBeginAttempt());
    }

    [Fact]
    public void TryBeginAttempt_AfterBreak_AllowsExactlyOneProbe()
    {
        var time = new FakeTimeProvider();
        var health = new DeploymentHealth(time, Policy);
        for (var i = 0; i < 3; i++)
        {
            health.RecordFailure("boom", false, null);
        }

        time.Advance(TimeSpan.FromSeconds(30));

        Assert.True(health.TryBeginAttempt());
        Assert.False(health.TryBeginAttempt());
        Assert.Equal(Availability.CircuitOpen, health.Check());
    }

    [Fact]
    public void RecordSuccess_OnProbe_ClosesTheCircuit()
    {
        var time = new FakeTimeProvider();
        var health = new DeploymentHealth(time, Policy);
        for (var i = 0; i < 3; i++)
        {
            health.RecordFailure("boom", false, null);
        }

        time.Advance(TimeSpan.FromSeconds(31));
        Assert.True(health.TryBeginAttempt());
        health.RecordSuccess(TimeSpan.FromMilliseconds(120));

        Assert.Equal(Availability.Available, health.Check());
        Assert.True(health.TryBeginAttempt());
        Assert.True(health.TryBeginAttempt());
        Assert.Equal(120, health.Snapshot().LatencyP50Ms);
    }

    [Fact]
    public void RecordFailure_OnProbe_ReopensForAnotherBreak()
    {
        var time = new FakeTimeProvider();
        var health = new DeploymentHealth(time, Policy);
        for (var i = 0; i < 3; i++)
        {
            health.RecordFailure("boom", false, null);
        }

        time.Advance(TimeSpan.FromSeconds(30));
        Assert.True(health.TryBeginAttempt());
        health.RecordFailure("still down", false, null);

        Assert.Equal(Availability.CircuitOpen, health.Check());
        time.Advance(TimeSpan.FromSeconds(29));
        Assert.False(health.TryBeginAttempt());
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(health.TryBeginAttempt());
    }

    [Fact]
    public void RecordNeutral_OnProbe_ReleasesItWithoutJudging()
    {
        var time = new FakeTimeProvider();
        var health = new DeploymentHealth(time, Policy);
        for (var i = 0; i < 3; i++)
        {
            health.RecordFailure("boom", false, null);
        }

        time.Advance(TimeSpan.FromSeconds(30));
        Assert.True(health.TryBeginAttempt());
        health.RecordNeutral();

        Assert.True(health.TryBeginAttempt());
    }

    [Fact]
    public void RecordFailure_RateLimited_CoolsDownForRetryAfterWithoutOpening()
    {
        var time = new FakeTimeProvider();
        var health = new DeploymentHealth(time, Policy);

        for (var i = 0; i < 5; i++)
        {
            health.RecordFailure("429", rateLimited: true, cooldown: TimeSpan.FromSeconds(20));
        }

        Assert.Equal(Availability.CoolingDown, health.Check());
        Assert.Equal(CircuitState.Closed, health.Snapshot().Circuit);
        time.Advance(TimeSpan.FromSeconds(20));
        Assert.Equal(Availability.Available, health.Check());
    }

    [Fact]
    public void RecordFailure_HugeRetryAfter_IsCappedAtMaxCooldown()
    {
        var time = new FakeTimeProvider();
        var health = new DeploymentHealth(time, Policy);

        health.RecordFailure("429", rateLimited: true, cooldown: TimeSpan.FromDays(3));

        Assert.Equal(time.GetUtcNow() + TimeSpan.FromMinutes(5), health.Snapshot().CoolingDownUntil);
    }

    [Fact]
    public void Reset_ClearsCircuitAndCooldown()
    {
        var time = new FakeTimeProvider();
        var health = new DeploymentHealth(time, Policy);
        for (var i = 0; i < 3; i++)
        {
            health.RecordFailure("boom", false, null);
        }

        health.RecordFailure("429", true, TimeSpan.FromMinutes(1));
        health.Reset();

        Assert.Equal(Availability.Available, health.Check());
        Assert.Equal(4, health.Snapshot().Failures);
    }
}
