using Microsoft.Extensions.Time.Testing;
using Tollgate.Configuration;
using Tollgate.Keys;
using Tollgate.Metering;
using Tollgate.Storage;
using Tollgate.Tenancy;
using Tollgate.Tests.Infrastructure;
using Tollgate.Tests.Storage;

namespace Tollgate.Tests.Tenancy;

/// <summary>
/// The limit rules held by every limiter: the in-memory one of a single instance, and the shared database's, where
/// "instances" are separate storages on one database (as separate processes would be) taking turns or racing.
/// </summary>
public abstract class LimiterContractTests : IAsyncLifetime
{
    private readonly List<GatewayStorage> _instances = [];

    protected FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 11, 23, 12, 0, 30, TimeSpan.Zero));

    protected static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>The limiters of two instances; the same one twice where limits live in the process.</summary>
    protected IUsageLimiter[] Limiters { get; private set; } = [];

    protected GatewayStorage First => _instances[0];

    protected abstract Task<IReadOnlyList<GatewayStorage>> OpenInstancesAsync();

    protected abstract bool CountersInDatabase { get; }

    public async ValueTask InitializeAsync()
    {
        _instances.AddRange(await OpenInstancesAsync());
        await _instances[0].MigrateAsync(Ct);
        foreach (var instance in _instances)
        {
            await instance.Limiter.InitializeAsync(instance.Ledger, Ct);
        }

        Limiters = _instances.Count == 1 ? [_instances[0].Limiter, _instances[0].Limiter] : [.. _instances.Select(i => i.Limiter)];
    }

    public virtual async ValueTask DisposeAsync()
    {
        foreach (var instance in _instances)
        {
            await instance.DisposeAsync();
        }
    }

    [Fact]
    public async Task Budget_RacedFromTwoInstances_AdmitsExactlyWhatFits()
    {
        // USD 1 budget, USD 0.03 worst case per request: 33 fit, and 80 race for them through both instances.
        var key = await KeyAsync(new KeyLimits(MonthlyBudgetUsd: 1m));
        var outcomes = await Task.WhenAll(Enumerable.Range(0, 80).Select(i =>
            Task.Run(async () => await Limiters[i % 2].TryReserveAsync(key, null, 100, 0.03m, Ct), Ct)));

        Assert.Equal(33, outcomes.Count(o => o.Decision.Allowed));
        Assert.All(outcomes.Where(o => !o.Decision.Allowed), o => Assert.Equal(LimitKind.Budget, o.Decision.Kind));

        // Settled at their real cost (a third of the worst case), the headroom comes back for others.
        foreach (var (outcome, i) in outcomes.Where(o => o.Decision.Allowed).Select((o, i) => (o, i)))
        {
            await Limiters[i % 2].SettleAsync(outcome.Reservation!, 50, 0.01m);
        }

        var after = await Limiters[1].TryReserveAsync(key, null, 100, 0.03m, Ct);
        Assert.True(after.Decision.Allowed, after.Decision.Message);
    }

    [Fact]
    public async Task Overage_SettledThroughBothInstances_IsPricedOnTheTenantsWholeMonth()
    {
        // 1,000 tokens included, USD 0.01 per 1K beyond. Six requests of 300 tokens: 1,800 in all, 800 beyond.
        var plan = new PlanOptions { IncludedTokens = 1_000, OveragePer1KTokensUsd = 0.01m };
        var tenant = await First.Tenants.CreateAsync("acme", "team", Ct);
        var key = (await First.Keys.CreateAsync(new NewApiKey("k", tenant.Id), Ct)).Record;

        var charged = 0L;
        for (var i = 0; i < 6; i++)
        {
            var outcome = await Limiters[i % 2].TryReserveAsync(key, plan, 300, 0.001m, Ct);
            Assert.True(outcome.Decision.Allowed);
            charged += await Limiters[(i + 1) % 2].SettleAsync(outcome.Reservation!, 300, 0.001m);
        }

        Assert.Equal(Money.ToPico(0.008m), charged);

        // Both instances count the tenant's 1,800 tokens: a hard quota of 1,800 has no room left, one of 1,801 has one.
        Assert.Equal(LimitKind.MonthlyTokenQuota, (await Limiters[0].TryReserveAsync(key, plan with { HardQuota = true, IncludedTokens = 1_800 }, 1, 0m, Ct)).Decision.Kind);
        Assert.True((await Limiters[1].TryReserveAsync(key, plan with { HardQuota = true, IncludedTokens = 1_801 }, 1, 0m, Ct)).Decision.Allowed);
    }

    [Fact]
    public async Task RequestsPerMinute_CountAcrossInstances_AndANewMinuteStartsAfresh()
    {
        var key = await KeyAsync(new KeyLimits(Rpm: 3));
        for (var i = 0; i < 3; i++)
        {
            Assert.True((await Limiters[i % 2].TryReserveAsync(key, null, 10, 0m, Ct)).Decision.Allowed);
        }

        var refused = await Limiters[1].TryReserveAsync(key, null, 10, 0m, Ct);
        Assert.Equal(LimitKind.RateLimit, refused.Decision.Kind);
        Assert.Equal(TimeSpan.FromSeconds(30), refused.Decision.RetryAfter);

        Time.Advance(TimeSpan.FromSeconds(30));
        Assert.True((await Limiters[0].TryReserveAsync(key, null, 10, 0m, Ct)).Decision.Allowed);
    }

    [Fact]
    public async Task Released_GivesTheReservationBack()
    {
        var key = await KeyAsync(new KeyLimits(MonthlyTokens: 1_000));
        var held = await Limiters[0].TryReserveAsync(key, null, 800, 0m, Ct);
        Assert.Equal(LimitKind.MonthlyTokenQuota, (await Limiters[1].TryReserveAsync(key, null, 800, 0m, Ct)).Decision.Kind);

        await Limiters[0].ReleaseAsync(held.Reservation!);
        await Limiters[0].ReleaseAsync(held.Reservation!);
        Assert.True((await Limiters[1].TryReserveAsync(key, null, 800, 0m, Ct)).Decision.Allowed);
    }

    [Fact]
    public async Task UnknownPriceUnderABudget_IsRefused()
    {
        var key = await KeyAsync(new KeyLimits(MonthlyBudgetUsd: 5m));
        Assert.Equal(LimitKind.UnknownPrice, (await Limiters[0].TryReserveAsync(key, null, 10, null, Ct)).Decision.Kind);
    }

    [Fact]
    public async Task MonthToDate_CountsTheLedgerOfTheMonth_AndExtraAttemptCosts()
    {
        var key = await KeyAsync(new KeyLimits(MonthlyBudgetUsd: 0.05m));
        await First.Ledger.AppendAsync([Row(key, "2026-11-02T00:00:00Z", 400, 0.02m), Row(key, "2026-10-31T23:59:59Z", 999, 9m)], Ct);
        if (!CountersInDatabase)
        {
            // The in-memory limiter reads the ledger once, at start (a process's own rows arrive through its settles).
            await First.Limiter.InitializeAsync(First.Ledger, Ct);
        }

        // 0.02 already spent this month (October's row is not), so 0.03 fits and 0.031 does not.
        Assert.Equal(LimitKind.Budget, (await Limiters[1].TryReserveAsync(key, null, 10, 0.031m, Ct)).Decision.Kind);
        var held = await Limiters[1].TryReserveAsync(key, null, 10, 0.01m, Ct);
        await Limiters[0].AddExtraCostAsync(held.Reservation!, 0.015m);
        await Limiters[0].SettleAsync(held.Reservation!, 10, 0.01m);
        Assert.Equal(LimitKind.Budget, (await Limiters[1].TryReserveAsync(key, null, 10, 0.006m, Ct)).Decision.Kind);
        Assert.True((await Limiters[1].TryReserveAsync(key, null, 10, 0.005m, Ct)).Decision.Allowed);
    }

    protected async Task<ApiKeyRecord> KeyAsync(KeyLimits limits) => (await First.Keys.CreateAsync(new NewApiKey("limited", Tenant.DefaultId, limits), Ct)).Record;

    private static LedgerEntry Row(ApiKeyRecord key, string time, long tokens, decimal cost) => new()
    {
        RequestId = "req_" + Guid.NewGuid().ToString("N"),
        TimestampMs = DateTimeOffset.Parse(time, System.Globalization.CultureInfo.InvariantCulture).ToUnixTimeMilliseconds(),
        TenantId = key.TenantId,
        KeyId = key.Id,
        Model = "m",
        Usage = new UsageBuckets(tokens, 0, 0, 0, 0, 0),
        UsageSource = UsageSource.Reported,
        CostPicoUsd = Money.ToPico(cost),
        Status = 200,
    };
}

