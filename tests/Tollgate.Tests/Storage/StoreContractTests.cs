using System.Globalization;
using Tollgate.Billing;
using Tollgate.Keys;
using Tollgate.Metering;
using Tollgate.Storage;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Storage;

/// <summary>
/// What every database behind the gateway must do the same way: the embedded SQLite file and a real PostgreSQL
/// server run the same tests (the subclasses below), so nothing above <see cref="GatewayStorage"/> can tell them apart.
/// </summary>
public abstract class StoreContractTests : IAsyncLifetime
{
    private GatewayStorage _storage = null!;

    protected static CancellationToken Ct => TestContext.Current.CancellationToken;

    protected GatewayStorage Storage => _storage;

    protected abstract Task<GatewayStorage> OpenAsync();

    /// <summary>Every ledger row's <c>provider_reported_cost_pusd</c> as stored, by request id, read with the database's own SQL.</summary>
    protected abstract Task<Dictionary<string, long?>> ReadProviderReportedCostsAsync();

    public async ValueTask InitializeAsync()
    {
        _storage = await OpenAsync();
        await _storage.MigrateAsync(Ct);
    }

    public virtual async ValueTask DisposeAsync() => await _storage.DisposeAsync();

    [Fact]
    public async Task Migrate_RunTwice_KeepsTheDataAndTheDefaultTenant()
    {
        var created = await Storage.Keys.CreateAsync("kept", Ct);
        await Storage.MigrateAsync(Ct);

        Assert.Equal(created.Record, await Storage.Keys.FindByHashAsync(ApiKeys.Hash(created.Key), Ct));
        Assert.Contains(await Storage.Tenants.ListAsync(Ct), t => t.Id == "default" && t.Plan is null && !t.Suspended);
    }

    [Fact]
    public async Task Keys_CreateFindRotateLimitRevoke_RoundTripExactly()
    {
        var tenant = await Storage.Tenants.CreateAsync("acme", "starter", Ct);
        var expires = new DateTimeOffset(2031, 5, 6, 7, 8, 9, TimeSpan.Zero);
        var limits = new KeyLimits(MonthlyTokens: 5_000_000_000, MonthlyBudgetUsd: 1234.567890123456m, Rpm: 60, Tpm: 90_000, Models: ["gpt-4o", "cheap/mini"]);
        var created = await Storage.Keys.CreateAsync(new NewApiKey("ci", tenant.Id, limits, expires), Ct);

        Assert.StartsWith("tg-", created.Key, StringComparison.Ordinal);
        var found = await Storage.Keys.FindByHashAsync(ApiKeys.Hash(created.Key), Ct);
        Assert.NotNull(found);
        Assert.Equal(created.Record.Id, found.Id);
        Assert.Equal(tenant.Id, found.TenantId);
        Assert.Equal(created.Record.CreatedAt, found.CreatedAt);
        Assert.Equal(expires, found.ExpiresAt);
        Assert.Equal(1234.567890123456m, found.EffectiveLimits.MonthlyBudgetUsd);
        Assert.Equal(5_000_000_000, found.EffectiveLimits.MonthlyTokens);
        Assert.Equal((60, 90_000), (found.EffectiveLimits.Rpm, found.EffectiveLimits.Tpm));
        Assert.Equal(["gpt-4o", "cheap/mini"], found.EffectiveLimits.Models!);

        var rotated = await Storage.Keys.RotateAsync(found.Id, Ct);
        Assert.NotNull(rotated);
        Assert.Null(await Storage.Keys.FindByHashAsync(ApiKeys.Hash(created.Key), Ct));
        Assert.Equal(found.Id, (await Storage.Keys.FindByHashAsync(ApiKeys.Hash(rotated.Key), Ct))?.Id);

        var updated = await Storage.Keys.UpdateLimitsAsync(found.Id, KeyLimits.None, null, Ct);
        Assert.NotNull(updated);
        Assert.Null(updated.Limits);
        Assert.Null(updated.ExpiresAt);

        Assert.True(await Storage.Keys.RevokeAsync(found.Id, Ct));
        Assert.False(await Storage.Keys.RevokeAsync(found.Id, Ct));
        Assert.NotNull((await Storage.Keys.FindByHashAsync(ApiKeys.Hash(rotated.Key), Ct))?.RevokedAt);
        Assert.Null(await Storage.Keys.RotateAsync(found.Id, Ct));
        Assert.Null(await Storage.Keys.UpdateLimitsAsync(found.Id, KeyLimits.None, null, Ct));
        Assert.Null(await Storage.Keys.FindByHashAsync(ApiKeys.Hash("tg-never-issued"), Ct));
    }

