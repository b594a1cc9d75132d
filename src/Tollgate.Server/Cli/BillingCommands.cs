using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Tollgate.Billing;
using Tollgate.Configuration;
using Tollgate.Routing;
using Tollgate.Server.Billing;
using Tollgate.Server.Hosting;

namespace Tollgate.Server.Cli;

/// <summary>
/// <c>tollgate invoices issue|list|show</c> and <c>tollgate report usage|savings|margin</c>: the same
/// <see cref="BillingService"/> as the admin API, run directly on the database in the data directory.
/// Tables are for people (money to 6 decimals); <c>--json</c> and <c>--csv</c> are exact, as the API.
/// </summary>
internal static class BillingCommands
{
    public static void AddTo(RootCommand root, TextWriter output, TextWriter error)
    {
        root.Subcommands.Add(InvoicesCommand(output, error));
        root.Subcommands.Add(ReportCommand(output, error));
    }

    private static Command InvoicesCommand(TextWriter output, TextWriter error)
    {
        var invoices = new Command("invoices", "Issue, list and show invoices (per tenant per calendar month, UTC).");
        var monthOption = new Option<string?>("--month") { Description = "The calendar month, yyyy-MM (e.g. 2026-11)" };
        var tenantOption = new Option<string?>("--tenant") { Description = "Only this tenant id" };
        var jsonOption = new Option<bool>("--json") { Description = "Print JSON (as the admin API) instead of a table" };
        var reissueOption = new Option<bool>("--reissue") { Description = "Issue a new version where an invoice already exists (default: keep it)" };

        var issue = new Command("issue", "Issue the month's invoices for every tenant with a plan or usage (or one --tenant).") { monthOption, tenantOption, reissueOption, jsonOption };
        monthOption.Required = true;
        issue.SetAction((result, ct) => WithBillingAsync(result, error, async billing =>
        {
            var outcome = await billing.IssueAsync(result.GetValue(monthOption), result.GetValue(tenantOption), result.GetValue(reissueOption), ct).ConfigureAwait(false);
            if (outcome.Error != IssueError.None)
            {
                error.WriteLine(outcome.Problem);
                return 1;
            }

            if (result.GetValue(jsonOption))
            {
                output.WriteLine(JsonSerializer.Serialize(new IssueInvoicesResponse(outcome.Month, outcome.Invoices, outcome.Issued), BillingJsonContext.Default.IssueInvoicesResponse));
                return 0;
            }

            TextTable.Write(
                output,
                ["ID", "TENANT", "VERSION", "FINAL", "PLAN", "FEE", "TOKENS", "OVERAGE TOKENS", "OVERAGE", "TOTAL DUE"],
                outcome.Invoices.Select(i => new[]
                {
                    i.Id, i.Tenant, Number(i.Version), i.Final ? "yes" : "no", i.Plan ?? "-", Usd(i.PlanFeeUsd), Number(i.TokensUsed), Number(i.OverageTokens), Usd(i.OverageUsd), Usd(i.TotalDueUsd),
                }));
            output.WriteLine($"{outcome.Issued} issued, {outcome.Invoices.Count - outcome.Issued} already issued (unchanged) for {outcome.Month}.");
            return 0;
        }, ct));

        // List and show take the month as an optional filter.
        var listMonth = new Option<string?>("--month") { Description = "Only this month, yyyy-MM" };
        var list = new Command("list", "List issued invoices (every version).") { tenantOption, listMonth, jsonOption };
        list.SetAction((result, ct) => WithBillingAsync(result, error, async billing =>
        {
            var month = result.GetValue(listMonth);
            if (month is not null && !Invoices.TryParseMonth(month, out _))
            {
                error.WriteLine($"--month must be yyyy-MM (e.g. 2026-11), got '{month}'.");
                return 1;
            }

            var summaries = await billing.ListAsync(result.GetValue(tenantOption), month, ct).ConfigureAwait(false);
            if (result.GetValue(jsonOption))
            {
                output.WriteLine(JsonSerializer.Serialize(new InvoiceListResponse(summaries), BillingJsonContext.Default.InvoiceListResponse));
                return 0;
            }

            TextTable.Write(
                output,
                ["ID", "TENANT", "MONTH", "VERSION", "FINAL", "ISSUED AT", "TOTAL DUE"],
                summaries.Select(s => new[] { s.Id, s.Tenant, s.Month, Number(s.Version), s.Final ? "yes" : "no", s.IssuedAt.ToString("O", CultureInfo.InvariantCulture), Usd(s.TotalDueUsd) }));
            return 0;
        }, ct));

        var idArgument = new Argument<string>("id") { Description = "The invoice id (inv_...)" };
        var htmlOption = new Option<bool>("--html") { Description = "Print the printable HTML page instead of JSON" };
        var show = new Command("show", "Print an issued invoice as JSON (or --html).") { idArgument, htmlOption };
        show.SetAction((result, ct) => WithBillingAsync(result, error, async billing =>
        {
            var id = result.GetValue(idArgument)!;
            if (await billing.GetAsync(id, ct).ConfigureAwait(false) is not { } invoice)
            {
                error.WriteLine($"No invoice has id '{id}' ('tollgate invoices list' shows them).");
                return 1;
            }

            output.WriteLine(result.GetValue(htmlOption) ? InvoiceHtml.Render(invoice) : JsonSerializer.Serialize(invoice, BillingJsonContext.Default.Invoice));
            return 0;
        }, ct));

        invoices.Subcommands.Add(issue);
        invoices.Subcommands.Add(list);
        invoices.Subcommands.Add(show);
        return invoices;
    }

