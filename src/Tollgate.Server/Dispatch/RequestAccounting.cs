using System.Diagnostics;
using Tollgate.Metering;
using Tollgate.Routing;
using Tollgate.Server.Auth;
using Tollgate.Server.Diagnostics;
using Tollgate.Server.Metering;
using Tollgate.Tenancy;

namespace Tollgate.Server.Dispatch;

/// <summary>
/// What one request owes and did, collected along the dispatch path and turned into its ledger row at
/// the end. <see cref="CommitAsync"/> settles (or releases) the limit reservation and waits until the row
/// is committed: callers write their last bytes only after that.
/// </summary>
internal sealed class RequestAccounting(HttpContext context, ClientKeyFeature caller, IUsageLimiter limiter, LedgerWriter ledger, GatewayMetrics metrics, TimeProvider time, ILogger logger)
{
    private readonly long _started = time.GetTimestamp();
    private readonly long _timestampMs = time.GetUtcNow().ToUnixTimeMilliseconds();
    private bool _committed;

    public ClientKeyFeature Caller { get; } = caller;

    public string Model { get; set; } = string.Empty;

    public string? Route { get; set; }

    /// <summary>The route's candidates, for the savings baseline (the most expensive of them).</summary>
    public Deployment[] RouteCandidates { get; set; } = [];

    /// <summary>The task the request was routed as, when the route routes by task.</summary>
    public string? Task { get; set; }

    /// <summary>Escalations after failed answer checks.</summary>
    public int Escalations { get; set; }

    public int Attempts { get; set; }

    public Reservation? Reservation { get; set; }

    public Deployment? Served { get; private set; }

    public long? FirstByteMs { get; private set; }

    /// <summary>The provider cost recorded in the ledger row (null: a needed price is unknown); set by <see cref="CommitAsync"/>.</summary>
    public decimal? CostUsd { get; private set; }

    /// <summary>Marks the deployment that answered, when its answer is about to be written (time since the request arrived).</summary>
    public void Answered(Deployment deployment)
    {
        Served = deployment;
        FirstByteMs = (long)time.GetElapsedTime(_started).TotalMilliseconds;
    }

    /// <summary>
    /// Writes the row of an attempt that used tokens without giving the answer (a hedge that lost, an answer that
    /// failed its check): same request id, its provider cost, no tenant price, and never counted as a request.
    /// Its cost is added to the tenant's month-to-date spend so budgets see it.
    /// </summary>
    public async Task CommitExtraAsync(Deployment deployment, MeteredUsage usage, LedgerAttemptKind kind, long firstByteMs)
    {
        var cost = CostCalculator.Cost(deployment.Prices, usage.Buckets);
        if (Reservation is { } reservation)
        {
            try
            {
                // An unknown cost is never counted as 0 against a budget: its bound is (see CostCalculator.Bound).
                await limiter.AddExtraCostAsync(reservation, cost ?? CostCalculator.Bound(deployment.Prices, usage.Buckets) ?? reservation.CostUsd).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsStorageFailure(ex))
            {
                // The row below still records the cost; only the budget counter misses it.
            }
        }

        metrics.ExtraAttempt(deployment, usage, cost);

        await ledger.CommitAsync(new LedgerEntry
        {
            RequestId = context.TraceIdentifier,
            TimestampMs = _timestampMs,
            TenantId = Caller.Tenant.Id,
            KeyId = Caller.Key.Id,
            Model = Model,
            Route = Route,
            Provider = deployment.Provider.Name,
            Deployment = deployment.Id,
            Attempts = 1,
            Usage = usage.Buckets,
            UsageSource = usage.Source,
            CostPicoUsd = Money.ToPico(cost),
            BaselineCostPicoUsd = Money.ToPico(cost),
            PricePicoUsd = 0,
            FirstByteMs = firstByteMs,
            TotalMs = (long)time.GetElapsedTime(_started).TotalMilliseconds,
            Status = 200,
            ErrorCode = kind == LedgerAttemptKind.Hedge ? "hedge_cancelled" : "escalated",
            Task = Task,
            AttemptKind = kind,
            ProviderReportedCostPicoUsd = Money.ReportedToPico(usage.ProviderReportedCostUsd),
        }).ConfigureAwait(false);
    }

