namespace Tollgate.Health;

/// <summary>
/// A rate limit one instance met on a deployment: a 429 and how long its Retry-After (or the default cooldown) parks
/// the deployment from now. The instances share each provider's API key, so its rate limit is theirs too. The
/// duration, not an instant, travels, so that the instances' clocks need not agree.
/// </summary>
public readonly record struct CooldownNotice(string DeploymentId, TimeSpan Remaining);

/// <summary>
/// Tells the other instances of the rate limits this one meets, and hears theirs: so that a provider that answered
/// one instance 429 is not asked again by every other instance before its Retry-After. Circuits and latency stay
/// per instance: a failure one instance sees may be its own network's.
/// </summary>
public interface IHealthBroadcast
{
    /// <summary>Tells the other instances, best effort: never blocks the request and never throws.</summary>
    void Publish(CooldownNotice notice);

    /// <summary>The other instances' notices, as they come, until cancelled; reconnects by itself after a failure.</summary>
    IAsyncEnumerable<CooldownNotice> ListenAsync(CancellationToken cancellationToken);
}

/// <summary>One instance (the embedded database): nobody to tell, nothing to hear.</summary>
public sealed class SingleInstanceHealth : IHealthBroadcast
{
    public void Publish(CooldownNotice notice)
    {
    }

    public async IAsyncEnumerable<CooldownNotice> ListenAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await Task.CompletedTask.ConfigureAwait(false);
        yield break;
    }
}
