using Npgsql;
using NpgsqlTypes;
using Tollgate.Keys;

namespace Tollgate.Storage.Postgres;

/// <summary>Client keys and the admin key hash in the shared database: a key made on one instance works on all.</summary>
/// <param name="forgetCounters">Called with (tenant, key) after a key's limits change, when its counters live elsewhere (Redis).</param>
public sealed class PostgresKeyStore(PostgresDatabase database, TimeProvider time, Func<string, string?, Task>? forgetCounters = null) : IKeyStore
{
    private const string AdminKeySetting = "admin_key_hash";
    private const string Columns = "id, name, prefix, hash, created_at, revoked_at, tenant_id, monthly_tokens, monthly_budget_usd, rpm, tpm, models, expires_at";

    public Task<CreatedApiKey> CreateAsync(string name, CancellationToken cancellationToken) =>
        CreateAsync(new NewApiKey(name), cancellationToken);

    public async Task<CreatedApiKey> CreateAsync(NewApiKey spec, CancellationToken cancellationToken)
    {
        var key = ApiKeys.NewSecret(ApiKeys.ClientPrefix);
        var record = new ApiKeyRecord(ApiKeys.NewId(), spec.Name, ApiKeys.VisiblePrefix(key), ApiKeys.Hash(key), ToMicroseconds(time.GetUtcNow()), null, spec.TenantId, spec.Limits, spec.ExpiresAt is { } at ? ToMicroseconds(at) : null);
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("""
            INSERT INTO api_keys (id, name, prefix, hash, created_at, tenant_id, monthly_tokens, monthly_budget_usd, rpm, tpm, models, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            """, connection);
        command.Parameters.Add(Text(record.Id));
        command.Parameters.Add(Text(record.Name));
        command.Parameters.Add(Text(record.Prefix));
        command.Parameters.Add(Text(record.Hash));
        command.Parameters.Add(Time(record.CreatedAt));
        command.Parameters.Add(Text(record.TenantId));
        AddLimits(command, record.EffectiveLimits, record.ExpiresAt);
        await command.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
        return new CreatedApiKey(record, key);
    }

