using System.Globalization;
using System.Text.Json.Serialization;
using Tollgate.Configuration;
using Tollgate.Metering;
using Tollgate.Tenancy;

namespace Tollgate.Billing;

/// <summary>
/// A tenant's bill for one calendar month (UTC). Once issued it is a snapshot: stored whole, never recomputed,
/// so later price, plan or ledger changes do not touch it; a re-issue is a new version with a new id.
/// </summary>
public sealed record Invoice
{
    /// <summary><c>inv_{month}_{tenant}_{version}</c>; empty on a draft.</summary>
    public required string Id { get; init; }

    public required string Tenant { get; init; }

    public required string TenantName { get; init; }

    /// <summary><c>yyyy-MM</c>.</summary>
    public required string Month { get; init; }

    /// <summary>1 for the first issue, n + 1 for each re-issue; 0 on a draft (never issued).</summary>
    public int Version { get; init; }

    public DateTimeOffset IssuedAt { get; init; }

    /// <summary>False when issued before the month was over: later usage of that month is not on it (re-issue after the month).</summary>
    public bool Final { get; init; }

    public string Currency { get; init; } = "USD";

    public DateTimeOffset PeriodStart { get; init; }

    /// <summary>Exclusive.</summary>
    public DateTimeOffset PeriodEnd { get; init; }

    /// <summary>The tenant's plan at issue time; null when it had none (no fee, nothing charged).</summary>
    public string? Plan { get; init; }

    public decimal PlanFeeUsd { get; init; }

    public long IncludedTokens { get; init; }

    /// <summary>Billable tokens: requests' own rows, plus extra attempt rows only when they were charged.</summary>
    public long TokensUsed { get; init; }

    /// <summary>max(0, <see cref="TokensUsed"/> − <see cref="IncludedTokens"/>); 0 without a plan.</summary>
    public long OverageTokens { get; init; }

    public decimal OveragePer1KTokensUsd { get; init; }

    /// <summary>
    /// What the gateway charged for the month's requests as it settled them (sum of ledger <c>price_pusd</c>),
    /// so the invoice agrees with the limiter: equal to <see cref="OverageTokens"/> × the plan's price unless the
    /// plan or its price changed during the month.
    /// </summary>
    public decimal OverageUsd { get; init; }

    /// <summary><see cref="PlanFeeUsd"/> + <see cref="OverageUsd"/>.</summary>
    public decimal TotalDueUsd { get; init; }

    public long Requests { get; init; }

    /// <summary>What the month's rows cost the gateway at its providers (known costs; extra attempts included).</summary>
    public decimal ProviderCostUsd { get; init; }

    /// <summary>Rows with usage whose provider cost is unknown (not in <see cref="ProviderCostUsd"/>).</summary>
    public long UnknownCostRequests { get; init; }

    /// <summary>One per model; their <see cref="InvoiceLine.AmountUsd"/> add up exactly to <see cref="OverageUsd"/>.</summary>
    public required List<InvoiceLine> Lines { get; init; }

    [JsonIgnore]
    public InvoiceSummary Summary => new(Id, Tenant, TenantName, Month, Version, IssuedAt, Final, TotalDueUsd);
}

/// <summary>One model's part of an invoice.</summary>
public sealed record InvoiceLine(string Model, long Requests, long Tokens, long OverageTokens, decimal AmountUsd, decimal ProviderCostUsd);

/// <summary>An invoice in lists.</summary>
public sealed record InvoiceSummary(string Id, string Tenant, string TenantName, string Month, int Version, DateTimeOffset IssuedAt, bool Final, decimal TotalDueUsd);

/// <summary>Computes invoices from a tenant, its plan and its month's usage.</summary>
public static class Invoices
{
    /// <summary>Parses <c>yyyy-MM</c> into the month's first instant (UTC).</summary>
    public static bool TryParseMonth(string? text, out DateTimeOffset start)
    {
        if (text is { Length: 7 } && DateOnly.TryParseExact(text + "-01", "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date) && date.Year >= 2000)
        {
            start = new DateTimeOffset(date.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
            return true;
        }

        start = default;
        return false;
    }

    public static string MonthName(DateTimeOffset monthStart) => monthStart.UtcDateTime.ToString("yyyy-MM", CultureInfo.InvariantCulture);

    public static string IdOf(string month, string tenantId, int version) =>
        string.Create(CultureInfo.InvariantCulture, $"inv_{month}_{tenantId}_{version}");

    /// <summary>The invoice of <paramref name="tenant"/> for the month starting at <paramref name="monthStart"/>.</summary>
    /// <param name="plan">The tenant's plan now (the snapshot), or null.</param>
    /// <param name="version">0 for a draft.</param>
    public static Invoice Compute(Tenant tenant, PlanOptions? plan, DateTimeOffset monthStart, IReadOnlyList<InvoiceModelUsage> usage, int version, DateTimeOffset issuedAt)
    {
        var month = MonthName(monthStart);
        var monthEnd = monthStart.AddMonths(1);
        var lines = usage
            .OrderBy(u => u.Model, StringComparer.Ordinal)
            .Select(u => new InvoiceLine(u.Model, u.Requests, u.Tokens, u.OverageTokens, u.PriceUsd, u.CostUsd))
            .ToList();
        var fee = Money.RoundToPico(plan?.MonthlyFeeUsd ?? 0m);
        var overage = usage.Sum(u => u.PriceUsd);
        return new Invoice
        {
            Id = version == 0 ? string.Empty : IdOf(month, tenant.Id, version),
            Tenant = tenant.Id,
            TenantName = tenant.Name,
            Month = month,
            Version = version,
            IssuedAt = issuedAt,
            Final = issuedAt >= monthEnd,
            PeriodStart = monthStart,
            PeriodEnd = monthEnd,
            Plan = plan is null ? null : tenant.Plan,
            PlanFeeUsd = fee,
            IncludedTokens = plan?.IncludedTokens ?? 0,
            TokensUsed = usage.Sum(u => u.Tokens),
            OverageTokens = usage.Sum(u => u.OverageTokens),
            OveragePer1KTokensUsd = plan?.OveragePer1KTokensUsd ?? 0m,
            OverageUsd = overage,
            TotalDueUsd = fee + overage,
            Requests = usage.Sum(u => u.Requests),
            ProviderCostUsd = usage.Sum(u => u.CostUsd),
            UnknownCostRequests = usage.Sum(u => u.UnknownCostRows),
            Lines = lines,
        };
    }
}
