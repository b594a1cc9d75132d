using System.Net;
using System.Threading.RateLimiting;

namespace Tollgate.Server.Auth;

/// <summary>
/// Caps wrong guesses at the keys that open the admin API and the dashboard. After
/// <see cref="FailuresPerWindow"/> wrong keys from one client address within <see cref="Window"/>, that address
/// is refused with 429 and its keys are not checked until the window ends. Only failures count, so whoever
/// holds the right key never meets the limit. Generated keys are 256-bit and cannot be guessed anyway; this is
/// for an admin key set by hand in <c>TOLLGATE_ADMIN_KEY</c>, which may be weak. Behind a reverse proxy every
/// client shares the proxy's address, which makes the cap a global one: still what a guesser should meet.
/// </summary>
internal sealed class KeyGuessLimiter : IDisposable
{
    public const int FailuresPerWindow = 20;

    public static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    private readonly PartitionedRateLimiter<IPAddress> _failures = PartitionedRateLimiter.Create<IPAddress, IPAddress>(
        address => RateLimitPartition.GetFixedWindowLimiter(address, static _ => new FixedWindowRateLimiterOptions
        {
            PermitLimit = FailuresPerWindow,
            Window = Window,
            QueueLimit = 0,
        }));

    /// <summary>Null when this client may present a key; otherwise how long until it may again.</summary>
    public TimeSpan? Blocked(HttpContext context)
    {
        // Zero permits: asks whether any are left without taking one.
        using var lease = _failures.AttemptAcquire(AddressOf(context), 0);
        if (lease.IsAcquired)
        {
            return null;
        }

        return lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) ? retryAfter : Window;
    }

    /// <summary>Counts one wrong key from this client.</summary>
    public void Failed(HttpContext context)
    {
        using var lease = _failures.AttemptAcquire(AddressOf(context));
    }

    public void Dispose() => _failures.Dispose();

    private static IPAddress AddressOf(HttpContext context) => context.Connection.RemoteIpAddress ?? IPAddress.None;
}
