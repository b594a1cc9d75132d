using Tollgate.Storage.Postgres;

namespace Tollgate.Tests.Tenancy;

/// <summary>The per-tenant gate in front of the PostgreSQL limiter: slots, order, clients that leave, and where a slot is handed on.</summary>
public sealed class TenantGateTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task FreeSlots_AreTakenAtOnce_ThenWaitersQueueInOrder()
    {
        var gate = new TenantGate(2);
        await gate.WaitAsync(Ct);
        await gate.WaitAsync(Ct);

        var first = gate.WaitAsync(Ct);
        var second = gate.WaitAsync(Ct);
        Assert.False(first.IsCompleted);
        Assert.False(second.IsCompleted);

        gate.Release();
        Assert.True(first.IsCompletedSuccessfully);
        Assert.False(second.IsCompleted);

        gate.Release();
        Assert.True(second.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task ASlot_IsHandedToTheNextWaiter_OnTheReleasingThread()
    {
        var gate = new TenantGate(1);
        await gate.WaitAsync(Ct);
        var continued = gate.WaitAsync(Ct).ContinueWith(_ => Environment.CurrentManagedThreadId, Ct, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        Assert.False(continued.IsCompleted);

        // SemaphoreSlim would queue the waiter to the thread pool; here it has run before Release returns.
        gate.Release();

        Assert.True(continued.IsCompletedSuccessfully);
        Assert.Equal(Environment.CurrentManagedThreadId, await continued);
    }

    [Fact]
    public async Task AWaiterWhoseClientLeft_IsSkipped_AndItsSlotGoesToTheNext()
    {
        var gate = new TenantGate(1);
        await gate.WaitAsync(Ct);
        using var leaves = new CancellationTokenSource();
        var leaving = gate.WaitAsync(leaves.Token);
        var staying = gate.WaitAsync(Ct);

        await leaves.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leaving);

        gate.Release();
        Assert.True(staying.IsCompletedSuccessfully);

        // The slot went to the waiter that stayed; when it is released, it is free again.
        gate.Release();
        Assert.True(gate.WaitAsync(Ct).IsCompletedSuccessfully);
    }

    [Fact]
    public async Task ReleasesWithNoWaiter_FreeTheSlot()
    {
        var gate = new TenantGate(1);
        await gate.WaitAsync(Ct);
        gate.Release();

        Assert.True(gate.WaitAsync(Ct).IsCompletedSuccessfully);
        Assert.False(gate.WaitAsync(Ct).IsCompleted);
    }
}
