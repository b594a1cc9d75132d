using System.Globalization;

namespace Tollgate.Billing;

/// <summary>What a report row can be grouped by.</summary>
public enum ReportDimension
{
    Day,

    /// <summary>The ISO week, named by its Monday (UTC), e.g. <c>2026-11-16</c>.</summary>
    Week,

    /// <summary>The calendar month (UTC), e.g. <c>2026-11</c>.</summary>
    Month,
    Tenant,
    Key,

    /// <summary>The public model name the client asked for.</summary>
    Model,
    Provider,
    Deployment,

    /// <summary>The HTTP status the client got, as a string.</summary>
    Status,
}

/// <summary>A report request: [From, To) in UTC, optionally one tenant, grouped by dimensions in the order given.</summary>
public sealed record ReportQuery(DateTimeOffset From, DateTimeOffset To, string? TenantId, IReadOnlyList<ReportDimension> GroupBy);

/// <summary>The dimension columns of a report row; those not grouped by are null (and left out of JSON).</summary>
public abstract record GroupedRow
{
    public string? Day { get; init; }

    public string? Week { get; init; }

    public string? Month { get; init; }

    public string? Tenant { get; init; }

    public string? Key { get; init; }

    public string? Model { get; init; }

    public string? Provider { get; init; }

    public string? Deployment { get; init; }

    public string? Status { get; init; }
}

/// <summary>Rolls facts up into groups: the one place that knows how a fact maps to each dimension.</summary>
public static class ReportGrouping
{
    /// <summary>Dimension names as they appear in <c>groupBy</c>, JSON and CSV headers.</summary>
    public static string Name(ReportDimension dimension) => dimension switch
    {
        ReportDimension.Day => "day",
        ReportDimension.Week => "week",
        ReportDimension.Month => "month",
        ReportDimension.Tenant => "tenant",
        ReportDimension.Key => "key",
        ReportDimension.Model => "model",
        ReportDimension.Provider => "provider",
        ReportDimension.Deployment => "deployment",
        _ => "status",
    };

    public static bool TryParse(string name, out ReportDimension dimension)
    {
        foreach (var candidate in Enum.GetValues<ReportDimension>())
        {
            if (string.Equals(Name(candidate), name, StringComparison.OrdinalIgnoreCase))
            {
                dimension = candidate;
                return true;
            }
        }

        dimension = default;
        return false;
    }

    public static List<string> Names(IReadOnlyList<ReportDimension> dimensions) => [.. dimensions.Select(Name)];

    /// <summary>The value of <paramref name="dimension"/> for a fact.</summary>
    public static string ValueOf(LedgerFact fact, ReportDimension dimension) => dimension switch
    {
        ReportDimension.Day => fact.Day,
        ReportDimension.Week => WeekOf(fact.Day),
        ReportDimension.Month => fact.Day[..7],
        ReportDimension.Tenant => fact.Tenant,
        ReportDimension.Key => fact.Key,
        ReportDimension.Model => fact.Model,
        ReportDimension.Provider => fact.Provider,
        ReportDimension.Deployment => fact.Deployment,
        _ => fact.Status.ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>The Monday (UTC) that starts the ISO week of a <c>yyyy-MM-dd</c> day.</summary>
    public static string WeekOf(string day)
    {
        var date = DateOnly.ParseExact(day, "yyyy-MM-dd", CultureInfo.InvariantCulture);
        var sinceMonday = ((int)date.DayOfWeek + 6) % 7;
        return date.AddDays(-sinceMonday).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
    }

    /// <summary>Copies group values into a row's dimension columns.</summary>
    public static T WithGroup<T>(T row, IReadOnlyList<ReportDimension> dimensions, string[] values)
        where T : GroupedRow
    {
        for (var i = 0; i < dimensions.Count; i++)
        {
            row = dimensions[i] switch
            {
                ReportDimension.Day => row with { Day = values[i] },
                ReportDimension.Week => row with { Week = values[i] },
                ReportDimension.Month => row with { Month = values[i] },
                ReportDimension.Tenant => row with { Tenant = values[i] },
                ReportDimension.Key => row with { Key = values[i] },
                ReportDimension.Model => row with { Model = values[i] },
                ReportDimension.Provider => row with { Provider = values[i] },
                ReportDimension.Deployment => row with { Deployment = values[i] },
                _ => row with { Status = values[i] },
            };
        }

        return row;
    }

    /// <summary>
    /// Groups items by the values of <paramref name="dimensions"/> and folds each group into an accumulator;
    /// groups come back ordered by their values (ordinal), in dimension order.
    /// </summary>
    public static List<(string[] Values, TAccumulator Accumulator)> Group<TItem, TAccumulator>(
        IEnumerable<TItem> items, IReadOnlyList<ReportDimension> dimensions, Func<TItem, ReportDimension, string> valueOf, Action<TAccumulator, TItem> add)
        where TAccumulator : new()
    {
        var groups = new Dictionary<string, (string[] Values, TAccumulator Accumulator)>(StringComparer.Ordinal);
        foreach (var item in items)
        {
            var values = new string[dimensions.Count];
            for (var i = 0; i < values.Length; i++)
            {
                values[i] = valueOf(item, dimensions[i]);
            }

            var key = string.Join('\u001f', values);
            if (!groups.TryGetValue(key, out var group))
            {
                group = (values, new TAccumulator());
                groups[key] = group;
            }

            add(group.Accumulator, item);
        }

        return [.. groups.Values.OrderBy(g => string.Join('\u001f', g.Values), StringComparer.Ordinal)];
    }

    /// <summary><paramref name="part"/> / <paramref name="whole"/> × 100, rounded half away from zero to 2 decimals; 0 when the whole is 0.</summary>
    public static decimal Percent(decimal part, decimal whole) =>
        whole == 0 ? 0m : decimal.Round(part / whole * 100m, 2, MidpointRounding.AwayFromZero);
}
