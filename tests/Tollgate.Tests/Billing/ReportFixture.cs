using Tollgate.Metering;
using static Tollgate.Tests.Billing.BillingRig;

namespace Tollgate.Tests.Billing;

/// <summary>
/// One gateway with a fixed October 2026 ledger, shared by the read-only report tests:
/// <list type="bullet">
/// <item>r1 acme/kA gpt-4o d0 10-05: 1000 in, 500 out, cost 0.002, baseline 0.004.</item>
/// <item>r2 acme/kA gpt-4o d1 10-12: failover (2 attempts), 2000/1000, cost 0.008, price 0.01, baseline 0.008.</item>
/// <item>r3 globex/kB cheap d0 10-12: 502 after 2 attempts, no usage.</item>
/// <item>r4 globex/kB cheap d0 10-31 23:59:59: 100/100, cost 0.0003, price 0.0005, baseline 0.0006.</item>
/// <item>r5 acme/kA gpt-4o d0 10-12: hedge of r2 (extra attempt row), 2000/300, cost 0.0026, no baseline.</item>
/// <item>r7 globex/kB2 mystery nop 10-20: 10/10, cost unknown, baseline unknown.</item>
/// <item>r6 acme/kA gpt-4o d0 2026-11-01 00:00: outside October.</item>
/// </list>
/// </summary>
public sealed class ReportFixture : IAsyncLifetime
{
    public BillingRig Rig { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        var ct = TestContext.Current.CancellationToken;
        Rig = await StartAsync(ct);
        await Rig.AppendAsync(
            ct,
            Row("acme", "kA", "gpt-4o", "d0", "2026-10-05T10:00:00Z", 1000, 500, 0.002m, baseline: 0.004m),
            Row("acme", "kA", "gpt-4o", "d1", "2026-10-12T08:00:00Z", 2000, 1000, 0.008m, price: 0.01m, baseline: 0.008m, attempts: 2),
            Row("globex", "kB", "cheap", "d0", "2026-10-12T09:00:00Z", 0, 0, null, status: 502, attempts: 2, usage: false),
            Row("globex", "kB", "cheap", "d0", "2026-10-31T23:59:59Z", 100, 100, 0.0003m, price: 0.0005m, baseline: 0.0006m),
            Row("acme", "kA", "gpt-4o", "d0", "2026-10-12T08:00:00Z", 2000, 300, 0.0026m, kind: LedgerAttemptKind.Hedge),
            Row("globex", "kB2", "mystery", "nop", "2026-10-20T12:00:00Z", 10, 10, null),
            Row("acme", "kA", "gpt-4o", "d0", "2026-11-01T00:00:00Z", 1, 1, 0.000003m, baseline: 0.000006m));
    }

    public async ValueTask DisposeAsync() => await Rig.DisposeAsync();
}
