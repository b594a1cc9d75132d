using Microsoft.AspNetCore.Http.HttpResults;
using Tollgate.Billing;
using Tollgate.Server.Auth;
using Tollgate.Server.Endpoints.Admin;
using Tollgate.Server.Errors;

namespace Tollgate.Server.Billing;

/// <summary>
/// Reports (<c>/admin/reports/usage|savings|margin</c>) and invoices (<c>/admin/invoices...</c> for the operator,
/// <c>/v1/invoices...</c> for a tenant's own). Handlers only parse and render; the numbers come from
/// <see cref="BillingService"/>, which the CLI uses too.
/// </summary>
internal static class BillingEndpoints
{
    private const string HtmlSuffix = ".html";

    public static IServiceCollection AddBilling(this IServiceCollection services)
    {
        services.ConfigureHttpJsonOptions(o => o.SerializerOptions.TypeInfoResolverChain.Insert(0, BillingJsonContext.Default));
        services.AddSingleton<BillingService>();
        return services;
    }

    public static IEndpointRouteBuilder MapBilling(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("/admin");
        admin.MapGet("/reports/usage", (HttpRequest request, BillingService billing, TimeProvider time, CancellationToken ct) => ReportAsync(ReportKind.Usage, request, billing, time, ct));
        admin.MapGet("/reports/savings", (HttpRequest request, BillingService billing, TimeProvider time, CancellationToken ct) => ReportAsync(ReportKind.Savings, request, billing, time, ct));
        admin.MapGet("/reports/margin", (HttpRequest request, BillingService billing, TimeProvider time, CancellationToken ct) => ReportAsync(ReportKind.Margin, request, billing, time, ct));
        admin.MapPost("/invoices/issue", IssueAsync);
        admin.MapGet("/invoices", ListAsync);
        admin.MapGet("/invoices/{id}", AdminInvoiceAsync);

        var v1 = app.MapGroup("/v1");
        v1.MapGet("/invoices", TenantListAsync);
        v1.MapGet("/invoices/{id}", TenantInvoiceAsync);
        return app;
    }

    /// <summary>Runs a report; the admin problem (400) when a parameter is invalid.</summary>
    internal static async Task<IResult> ReportAsync(ReportKind kind, HttpRequest request, BillingService billing, TimeProvider time, CancellationToken cancellationToken)
    {
        var q = request.Query;
        string? One(string name) => q.TryGetValue(name, out var values) ? values.ToString() : null;
        var parsed = ReportParameters.Parse(kind, One("tenant"), One("from"), One("to"), One("groupBy"), One("format"), time.GetUtcNow(), out var error);
        if (parsed is null)
        {
            return Invalid(error!);
        }

        if (q.Any(p => p.Value.Count > 1))
        {
            return Invalid("Give each query parameter once; use a comma list for groupBy.");
        }

        switch (kind)
        {
            case ReportKind.Usage:
                var usage = await billing.UsageAsync(parsed.Query, cancellationToken).ConfigureAwait(false);
                return parsed.Csv ? Csv(BillingCsv.Usage(usage)) : TypedResults.Json(usage, BillingJsonContext.Default.UsageReport);

            case ReportKind.Savings:
                if (billing.Baseline(One("baseline")) is not { } baseline)
                {
                    return Invalid($"Unknown baseline '{One("baseline")}': give a deployment id or a route name from the catalog, or '{SavingsBaseline.RouteMax}' (the default).");
                }

                var savings = await billing.SavingsAsync(parsed.Query, baseline, cancellationToken).ConfigureAwait(false);
                return parsed.Csv ? Csv(BillingCsv.Savings(savings)) : TypedResults.Json(savings, BillingJsonContext.Default.SavingsReport);

            default:
                if (billing.MarginMonths(parsed.Query).Count > BillingService.MaxMarginMonths)
                {
                    return Invalid($"A margin report covers at most {BillingService.MaxMarginMonths} months; narrow 'from' and 'to'.");
                }

                var margin = await billing.MarginAsync(parsed.Query, cancellationToken).ConfigureAwait(false);
                return parsed.Csv ? Csv(BillingCsv.Margin(margin)) : TypedResults.Json(margin, BillingJsonContext.Default.MarginReport);
        }
    }

