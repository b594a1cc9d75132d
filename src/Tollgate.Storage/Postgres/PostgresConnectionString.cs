using System.Globalization;
using Npgsql;

namespace Tollgate.Storage.Postgres;

/// <summary>
/// Reads the connection string operators are likely to have at hand: Npgsql's <c>Key=Value;</c> form, or the
/// <c>postgres://user:password@host:port/database?sslmode=require</c> URL that hosting platforms hand out.
/// Error messages never repeat the string: it carries a password.
/// </summary>
public static class PostgresConnectionString
{
    /// <summary>The Npgsql form of <paramref name="value"/>; throws <see cref="FormatException"/> naming what is wrong.</summary>
    public static string Normalize(string value)
    {
        var text = value.Trim();
        if (text.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase) || text.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase))
        {
            return FromUrl(text);
        }

        try
        {
            var builder = new NpgsqlConnectionStringBuilder(text);
            if (string.IsNullOrEmpty(builder.Host))
            {
                throw new FormatException("the connection string names no Host");
            }

            return builder.ConnectionString;
        }
        catch (ArgumentException)
        {
            throw new FormatException("it is neither a 'Host=...;Username=...;Database=...' connection string nor a postgres:// URL");
        }
    }

    private static string FromUrl(string text)
    {
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
        {
            throw new FormatException("the postgres:// URL is not valid");
        }

        var builder = new NpgsqlConnectionStringBuilder { Host = uri.Host };
        if (uri.Port > 0)
        {
            builder.Port = uri.Port;
        }

        if (uri.UserInfo.Length > 0)
        {
            var colon = uri.UserInfo.IndexOf(':', StringComparison.Ordinal);
            builder.Username = Uri.UnescapeDataString(colon < 0 ? uri.UserInfo : uri.UserInfo[..colon]);
            if (colon >= 0)
            {
                builder.Password = Uri.UnescapeDataString(uri.UserInfo[(colon + 1)..]);
            }
        }

        var database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        if (database.Length > 0)
        {
            builder.Database = database;
        }

        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            var name = Uri.UnescapeDataString(equals < 0 ? pair : pair[..equals]);
            var setting = equals < 0 ? string.Empty : Uri.UnescapeDataString(pair[(equals + 1)..]);
            try
            {
                // libpq spells it sslmode; Npgsql's builder accepts its own names ("SSL Mode") and most libpq ones.
                builder[string.Equals(name, "sslmode", StringComparison.OrdinalIgnoreCase) ? "SSL Mode" : name] = setting;
            }
            catch (ArgumentException)
            {
                throw new FormatException(string.Create(CultureInfo.InvariantCulture, $"the URL's parameter '{name}' is not a setting Npgsql knows"));
            }
        }

        return builder.ConnectionString;
    }
}
