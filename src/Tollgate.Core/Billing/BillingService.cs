using System.Text.Json;
using System.Text.Json.Serialization;
using Tollgate.Configuration;
using Tollgate.Routing;
using Tollgate.Tenancy;

namespace Tollgate.Billing;

/// <summary>
/// Reports and invoices, shared by the admin API, <c>/v1/invoices</c> and the CLI so that all three give the same
/// numbers. Works on the stores only (the CLI runs it against the database file without a server).
/// </summary>
public sealed class BillingService(IBillingStore store, ITenantStore tenants, TollgateOptions options, Catalog catalog, TimeProvider time)
{
    /// <summary>Most months one margin report covers; each month without an issued invoice is a ledger query per tenant.</summary>
    public const int MaxMarginMonths = 120;

    public async Task<UsageReport> UsageAsync(ReportQuery query, CancellationToken cancellationToken)
    {
        var facts = await store.FactsAsync(query.From, query.To, query.TenantId, cancellationToken).ConfigureAwait(false);
        return UsageReports.Build(query, facts);
    }

    /// <summary>The baseline for a name (<c>route-max</c>, a route or a deployment id); null when the catalog has no such name.</summary>
    public SavingsBaseline? Baseline(string? name) => string.IsNullOrEmpty(name) ? SavingsBaseline.Default : SavingsBaseline.Named(name, catalog);

    public async Task<SavingsReport> SavingsAsync(ReportQuery query, SavingsBaseline baseline, CancellationToken cancellationToken)
    {
        var facts = await store.FactsAsync(query.From, query.To, query.TenantId, cancellationToken).ConfigureAwait(false);
        return SavingsReports.Build(query, baseline, facts);
    }

    /// <summary>The calendar months (UTC) a margin report covers: every month that overlaps [From, To) and has begun.</summary>
    public IReadOnlyList<DateTimeOffset> MarginMonths(ReportQuery query)
    {
        var months = new List<DateTimeOffset>();
        var now = time.GetUtcNow();
        for (var month = LimitRules.MonthStart(query.From); month < query.To && month <= now && months.Count <= MaxMarginMonths; month = month.AddMonths(1))
        {
            months.Add(month);
        }

        return months;
    }

    /// <summary>
    /// Margin over whole months (see <see cref="MarginMonths"/>): per tenant-month the latest issued invoice, or a
    /// draft computed the same way when none was issued. Tenants that would get no invoice (no plan, no usage) add nothing.
    /// </summary>
    public async Task<MarginReport> MarginAsync(ReportQuery query, CancellationToken cancellationToken)
    {
        var months = MarginMonths(query);
        var invoices = new List<Invoice>();
        foreach (var month in months)
        {
            var issued = await LatestIssuedAsync(query.TenantId, Invoices.MonthName(month), cancellationToken).ConfigureAwait(false);

            // Every issued invoice counts, also one of a tenant that would no longer get one (its plan was removed).
            invoices.AddRange(issued.Values);
            foreach (var tenant in await BillableTenantsAsync(month, query.TenantId, cancellationToken).ConfigureAwait(false))
            {
                if (!issued.ContainsKey(tenant.Id))
                {
                    invoices.Add(await ComputeAsync(tenant, month, 0, cancellationToken).ConfigureAwait(false));
                }
            }
        }

        var covered = months.Count == 0
            ? new ReportQuery(query.From, query.From, query.TenantId, query.GroupBy)
            : query with { From = months[0], To = months[^1].AddMonths(1) };
        return MarginReports.Build(covered, invoices);
    }

    /// <summary>
    /// Issues the invoices of <paramref name="month"/> for every billable tenant (a plan, or usage that month) or
    /// for the one named. An already issued invoice is returned unchanged unless <paramref name="reissue"/>, which
    /// stores version n + 1 (the earlier versions stay as they were).
    /// </summary>
    public async Task<IssueOutcome> IssueAsync(string? month, string? tenantId, bool reissue, CancellationToken cancellationToken)
    {
        if (!Invoices.TryParseMonth(month, out var monthStart))
        {
            return IssueOutcome.Invalid($"'month' must be a calendar month as yyyy-MM (e.g. 2026-11), got '{month}'.");
        }

        var now = time.GetUtcNow();
        if (monthStart > now)
        {
            return IssueOutcome.Invalid($"Month {month} has not begun; only past months or the current one (issued as not final) can be invoiced.");
        }

        List<Tenant> targets;
        if (tenantId is not null)
        {
            var tenant = (await tenants.ListAsync(cancellationToken).ConfigureAwait(false)).FirstOrDefault(t => t.Id == tenantId);
            if (tenant is null)
            {
                return IssueOutcome.NotFound($"No tenant has id '{tenantId}'.");
            }

            targets = [tenant];
        }
        else
        {
            targets = await BillableTenantsAsync(monthStart, null, cancellationToken).ConfigureAwait(false);
        }

        var monthName = Invoices.MonthName(monthStart);
        var result = new List<Invoice>();
        var issued = 0;
        foreach (var tenant in targets.OrderBy(t => t.Id, StringComparer.Ordinal))
        {
            var versions = await store.ListInvoicesAsync(tenant.Id, monthName, cancellationToken).ConfigureAwait(false);
            var existing = versions.Count > 0 ? versions[^1] : null;
            if (existing is not null && !reissue)
            {
                result.Add(Read(existing));
                continue;
            }

            var invoice = await ComputeAsync(tenant, monthStart, (existing?.Version ?? 0) + 1, cancellationToken).ConfigureAwait(false);
            var stored = new StoredInvoice(invoice.Id, invoice.Tenant, invoice.Month, invoice.Version, invoice.IssuedAt, invoice.TotalDueUsd, JsonSerializer.Serialize(invoice, InvoiceJsonContext.Default.Invoice));
            if (!await store.TryAddInvoiceAsync(stored, cancellationToken).ConfigureAwait(false))
            {
                return IssueOutcome.Conflict($"Invoice {invoice.Id} was issued concurrently; list the invoices and retry.");
            }

            result.Add(invoice);
            issued++;
        }

        return new IssueOutcome(monthName, result, issued, null, IssueError.None);
    }