    private static Command ReportCommand(TextWriter output, TextWriter error)
    {
        var report = new Command("report", "Reports from the ledger and invoices (the same as GET /admin/reports/...).");
        foreach (var kind in (ReportKind[])[ReportKind.Usage, ReportKind.Savings, ReportKind.Margin])
        {
            report.Subcommands.Add(ReportVerb(kind, output, error));
        }

        return report;
    }

    private static Command ReportVerb(ReportKind kind, TextWriter output, TextWriter error)
    {
        var name = kind.ToString().ToLowerInvariant();
        var fromOption = new Option<string?>("--from") { Description = "Start, a date (2026-11-01) or ISO 8601 time (default: start of this month, UTC)" };
        var toOption = new Option<string?>("--to") { Description = "End, a date (inclusive) or ISO 8601 time (exclusive) (default: now)" };
        var tenantOption = new Option<string?>("--tenant") { Description = "Only this tenant (default: all)" };
        var groupOption = new Option<string?>("--group-by") { Description = $"Comma-separated: {string.Join(", ", ReportGrouping.Names(ReportParameters.Allowed(kind)))}" };
        var jsonOption = new Option<bool>("--json") { Description = "Print JSON instead of a table" };
        var csvOption = new Option<bool>("--csv") { Description = "Print CSV (as format=csv in the API)" };
        var baselineOption = new Option<string?>("--baseline") { Description = "A deployment id or route name to price the same tokens with (default: each route's most expensive candidate)" };
        var description = kind switch
        {
            ReportKind.Usage => "Usage and spend per group: requests, errors, failovers, tokens, provider cost, tenant price, margin.",
            ReportKind.Savings => "What requests cost against the baseline: per provider and model, with totals and the saving.",
            _ => "Revenue (invoiced, or drafts for months not issued), provider cost and margin per tenant.",
        };
        var command = new Command(name, description) { fromOption, toOption, tenantOption, groupOption, jsonOption, csvOption };
        if (kind == ReportKind.Savings)
        {
            command.Options.Add(baselineOption);
        }

        command.SetAction((result, ct) => WithBillingAsync(result, error, async billing =>
        {
            var csv = result.GetValue(csvOption);
            var groupBy = result.GetValue(groupOption);
            var request = ReportParameters.Parse(kind, result.GetValue(tenantOption), result.GetValue(fromOption), result.GetValue(toOption), groupBy, csv ? "csv" : "json", TimeProvider.System.GetUtcNow(), out var problem);
            if (request is null)
            {
                error.WriteLine(problem);
                return 1;
            }

            var json = result.GetValue(jsonOption);
            switch (kind)
            {
                case ReportKind.Usage:
                    var usage = await billing.UsageAsync(request.Query, ct).ConfigureAwait(false);
                    output.Write(csv ? BillingCsv.Usage(usage) : json ? JsonSerializer.Serialize(usage, BillingJsonContext.Default.UsageReport) + "\n" : UsageTable(usage));
                    return 0;

                case ReportKind.Savings:
                    if (billing.Baseline(result.GetValue(baselineOption)) is not { } baseline)
                    {
                        error.WriteLine($"Unknown baseline '{result.GetValue(baselineOption)}': give a deployment id or a route name from the configuration.");
                        return 1;
                    }

                    if (csv || groupBy is not null)
                    {
                        var savings = await billing.SavingsAsync(request.Query, baseline, ct).ConfigureAwait(false);
                        output.Write(csv ? BillingCsv.Savings(savings) : json ? JsonSerializer.Serialize(savings, BillingJsonContext.Default.SavingsReport) + "\n" : SavingsTable(savings));
                        return 0;
                    }

                    var summary = await SavingsSummaries.BuildAsync(billing, request.Query, baseline, ct).ConfigureAwait(false);
                    output.Write(json ? JsonSerializer.Serialize(summary, BillingJsonContext.Default.SavingsSummary) + "\n" : SavingsSummaries.Table(summary));
                    return 0;

                default:
                    if (billing.MarginMonths(request.Query).Count > BillingService.MaxMarginMonths)
                    {
                        error.WriteLine($"A margin report covers at most {BillingService.MaxMarginMonths} months; narrow --from and --to.");
                        return 1;
                    }

                    var margin = await billing.MarginAsync(request.Query, ct).ConfigureAwait(false);
                    output.Write(csv ? BillingCsv.Margin(margin) : json ? JsonSerializer.Serialize(margin, BillingJsonContext.Default.MarginReport) + "\n" : MarginTable(margin));
                    return 0;
            }
        }, ct));
        return command;
    }