/// <summary>One process over the embedded database: the counters in memory.</summary>
public sealed class InMemoryLimiterContractTests : LimiterContractTests
{
    private readonly string _directory = Directory.CreateTempSubdirectory("tollgate-limiter-").FullName;

    protected override bool CountersInDatabase => false;

    protected override Task<IReadOnlyList<GatewayStorage>> OpenInstancesAsync() =>
        Task.FromResult<IReadOnlyList<GatewayStorage>>([GatewayStorage.Sqlite(_directory, Time)]);

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }
}

/// <summary>
/// The rules of limiters whose counters several instances share: what a crashed instance leaves behind, and limits
/// that begin after usage did.
/// </summary>
public abstract class SharedLimiterContractTests : LimiterContractTests
{
    protected override bool CountersInDatabase => true;

    protected abstract TimeSpan HoldLifetime { get; }

    [Fact]
    public async Task HoldOfACrashedInstance_StopsCountingWhenItExpires()
    {
        var key = await KeyAsync(new KeyLimits(MonthlyTokens: 1_000));
        Assert.True((await Limiters[0].TryReserveAsync(key, null, 900, 0m, Ct)).Decision.Allowed); // never settled: the instance died
        Assert.Equal(LimitKind.MonthlyTokenQuota, (await Limiters[1].TryReserveAsync(key, null, 900, 0m, Ct)).Decision.Kind);

        Time.Advance(HoldLifetime);
        Assert.True((await Limiters[1].TryReserveAsync(key, null, 900, 0m, Ct)).Decision.Allowed);
    }

