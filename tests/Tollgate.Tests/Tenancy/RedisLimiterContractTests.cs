using System.Data.Common;
using StackExchange.Redis;
using Tollgate.Configuration;
using Tollgate.Keys;
using Tollgate.Metering;
using Tollgate.Storage;
using Tollgate.Storage.Redis;
using Tollgate.Tenancy;
using Tollgate.Tests.Infrastructure;
using Tollgate.Tests.Storage;

namespace Tollgate.Tests.Tenancy;

/// <summary>
/// Two instances on one PostgreSQL database with their limit counters in one Redis: every shared-limiter rule, and
/// what is particular to Redis (counters it lost, money past what a Lua number holds exactly, Redis unreachable).
/// </summary>
[Collection(PostgresTests.Name)]
public sealed class RedisLimiterContractTests(PostgresServer postgres, RedisServer redis) : SharedLimiterContractTests
{
    private string _postgres = string.Empty;
    private string _redis = string.Empty;

    protected override TimeSpan HoldLifetime => RedisUsageLimiter.HoldLifetime;

    protected override async Task<IReadOnlyList<GatewayStorage>> OpenInstancesAsync()
    {
        _postgres = await postgres.CreateDatabaseAsync("redis_limits");
        _redis = redis.NewConnectionString();
        return [GatewayStorage.Postgres(_postgres, Time, _redis), GatewayStorage.Postgres(_postgres, Time, _redis)];
    }

    [Fact]
    public async Task CountersRedisLost_AreMadeAgainFromTheLedger()
    {
        var key = await KeyAsync(new KeyLimits(MonthlyTokens: 1_000));
        var held = await Limiters[0].TryReserveAsync(key, null, 700, 0m, Ct);
        await Limiters[0].SettleAsync(held.Reservation!, 700, 0m);
        await First.Ledger.AppendAsync([TokensRow(key, 700)], Ct);

        // A restart without persistence, or an eviction: everything in Redis is gone. The ledger is not.
        await using (var connection = await ConnectionMultiplexer.ConnectAsync(_redis + ",allowAdmin=true"))
        {
            await connection.GetDatabase().ExecuteAsync("FLUSHDB");
        }

        Assert.Equal(LimitKind.MonthlyTokenQuota, (await Limiters[1].TryReserveAsync(key, null, 301, 0m, Ct)).Decision.Kind);
        Assert.True((await Limiters[1].TryReserveAsync(key, null, 300, 0m, Ct)).Decision.Allowed);
    }

    [Fact]
    public async Task Budget_PastWhatALuaNumberHoldsExactly_IsCheckedToThePicodollar()
    {
        // USD 20,000 is 2 × 10^16 picodollars, past 2^53: a double would round away the last picodollars.
        var key = await KeyAsync(new KeyLimits(MonthlyBudgetUsd: 20_000.000000000001m));
        await First.Ledger.AppendAsync([new LedgerEntry
        {
            RequestId = "req_big", TimestampMs = Time.GetUtcNow().ToUnixTimeMilliseconds(), TenantId = key.TenantId, KeyId = key.Id,
            Model = "m", Usage = new UsageBuckets(1, 0, 0, 0, 0, 0), UsageSource = UsageSource.Reported, CostPicoUsd = Money.ToPico(19_999.999999999999m), Status = 200,
        }], Ct);

        // 0.000000000002 left: a request of 3 pUSD does not fit, one of 2 does, and then 1 more does not.
        Assert.Equal(LimitKind.Budget, (await Limiters[0].TryReserveAsync(key, null, 1, 0.000000000003m, Ct)).Decision.Kind);
        var fits = await Limiters[1].TryReserveAsync(key, null, 1, 0.000000000002m, Ct);
        Assert.True(fits.Decision.Allowed, fits.Decision.Message);
        Assert.Equal(LimitKind.Budget, (await Limiters[0].TryReserveAsync(key, null, 1, 0.000000000001m, Ct)).Decision.Kind);

        // Settled at 1 pUSD, one picodollar comes back.
        await Limiters[1].SettleAsync(fits.Reservation!, 1, 0.000000000001m);
        Assert.True((await Limiters[0].TryReserveAsync(key, null, 1, 0.000000000001m, Ct)).Decision.Allowed);
    }

