using System.Collections.Concurrent;
using StackExchange.Redis;
using Tollgate.Tenancy;

namespace Tollgate.Storage.Redis;

/// <summary>
/// What was done while Redis could not be reached, put right once it answers again: the repairs of settles and
/// releases, and the forgets that saved changes of limits or plan owe. Kept in this process only.
/// </summary>
public sealed partial class RedisUsageLimiter
{
    /// <summary>How many times in a row repairs are tried while a Redis that reconnected does not answer yet.</summary>
    private const int RetriesAfterReconnect = 60;

    /// <summary>How long a repair waits after its settle: by then the request's ledger row has been committed.</summary>
    private static readonly TimeSpan RepairDelay = TimeSpan.FromSeconds(2);

    /// <summary>How often repairs are tried while a Redis that reconnected does not answer yet (a minute in all, with <see cref="RetriesAfterReconnect"/>).</summary>
    private static readonly TimeSpan RetryAfterReconnect = TimeSpan.FromSeconds(1);

    // What Redis missed while it could not be reached: holds of requests that ended (still counted there), and usage
    // or cost (not counted there). Once Redis answers again, each hold is released and, where usage was missed, its
    // scopes' month counters are made again from the ledger.
    private readonly ConcurrentQueue<Repair> _repairs = new();

    // Forgets owed by limit or plan changes that PostgreSQL committed while Redis could not be reached, by scope. The
    // value changes with each change owed, so a forget carried out clears only what was owed when it began. The count
    // is what the request path reads: the dictionary's own IsEmpty takes all its locks when it is empty.
    private readonly ConcurrentDictionary<Scope, long> _forgets = new();
    private long _forgetVersion;
    private int _owedScopes;

    // One run of the repairs at a time, which every caller that must wait for it shares: a forget run twice could drop
    // usage settled between the two runs, and callers that each tried Redis in turn would queue behind one another's
    // timeouts while it cannot be reached.
    private readonly Lock _repairSync = new();
    private Task<RedisUnavailableException?>? _repairRun;

    // Stops the repairs a reconnect started (RepairWhileRedisAnswersAsync) when the storage is disposed.
    private readonly CancellationTokenSource _stopping = new();
    private int _disposed;

    /// <summary>
    /// Makes a scope's counters again from the ledger on next use: called when a key's limits or a tenant's plan
    /// change, since a scope without limits keeps no counters and its usage meanwhile is only in the ledger.
    /// <paramref name="keyId"/> null: the tenant's scope.
    /// </summary>
    /// <remarks>
    /// Called after PostgreSQL committed the change, so it does not fail for want of Redis: the forget is then owed
    /// (<see cref="OwesCounterReset"/>) and carried out once Redis answers again.
    /// </remarks>
    public async Task ForgetAsync(string tenantId, string? keyId)
    {
        var scope = new Scope(tenantId, keyId);
        var owedBefore = _forgets.TryGetValue(scope, out var version) ? version : (long?)null;
        try
        {
            await ForgetNowAsync(scope).ConfigureAwait(false);
        }
        catch (RedisUnavailableException)
        {
            Owe(scope);
            return;
        }

        // Done after every change committed so far, so it also pays what an earlier change of this scope owed.
        if (owedBefore is { } owed)
        {
            Paid(scope, owed);
        }
    }

    /// <inheritdoc/>
    public bool OwesCounterReset(string tenantId, string? keyId) => _forgets.ContainsKey(new Scope(tenantId, keyId));

    /// <summary>Stops the repairs a reconnect started; what is still owed is lost with the process. Safe to call twice.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }

    private async Task ForgetNowAsync(Scope scope)
    {
        var (tenantId, keyId) = scope;
        var month = LimitRules.MonthOf(_time.GetUtcNow());

        // Last month too: a request reserved before midnight on the 1st settles into it.
        RedisKey[] months = [MonthKey(tenantId, keyId, month), MonthKey(tenantId, keyId, month - 1)];
        var redisDatabase = await _redis.DatabaseAsync().ConfigureAwait(false);
        try
        {
            await redisDatabase.ScriptEvaluateAsync(RedisLimitScripts.Forget, months).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw new RedisUnavailableException(_redis.Description, ex);
        }
    }

    /// <summary>The run of the repairs under way, or a new one: null when they ran, else why Redis could not be used.</summary>
    private Task<RedisUnavailableException?> RepairAsync()
    {
        lock (_repairSync)
        {
            // Started on the pool, not under the lock nor on the caller's thread: the run talks to Redis from its first step.
            return _repairRun is { IsCompleted: false } running ? running : _repairRun = Task.Run(RepairOnceAsync);
        }
    }