    [Fact]
    public async Task ChangeStamp_MovesOnKeyAndTenantChanges_NotOnLedgerWrites()
    {
        var stamps = new List<long> { await Storage.Keys.GetChangeStampAsync(Ct) };
        var key = await Storage.Keys.CreateAsync("stamped", Ct);
        stamps.Add(await Storage.Keys.GetChangeStampAsync(Ct));
        var tenant = await Storage.Tenants.CreateAsync("t", null, Ct);
        stamps.Add(await Storage.Keys.GetChangeStampAsync(Ct));
        await Storage.Tenants.UpdateAsync(tenant.Id, null, clearPlan: false, suspended: true, Ct);
        stamps.Add(await Storage.Keys.GetChangeStampAsync(Ct));
        await Storage.Keys.RevokeAsync(key.Record.Id, Ct);
        stamps.Add(await Storage.Keys.GetChangeStampAsync(Ct));

        for (var i = 1; i < stamps.Count; i++)
        {
            Assert.True(stamps[i] > stamps[i - 1], $"change {i} did not move the stamp: {string.Join(", ", stamps)}");
        }

        await Storage.Ledger.AppendAsync([Row("default", "k", "m", "2026-11-02T10:00:00Z", 1, 1, 0.001m)], Ct);
        Assert.Equal(stamps[^1], await Storage.Keys.GetChangeStampAsync(Ct));
    }

    [Fact]
    public async Task AdminKeyHash_IsStoredAndReplaced()
    {
        Assert.Null(await Storage.Keys.GetAdminKeyHashAsync(Ct));
        await Storage.Keys.SetAdminKeyHashAsync("first", Ct);
        await Storage.Keys.SetAdminKeyHashAsync("second", Ct);
        Assert.Equal("second", await Storage.Keys.GetAdminKeyHashAsync(Ct));
    }

    [Fact]
    public async Task AdminKeyHash_FirstInitializerWins_AndOnlyItsKeyIsAnnounced()
    {
        Assert.True(await Storage.Keys.TryInitializeAdminKeyHashAsync("from-instance-a", Ct));
        Assert.False(await Storage.Keys.TryInitializeAdminKeyHashAsync("from-instance-b", Ct));
        Assert.Equal("from-instance-a", await Storage.Keys.GetAdminKeyHashAsync(Ct));

        // What a second instance starting at the same moment does: it finds the first one's hash and announces nothing.
        var announced = new List<string>();
        var hash = await Tollgate.Server.Hosting.GatewayStartup.ResolveAdminKeyHashAsync(
            new LateReader(Storage.Keys), new Tollgate.Configuration.SecretSource(new Dictionary<string, string>()), announced.Add, Ct);
        Assert.Equal("from-instance-a", hash);
        Assert.Empty(announced);
    }

    [Fact]
    public async Task Tenants_CreateListUpdate()
    {
        var tenant = await Storage.Tenants.CreateAsync("globex", "pro", Ct);
        Assert.Equal(tenant, (await Storage.Tenants.ListAsync(Ct)).Single(t => t.Id == tenant.Id));

        var suspended = await Storage.Tenants.UpdateAsync(tenant.Id, null, clearPlan: false, suspended: true, Ct);
        Assert.Equal(("pro", true), (suspended?.Plan, suspended?.Suspended ?? false));
        var replanned = await Storage.Tenants.UpdateAsync(tenant.Id, "starter", clearPlan: false, suspended: null, Ct);
        Assert.Equal(("starter", true), (replanned?.Plan, replanned?.Suspended ?? false));
        var cleared = await Storage.Tenants.UpdateAsync(tenant.Id, null, clearPlan: true, suspended: false, Ct);
        Assert.Equal((null, false), (cleared?.Plan, cleared?.Suspended ?? true));
        Assert.Null(await Storage.Tenants.UpdateAsync("ten_missing", "pro", clearPlan: false, suspended: null, Ct));
    }

    [Fact]
    public async Task Ledger_SumsPastInt64Picodollars_Exactly()
    {
        // Each row costs USD 5,000,000.000000000001; three of them pass 2^63 picodollars (USD 9.2 million).
        var huge = 5_000_000.000000000001m;
        await Storage.Ledger.AppendAsync(
        [
            Row("default", "k", "m", "2026-11-03T00:00:00Z", 10, 20, huge),
            Row("default", "k", "m", "2026-11-03T00:00:01Z", 10, 20, huge),
            Row("default", "k", "m", "2026-11-03T00:00:02Z", 10, 20, huge),
        ], Ct);

        var rows = await Storage.Ledger.QueryAsync(new UsageQuery(Day("2026-11-01"), Day("2026-12-01"), null, UsageGrouping.Model), Ct);
        Assert.Equal(15_000_000.000000000003m, Assert.Single(rows).CostUsd);
        var totals = Assert.Single(await Storage.Ledger.MonthTotalsAsync(Day("2026-11-01"), Ct));
        Assert.Equal(15_000_000.000000000003m, totals.CostUsd);
        Assert.Equal(90, totals.Tokens);
    }

