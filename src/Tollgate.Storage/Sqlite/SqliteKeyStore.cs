using System.Globalization;
using Microsoft.Data.Sqlite;
using Tollgate.Keys;

namespace Tollgate.Storage.Sqlite;

/// <summary>Client keys and the admin key hash in the embedded database.</summary>
public sealed class SqliteKeyStore(SqliteDatabase database, TimeProvider time) : IKeyStore, IDisposable
{
    private const string AdminKeySetting = "admin_key_hash";
    private const string Columns = "id, name, prefix, hash, created_at, revoked_at, tenant_id, monthly_tokens, monthly_budget_usd, rpm, tpm, models, expires_at";

    // One long-lived connection for the change stamp, so polling it once a second costs no pool churn.
    private readonly SemaphoreSlim _stampGate = new(1, 1);
    private SqliteConnection? _stampConnection;

    public Task<CreatedApiKey> CreateAsync(string name, CancellationToken cancellationToken) =>
        CreateAsync(new NewApiKey(name), cancellationToken);

    public async Task<CreatedApiKey> CreateAsync(NewApiKey spec, CancellationToken cancellationToken)
    {
        var key = ApiKeys.NewSecret(ApiKeys.ClientPrefix);
        var record = new ApiKeyRecord(ApiKeys.NewId(), spec.Name, ApiKeys.VisiblePrefix(key), ApiKeys.Hash(key), time.GetUtcNow(), null, spec.TenantId, spec.Limits, spec.ExpiresAt);
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = """
            INSERT INTO api_keys (id, name, prefix, hash, created_at, tenant_id, monthly_tokens, monthly_budget_usd, rpm, tpm, models, expires_at)
            VALUES ($id, $name, $prefix, $hash, $created, $tenant, $tokens, $budget, $rpm, $tpm, $models, $expires)
            """;
        command.Parameters.AddWithValue("$id", record.Id);
        command.Parameters.AddWithValue("$name", record.Name);
        command.Parameters.AddWithValue("$prefix", record.Prefix);
        command.Parameters.AddWithValue("$hash", record.Hash);
        command.Parameters.AddWithValue("$created", Format(record.CreatedAt));
        command.Parameters.AddWithValue("$tenant", record.TenantId);
        AddLimits(command, record.EffectiveLimits, record.ExpiresAt);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return new CreatedApiKey(record, key);
    }

    public async Task<CreatedApiKey?> RotateAsync(string id, CancellationToken cancellationToken)
    {
        var key = ApiKeys.NewSecret(ApiKeys.ClientPrefix);
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = $"UPDATE api_keys SET hash = $hash, prefix = $prefix WHERE id = $id AND revoked_at IS NULL RETURNING {Columns}";
        command.Parameters.AddWithValue("$hash", ApiKeys.Hash(key));
        command.Parameters.AddWithValue("$prefix", ApiKeys.VisiblePrefix(key));
        command.Parameters.AddWithValue("$id", id);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? new CreatedApiKey(Read(reader), key) : null;
    }

    public async Task<ApiKeyRecord?> UpdateLimitsAsync(string id, KeyLimits limits, DateTimeOffset? expiresAt, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = $"""
            UPDATE api_keys SET monthly_tokens = $tokens, monthly_budget_usd = $budget, rpm = $rpm, tpm = $tpm, models = $models, expires_at = $expires
            WHERE id = $id AND revoked_at IS NULL RETURNING {Columns}
            """;
        command.Parameters.AddWithValue("$id", id);
        AddLimits(command, limits, expiresAt);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? Read(reader) : null;
    }

