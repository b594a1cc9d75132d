using Npgsql;
using Tollgate.Keys;

namespace Tollgate.Storage.Postgres;

/// <summary>
/// Dashboard sessions in the shared database: a login on one instance is good on every instance behind the load
/// balancer, and a logout on any of them ends it on all. Looked up on each dashboard request (a handful per page and
/// poll), never cached, so that a logout takes effect at once.
/// </summary>
public sealed class PostgresDashboardSessionStore(PostgresDatabase database, TimeProvider time) : IDashboardSessionStore
{
    public async Task AddAsync(string idHash, DashboardSession session, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var batch = new NpgsqlBatch(connection);

        // Logins are rare: each one also clears the sessions that have ended, so the table keeps only live ones.
        var prune = new NpgsqlBatchCommand("DELETE FROM dashboard_sessions WHERE expires_at <= $1");
        prune.Parameters.Add(PostgresKeyStore.Time(time.GetUtcNow()));
        var insert = new NpgsqlBatchCommand("INSERT INTO dashboard_sessions (id_hash, role, key_hash, tenant_id, expires_at) VALUES ($1, $2, $3, $4, $5)");
        insert.Parameters.Add(PostgresKeyStore.Text(idHash));
        insert.Parameters.Add(PostgresKeyStore.Text(session.Role == DashboardRole.Admin ? "admin" : "tenant"));
        insert.Parameters.Add(PostgresKeyStore.Text(session.KeyHash));
        insert.Parameters.Add(PostgresKeyStore.Text(session.TenantId));
        insert.Parameters.Add(PostgresKeyStore.Time(session.ExpiresAt));
        batch.BatchCommands.Add(prune);
        batch.BatchCommands.Add(insert);
        await batch.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
    }

    public async Task<DashboardSession?> FindAsync(string idHash, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("SELECT role, key_hash, tenant_id, expires_at FROM dashboard_sessions WHERE id_hash = $1", connection);
        command.Parameters.Add(PostgresKeyStore.Text(idHash));
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
        if (!await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            return null;
        }

        return new DashboardSession(
            reader.GetString(0) == "admin" ? DashboardRole.Admin : DashboardRole.Tenant,
            reader.IsDBNull(1) ? null : reader.GetString(1),
            reader.IsDBNull(2) ? null : reader.GetString(2),
            reader.GetFieldValue<DateTimeOffset>(3));
    }

    public async Task RemoveAsync(string idHash, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("DELETE FROM dashboard_sessions WHERE id_hash = $1", connection);
        command.Parameters.Add(PostgresKeyStore.Text(idHash));
        await command.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
    }
}