    [Fact]
    public async Task TenantAndKeyLimits_AreBothHeld()
    {
        // The plan allows 2 requests a minute for the whole tenant; each key of it allows 1.
        var plan = new PlanOptions { Rpm = 2, IncludedTokens = 0 };
        var tenant = await First.Tenants.CreateAsync("acme", "team", Ct);
        var keys = new List<ApiKeyRecord>();
        for (var i = 0; i < 3; i++)
        {
            keys.Add((await First.Keys.CreateAsync(new NewApiKey($"k{i}", tenant.Id, new KeyLimits(Rpm: 1)), Ct)).Record);
        }

        Assert.True((await Limiters[0].TryReserveAsync(keys[0], plan, 1, 0m, Ct)).Decision.Allowed);
        var sameKey = await Limiters[1].TryReserveAsync(keys[0], plan, 1, 0m, Ct);
        Assert.Equal(LimitKind.RateLimit, sameKey.Decision.Kind);
        Assert.Contains("this key", sameKey.Decision.Message, StringComparison.Ordinal);
        Assert.True((await Limiters[1].TryReserveAsync(keys[1], plan, 1, 0m, Ct)).Decision.Allowed);
        var third = await Limiters[0].TryReserveAsync(keys[2], plan, 1, 0m, Ct);
        Assert.Equal(LimitKind.RateLimit, third.Decision.Kind);
        Assert.Contains("tenant's plan", third.Decision.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RedisUnreachable_RefusesReservations_AndStillSettlesAnAnsweredRequestFromTheLedger()
    {
        var plan = new PlanOptions { IncludedTokens = 1_000, OveragePer1KTokensUsd = 0.01m };
        var tenant = await First.Tenants.CreateAsync("acme", "team", Ct);
        var key = (await First.Keys.CreateAsync(new NewApiKey("k", tenant.Id), Ct)).Record;
        await First.Ledger.AppendAsync([TokensRow(key, 900)], Ct);
        var held = await Limiters[0].TryReserveAsync(key, plan, 300, 0.001m, Ct);
        Assert.True(held.Decision.Allowed);

        // An instance whose Redis is gone (nothing listens there) shares the same PostgreSQL.
        await using var cutOff = GatewayStorage.Postgres(_postgres, Time, $"127.0.0.1:{GatewayProcess.FreePort()},connectTimeout=500");
        var refused = await Assert.ThrowsAsync<RedisUnavailableException>(async () => await cutOff.Limiter.TryReserveAsync(key, plan, 10, 0.001m, Ct));
        Assert.IsAssignableFrom<DbException>(refused);
        Assert.StartsWith("Redis at 127.0.0.1:", refused.Message, StringComparison.Ordinal);

        // The request held on the working instance was answered; settled where Redis is gone, its overage is priced
        // on the ledger's 900 tokens: 200 of its 300 are beyond the 1,000 included, USD 0.002.
        Assert.Equal(Money.ToPico(0.002m), await cutOff.Limiter.SettleAsync(held.Reservation!, 300, 0.001m));
    }

    [Fact]
    public async Task SettledDuringABlip_IsCountedOnceRedisAnswersAgain()
    {
        // An instance whose path to Redis drops for a moment while Redis itself keeps its data.
        var key = await KeyAsync(new KeyLimits(MonthlyTokens: 1_000));
        var endpoint = redis.Endpoint.Split(':');
        await using var cutter = new TcpCutter(new System.Net.IPEndPoint(System.Net.IPAddress.Parse(endpoint[0]), int.Parse(endpoint[1], System.Globalization.CultureInfo.InvariantCulture)));
        var database = _redis[(_redis.IndexOf(',', StringComparison.Ordinal) + 1)..];
        await using var instance = GatewayStorage.Postgres(_postgres, Time, $"127.0.0.1:{cutter.Port},{database},connectTimeout=1000");
        var held = await instance.Limiter.TryReserveAsync(key, null, 600, 0m, Ct);
        Assert.True(held.Decision.Allowed);

        // Answered while Redis cannot be reached: settled all the same, and its ledger row written.
        cutter.Cut();
        Assert.Equal(0, await instance.Limiter.SettleAsync(held.Reservation!, 600, 0m));
        await First.Ledger.AppendAsync([TokensRow(key, 600)], Ct);

        // Back. After the hold's lifetime the 600 tokens must still count: they were never settled into Redis, so the
        // instance remakes the counters from the ledger (without the repair the key would have its whole 1,000 again).
        cutter.Restore();
        Time.Advance(HoldLifetime + TimeSpan.FromMinutes(1));
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        deadline.CancelAfter(TimeSpan.FromSeconds(30));
        LimitOutcome outcome;
        while (true)
        {
            try
            {
                outcome = await instance.Limiter.TryReserveAsync(key, null, 401, 0m, deadline.Token);
                break;
            }
            catch (RedisUnavailableException)
            {
                // The multiplexer reconnects on its own schedule.
                await Task.Delay(100, deadline.Token);
            }
        }

        Assert.Equal(LimitKind.MonthlyTokenQuota, outcome.Decision.Kind);
        Assert.True((await Limiters[1].TryReserveAsync(key, null, 400, 0m, Ct)).Decision.Allowed);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        deadline.CancelAfter(TimeSpan.FromSeconds(30));
        while (!condition())
        {
            // The multiplexer reconnects on its own schedule.
            await Task.Delay(50, deadline.Token);
        }
    }

    private static async Task<LimitOutcome> ReserveOnceRedisAnswersAsync(IUsageLimiter limiter, ApiKeyRecord key, PlanOptions? plan, long tokens)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        deadline.CancelAfter(TimeSpan.FromSeconds(30));
        while (true)
        {
            try
            {
                return await limiter.TryReserveAsync(key, plan, tokens, 0m, deadline.Token);
            }
            catch (RedisUnavailableException)
            {
                // The multiplexer reconnects on its own schedule.
                await Task.Delay(100, deadline.Token);
            }
        }
    }

    /// <summary>
    /// Another instance on the same PostgreSQL and Redis, whose path to Redis goes through a <see cref="TcpCutter"/>
    /// (Redis itself keeps running and keeps its data), connected before it returns.
    /// </summary>
    private async Task<CutOffInstance> CutOffInstanceAsync()
    {
        var endpoint = redis.Endpoint.Split(':');
        var cutter = new TcpCutter(new System.Net.IPEndPoint(System.Net.IPAddress.Parse(endpoint[0]), int.Parse(endpoint[1], System.Globalization.CultureInfo.InvariantCulture)));
        var database = _redis[(_redis.IndexOf(',', StringComparison.Ordinal) + 1)..];
        var instance = GatewayStorage.Postgres(_postgres, Time, $"127.0.0.1:{cutter.Port},{database},connectTimeout=1000");
        Assert.Equal(new StorageHealth(true, true), await instance.CheckAsync(Ct));
        return new CutOffInstance(instance, cutter);
    }

    private sealed record CutOffInstance(GatewayStorage Instance, TcpCutter Cutter) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await Instance.DisposeAsync();
            await Cutter.DisposeAsync();
        }
    }

    [Fact]
    public async Task KeyLimitsChangedWhileRedisIsCutOff_AreSaved_AndTheReconnectAloneRemakesTheCounters()
    {
        // Limited, with counters in Redis that count its first 100 tokens.
        var key = await KeyAsync(new KeyLimits(MonthlyTokens: 1_000));
        var first = await Limiters[1].TryReserveAsync(key, null, 100, 0m, Ct);
        await Limiters[1].SettleAsync(first.Reservation!, 100, 0m);
        await First.Ledger.AppendAsync([TokensRow(key, 100)], Ct);
        await using var cut = await CutOffInstanceAsync();

        // Redis cannot be reached from the instance that takes the changes: the limits are lifted, 600 tokens are used
        // (counted in the ledger only), and the limits are set again. PostgreSQL has each change, and each is answered.
        cut.Cutter.Cut();
        Assert.NotNull(await cut.Instance.Keys.UpdateLimitsAsync(key.Id, KeyLimits.None, null, Ct));
        Assert.True(cut.Instance.Limiter.OwesCounterReset(key.TenantId, key.Id));
        await First.Ledger.AppendAsync([TokensRow(key, 600)], Ct);
        var limited = await cut.Instance.Keys.UpdateLimitsAsync(key.Id, new KeyLimits(MonthlyTokens: 1_000), null, Ct);
        Assert.NotNull(limited);
        Assert.True(cut.Instance.Limiter.OwesCounterReset(key.TenantId, key.Id));
        Assert.False(cut.Instance.Limiter.OwesCounterReset(key.TenantId, null));

        // Back. No request reaches that instance: its reconnect alone forgets the old counters, which knew of 100 tokens.
        cut.Cutter.Restore();
        await WaitUntilAsync(() => !cut.Instance.Limiter.OwesCounterReset(key.TenantId, key.Id));

        // So another instance, which knew of nothing, makes them again from the ledger's 700 tokens.
        Assert.Equal(LimitKind.MonthlyTokenQuota, (await Limiters[1].TryReserveAsync(limited, null, 301, 0m, Ct)).Decision.Kind);
        Assert.True((await Limiters[1].TryReserveAsync(limited, null, 300, 0m, Ct)).Decision.Allowed);
    }

    [Fact]
    public async Task PlanChangedWhileRedisIsCutOff_IsSaved_AndThatInstanceForgetsBeforeItsNextReservation()
    {
        // A hard quota of 1,000 tokens a month for the tenant, with counters in Redis that count its first 100.
        var plan = new PlanOptions { IncludedTokens = 1_000, HardQuota = true };
        var tenant = await First.Tenants.CreateAsync("acme", "team", Ct);
        var key = (await First.Keys.CreateAsync(new NewApiKey("k", tenant.Id), Ct)).Record;
        var first = await Limiters[1].TryReserveAsync(key, plan, 100, 0m, Ct);
        await Limiters[1].SettleAsync(first.Reservation!, 100, 0m);
        await First.Ledger.AppendAsync([TokensRow(key, 100)], Ct);
        await using var cut = await CutOffInstanceAsync();

        // The plan removed and given again while Redis cannot be reached; meanwhile 600 tokens are used without a plan.
        cut.Cutter.Cut();
        Assert.Null((await cut.Instance.Tenants.UpdateAsync(tenant.Id, null, clearPlan: true, null, Ct))!.Plan);
        await First.Ledger.AppendAsync([TokensRow(key, 600)], Ct);
        Assert.Equal("team", (await cut.Instance.Tenants.UpdateAsync(tenant.Id, "team", clearPlan: false, null, Ct))!.Plan);
        Assert.True(cut.Instance.Limiter.OwesCounterReset(tenant.Id, null));

        // Back: the first reservation that instance makes counts the tenant's 700 tokens, never the stale 100.
        cut.Cutter.Restore();
        var outcome = await ReserveOnceRedisAnswersAsync(cut.Instance.Limiter, key, plan, 301);
        Assert.Equal(LimitKind.MonthlyTokenQuota, outcome.Decision.Kind);
        Assert.False(cut.Instance.Limiter.OwesCounterReset(tenant.Id, null));
        Assert.True((await cut.Instance.Limiter.TryReserveAsync(key, plan, 300, 0m, Ct)).Decision.Allowed);
    }

    [Fact]
    public async Task ConnectionStrings_AreReadInEitherForm_AndNeverRepeated()
    {
        var url = RedisConnection.Parse("redis://:s3cret@cache.internal:6380/3");
        Assert.Equal("s3cret", url.Password);
        Assert.Equal(3, url.DefaultDatabase);
        Assert.Equal(new System.Net.DnsEndPoint("cache.internal", 6380), url.EndPoints[0]);
        Assert.True(RedisConnection.Parse("rediss://app:pw@cache:6379").Ssl);
        Assert.Equal("app", RedisConnection.Parse("rediss://app:pw@cache:6379").User);
        Assert.Equal("pw", RedisConnection.Parse("cache:6379,password=pw").Password);

        var error = Assert.Throws<FormatException>(() => RedisConnection.Parse("redis://:s3cret@cache/not-a-number"));
        Assert.DoesNotContain("s3cret", error.Message, StringComparison.Ordinal);
        await using var connection = new RedisConnection("redis://:s3cret@cache.internal:6380/3");
        Assert.Equal("Redis at cache.internal:6380 (database 3)", connection.Description);
    }
}