    [Fact]
    public async Task NewLimitsOnAKey_CountItsUsageSoFarFromTheLedger()
    {
        // Unlimited, the key keeps no counters; its usage is in the ledger only.
        var key = (await First.Keys.CreateAsync("later-limited", Ct)).Record;
        Assert.True((await Limiters[0].TryReserveAsync(key, null, 10, 0.01m, Ct)).Decision.Allowed);
        await First.Ledger.AppendAsync([TokensRow(key, 700)], Ct);

        var limited = await First.Keys.UpdateLimitsAsync(key.Id, new KeyLimits(MonthlyTokens: 1_000), null, Ct);
        Assert.Equal(LimitKind.MonthlyTokenQuota, (await Limiters[1].TryReserveAsync(limited!, null, 301, 0m, Ct)).Decision.Kind);
        Assert.True((await Limiters[1].TryReserveAsync(limited!, null, 300, 0m, Ct)).Decision.Allowed);
    }

    [Fact]
    public async Task LimitsLiftedAndSetAgain_CountTheUsageInBetween()
    {
        // Limited, then unlimited while 600 tokens are used (counted nowhere but the ledger), then limited again.
        var key = await KeyAsync(new KeyLimits(MonthlyTokens: 1_000));
        var first = await Limiters[0].TryReserveAsync(key, null, 100, 0m, Ct);
        await Limiters[0].SettleAsync(first.Reservation!, 100, 0m);
        await First.Ledger.AppendAsync([TokensRow(key, 100)], Ct);

        var unlimited = await First.Keys.UpdateLimitsAsync(key.Id, KeyLimits.None, null, Ct);
        Assert.True((await Limiters[1].TryReserveAsync(unlimited!, null, 600, 0m, Ct)).Decision.Allowed);
        await First.Ledger.AppendAsync([TokensRow(key, 600)], Ct);

        var limited = await First.Keys.UpdateLimitsAsync(key.Id, new KeyLimits(MonthlyTokens: 1_000), null, Ct);
        Assert.Equal(LimitKind.MonthlyTokenQuota, (await Limiters[0].TryReserveAsync(limited!, null, 301, 0m, Ct)).Decision.Kind);
        Assert.True((await Limiters[1].TryReserveAsync(limited!, null, 300, 0m, Ct)).Decision.Allowed);
    }

    protected LedgerEntry TokensRow(ApiKeyRecord key, long tokens) => new()
    {
        RequestId = "req_" + Guid.NewGuid().ToString("N"),
        TimestampMs = Time.GetUtcNow().ToUnixTimeMilliseconds(),
        TenantId = key.TenantId,
        KeyId = key.Id,
        Model = "m",
        Usage = new UsageBuckets(tokens, 0, 0, 0, 0, 0),
        UsageSource = UsageSource.Reported,
        CostPicoUsd = 0,
        Status = 200,
    };
}