    /// <summary>
    /// The usage table; when some provider reported its own cost in the period, two more columns set what it said beside
    /// our cost of the same rows (left out otherwise, so the table most operators see is unchanged).
    /// </summary>
    private static string UsageTable(UsageReport report)
    {
        var reported = report.Totals.ProviderReportedCostRequests > 0;
        string[] headers = [.. report.GroupBy.Select(g => g.ToUpperInvariant()), "REQUESTS", "ERRORS", "FAILOVERS", "TOKENS", "COST", "PRICE", "MARGIN"];
        if (reported)
        {
            headers = [.. headers, "PROVIDER REPORTED", "COST OF THOSE"];
        }

        return TextTable.Render(headers, report.Rows.Append(report.Totals).Select((r, i) =>
        {
            string[] cells = [.. Groups(report.GroupBy, r, i == report.Rows.Count), Number(r.Requests), Number(r.Errors), Number(r.Failovers), Number(r.TotalTokens), Usd(r.CostUsd), Usd(r.PriceUsd), Usd(r.MarginUsd)];
            return reported
                ? [.. cells, ReportedUsd(r.ProviderReportedCostUsd, r.ProviderReportedCostRequests), ReportedUsd(r.CostUsdWhereProviderReported, r.ProviderReportedCostRequests)]
                : cells;
        }));
    }

    /// <summary>Blank for a group no provider reported on; "unknown" when our cost of its rows is (a missing price).</summary>
    private static string ReportedUsd(decimal? value, long rows) => rows == 0 ? string.Empty : value is { } known ? Usd(known) : "unknown";

