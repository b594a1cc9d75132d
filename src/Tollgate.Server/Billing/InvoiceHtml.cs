using System.Globalization;
using System.Net;
using System.Text;
using Tollgate.Billing;

namespace Tollgate.Server.Billing;

/// <summary>
/// The printable invoice page: one self-contained HTML document (inline CSS with <c>@media print</c>, no scripts,
/// no external resources). Every value is HTML-encoded, tenant and model names included, since tenants name themselves.
/// </summary>
internal static class InvoiceHtml
{
    private const string Style = """
        body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b; margin: 2rem auto; max-width: 50rem; padding: 0 1rem; }
        h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
        .muted { color: #666; }
        .draft { color: #a15c00; font-weight: 600; }
        table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
        th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #ddd; }
        td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
        tr.total td { font-weight: 700; border-top: 2px solid #1b1b1b; border-bottom: none; }
        dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
        dt { color: #666; }
        @media print { body { margin: 0; max-width: none; font-size: 11pt; } a { color: inherit; text-decoration: none; } }
        """;

    public static string Render(Invoice invoice)
    {
        var html = new StringBuilder(4096);
        html.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Invoice ").Append(E(invoice.Id)).Append("</title>\n<style>\n")
            .Append(Style).Append("</style>\n</head>\n<body>\n");
        html.Append("<h1>Invoice ").Append(E(invoice.Id)).Append("</h1>\n");
        html.Append("<p class=\"muted\">Version ").Append(E(Number(invoice.Version))).Append(", issued ").Append(E(invoice.IssuedAt.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture))).Append("</p>\n");
        if (!invoice.Final)
        {
            html.Append("<p class=\"draft\">Not final: issued before the end of the month.</p>\n");
        }

        html.Append("<dl>\n");
        Term(html, "Billed to", $"{invoice.TenantName} ({invoice.Tenant})");
        Term(html, "Period", $"{invoice.Month} ({invoice.PeriodStart:yyyy-MM-dd} to {invoice.PeriodEnd.AddDays(-1):yyyy-MM-dd}, UTC)");
        Term(html, "Plan", invoice.Plan ?? "none");
        Term(html, "Included tokens", Number(invoice.IncludedTokens));
        Term(html, "Tokens used", Number(invoice.TokensUsed));
        Term(html, "Overage tokens", Number(invoice.OverageTokens));
        Term(html, "Overage price", $"{Usd(invoice.OveragePer1KTokensUsd)} per 1K tokens");
        html.Append("</dl>\n");

        html.Append("<table>\n<thead><tr><th>Item</th><th class=\"n\">Requests</th><th class=\"n\">Tokens</th><th class=\"n\">Overage tokens</th><th class=\"n\">Amount</th></tr></thead>\n<tbody>\n");
        Row(html, $"Plan fee ({invoice.Plan ?? "no plan"})", string.Empty, string.Empty, string.Empty, Usd(invoice.PlanFeeUsd));
        foreach (var line in invoice.Lines)
        {
            Row(html, $"Usage: {line.Model}", Number(line.Requests), Number(line.Tokens), Number(line.OverageTokens), Usd(line.AmountUsd));
        }

        html.Append("<tr class=\"total\"><td>Total due</td><td></td><td></td><td></td><td class=\"n\">").Append(E(Usd(invoice.TotalDueUsd))).Append("</td></tr>\n");
        html.Append("</tbody>\n</table>\n");
        html.Append("<p class=\"muted\">Amounts in ").Append(E(invoice.Currency)).Append(". Usage lines are charged at the plan's overage price beyond the included tokens.</p>\n");
        html.Append("</body>\n</html>\n");
        return html.ToString();
    }

    /// <summary>USD with at least 2 decimals and no rounding of the exact amount.</summary>
    public static string Usd(decimal value) => "$" + value.ToString("#,0.00############", CultureInfo.InvariantCulture);

    private static string Number(long value) => value.ToString("#,0", CultureInfo.InvariantCulture);

    private static string E(string value) => WebUtility.HtmlEncode(value);

    private static void Term(StringBuilder html, string term, string value) =>
        html.Append("<dt>").Append(E(term)).Append("</dt><dd>").Append(E(value)).Append("</dd>\n");

    private static void Row(StringBuilder html, string item, string requests, string tokens, string overage, string amount) =>
        html.Append("<tr><td>").Append(E(item)).Append("</td><td class=\"n\">").Append(E(requests)).Append("</td><td class=\"n\">").Append(E(tokens))
            .Append("</td><td class=\"n\">").Append(E(overage)).Append("</td><td class=\"n\">").Append(E(amount)).Append("</td></tr>\n");
}