    [Fact]
    public async Task Ledger_ProviderReportedCost_RoundTripsAndIsComparedOverTheSameRows()
    {
        // OpenRouter's own figure beside a stale price table; a provider that reports nothing; a reported cost finer than
        // a picodollar (12.5, rounded half to even as cost_pusd is); a reported cost of a row our prices cannot price.
        await Storage.Ledger.AppendAsync(
        [
            Row("default", "k", "or", "2026-11-05T10:00:00Z", 194, 2, 0.000458m) with { RequestId = "req_reported", ProviderReportedCostPicoUsd = Money.ReportedToPico(0.000687m) },
            Row("default", "k", "plain", "2026-11-05T10:01:00Z", 12, 7, 0.000026m) with { RequestId = "req_silent" },
            Row("default", "k", "or", "2026-11-05T10:02:00Z", 1, 0, 0.000001m) with { RequestId = "req_fine", ProviderReportedCostPicoUsd = Money.ReportedToPico(0.0000000000125m) },
            Row("default", "k", "or-unpriced", "2026-11-05T10:03:00Z", 5, 5, null) with { RequestId = "req_unpriced", ProviderReportedCostPicoUsd = Money.ReportedToPico(0.001m) },
        ], Ct);

        var stored = await ReadProviderReportedCostsAsync();
        var from = Day("2026-11-01");
        var until = Day("2026-12-01");
        var byModel = (await Storage.Ledger.QueryAsync(new UsageQuery(from, until, null, UsageGrouping.Model), Ct)).ToDictionary(r => r.Model!);
        var whole = Assert.Single(await Storage.Ledger.QueryAsync(new UsageQuery(from, until, null, UsageGrouping.None), Ct));
        var report = UsageReports.Build(new ReportQuery(from, until, null, [ReportDimension.Model]), await Storage.Billing.FactsAsync(from, until, null, Ct));
        var reportByModel = report.Rows.ToDictionary(r => r.Model!);

        Assert.Equal(new Dictionary<string, long?> { ["req_reported"] = 687_000_000, ["req_silent"] = null, ["req_fine"] = 12, ["req_unpriced"] = 1_000_000_000 }, stored);
        Assert.Equal<(decimal?, long, decimal?)>((0.000687000012m, 2, 0.000459m), Reported(byModel["or"]));
        Assert.Equal<(decimal?, long, decimal?)>((null, 0, null), Reported(byModel["plain"]));
        Assert.Equal<(decimal?, long, decimal?)>((0.001m, 1, null), Reported(byModel["or-unpriced"]));
        Assert.Equal<(decimal?, long, decimal?)>((0.001687000012m, 3, null), Reported(whole));
        Assert.Equal(0.000485m, whole.CostUsd);
        Assert.Equal<(decimal?, long, decimal?)>(Reported(byModel["or"]), Reported(reportByModel["or"]));
        Assert.Equal<(decimal?, long, decimal?)>(Reported(byModel["plain"]), Reported(reportByModel["plain"]));
        Assert.Equal<(decimal?, long, decimal?)>(Reported(byModel["or-unpriced"]), Reported(reportByModel["or-unpriced"]));
        Assert.Equal<(decimal?, long, decimal?)>(Reported(whole), Reported(report.Totals));
    }