    /// <summary>Gives the reservation back when the request ended without a row (an unexpected exception).</summary>
    public async ValueTask ReleaseIfUncommittedAsync()
    {
        if (!_committed && Reservation is { } reservation)
        {
            try
            {
                await limiter.ReleaseAsync(reservation).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsStorageFailure(ex))
            {
                // Already on a failure path; an unreachable database's hold expires by itself.
            }
        }
    }

    /// <summary>What an unreachable or refusing database throws (SQLite, PostgreSQL, the ledger writer stopped).</summary>
    internal static bool IsStorageFailure(Exception ex) =>
        ex is System.Data.Common.DbException or IOException or InvalidOperationException or TimeoutException;

    /// <summary>
    /// Settles the reservation to <paramref name="usage"/> (null: nothing was used, release it), writes the
    /// row and waits for its commit. False when the ledger could not be written: the caller must not
    /// present the request as a success.
    /// </summary>
    public async Task<bool> CommitAsync(int status, string? errorCode, MeteredUsage? usage)
    {
        if (_committed)
        {
            return true;
        }

        _committed = true;
        decimal? cost = 0m;
        decimal? baseline = null;
        if (usage is not null && Served is { } deployment)
        {
            cost = CostCalculator.Cost(deployment.Prices, usage.Buckets);
            baseline = RouteCandidates.Length > 1 ? CostCalculator.Baseline(RouteCandidates, usage.Buckets) : cost;
        }

        CostUsd = cost;

        var price = 0L;
        var settled = true;
        if (Reservation is { } reservation)
        {
            try
            {
                if (usage is null)
                {
                    await limiter.ReleaseAsync(reservation).ConfigureAwait(false);
                }
                else
                {
                    // An unknown cost settles at its bound (see CostCalculator.Bound), not at the reservation's worst
                    // case, which also covers attempts that are counted on their own (AddExtraCostAsync).
                    var counted = cost ?? (Served is { } served ? CostCalculator.Bound(served.Prices, usage.Buckets) : null);
                    price = await limiter.SettleAsync(reservation, usage.Buckets.Total, counted).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (IsStorageFailure(ex))
            {
                // The shared database is unreachable: the hold stays (and expires), and the row below most likely
                // cannot be written either. Without a settled price the request is not presented as a success.
                Log.LimitsUnavailable(logger, context.TraceIdentifier, usage is null ? "release" : "settle", ex.Message);
                settled = false;
            }
        }

        var entry = new LedgerEntry
        {
            RequestId = context.TraceIdentifier,
            TimestampMs = _timestampMs,
            TenantId = Caller.Tenant.Id,
            KeyId = Caller.Key.Id,
            Model = Model,
            Route = Route,
            Provider = Served?.Provider.Name,
            Deployment = Served?.Id,
            Attempts = Attempts,
            Usage = usage?.Buckets ?? default,
            UsageSource = usage?.Source,
            CostPicoUsd = usage is null ? 0 : Money.ToPico(cost),
            PricePicoUsd = price,
            FirstByteMs = FirstByteMs,
            TotalMs = (long)time.GetElapsedTime(_started).TotalMilliseconds,
            Status = status,
            ErrorCode = errorCode,
            Task = Task,
            BaselineCostPicoUsd = Money.ToPico(baseline),
            Escalations = Escalations,
            ProviderReportedCostPicoUsd = Money.ReportedToPico(usage?.ProviderReportedCostUsd),
        };

        var committed = false;
        try
        {
            if (settled)
            {
                await ledger.CommitAsync(entry).ConfigureAwait(false);
                committed = true;
            }
        }
        catch (Exception ex) when (IsStorageFailure(ex))
        {
            committed = false;
        }

        // Telemetry tells what the client gets: without its row a request is answered 500 ledger_unavailable and
        // billed nothing, though the provider's tokens and cost were spent all the same.
        var outcome = committed ? status : StatusCodes.Status500InternalServerError;
        metrics.Request(Route, Served, outcome, usage, cost, committed ? price : 0);
        if (Activity.Current is { } span)
        {
            RequestSpan.Describe(span, context.TraceIdentifier, Model, Route, Served, Attempts, outcome, committed ? errorCode : "ledger_unavailable", usage, cost);
        }

        return committed;
    }
}
