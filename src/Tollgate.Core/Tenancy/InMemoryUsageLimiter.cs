using System.Collections.Concurrent;
using Tollgate.Configuration;
using Tollgate.Keys;
using Tollgate.Metering;

namespace Tollgate.Tenancy;

/// <summary>
/// Limits with the counters in this process: one instance over the embedded database. The check and the
/// reservation are one step under the tenant's lock. Month counters are seeded from the ledger at start, so a
/// restart does not hand out a fresh budget. Every call completes synchronously.
/// </summary>
public sealed class InMemoryUsageLimiter(TimeProvider time) : IUsageLimiter
{
    private readonly ConcurrentDictionary<string, TenantCounters> _tenants = new(StringComparer.Ordinal);

    public async Task InitializeAsync(ILedgerStore ledger, CancellationToken cancellationToken) =>
        Seed(await ledger.MonthTotalsAsync(LimitRules.MonthStart(time.GetUtcNow()), cancellationToken).ConfigureAwait(false));

    /// <summary>Loads month-to-date totals (from the ledger).</summary>
    public void Seed(IEnumerable<KeyMonthTotals> totals)
    {
        var month = LimitRules.MonthOf(time.GetUtcNow());
        foreach (var total in totals)
        {
            var tenant = _tenants.GetOrAdd(total.TenantId, static _ => new TenantCounters());
            lock (tenant)
            {
                Roll(tenant, month, 0);
                var key = tenant.KeyCounters(total.KeyId);
                Roll(key, month, 0);
                tenant.MonthTokens += total.Tokens;
                tenant.MonthCostUsd += total.CostUsd;
                key.MonthTokens += total.Tokens;
                key.MonthCostUsd += total.CostUsd;
            }
        }
    }

    public ValueTask<LimitOutcome> TryReserveAsync(ApiKeyRecord key, PlanOptions? plan, long tokens, decimal? costUsd, CancellationToken cancellationToken)
    {
        if (LimitRules.RefuseUnknownPrice(key, plan, costUsd) is { } refused)
        {
            return ValueTask.FromResult(new LimitOutcome(refused, null));
        }

        var now = time.GetUtcNow();
        var minute = LimitRules.MinuteOf(now);
        var month = LimitRules.MonthOf(now);
        var cost = costUsd is { } c ? Money.RoundToPico(c) : 0m;
        var tenant = _tenants.GetOrAdd(key.TenantId, static _ => new TenantCounters());
        lock (tenant)
        {
            Roll(tenant, month, minute);
            var counters = tenant.KeyCounters(key.Id);
            Roll(counters, month, minute);
            var decision = LimitRules.Check(tenant, counters, key.EffectiveLimits, plan, tokens, cost, now);
            if (!decision.Allowed)
            {
                return ValueTask.FromResult(new LimitOutcome(decision, null));
            }

            foreach (var scope in (LimitCounters[])[tenant, counters])
            {
                scope.MinuteRequests++;
                scope.MinuteTokens += tokens;
                scope.ReservedTokens += tokens;
                scope.ReservedCostUsd += cost;
            }

            return ValueTask.FromResult(new LimitOutcome(decision, new Held(key, plan, tokens, cost, minute, month, tenant, counters)));
        }
    }

    public ValueTask AddExtraCostAsync(Reservation reservation, decimal costUsd)
    {
        var held = (Held)reservation;
        var now = time.GetUtcNow();
        lock (held.Tenant)
        {
            foreach (var scope in (LimitCounters[])[held.Tenant, held.KeyScope])
            {
                Roll(scope, LimitRules.MonthOf(now), LimitRules.MinuteOf(now));
                if (scope.Month == held.Month)
                {
                    scope.MonthCostUsd += Money.RoundToPico(costUsd);
                }
            }
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<long> SettleAsync(Reservation reservation, long tokens, decimal? costUsd)
    {
        var held = (Held)reservation;
        var cost = costUsd is { } c ? Money.RoundToPico(c) : held.CostUsd;
        var now = time.GetUtcNow();
        lock (held.Tenant)
        {
            if (held.Done)
            {
                return ValueTask.FromResult(0L);
            }

            held.Done = true;
            Roll(held.Tenant, LimitRules.MonthOf(now), LimitRules.MinuteOf(now));
            Roll(held.KeyScope, LimitRules.MonthOf(now), LimitRules.MinuteOf(now));
            var price = held.Plan is { } plan && held.Tenant.Month == held.Month
                ? LimitRules.OveragePicoUsd(plan, held.Tenant.MonthTokens, tokens)
                : 0L;

            foreach (var scope in (LimitCounters[])[held.Tenant, held.KeyScope])
            {
                if (scope.Month == held.Month)
                {
                    scope.ReservedTokens -= held.Tokens;
                    scope.ReservedCostUsd -= held.CostUsd;
                    scope.MonthTokens += tokens;
                    scope.MonthCostUsd += cost;
                }

                if (scope.Minute == held.Minute)
                {
                    scope.MinuteTokens = Math.Max(0, scope.MinuteTokens + tokens - held.Tokens);
                }
            }

            return ValueTask.FromResult(price);
        }
    }

    public async ValueTask ReleaseAsync(Reservation reservation) => await SettleAsync(reservation, 0, 0m).ConfigureAwait(false);

    public ValueTask<MonthToDate> MonthToDateAsync(string tenantId, string keyId, CancellationToken cancellationToken)
    {
        if (!_tenants.TryGetValue(tenantId, out var tenant))
        {
            return ValueTask.FromResult(default(MonthToDate));
        }

        lock (tenant)
        {
            Roll(tenant, LimitRules.MonthOf(time.GetUtcNow()), tenant.Minute);
            var key = tenant.KeyCounters(keyId);
            return ValueTask.FromResult(new MonthToDate(tenant.MonthTokens, tenant.MonthCostUsd, key.MonthTokens, key.MonthCostUsd));
        }
    }

    private static void Roll(LimitCounters counters, long month, long minute)
    {
        if (counters.Month != month)
        {
            // Reservations in flight across the boundary settle into nothing: they belong to the old month.
            counters.Month = month;
            counters.MonthTokens = 0;
            counters.MonthCostUsd = 0m;
            counters.ReservedTokens = 0;
            counters.ReservedCostUsd = 0m;
        }

        if (counters.Minute != minute)
        {
            counters.Minute = minute;
            counters.MinuteRequests = 0;
            counters.MinuteTokens = 0;
        }
    }

    /// <summary>A tenant's counters and those of its keys; the object is the lock for all of them.</summary>
    private sealed class TenantCounters : LimitCounters
    {
        private readonly Dictionary<string, LimitCounters> _keys = new(StringComparer.Ordinal);

        public LimitCounters KeyCounters(string keyId)
        {
            if (!_keys.TryGetValue(keyId, out var counters))
            {
                counters = new LimitCounters { Month = Month, Minute = Minute };
                _keys[keyId] = counters;
            }

            return counters;
        }
    }

    private sealed class Held(ApiKeyRecord key, PlanOptions? plan, long tokens, decimal cost, long minute, long month, TenantCounters tenant, LimitCounters counters)
        : Reservation(key, plan, tokens, cost, minute, month)
    {
        public TenantCounters Tenant { get; } = tenant;

        public LimitCounters KeyScope { get; } = counters;
    }
}