    [Fact]
    public async Task Invoices_AreWrittenOnce_AndListedInOrder()
    {
        var first = new StoredInvoice("inv_2026-10_default_1", "default", "2026-10", 1, new DateTimeOffset(2026, 11, 1, 0, 5, 0, TimeSpan.Zero), 7_500_009.000000000003m, """{"total":"7500009.000000000003"}""");
        var second = first with { Id = "inv_2026-10_default_2", Version = 2, TotalDueUsd = 12.50m };
        Assert.True(await Storage.Billing.TryAddInvoiceAsync(first, Ct));
        Assert.False(await Storage.Billing.TryAddInvoiceAsync(first, Ct));
        Assert.False(await Storage.Billing.TryAddInvoiceAsync(first with { Id = "inv_other" }, Ct));
        Assert.True(await Storage.Billing.TryAddInvoiceAsync(second, Ct));
        Assert.True(await Storage.Billing.TryAddInvoiceAsync(first with { Id = "inv_2026-09_default_1", Month = "2026-09" }, Ct));

        Assert.Equal(first, await Storage.Billing.GetInvoiceAsync(first.Id, Ct));
        Assert.Equal("12.50", (await Storage.Billing.GetInvoiceAsync(second.Id, Ct))!.TotalDueUsd.ToString(CultureInfo.InvariantCulture));
        Assert.Equal(["inv_2026-10_default_1", "inv_2026-10_default_2"], (await Storage.Billing.ListInvoicesAsync("default", "2026-10", Ct)).Select(i => i.Id));
        Assert.Equal(["inv_2026-09_default_1", "inv_2026-10_default_1", "inv_2026-10_default_2"], (await Storage.Billing.ListInvoicesAsync(null, null, Ct)).Select(i => i.Id));
        Assert.Empty(await Storage.Billing.ListInvoicesAsync("ten_other", null, Ct));
        Assert.Null(await Storage.Billing.GetInvoiceAsync("inv_missing", Ct));
    }

    /// <summary>
    /// The reference answers: the same random ledger (fixed seed: requests, failures, unknown prices, extra billed
    /// attempts, rows on the month's edges) written to this database and to a fresh SQLite file must read the same
    /// through every report the gateway has.
    /// </summary>
    [Fact]
    public async Task Reports_OverARandomLedger_MatchTheEmbeddedDatabase()
    {
        var rows = RandomLedger(seed: 20261123, count: 600);
        await Storage.Ledger.AppendAsync(rows, Ct);
        var directory = Directory.CreateTempSubdirectory("tollgate-contract-").FullName;
        await using var reference = GatewayStorage.Sqlite(directory, TimeProvider.System);
        await reference.MigrateAsync(Ct);
        await reference.Ledger.AppendAsync(rows, Ct);

        var from = Day("2026-10-01");
        var until = Day("2026-12-01");
        var whole = Assert.Single(await Storage.Ledger.QueryAsync(new UsageQuery(from, until, null, UsageGrouping.None), Ct));
        Assert.Equal(rows.Count(r => r.AttemptKind == LedgerAttemptKind.Answer && r.TimestampMs < until.ToUnixTimeMilliseconds()), whole.Requests);
        foreach (var grouping in Enumerable.Range(0, 32).Select(g => (UsageGrouping)g))
        {
            foreach (var tenant in new[] { null, "ten_a" })
            {
                var query = new UsageQuery(from, until, tenant, grouping);
                Assert.Equal(await reference.Ledger.QueryAsync(query, Ct), await Storage.Ledger.QueryAsync(query, Ct));
            }
        }

        Assert.Equal(
            Sorted(await reference.Billing.FactsAsync(from, until, null, Ct)),
            Sorted(await Storage.Billing.FactsAsync(from, until, null, Ct)));
        Assert.Equal(
            Sorted(await reference.Billing.FactsAsync(from, until, "ten_b", Ct)),
            Sorted(await Storage.Billing.FactsAsync(from, until, "ten_b", Ct)));
        Assert.Equal(
            (await reference.Ledger.MonthTotalsAsync(Day("2026-11-01"), Ct)).OrderBy(t => t.KeyId, StringComparer.Ordinal),
            (await Storage.Ledger.MonthTotalsAsync(Day("2026-11-01"), Ct)).OrderBy(t => t.KeyId, StringComparer.Ordinal));
        Assert.Equal(
            (await reference.Billing.TenantsWithUsageAsync(Day("2026-11-01"), until, Ct)).Order(StringComparer.Ordinal),
            (await Storage.Billing.TenantsWithUsageAsync(Day("2026-11-01"), until, Ct)).Order(StringComparer.Ordinal));
        foreach (var included in new long[] { 0, 1_000, 250_000, long.MaxValue / 2 })
        {
            Assert.Equal(
                await reference.Billing.InvoiceUsageAsync("ten_a", Day("2026-11-01"), until, included, Ct),
                await Storage.Billing.InvoiceUsageAsync("ten_a", Day("2026-11-01"), until, included, Ct));
        }

        Directory.Delete(directory, recursive: true);
    }

    /// <summary>Answers the first admin-key read as if nothing were stored yet: the read of an instance that lost the race.</summary>
    private sealed class LateReader(IKeyStore inner) : IKeyStore
    {
        private bool _read;

