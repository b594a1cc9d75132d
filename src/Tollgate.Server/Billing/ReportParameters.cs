using Tollgate.Billing;
using Tollgate.Server.Endpoints.Usage;

namespace Tollgate.Server.Billing;

/// <summary>Which report a request is for; each has its own allowed and default groupings.</summary>
internal enum ReportKind
{
    Usage,
    Savings,
    Margin,
}

/// <summary>A parsed report request: the query plus the output format.</summary>
internal sealed record ReportRequest(ReportKind Kind, ReportQuery Query, bool Csv);

/// <summary>
/// Parses the query parameters the reports share (<c>from</c>, <c>to</c>, <c>tenant</c>, <c>groupBy</c>,
/// <c>format</c>) for the API and the CLI alike. The time range follows <see cref="ReportRange"/>, the same rules
/// as <c>/admin/usage</c>.
/// </summary>
internal static class ReportParameters
{
    private static readonly ReportDimension[] Every = Enum.GetValues<ReportDimension>();

    public static IReadOnlyList<ReportDimension> Allowed(ReportKind kind) => kind == ReportKind.Margin ? MarginReports.Allowed : Every;

    /// <summary>The grouping when <c>groupBy</c> is absent: usage by day, savings as one total row, margin by tenant.</summary>
    public static IReadOnlyList<ReportDimension> Default(ReportKind kind) => kind switch
    {
        ReportKind.Usage => [ReportDimension.Day],
        ReportKind.Savings => [],
        _ => [ReportDimension.Tenant],
    };

    /// <summary>Null and a message for the client when a parameter is invalid.</summary>
    public static ReportRequest? Parse(ReportKind kind, string? tenant, string? from, string? to, string? groupBy, string? format, DateTimeOffset now, out string? error)
    {
        if (!ReportRange.TryParse(from, to, now, out var start, out var end, out error))
        {
            return null;
        }

        if (start >= end)
        {
            error = $"'from' ({start:O}) must be before 'to' ({end:O}).";
            return null;
        }

        var csv = false;
        if (format is not null)
        {
            if (string.Equals(format, "csv", StringComparison.OrdinalIgnoreCase))
            {
                csv = true;
            }
            else if (!string.Equals(format, "json", StringComparison.OrdinalIgnoreCase))
            {
                error = $"'format' must be json or csv, got '{format}'.";
                return null;
            }
        }

        var dimensions = new List<ReportDimension>();
        if (groupBy is null)
        {
            dimensions.AddRange(Default(kind));
        }
        else
        {
            var allowed = Allowed(kind);
            foreach (var name in groupBy.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!ReportGrouping.TryParse(name, out var dimension) || !allowed.Contains(dimension))
                {
                    error = $"Unknown groupBy '{name}' for the {kind.ToString().ToLowerInvariant()} report (expected any of: {string.Join(", ", ReportGrouping.Names(allowed))}).";
                    return null;
                }

                if (!dimensions.Contains(dimension))
                {
                    dimensions.Add(dimension);
                }
            }
        }

        return new ReportRequest(kind, new ReportQuery(start, end, string.IsNullOrEmpty(tenant) ? null : tenant, dimensions), csv);
    }
}