    /// <summary>
    /// Puts right what was done without Redis: carries out the forgets owed by limit changes, then repairs what settles
    /// without Redis left behind (each from its <see cref="Repair.ReadyAt"/> on): releases each hold and forgets its
    /// scopes' month counters, so the next request makes them from the ledger, which has the request's row by then. A
    /// Redis still unreachable leaves the rest for later.
    /// </summary>
    private async Task<RedisUnavailableException?> RepairOnceAsync()
    {
        var now = _time.GetUtcNow();
        try
        {
            // Forgets first and without delay: unlike a settle's repair they wait for no ledger row, and until they are
            // done every instance's reservations read counters made under the old limits.
            foreach (var (scope, owed) in _forgets)
            {
                await ForgetNowAsync(scope).ConfigureAwait(false);
                Paid(scope, owed);
            }

            while (_repairs.TryPeek(out var repair) && repair.ReadyAt <= now)
            {
                var hold = repair.Hold;
                if (repair.Release)
                {
                    await RunAsync(RedisLimitScripts.Release, hold, [hold.Id, hold.Tokens, Flag(hold.TenantLimited), Flag(hold.KeyLimited)], CancellationToken.None).ConfigureAwait(false);
                }

                if (repair.Remake && hold.TenantLimited)
                {
                    await ForgetNowAsync(new Scope(hold.TenantId, null)).ConfigureAwait(false);
                }

                if (repair.Remake && hold.KeyLimited)
                {
                    await ForgetNowAsync(new Scope(hold.TenantId, hold.KeyId)).ConfigureAwait(false);
                }

                _repairs.TryDequeue(out _);
            }

            return null;
        }
        catch (RedisUnavailableException ex)
        {
            // Still unreachable: the repairs wait for the next request or the next reconnect.
            return ex;
        }
    }

    /// <summary>
    /// Waits, before a limited reservation reads counters, until no repair that could make them again is due: no
    /// forget owed by its key or tenant, and no repair of a settle ready by <paramref name="now"/> (it may be any
    /// scope's; they run in order). Throws <see cref="RedisUnavailableException"/> when Redis cannot be reached for
    /// them, as the reservation itself would.
    /// </summary>
    private async Task RepairsDoneAsync(Hold hold, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // A run already under way may have passed a forget owed after it began: then one more run does it.
        for (var runs = 0; RepairDue(hold, now); runs++)
        {
            if (runs == 2)
            {
                throw new RedisUnavailableException(_redis.Description, new InvalidOperationException("the limit counters of this key or tenant are still to be made again"));
            }

            if (await RepairAsync().WaitAsync(cancellationToken).ConfigureAwait(false) is { } failure)
            {
                throw new RedisUnavailableException(_redis.Description, failure.InnerException!);
            }
        }
    }

    private bool RepairDue(Hold hold, DateTimeOffset now) =>
        (_repairs.TryPeek(out var repair) && repair.ReadyAt <= now)
        || (Volatile.Read(ref _owedScopes) > 0
            && ((hold.TenantLimited && _forgets.ContainsKey(new Scope(hold.TenantId, null))) || (hold.KeyLimited && _forgets.ContainsKey(new Scope(hold.TenantId, hold.KeyId)))));

    /// <summary>
    /// Runs the repairs once Redis is back (it reconnected), and again as each repair that must wait for its ledger
    /// row comes due, until nothing is left. A Redis that reconnected but does not answer yet (still loading its data
    /// from disk answers <c>LOADING</c>) is asked again every <see cref="RetryAfterReconnect"/>, up to
    /// <see cref="RetriesAfterReconnect"/> times in a row; if it is lost again, its next reconnect starts over.
    /// </summary>
    private async Task RepairWhileRedisAnswersAsync()
    {
        try
        {
            var failures = 0;
            while (true)
            {
                if (await RepairAsync().WaitAsync(_stopping.Token).ConfigureAwait(false) is null)
                {
                    failures = 0;
                    if (!_repairs.TryPeek(out var next))
                    {
                        return;
                    }

                    var due = next.ReadyAt - _time.GetUtcNow();
                    if (due > TimeSpan.Zero)
                    {
                        await Task.Delay(due, _time, _stopping.Token).ConfigureAwait(false);
                    }
                }
                else if (++failures < RetriesAfterReconnect)
                {
                    await Task.Delay(RetryAfterReconnect, _time, _stopping.Token).ConfigureAwait(false);
                }
                else
                {
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
        {
            // Shutting down: the storage (and its connection) was disposed while a repair waited.
        }
    }

    private void Owe(Scope scope)
    {
        var version = Interlocked.Increment(ref _forgetVersion);
        while (true)
        {
            if (_forgets.TryAdd(scope, version))
            {
                Interlocked.Increment(ref _owedScopes);
                return;
            }

            if (_forgets.TryGetValue(scope, out var owed) && _forgets.TryUpdate(scope, version, owed))
            {
                return;
            }
        }
    }

    /// <summary>Clears a scope's forget, unless another change owed it again since <paramref name="owed"/> was read.</summary>
    private void Paid(Scope scope, long owed)
    {
        if (_forgets.TryRemove(KeyValuePair.Create(scope, owed)))
        {
            Interlocked.Decrement(ref _owedScopes);
        }
    }

    /// <summary>Whose counters: a tenant's (<paramref name="KeyId"/> null) or one key's.</summary>
    private readonly record struct Scope(string TenantId, string? KeyId);

    /// <summary>What to put right for one request once Redis answers again, from <paramref name="ReadyAt"/> on.</summary>
    /// <param name="Release">Take its hold off the held totals.</param>
    /// <param name="Remake">Make its scopes' month counters again from the ledger (usage or cost Redis missed).</param>
    private sealed record Repair(Hold Hold, DateTimeOffset ReadyAt, bool Release, bool Remake);
}