        public async Task<string?> GetAdminKeyHashAsync(CancellationToken cancellationToken)
        {
            var stored = await inner.GetAdminKeyHashAsync(cancellationToken);
            var first = !_read;
            _read = true;
            return first ? null : stored;
        }

        public Task<bool> TryInitializeAdminKeyHashAsync(string hash, CancellationToken cancellationToken) => inner.TryInitializeAdminKeyHashAsync(hash, cancellationToken);

        public Task SetAdminKeyHashAsync(string hash, CancellationToken cancellationToken) => inner.SetAdminKeyHashAsync(hash, cancellationToken);

        public Task<ApiKeyRecord?> FindByHashAsync(string hash, CancellationToken cancellationToken) => inner.FindByHashAsync(hash, cancellationToken);

        public Task<CreatedApiKey> CreateAsync(string name, CancellationToken cancellationToken) => inner.CreateAsync(name, cancellationToken);

        public Task<CreatedApiKey> CreateAsync(NewApiKey spec, CancellationToken cancellationToken) => inner.CreateAsync(spec, cancellationToken);

        public Task<CreatedApiKey?> RotateAsync(string id, CancellationToken cancellationToken) => inner.RotateAsync(id, cancellationToken);

        public Task<ApiKeyRecord?> UpdateLimitsAsync(string id, KeyLimits limits, DateTimeOffset? expiresAt, CancellationToken cancellationToken) =>
            inner.UpdateLimitsAsync(id, limits, expiresAt, cancellationToken);

        public Task<IReadOnlyList<ApiKeyRecord>> ListAsync(CancellationToken cancellationToken) => inner.ListAsync(cancellationToken);

        public Task<bool> RevokeAsync(string id, CancellationToken cancellationToken) => inner.RevokeAsync(id, cancellationToken);

        public Task<long> GetChangeStampAsync(CancellationToken cancellationToken) => inner.GetChangeStampAsync(cancellationToken);
    }

    private static List<LedgerFact> Sorted(IEnumerable<LedgerFact> facts) =>
        [.. facts.OrderBy(f => $"{f.Day}|{f.Tenant}|{f.Key}|{f.Model}|{f.Provider}|{f.Deployment}|{f.Status}|{f.IsRequest}|{f.HasUsage}|{f.CostKnown}|{f.BaselineKnown}|{f.ProviderCostReported}", StringComparer.Ordinal)];

    private static List<LedgerEntry> RandomLedger(int seed, int count)
    {
        var random = new Random(seed);
        var start = Day("2026-10-31").AddHours(23);
        var rows = new List<LedgerEntry>();
        for (var i = 0; i < count; i++)
        {
            var tenant = random.Next(3) switch { 0 => "ten_a", 1 => "ten_b", _ => "default" };
            var failed = random.Next(10) == 0;
            var kind = random.Next(12) switch { 0 => LedgerAttemptKind.Hedge, 1 => LedgerAttemptKind.Escalated, _ => LedgerAttemptKind.Answer };
            var deployment = failed && random.Next(2) == 0 ? null : "d" + random.Next(3).ToString(CultureInfo.InvariantCulture);
            var time = start.AddMinutes(random.Next(0, 60 * 24 * 31));
            rows.Add(new LedgerEntry
            {
                RequestId = "req_" + i.ToString(CultureInfo.InvariantCulture),
                TimestampMs = time.ToUnixTimeMilliseconds(),
                TenantId = tenant,
                KeyId = tenant + "_key" + random.Next(2).ToString(CultureInfo.InvariantCulture),
                Model = random.Next(2) == 0 ? "gpt-4o" : "claude-sonnet",
                Route = "gpt-4o",
                Provider = deployment is null ? null : "p" + deployment[1..],
                Deployment = deployment,
                Attempts = random.Next(1, 4),
                Usage = failed ? default : new UsageBuckets(random.Next(0, 50_000), random.Next(0, 5_000), random.Next(0, 100), random.Next(0, 100), random.Next(0, 4_000), random.Next(0, 300)),
                UsageSource = failed ? null : random.Next(5) == 0 ? UsageSource.Estimated : UsageSource.Reported,
                CostPicoUsd = failed || random.Next(15) == 0 ? null : random.NextInt64(0, 90_000_000_000),
                PricePicoUsd = kind != LedgerAttemptKind.Answer && random.Next(2) == 0 ? 0 : random.NextInt64(0, 120_000_000_000),
                BaselineCostPicoUsd = random.Next(6) == 0 ? null : random.NextInt64(0, 150_000_000_000),
                FirstByteMs = failed ? null : random.Next(10, 900),
                TotalMs = random.Next(10, 9_000),
                Status = failed ? (random.Next(2) == 0 ? 502 : 429) : 200,
                ErrorCode = failed ? "upstream_error" : null,
                Task = random.Next(3) == 0 ? "code" : null,
                AttemptKind = kind,
                Escalations = random.Next(8) == 0 ? 1 : 0,
                ProviderReportedCostPicoUsd = failed || random.Next(4) != 0 ? null : random.NextInt64(0, 95_000_000_000),
            });
        }

        return rows;
    }