    public async Task<CreatedApiKey?> RotateAsync(string id, CancellationToken cancellationToken)
    {
        var key = ApiKeys.NewSecret(ApiKeys.ClientPrefix);
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"UPDATE api_keys SET hash = $1, prefix = $2 WHERE id = $3 AND revoked_at IS NULL RETURNING {Columns}", connection);
        command.Parameters.Add(Text(ApiKeys.Hash(key)));
        command.Parameters.Add(Text(ApiKeys.VisiblePrefix(key)));
        command.Parameters.Add(Text(id));
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
        return await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false) ? new CreatedApiKey(Read(reader), key) : null;
    }

    public async Task<ApiKeyRecord?> UpdateLimitsAsync(string id, KeyLimits limits, DateTimeOffset? expiresAt, CancellationToken cancellationToken)
    {
        // New limits count from the ledger: the key's limit counters are dropped in the same statement, so they are
        // made again from the ledger on next use. One statement is one transaction: the new limits never meet the
        // old counters, whatever happens to the connection.
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"""
            WITH updated AS (
                UPDATE api_keys SET monthly_tokens = $1, monthly_budget_usd = $2, rpm = $3, tpm = $4, models = $5, expires_at = $6
                WHERE id = $7 AND revoked_at IS NULL RETURNING {Columns}),
            reset AS (
                DELETE FROM limit_months WHERE scope = $8 AND EXISTS (SELECT 1 FROM updated))
            SELECT {Columns} FROM updated
            """, connection);
        AddLimits(command, limits, expiresAt);
        command.Parameters.Add(Text(id));
        command.Parameters.Add(Text("k:" + id));
        ApiKeyRecord? updated;
        await using (var reader = await command.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false))
        {
            updated = await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false) ? Read(reader) : null;
        }

        if (updated is not null && forgetCounters is not null)
        {
            await forgetCounters(updated.TenantId, updated.Id).ConfigureAwait(false);
        }

        return updated;
    }

    public async Task<IReadOnlyList<ApiKeyRecord>> ListAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"SELECT {Columns} FROM api_keys ORDER BY created_at, id COLLATE \"C\"", connection);
        var keys = new List<ApiKeyRecord>();
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
        while (await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            keys.Add(Read(reader));
        }

        return keys;
    }

    public async Task<ApiKeyRecord?> FindByHashAsync(string hash, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"SELECT {Columns} FROM api_keys WHERE hash = $1", connection);
        command.Parameters.Add(Text(hash));
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
        return await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false) ? Read(reader) : null;
    }

    public async Task<bool> RevokeAsync(string id, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL", connection);
        command.Parameters.Add(Time(time.GetUtcNow()));
        command.Parameters.Add(Text(id));
        return await command.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false) > 0;
    }

    public async Task<string?> GetAdminKeyHashAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("SELECT value FROM settings WHERE name = $1", connection);
        command.Parameters.Add(Text(AdminKeySetting));
        return await command.ExecuteScalarAsync(CancellationToken.None).ConfigureAwait(false) as string;
    }

    public async Task SetAdminKeyHashAsync(string hash, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value", connection);
        command.Parameters.Add(Text(AdminKeySetting));
        command.Parameters.Add(Text(hash));
        await command.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
    }

    public async Task<bool> TryInitializeAdminKeyHashAsync(string hash, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", connection);
        command.Parameters.Add(Text(AdminKeySetting));
        command.Parameters.Add(Text(hash));
        return await command.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false) == 1;
    }

    /// <summary>The <c>auth_version</c> counter that the triggers on <c>api_keys</c> and <c>tenants</c> bump, on any instance.</summary>
    public async Task<long> GetChangeStampAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("SELECT value::bigint FROM settings WHERE name = 'auth_version'", connection);
        return await command.ExecuteScalarAsync(CancellationToken.None).ConfigureAwait(false) is long stamp ? stamp : 0;
    }

    private static void AddLimits(NpgsqlCommand command, KeyLimits limits, DateTimeOffset? expiresAt)
    {
        command.Parameters.Add(new NpgsqlParameter<long?> { NpgsqlDbType = NpgsqlDbType.Bigint, TypedValue = limits.MonthlyTokens });
        command.Parameters.Add(new NpgsqlParameter<decimal?> { NpgsqlDbType = NpgsqlDbType.Numeric, TypedValue = limits.MonthlyBudgetUsd });
        command.Parameters.Add(new NpgsqlParameter<int?> { NpgsqlDbType = NpgsqlDbType.Integer, TypedValue = limits.Rpm });
        command.Parameters.Add(new NpgsqlParameter<int?> { NpgsqlDbType = NpgsqlDbType.Integer, TypedValue = limits.Tpm });
        command.Parameters.Add(Text(limits.Models is { Count: > 0 } models ? string.Join('\n', models) : null));
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset?> { NpgsqlDbType = NpgsqlDbType.TimestampTz, TypedValue = expiresAt?.ToUniversalTime() });
    }

    internal static NpgsqlParameter<string?> Text(string? value) => new() { NpgsqlDbType = NpgsqlDbType.Text, TypedValue = value };

    internal static NpgsqlParameter<DateTimeOffset> Time(DateTimeOffset value) => new() { NpgsqlDbType = NpgsqlDbType.TimestampTz, TypedValue = value.ToUniversalTime() };

    /// <summary>
    /// <c>timestamptz</c> keeps microseconds; a record handed back at creation carries the value as it will read
    /// back, so it compares equal to the stored one.
    /// </summary>
    internal static DateTimeOffset ToMicroseconds(DateTimeOffset value) =>
        new DateTimeOffset(value.UtcTicks - (value.UtcTicks % 10), TimeSpan.Zero);

    private static ApiKeyRecord Read(NpgsqlDataReader reader)
    {
        var limits = new KeyLimits(
            reader.IsDBNull(7) ? null : reader.GetInt64(7),
            reader.IsDBNull(8) ? null : reader.GetDecimal(8),
            reader.IsDBNull(9) ? null : reader.GetInt32(9),
            reader.IsDBNull(10) ? null : reader.GetInt32(10),
            reader.IsDBNull(11) ? null : reader.GetString(11).Split('\n'));
        return new ApiKeyRecord(
            reader.GetString(0),
            reader.GetString(1),
            reader.GetString(2),
            reader.GetString(3),
            reader.GetFieldValue<DateTimeOffset>(4),
            reader.IsDBNull(5) ? null : reader.GetFieldValue<DateTimeOffset>(5),
            reader.GetString(6),
            limits == KeyLimits.None ? null : limits,
            reader.IsDBNull(12) ? null : reader.GetFieldValue<DateTimeOffset>(12));
    }
}