/// <summary>Two instances on one PostgreSQL database: the counters in the database.</summary>
[Collection(PostgresTests.Name)]
public sealed class PostgresLimiterContractTests(PostgresServer server) : SharedLimiterContractTests
{
    protected override TimeSpan HoldLifetime => Tollgate.Storage.Postgres.PostgresUsageLimiter.HoldLifetime;

    private string _database = string.Empty;

    protected override async Task<IReadOnlyList<GatewayStorage>> OpenInstancesAsync()
    {
        var connectionString = await server.CreateDatabaseAsync("limits");
        _database = new Npgsql.NpgsqlConnectionStringBuilder(connectionString).Database!;
        return [GatewayStorage.Postgres(connectionString, Time), GatewayStorage.Postgres(connectionString, Time)];
    }

    [Fact]
    public async Task ATenantWaitingOnItsLock_HoldsUpNoOtherTenant()
    {
        var hot = await KeyAsync(new KeyLimits(MonthlyTokens: 1_000_000));
        var quietTenant = await First.Tenants.CreateAsync("quiet", null, Ct);
        var quiet = (await First.Keys.CreateAsync(new NewApiKey("quiet", quietTenant.Id, new KeyLimits(MonthlyTokens: 1_000_000)), Ct)).Record;

        // A long transaction elsewhere holds the hot tenant's lock: its 20 reservations wait.
        await using var admin = new Npgsql.NpgsqlConnection(new Npgsql.NpgsqlConnectionStringBuilder(server.AdminConnectionString) { Database = _database }.ConnectionString);
        await admin.OpenAsync(Ct);
        await using var blocking = await admin.BeginTransactionAsync(Ct);
        await using (var take = new Npgsql.NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", admin, blocking))
        {
            take.Parameters.Add(new Npgsql.NpgsqlParameter<string> { TypedValue = hot.TenantId });
            await take.ExecuteScalarAsync(Ct);
        }

        var waiting = Enumerable.Range(0, 20).Select(_ => Task.Run(async () => await Limiters[0].TryReserveAsync(hot, null, 10, 0m, Ct), Ct)).ToArray();

        // Only a couple of them wait in the database, each on a connection; the rest wait in the gateway. (Read outside
        // the blocking transaction: within one, pg_stat_activity keeps its first snapshot.)
        await using var observer = new Npgsql.NpgsqlConnection(server.AdminConnectionString);
        await observer.OpenAsync(Ct);
        var most = 0L;
        for (var seen = 0; seen < 50 || most < 2; seen++)
        {
            await using var count = new Npgsql.NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event = 'advisory'", observer);
            count.Parameters.Add(new Npgsql.NpgsqlParameter<string> { TypedValue = _database });
            most = Math.Max(most, (long)(await count.ExecuteScalarAsync(Ct))!);
        }

        Assert.Equal(2, most);

        // Another tenant's reservation meanwhile finds a connection and its answer at once.
        var other = await Limiters[0].TryReserveAsync(quiet, null, 10, 0m, Ct).AsTask().WaitAsync(TimeSpan.FromSeconds(30), Ct);
        Assert.True(other.Decision.Allowed);
        Assert.DoesNotContain(waiting, t => t.IsCompleted);

        await blocking.RollbackAsync(Ct);
        Assert.All(await Task.WhenAll(waiting), o => Assert.True(o.Decision.Allowed));
    }

    [Fact]
    public async Task ABurstOfOneTenant_WaitsInTheGateway_NotOnServerConnections()
    {
        // 64 requests of one key at once all wait for the same lock. Each holding a server connection to wait would take
        // a stock server's max_connections (100) with the data pool beside it; they queue for the counters pool instead.
        var key = await KeyAsync(new KeyLimits(MonthlyTokens: 1_000_000));
        var outcomes = await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(async () => await Limiters[0].TryReserveAsync(key, null, 10, 0m, Ct), Ct)));
        Assert.All(outcomes, o => Assert.True(o.Decision.Allowed));

        await using var connection = new Npgsql.NpgsqlConnection(server.AdminConnectionString);
        await connection.OpenAsync(Ct);
        await using var count = new Npgsql.NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE '%(limits)'", connection);
        count.Parameters.Add(new Npgsql.NpgsqlParameter<string> { TypedValue = _database });
        Assert.InRange((long)(await count.ExecuteScalarAsync(Ct))!, 1, Tollgate.Storage.Postgres.PostgresDatabase.CountersPoolSize);
    }
}