    [Fact]
    public async Task DashboardSessions_AddFindRemove_RoundTripExactly()
    {
        var expires = new DateTimeOffset(2031, 5, 6, 7, 8, 9, TimeSpan.Zero);
        var admin = new DashboardSession(DashboardRole.Admin, null, null, expires);
        var tenant = new DashboardSession(DashboardRole.Tenant, ApiKeys.Hash("tg-some-key"), "ten_0123456789abcdef", expires);
        await Storage.Sessions.AddAsync("hash-admin", admin, Ct);
        await Storage.Sessions.AddAsync("hash-tenant", tenant, Ct);

        Assert.Equal(admin, await Storage.Sessions.FindAsync("hash-admin", Ct));
        Assert.Equal(tenant, await Storage.Sessions.FindAsync("hash-tenant", Ct));
        Assert.Null(await Storage.Sessions.FindAsync("hash-unknown", Ct));

        await Storage.Sessions.RemoveAsync("hash-admin", Ct);
        Assert.Null(await Storage.Sessions.FindAsync("hash-admin", Ct));
        Assert.Equal(tenant, await Storage.Sessions.FindAsync("hash-tenant", Ct));
    }

    protected static LedgerEntry Row(string tenant, string key, string model, string time, long input, long output, decimal? cost) => new()
    {
        RequestId = "req_" + Guid.NewGuid().ToString("N"),
        TimestampMs = DateTimeOffset.Parse(time, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal).ToUnixTimeMilliseconds(),
        TenantId = tenant,
        KeyId = key,
        Model = model,
        Usage = new UsageBuckets(input, 0, 0, 0, output, 0),
        UsageSource = UsageSource.Reported,
        CostPicoUsd = Money.ToPico(cost),
        Status = 200,
    };

    private static (decimal? ReportedUsd, long Rows, decimal? CostUsd) Reported(UsageRow row) =>
        (row.ProviderReportedCostUsd, row.ProviderReportedCostRequests, row.CostUsdWhereProviderReported);

    private static (decimal? ReportedUsd, long Rows, decimal? CostUsd) Reported(UsageReportRow row) =>
        (row.ProviderReportedCostUsd, row.ProviderReportedCostRequests, row.CostUsdWhereProviderReported);

    /// <summary>
    /// A ledger row as a release before the provider-reported cost wrote it: every column of the schema it had (SQLite
    /// migration 5, PostgreSQL migration 3), in SQL both databases take.
    /// </summary>
    protected static string PreviousSchemaRow(string requestId) => string.Create(CultureInfo.InvariantCulture, $"""
        INSERT INTO ledger (request_id, ts_ms, tenant_id, key_id, model, route, provider, deployment, attempts,
            input_uncached, input_cached, cache_write_5m, cache_write_1h, output_text, output_reasoning,
            usage_source, cost_pusd, price_pusd, first_byte_ms, total_ms, status, error_code,
            task, baseline_pusd, attempt_kind, escalations)
        VALUES ('{requestId}', {Day("2026-11-04").ToUnixTimeMilliseconds()}, 'default', 'k', 'or', 'or', 'openrouter', 'or-sonnet', 1,
            94, 0, 100, 0, 2, 0, 'reported', 458000000, 0, 120, 300, 200, NULL, NULL, 458000000, NULL, 0)
        """);

    /// <summary>
    /// What an upgraded ledger must show: the row the previous release wrote reads back with no provider-reported cost
    /// (null, not 0) and is still counted and priced; a row written now keeps the reported cost beside ours.
    /// </summary>
    protected static async Task AssertUpgradedLedgerAsync(GatewayStorage upgraded, string oldRequestId, Func<Task<Dictionary<string, long?>>> readStored)
    {
        await upgraded.Ledger.AppendAsync([Row("default", "k", "or", "2026-11-05T10:00:00Z", 194, 2, 0.000458m) with { RequestId = "req_new", ProviderReportedCostPicoUsd = 687_000_000 }], Ct);

        var stored = await readStored();
        var whole = Assert.Single(await upgraded.Ledger.QueryAsync(new UsageQuery(Day("2026-11-01"), Day("2026-12-01"), null, UsageGrouping.None), Ct));

        Assert.Equal(new Dictionary<string, long?> { [oldRequestId] = null, ["req_new"] = 687_000_000 }, stored);
        Assert.Equal(2, whole.Requests);
        Assert.Equal(0.000916m, whole.CostUsd);
        Assert.Equal<(decimal?, long, decimal?)>((0.000687m, 1, 0.000458m), Reported(whole));
    }

