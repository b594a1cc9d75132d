using System.Globalization;
using Microsoft.Data.Sqlite;
using Tollgate.Metering;

namespace Tollgate.Storage.Sqlite;

/// <summary>
/// Sums of picodollar columns that cannot overflow: each sum is two result columns, the high and the low part
/// of every value (see <see cref="Money.SumSplitBits"/>), which <see cref="Read"/> joins into exact USD.
/// SQLite's <c>sum()</c> of the plain column would fail the whole query once a total passed USD 9.2 million.
/// </summary>
internal static class PicoSums
{
    private static readonly string LowMask = ((1L << Money.SumSplitBits) - 1).ToString(CultureInfo.InvariantCulture);

    /// <summary>Two result columns: the sums of the high and the low parts of <paramref name="expression"/>.</summary>
    public static string Sql(string expression) =>
        string.Create(CultureInfo.InvariantCulture, $"sum(({expression}) >> {Money.SumSplitBits}), sum(({expression}) & {LowMask})");

    /// <summary>The USD total of the two columns at <paramref name="ordinal"/>; null when every value was null.</summary>
    public static decimal? Read(SqliteDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : Money.SumToUsd(reader.GetInt64(ordinal), reader.GetInt64(ordinal + 1));
}
