using System.Globalization;
using Microsoft.Data.Sqlite;
using Tollgate.Tenancy;

namespace Tollgate.Storage.Sqlite;

/// <summary>Tenants in the embedded database.</summary>
public sealed class SqliteTenantStore(SqliteDatabase database, TimeProvider time) : ITenantStore
{
    private const string Columns = "id, name, plan, suspended, created_at";

    public async Task<Tenant> CreateAsync(string name, string? plan, CancellationToken cancellationToken)
    {
        var tenant = new Tenant(Tenant.NewId(), name, plan, false, time.GetUtcNow());
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO tenants (id, name, plan, suspended, created_at) VALUES ($id, $name, $plan, 0, $created)";
        command.Parameters.AddWithValue("$id", tenant.Id);
        command.Parameters.AddWithValue("$name", tenant.Name);
        command.Parameters.AddWithValue("$plan", (object?)plan ?? DBNull.Value);
        command.Parameters.AddWithValue("$created", tenant.CreatedAt.ToString("O", CultureInfo.InvariantCulture));
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return tenant;
    }

    public async Task<IReadOnlyList<Tenant>> ListAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = $"SELECT {Columns} FROM tenants ORDER BY created_at, id";
        var tenants = new List<Tenant>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            tenants.Add(Read(reader));
        }

        return tenants;
    }

    public async Task<Tenant?> UpdateAsync(string id, string? plan, bool clearPlan, bool? suspended, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = $"""
            UPDATE tenants SET
                plan = CASE WHEN $clear THEN NULL ELSE coalesce($plan, plan) END,
                suspended = coalesce($suspended, suspended)
            WHERE id = $id RETURNING {Columns}
            """;
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.AddWithValue("$plan", (object?)plan ?? DBNull.Value);
        command.Parameters.AddWithValue("$clear", clearPlan ? 1 : 0);
        command.Parameters.AddWithValue("$suspended", suspended is { } s ? (s ? 1 : 0) : DBNull.Value);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? Read(reader) : null;
    }

    private static Tenant Read(SqliteDataReader reader) => new(
        reader.GetString(0),
        reader.GetString(1),
        reader.IsDBNull(2) ? null : reader.GetString(2),
        reader.GetInt64(3) != 0,
        DateTimeOffset.Parse(reader.GetString(4), CultureInfo.InvariantCulture));
}