    private static DateTimeOffset Day(string day) => DateTimeOffset.Parse(day + "T00:00:00Z", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
}

/// <summary>The embedded database, in a fresh file per test.</summary>
public sealed class SqliteStoreContractTests : StoreContractTests
{
    private readonly string _directory = Directory.CreateTempSubdirectory("tollgate-sqlite-contract-").FullName;

    protected override Task<GatewayStorage> OpenAsync() => Task.FromResult(GatewayStorage.Sqlite(_directory, TimeProvider.System));

    protected override Task<Dictionary<string, long?>> ReadProviderReportedCostsAsync() => ReadProviderReportedCostsAsync(_directory);

    [Fact]
    public async Task Migrate_LedgerOfTheSchemaBefore_GainsTheProviderReportedCost_OldRowsReadNull()
    {
        var directory = Directory.CreateTempSubdirectory("tollgate-upgrade-").FullName;
        var previous = new Tollgate.Storage.Sqlite.SqliteDatabase(directory);
        await previous.MigrateAsync(lastVersion: 5, Ct);
        await using (var connection = await previous.OpenAsync(Ct))
        {
            await using var insert = connection.CreateCommand();
            insert.CommandText = PreviousSchemaRow("req_old");
            await insert.ExecuteNonQueryAsync(Ct);
        }

        await using (var upgraded = GatewayStorage.Sqlite(directory, TimeProvider.System))
        {
            await upgraded.MigrateAsync(Ct);
            var versions = await Tollgate.Tests.Tenancy.Tenants.QueryAsync(directory, "SELECT max(version) FROM schema_migrations", Ct);
            Assert.Equal(6L, Assert.Single(versions)[0]);
            await AssertUpgradedLedgerAsync(upgraded, "req_old", () => ReadProviderReportedCostsAsync(directory));
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(directory, recursive: true);
    }

    private static async Task<Dictionary<string, long?>> ReadProviderReportedCostsAsync(string directory)
    {
        var rows = await Tollgate.Tests.Tenancy.Tenants.QueryAsync(directory, "SELECT request_id, provider_reported_cost_pusd, typeof(provider_reported_cost_pusd) FROM ledger", Ct);

        // Money is an INTEGER in SQLite, never a REAL that merely looks whole.
        Assert.All(rows, r => Assert.Contains(r[2], new object?[] { "integer", "null" }));
        return rows.ToDictionary(r => (string)r[0]!, r => (long?)r[1]);
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }
}

/// <summary>A real PostgreSQL server, a fresh database per test.</summary>
[Collection(PostgresTests.Name)]
public sealed class PostgresStoreContractTests(PostgresServer server) : StoreContractTests
{
    private string _connectionString = string.Empty;

    protected override async Task<GatewayStorage> OpenAsync()
    {
        _connectionString = await server.CreateDatabaseAsync("contract");
        return GatewayStorage.Postgres(_connectionString, TimeProvider.System);
    }

    protected override Task<Dictionary<string, long?>> ReadProviderReportedCostsAsync() => ReadProviderReportedCostsAsync(_connectionString);

    [Fact]
    public async Task Migrate_LedgerOfTheSchemaBefore_GainsTheProviderReportedCost_OldRowsReadNull()
    {
        var connectionString = await server.CreateDatabaseAsync("upgrade");
        await using (var previous = new Tollgate.Storage.Postgres.PostgresDatabase(connectionString))
        {
            await previous.MigrateAsync(lastVersion: 3, Ct);
        }

        await ExecuteAsync(connectionString, PreviousSchemaRow("req_old"));
        await using var upgraded = GatewayStorage.Postgres(connectionString, TimeProvider.System);
        await upgraded.MigrateAsync(Ct);

        await using (var connection = new Npgsql.NpgsqlConnection(connectionString))
        {
            await connection.OpenAsync(Ct);
            await using var command = new Npgsql.NpgsqlCommand("SELECT max(version) FROM schema_migrations", connection);
            Assert.Equal(4, Convert.ToInt32(await command.ExecuteScalarAsync(Ct), CultureInfo.InvariantCulture));
        }

        await AssertUpgradedLedgerAsync(upgraded, "req_old", () => ReadProviderReportedCostsAsync(connectionString));
    }