    public async Task<IReadOnlyList<ApiKeyRecord>> ListAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = $"SELECT {Columns} FROM api_keys ORDER BY created_at, id";
        var keys = new List<ApiKeyRecord>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            keys.Add(Read(reader));
        }

        return keys;
    }

    public async Task<ApiKeyRecord?> FindByHashAsync(string hash, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = $"SELECT {Columns} FROM api_keys WHERE hash = $hash";
        command.Parameters.AddWithValue("$hash", hash);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? Read(reader) : null;
    }

    public async Task<bool> RevokeAsync(string id, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = "UPDATE api_keys SET revoked_at = $now WHERE id = $id AND revoked_at IS NULL";
        command.Parameters.AddWithValue("$now", Format(time.GetUtcNow()));
        command.Parameters.AddWithValue("$id", id);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0;
    }

    public async Task<string?> GetAdminKeyHashAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT value FROM settings WHERE name = $name";
        command.Parameters.AddWithValue("$name", AdminKeySetting);
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as string;
    }

    public async Task SetAdminKeyHashAsync(string hash, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO settings (name, value) VALUES ($name, $value) ON CONFLICT(name) DO UPDATE SET value = excluded.value";
        command.Parameters.AddWithValue("$name", AdminKeySetting);
        command.Parameters.AddWithValue("$value", hash);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<bool> TryInitializeAdminKeyHashAsync(string hash, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO settings (name, value) VALUES ($name, $value) ON CONFLICT(name) DO NOTHING";
        command.Parameters.AddWithValue("$name", AdminKeySetting);
        command.Parameters.AddWithValue("$value", hash);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    /// <summary>The <c>auth_version</c> counter that triggers on <c>api_keys</c> and <c>tenants</c> bump (migration 2).</summary>
    public async Task<long> GetChangeStampAsync(CancellationToken cancellationToken)
    {
        await _stampGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _stampConnection ??= await database.OpenAsync(cancellationToken).ConfigureAwait(false);
            using var command = _stampConnection.CreateCommand();
            command.CommandText = "SELECT CAST(value AS INTEGER) FROM settings WHERE name = 'auth_version'";
            return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) ?? 0L, CultureInfo.InvariantCulture);
        }
        finally
        {
            _stampGate.Release();
        }
    }

    public void Dispose()
    {
        // Idempotent: the host's container and GatewayStorage may both dispose the store.
        _stampConnection?.Dispose();
        _stampConnection = null;
        _stampGate.Dispose();
    }

    private static void AddLimits(SqliteCommand command, KeyLimits limits, DateTimeOffset? expiresAt)
    {
        command.Parameters.AddWithValue("$tokens", (object?)limits.MonthlyTokens ?? DBNull.Value);
        command.Parameters.AddWithValue("$budget", (object?)limits.MonthlyBudgetUsd?.ToString(CultureInfo.InvariantCulture) ?? DBNull.Value);
        command.Parameters.AddWithValue("$rpm", (object?)limits.Rpm ?? DBNull.Value);
        command.Parameters.AddWithValue("$tpm", (object?)limits.Tpm ?? DBNull.Value);
        command.Parameters.AddWithValue("$models", limits.Models is { Count: > 0 } models ? string.Join('\n', models) : DBNull.Value);
        command.Parameters.AddWithValue("$expires", expiresAt is { } at ? Format(at) : DBNull.Value);
    }

    private static ApiKeyRecord Read(SqliteDataReader reader)
    {
        var limits = new KeyLimits(
            reader.IsDBNull(7) ? null : reader.GetInt64(7),
            reader.IsDBNull(8) ? null : decimal.Parse(reader.GetString(8), NumberStyles.Number, CultureInfo.InvariantCulture),
            reader.IsDBNull(9) ? null : reader.GetInt32(9),
            reader.IsDBNull(10) ? null : reader.GetInt32(10),
            reader.IsDBNull(11) ? null : reader.GetString(11).Split('\n'));
        return new ApiKeyRecord(
            reader.GetString(0),
            reader.GetString(1),
            reader.GetString(2),
            reader.GetString(3),
            DateTimeOffset.Parse(reader.GetString(4), CultureInfo.InvariantCulture),
            reader.IsDBNull(5) ? null : DateTimeOffset.Parse(reader.GetString(5), CultureInfo.InvariantCulture),
            reader.GetString(6),
            limits == KeyLimits.None ? null : limits,
            reader.IsDBNull(12) ? null : DateTimeOffset.Parse(reader.GetString(12), CultureInfo.InvariantCulture));
    }

    private static string Format(DateTimeOffset value) => value.ToString("O", CultureInfo.InvariantCulture);
}