    private static string SavingsTable(SavingsReport report) => TextTable.Render(
        [.. report.GroupBy.Select(g => g.ToUpperInvariant()), "REQUESTS", "COST", "BASELINE", "SAVED", "SAVED %", "UNKNOWN"],
        report.Rows.Append(report.Totals).Select((r, i) => Groups(report.GroupBy, r, i == report.Rows.Count)
            .Concat([Number(r.Requests), Usd(r.CostUsd), Usd(r.BaselineCostUsd), Usd(r.SavedUsd), BillingCsv.Percent(r.SavedPercent), Number(r.UnknownCostRequests)]).ToArray()));

    private static string MarginTable(MarginReport report) => TextTable.Render(
        [.. report.GroupBy.Select(g => g.ToUpperInvariant()), "REVENUE", "PROVIDER COST", "MARGIN", "MARGIN %", "ISSUED", "DRAFTS"],
        report.Rows.Append(report.Totals).Select((r, i) => Groups(report.GroupBy, r, i == report.Rows.Count)
            .Concat([Usd(r.RevenueUsd), Usd(r.ProviderCostUsd), Usd(r.MarginUsd), BillingCsv.Percent(r.MarginPercent), Number(r.IssuedInvoices), Number(r.DraftInvoices)]).ToArray()));

    /// <summary>A row's group columns; the totals row says TOTAL in the first one.</summary>
    private static IEnumerable<string> Groups(List<string> groupBy, GroupedRow row, bool total) =>
        groupBy.Select((g, i) => total ? (i == 0 ? "TOTAL" : string.Empty) : BillingCsv.GroupValue(row, g) ?? string.Empty);

    internal static string Usd(decimal value) => value.ToString("0.00####", CultureInfo.InvariantCulture);

    internal static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static async Task<int> WithBillingAsync(ParseResult result, TextWriter error, Func<BillingService, Task<int>> action, CancellationToken cancellationToken)
    {
        TollgateOptions options;
        SecretSource secrets;
        try
        {
            (options, secrets) = GatewayStartup.LoadConfiguration(GatewayStartup.ResolveConfigPath(result.GetValue<string?>("--config")));
        }
        catch (TollgateConfigurationException ex)
        {
            error.WriteLine(ex.Message);
            return 2;
        }

        var (storage, exitCode) = await TollgateCommandLine.OpenStorageAsync(options, secrets, GatewayStartup.ResolveDataDirectory(result.GetValue<string?>("--data-dir"), options), error, cancellationToken).ConfigureAwait(false);
        if (storage is null)
        {
            return exitCode;
        }

        await using (storage.ConfigureAwait(false))
        {
            using var catalog = Catalog.Build(options, secrets, TimeProvider.System);
            var billing = new BillingService(storage.Billing, storage.Tenants, options, catalog, TimeProvider.System);
            return await action(billing).ConfigureAwait(false);
        }
    }
}

/// <summary>Plain aligned text tables for the terminal: text columns left, numbers right.</summary>
internal static class TextTable
{
    public static void Write(TextWriter output, string[] headers, IEnumerable<string[]> rows) => output.Write(Render(headers, rows));

    public static string Render(string[] headers, IEnumerable<string[]> rows)
    {
        var all = new List<string[]> { headers };
        all.AddRange(rows);
        var widths = new int[headers.Length];
        var numeric = new bool[headers.Length];
        for (var c = 0; c < headers.Length; c++)
        {
            widths[c] = all.Max(r => r[c].Length);
            numeric[c] = all.Skip(1).Any() && all.Skip(1).All(r => r[c].Length == 0 || r[c] == "TOTAL" || decimal.TryParse(r[c].TrimEnd('%'), NumberStyles.Number, CultureInfo.InvariantCulture, out _));
        }

        var text = new System.Text.StringBuilder();
        foreach (var row in all)
        {
            for (var c = 0; c < row.Length; c++)
            {
                text.Append(numeric[c] ? row[c].PadLeft(widths[c]) : row[c].PadRight(widths[c]));
                text.Append(c == row.Length - 1 ? "\n" : "  ");
            }
        }

        return text.ToString();
    }
}
