using Npgsql;
using NpgsqlTypes;
using Tollgate.Tenancy;

namespace Tollgate.Storage.Postgres;

/// <summary>Tenants in the shared database.</summary>
/// <param name="forgetCounters">Called with (tenant, null) after a tenant's plan changes, when its counters live elsewhere (Redis).</param>
public sealed class PostgresTenantStore(PostgresDatabase database, TimeProvider time, Func<string, string?, Task>? forgetCounters = null) : ITenantStore
{
    private const string Columns = "id, name, plan, suspended, created_at";

    public async Task<Tenant> CreateAsync(string name, string? plan, CancellationToken cancellationToken)
    {
        var tenant = new Tenant(Tenant.NewId(), name, plan, false, PostgresKeyStore.ToMicroseconds(time.GetUtcNow()));
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("INSERT INTO tenants (id, name, plan, suspended, created_at) VALUES ($1, $2, $3, false, $4)", connection);
        command.Parameters.Add(PostgresKeyStore.Text(tenant.Id));
        command.Parameters.Add(PostgresKeyStore.Text(tenant.Name));
        command.Parameters.Add(PostgresKeyStore.Text(plan));
        command.Parameters.Add(PostgresKeyStore.Time(tenant.CreatedAt));
        await command.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
        return tenant;
    }

    public async Task<IReadOnlyList<Tenant>> ListAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"SELECT {Columns} FROM tenants ORDER BY created_at, id COLLATE \"C\"", connection);
        var tenants = new List<Tenant>();
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
        while (await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            tenants.Add(Read(reader));
        }

        return tenants;
    }

    public async Task<Tenant?> UpdateAsync(string id, string? plan, bool clearPlan, bool? suspended, CancellationToken cancellationToken)
    {
        // A new plan counts from the ledger: the tenant's limit counters are dropped in the same statement (one
        // transaction), so they are made again from the ledger on next use and never meet the new plan half-reset.
        var replanned = plan is not null || clearPlan;
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"""
            WITH updated AS (
                UPDATE tenants SET
                    plan = CASE WHEN $1 THEN NULL ELSE coalesce($2, plan) END,
                    suspended = coalesce($3, suspended)
                WHERE id = $4 RETURNING {Columns}),
            reset AS (
                DELETE FROM limit_months WHERE $5 AND scope = $6 AND EXISTS (SELECT 1 FROM updated))
            SELECT {Columns} FROM updated
            """, connection);
        command.Parameters.Add(new NpgsqlParameter<bool> { NpgsqlDbType = NpgsqlDbType.Boolean, TypedValue = clearPlan });
        command.Parameters.Add(PostgresKeyStore.Text(plan));
        command.Parameters.Add(new NpgsqlParameter<bool?> { NpgsqlDbType = NpgsqlDbType.Boolean, TypedValue = suspended });
        command.Parameters.Add(PostgresKeyStore.Text(id));
        command.Parameters.Add(new NpgsqlParameter<bool> { NpgsqlDbType = NpgsqlDbType.Boolean, TypedValue = replanned });
        command.Parameters.Add(PostgresKeyStore.Text("t:" + id));
        Tenant? updated;
        await using (var reader = await command.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false))
        {
            updated = await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false) ? Read(reader) : null;
        }

        if (updated is not null && replanned && forgetCounters is not null)
        {
            await forgetCounters(id, null).ConfigureAwait(false);
        }

        return updated;
    }

    private static Tenant Read(NpgsqlDataReader reader) => new(
        reader.GetString(0),
        reader.GetString(1),
        reader.IsDBNull(2) ? null : reader.GetString(2),
        reader.GetBoolean(3),
        reader.GetFieldValue<DateTimeOffset>(4));
}
