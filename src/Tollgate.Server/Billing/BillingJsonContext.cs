using System.Text.Json.Serialization;
using Tollgate.Billing;

namespace Tollgate.Server.Billing;

/// <summary>Source-generated JSON for the reports and invoices API: camelCase, null fields left out, decimals exact.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, WriteIndented = false)]
[JsonSerializable(typeof(UsageReport))]
[JsonSerializable(typeof(SavingsReport))]
[JsonSerializable(typeof(MarginReport))]
[JsonSerializable(typeof(Invoice))]
[JsonSerializable(typeof(IssueInvoicesRequest))]
[JsonSerializable(typeof(IssueInvoicesResponse))]
[JsonSerializable(typeof(InvoiceListResponse))]
[JsonSerializable(typeof(SavingsSummary))]
internal sealed partial class BillingJsonContext : JsonSerializerContext;

/// <summary>Body of <c>POST /admin/invoices/issue</c>.</summary>
/// <param name="Month"><c>yyyy-MM</c>, required.</param>
/// <param name="Tenant">Only this tenant (default: every tenant with a plan or usage that month).</param>
/// <param name="Reissue">Issue a new version even where one exists (default false: existing invoices are returned unchanged).</param>
internal sealed record IssueInvoicesRequest(string? Month, string? Tenant, bool? Reissue);

/// <param name="Issued">How many of <paramref name="Invoices"/> this call issued (the rest already existed).</param>
internal sealed record IssueInvoicesResponse(string Month, IReadOnlyList<Invoice> Invoices, int Issued);

internal sealed record InvoiceListResponse(IReadOnlyList<InvoiceSummary> Invoices);