    private static async Task<IResult> IssueAsync(HttpRequest request, BillingService billing, CancellationToken cancellationToken)
    {
        var body = await TenantsEndpoints.ReadAsync(request, BillingJsonContext.Default.IssueInvoicesRequest, cancellationToken).ConfigureAwait(false);
        if (body?.Month is null)
        {
            return Invalid("Send {\"month\": \"2026-11\"} (optional: \"tenant\": \"ten_...\", \"reissue\": true).");
        }

        var outcome = await billing.IssueAsync(body.Month, string.IsNullOrEmpty(body.Tenant) ? null : body.Tenant, body.Reissue ?? false, cancellationToken).ConfigureAwait(false);
        return outcome.Error switch
        {
            IssueError.None => TypedResults.Json(
                new IssueInvoicesResponse(outcome.Month, outcome.Invoices, outcome.Issued),
                BillingJsonContext.Default.IssueInvoicesResponse,
                statusCode: outcome.Issued > 0 ? StatusCodes.Status201Created : StatusCodes.Status200OK),
            IssueError.NotFound => TypedResults.Problem(statusCode: 404, title: "Tenant not found", detail: outcome.Problem),
            IssueError.Conflict => TypedResults.Problem(statusCode: 409, title: "Issued concurrently", detail: outcome.Problem),
            _ => Invalid(outcome.Problem!),
        };
    }

    private static async Task<IResult> ListAsync(string? tenant, string? month, BillingService billing, CancellationToken cancellationToken)
    {
        if (month is not null && !Invoices.TryParseMonth(month, out _))
        {
            return Invalid($"'month' must be yyyy-MM (e.g. 2026-11), got '{month}'.");
        }

        var list = await billing.ListAsync(string.IsNullOrEmpty(tenant) ? null : tenant, month, cancellationToken).ConfigureAwait(false);
        return TypedResults.Json(new InvoiceListResponse(list), BillingJsonContext.Default.InvoiceListResponse);
    }

    private static async Task<IResult> AdminInvoiceAsync(string id, BillingService billing, CancellationToken cancellationToken)
    {
        var (invoiceId, html) = SplitId(id);
        if (await billing.GetAsync(invoiceId, cancellationToken).ConfigureAwait(false) is not { } invoice)
        {
            return TypedResults.Problem(statusCode: 404, title: "Invoice not found", detail: $"No invoice has id '{invoiceId}'.");
        }

        return Render(invoice, html);
    }

    private static async Task TenantListAsync(HttpContext context, string? month, BillingService billing, CancellationToken cancellationToken)
    {
        var caller = context.Features.Get<ClientKeyFeature>()!;
        if (month is not null && !Invoices.TryParseMonth(month, out _))
        {
            await OpenAIError.WriteAsync(context, StatusCodes.Status400BadRequest, $"'month' must be yyyy-MM (e.g. 2026-11), got '{month}'.", OpenAIError.InvalidRequest, "month", "invalid_value").ConfigureAwait(false);
            return;
        }

        var list = await billing.ListAsync(caller.Tenant.Id, month, cancellationToken).ConfigureAwait(false);
        await TypedResults.Json(new InvoiceListResponse(list), BillingJsonContext.Default.InvoiceListResponse).ExecuteAsync(context).ConfigureAwait(false);
    }

    private static async Task TenantInvoiceAsync(HttpContext context, string id, BillingService billing, CancellationToken cancellationToken)
    {
        var caller = context.Features.Get<ClientKeyFeature>()!;
        var (invoiceId, html) = SplitId(id);

        // Another tenant's invoice is "not found", not "forbidden": a key cannot learn which ids exist.
        if (await billing.GetAsync(invoiceId, cancellationToken).ConfigureAwait(false) is not { } invoice || invoice.Tenant != caller.Tenant.Id)
        {
            await OpenAIError.WriteAsync(context, StatusCodes.Status404NotFound, $"No invoice '{invoiceId}' for this key's tenant.", OpenAIError.NotFound, "id", "invoice_not_found").ConfigureAwait(false);
            return;
        }

        await Render(invoice, html).ExecuteAsync(context).ConfigureAwait(false);
    }

    /// <summary><c>{id}.html</c> asks for the printable page; ids never end in <c>.html</c> themselves.</summary>
    private static (string Id, bool Html) SplitId(string id) =>
        id.EndsWith(HtmlSuffix, StringComparison.OrdinalIgnoreCase) ? (id[..^HtmlSuffix.Length], true) : (id, false);

    private static IResult Render(Invoice invoice, bool html) =>
        html ? TypedResults.Content(InvoiceHtml.Render(invoice), "text/html; charset=utf-8") : TypedResults.Json(invoice, BillingJsonContext.Default.Invoice);

    private static ContentHttpResult Csv(string text) => TypedResults.Text(text, "text/csv; charset=utf-8");

    private static ProblemHttpResult Invalid(string detail) => TypedResults.Problem(statusCode: 400, title: "Invalid parameters", detail: detail);
}