    private static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new Npgsql.NpgsqlConnection(connectionString);
        await connection.OpenAsync(Ct);
        await using var command = new Npgsql.NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(Ct);
    }

    private static async Task<Dictionary<string, long?>> ReadProviderReportedCostsAsync(string connectionString)
    {
        await using var connection = new Npgsql.NpgsqlConnection(connectionString);
        await connection.OpenAsync(Ct);
        await using var command = new Npgsql.NpgsqlCommand("SELECT request_id, provider_reported_cost_pusd FROM ledger", connection);
        await using var reader = await command.ExecuteReaderAsync(Ct);
        var costs = new Dictionary<string, long?>();
        while (await reader.ReadAsync(Ct))
        {
            costs[reader.GetString(0)] = reader.IsDBNull(1) ? null : reader.GetInt64(1);
        }

        return costs;
    }

    [Fact]
    public async Task Migrate_FromSeveralInstancesAtOnce_AppliesEachMigrationOnce()
    {
        var connectionString = await server.CreateDatabaseAsync("race");
        var instances = Enumerable.Range(0, 4).Select(_ => GatewayStorage.Postgres(connectionString, TimeProvider.System)).ToList();
        try
        {
            await Task.WhenAll(instances.Select(i => i.MigrateAsync(Ct)));
            Assert.Single(await instances[0].Tenants.ListAsync(Ct));
            var key = await instances[1].Keys.CreateAsync("shared", Ct);
            Assert.Equal(key.Record.Id, (await instances[3].Keys.FindByHashAsync(ApiKeys.Hash(key.Key), Ct))?.Id);
        }
        finally
        {
            foreach (var instance in instances)
            {
                await instance.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task LimitAndPlanChanges_WhoseCountersCannotBeDropped_AreNotSaved()
    {
        // New limits and plans count from the ledger, so their change drops the scope's limit counters. A change
        // whose counters stay must not be saved either, or the new limits would meet the old counters.
        var tenant = await Storage.Tenants.CreateAsync("initech", "starter", Ct);
        var key = (await Storage.Keys.CreateAsync(new NewApiKey("ci", tenant.Id, new KeyLimits(MonthlyTokens: 1_000)), Ct)).Record;
        await ExecuteAsync(_connectionString, """
            CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'counters are pinned'; END $$;
            CREATE TRIGGER pinned BEFORE DELETE ON limit_months FOR EACH STATEMENT EXECUTE FUNCTION refuse_delete();
            """);

        await Assert.ThrowsAsync<Npgsql.PostgresException>(() => Storage.Keys.UpdateLimitsAsync(key.Id, new KeyLimits(MonthlyTokens: 5), null, Ct));
        await Assert.ThrowsAsync<Npgsql.PostgresException>(() => Storage.Tenants.UpdateAsync(tenant.Id, "pro", clearPlan: false, suspended: null, Ct));

        Assert.Equal(1_000, (await Storage.Keys.ListAsync(Ct)).Single(k => k.Id == key.Id).EffectiveLimits.MonthlyTokens);
        Assert.Equal("starter", (await Storage.Tenants.ListAsync(Ct)).Single(t => t.Id == tenant.Id).Plan);
    }

    [Fact]
    public async Task IssuedInvoices_CannotBeChangedOrDeleted_EvenBySql()
    {
        var invoice = new StoredInvoice("inv_2026-10_default_1", "default", "2026-10", 1, DateTimeOffset.UnixEpoch, 1m, "{}");
        Assert.True(await Storage.Billing.TryAddInvoiceAsync(invoice, Ct));

        await using var connection = new Npgsql.NpgsqlConnection(_connectionString);
        await connection.OpenAsync(Ct);
        foreach (var sql in new[] { "UPDATE invoices SET total_due_usd = 0", "DELETE FROM invoices" })
        {
            await using var command = new Npgsql.NpgsqlCommand(sql, connection);
            var error = await Assert.ThrowsAsync<Npgsql.PostgresException>(() => command.ExecuteNonQueryAsync(Ct));
            Assert.Contains("immutable", error.MessageText, StringComparison.Ordinal);
        }

        Assert.Equal(invoice, await Storage.Billing.GetInvoiceAsync(invoice.Id, Ct));
    }
}

/// <summary>The tests that need PostgreSQL (and, for limit counters kept there, Redis): run one after another.</summary>
[CollectionDefinition(Name)]
public sealed class PostgresTests : ICollectionFixture<PostgresServer>, ICollectionFixture<RedisServer>
{
    public const string Name = "postgres";
}
