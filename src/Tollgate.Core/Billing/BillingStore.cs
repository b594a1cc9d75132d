using Tollgate.Metering;

namespace Tollgate.Billing;

/// <summary>
/// What reports and invoices read and write. Reports read <see cref="LedgerFact"/>s (the ledger pre-aggregated
/// per day and every dimension a report can group by), so the grouping rules live in one place
/// (<see cref="ReportGrouping"/>) and not in SQL per report. Issued invoices are write-once rows.
/// </summary>
public interface IBillingStore
{
    /// <summary>Ledger rows in [<paramref name="start"/>, <paramref name="until"/>), optionally of one tenant, summed per fact key.</summary>
    Task<IReadOnlyList<LedgerFact>> FactsAsync(DateTimeOffset start, DateTimeOffset until, string? tenantId, CancellationToken cancellationToken);

    /// <summary>
    /// One tenant's month per model, for an invoice. A row is billable when it is a request's own row or an extra
    /// attempt row the tenant was charged for (<c>price_pusd</c> &gt; 0). Included tokens are used up in ledger
    /// order (<c>ts_ms</c>, then <c>seq</c>) by billable rows, so the per-model overage tokens add up exactly to
    /// max(0, billable tokens − <paramref name="includedTokens"/>).
    /// </summary>
    Task<IReadOnlyList<InvoiceModelUsage>> InvoiceUsageAsync(string tenantId, DateTimeOffset monthStart, DateTimeOffset monthEnd, long includedTokens, CancellationToken cancellationToken);

    /// <summary>Tenant ids with at least one ledger row in [<paramref name="start"/>, <paramref name="until"/>).</summary>
    Task<IReadOnlySet<string>> TenantsWithUsageAsync(DateTimeOffset start, DateTimeOffset until, CancellationToken cancellationToken);

    /// <summary>Stores an issued invoice; false when (tenant, month, version) or the id already exists (issued concurrently).</summary>
    Task<bool> TryAddInvoiceAsync(StoredInvoice invoice, CancellationToken cancellationToken);

    /// <summary>Issued invoices, every version, ordered by month, tenant and version; null filters match all.</summary>
    Task<IReadOnlyList<StoredInvoice>> ListInvoicesAsync(string? tenantId, string? month, CancellationToken cancellationToken);

    Task<StoredInvoice?> GetInvoiceAsync(string id, CancellationToken cancellationToken);
}

/// <summary>
/// Ledger rows summed per (UTC day, tenant, key, model, provider, deployment, status, row kind and which
/// amounts are known): the finest grain any report groups by, so every report is a roll-up of these.
/// </summary>
public sealed record LedgerFact
{
    /// <summary>UTC day, <c>yyyy-MM-dd</c>.</summary>
    public required string Day { get; init; }

    public required string Tenant { get; init; }

    public required string Key { get; init; }

    public required string Model { get; init; }

    /// <summary>Empty when no provider was reached.</summary>
    public string Provider { get; init; } = string.Empty;

    /// <summary>Empty when no deployment was chosen.</summary>
    public string Deployment { get; init; } = string.Empty;

    public int Status { get; init; }

    /// <summary>True for requests' own rows (<c>attempt_kind</c> NULL); false for extra billed attempts (hedge, escalated).</summary>
    public bool IsRequest { get; init; }

    /// <summary>True when usage was recorded (the request got an answer).</summary>
    public bool HasUsage { get; init; }

    public bool CostKnown { get; init; }

    public bool BaselineKnown { get; init; }

    /// <summary>True when the provider reported its own cost of these rows (<c>provider_reported_cost_pusd</c> not null).</summary>
    public bool ProviderCostReported { get; init; }

    public long Rows { get; init; }

    /// <summary>Rows with more than one attempt.</summary>
    public long Failovers { get; init; }

    public long Escalations { get; init; }

    public UsageBuckets Usage { get; init; }

    /// <summary>Provider cost of these rows, 0 when not <see cref="CostKnown"/>.</summary>
    public decimal CostUsd { get; init; }

    public decimal PriceUsd { get; init; }

    /// <summary>Stored default baseline (route's most expensive candidate), 0 when not <see cref="BaselineKnown"/>.</summary>
    public decimal BaselineUsd { get; init; }

    /// <summary>What the provider said these rows cost, 0 when not <see cref="ProviderCostReported"/>.</summary>
    public decimal ProviderReportedCostUsd { get; init; }
}

/// <summary>One model's share of a tenant's month (see <see cref="IBillingStore.InvoiceUsageAsync"/>).</summary>
/// <param name="Tokens">Billable tokens.</param>
/// <param name="OverageTokens">Billable tokens beyond the included tokens.</param>
/// <param name="PriceUsd">What the limiter charged (sum of <c>price_pusd</c>), every row.</param>
/// <param name="CostUsd">Known provider cost, every row (extra attempts included).</param>
/// <param name="UnknownCostRows">Rows with usage but no known cost.</param>
public sealed record InvoiceModelUsage(string Model, long Requests, long Tokens, long OverageTokens, decimal PriceUsd, decimal CostUsd, long UnknownCostRows);

/// <summary>An issued invoice as stored: a few columns to list and filter by, and the full snapshot as a JSON document.</summary>
public sealed record StoredInvoice(string Id, string TenantId, string Month, int Version, DateTimeOffset IssuedAt, decimal TotalDueUsd, string Document);