    /// <summary>Issued invoices (every version), optionally of one tenant and/or month.</summary>
    public async Task<IReadOnlyList<InvoiceSummary>> ListAsync(string? tenantId, string? month, CancellationToken cancellationToken)
    {
        var stored = await store.ListInvoicesAsync(tenantId, month, cancellationToken).ConfigureAwait(false);
        return [.. stored.Select(s => Read(s).Summary)];
    }

    /// <summary>An issued invoice exactly as it was stored; null when no invoice has that id.</summary>
    public async Task<Invoice?> GetAsync(string id, CancellationToken cancellationToken) =>
        await store.GetInvoiceAsync(id, cancellationToken).ConfigureAwait(false) is { } stored ? Read(stored) : null;

    private static Invoice Read(StoredInvoice stored) =>
        JsonSerializer.Deserialize(stored.Document, InvoiceJsonContext.Default.Invoice)
        ?? throw new InvalidOperationException($"Invoice {stored.Id} has an empty document.");

    private async Task<Invoice> ComputeAsync(Tenant tenant, DateTimeOffset monthStart, int version, CancellationToken cancellationToken)
    {
        var plan = tenant.Plan is { } name && options.Plans.TryGetValue(name, out var p) ? p : null;

        // Without a plan nothing is included and nothing is overage: allocating against "all included" keeps overage tokens 0.
        var included = plan?.IncludedTokens ?? long.MaxValue;
        var usage = await store.InvoiceUsageAsync(tenant.Id, monthStart, monthStart.AddMonths(1), included, cancellationToken).ConfigureAwait(false);
        return Invoices.Compute(tenant, plan, monthStart, usage, version, time.GetUtcNow());
    }

    private async Task<Dictionary<string, Invoice>> LatestIssuedAsync(string? tenantId, string month, CancellationToken cancellationToken)
    {
        var latest = new Dictionary<string, Invoice>(StringComparer.Ordinal);
        foreach (var stored in await store.ListInvoicesAsync(tenantId, month, cancellationToken).ConfigureAwait(false))
        {
            latest[stored.TenantId] = Read(stored); // ordered by version: the last one wins
        }

        return latest;
    }

    /// <summary>Tenants that get an invoice for a month: those that existed before it ended and have a plan or used the gateway in it.</summary>
    private async Task<List<Tenant>> BillableTenantsAsync(DateTimeOffset monthStart, string? tenantId, CancellationToken cancellationToken)
    {
        var monthEnd = monthStart.AddMonths(1);
        var used = await store.TenantsWithUsageAsync(monthStart, monthEnd, cancellationToken).ConfigureAwait(false);
        var all = await tenants.ListAsync(cancellationToken).ConfigureAwait(false);
        return [.. all.Where(t => (tenantId is null || t.Id == tenantId) && (used.Contains(t.Id) || (t.Plan is not null && t.CreatedAt < monthEnd)))];
    }
}

/// <summary>Why issuing failed.</summary>
public enum IssueError
{
    None,
    Invalid,
    NotFound,
    Conflict,
}

/// <summary>The invoices of one issue call (new and already issued ones), or why it failed.</summary>
/// <param name="Issued">How many of <paramref name="Invoices"/> were issued by this call.</param>
public sealed record IssueOutcome(string Month, IReadOnlyList<Invoice> Invoices, int Issued, string? Problem, IssueError Error)
{
    public static IssueOutcome Invalid(string problem) => new(string.Empty, [], 0, problem, IssueError.Invalid);

    public static IssueOutcome NotFound(string problem) => new(string.Empty, [], 0, problem, IssueError.NotFound);

    public static IssueOutcome Conflict(string problem) => new(string.Empty, [], 0, problem, IssueError.Conflict);
}

/// <summary>The stored snapshot's format: the invoice as the API shows it (camelCase), decimals written exactly.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(Invoice))]
internal sealed partial class InvoiceJsonContext : JsonSerializerContext;
