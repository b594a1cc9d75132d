using System.Globalization;
using Tollgate.Tenancy;

namespace Tollgate.Server.Endpoints.Usage;

/// <summary>
/// The <c>from</c>/<c>to</c> rules every report shares (<c>/admin/usage</c>, <c>/admin/reports/*</c>, the CLI):
/// a date or an ISO 8601 time; <c>from</c> inclusive (default: start of the current UTC month), <c>to</c> a date
/// inclusive or a time exclusive (default: now).
/// </summary>
internal static class ReportRange
{
    /// <summary>Parses the range into [start, end); false and a message naming the bad parameter when invalid.</summary>
    public static bool TryParse(string? from, string? to, DateTimeOffset now, out DateTimeOffset start, out DateTimeOffset end, out string? error)
    {
        error = null;
        start = LimitRules.MonthStart(now);
        end = now.AddMilliseconds(1);
        if (from is not null && !TryParseTime(from, endOfDay: false, out start))
        {
            error = $"'from' must be a date (2025-01-31) or an ISO 8601 time, got '{from}'.";
            return false;
        }

        if (to is not null && !TryParseTime(to, endOfDay: true, out end))
        {
            error = $"'to' must be a date (2025-01-31, inclusive) or an ISO 8601 time (exclusive), got '{to}'.";
            return false;
        }

        return true;
    }

    private static bool TryParseTime(string text, bool endOfDay, out DateTimeOffset value)
    {
        if (DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date))
        {
            value = new DateTimeOffset(date.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero).AddDays(endOfDay ? 1 : 0);
            return true;
        }

        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out value);
    }
}
