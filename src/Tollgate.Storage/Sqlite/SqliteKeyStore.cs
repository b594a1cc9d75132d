using System.Globalization;
using Microsoft.Data.Sqlite;
using Tollgate.Keys;

namespace Tollgate.Storage.Sqlite;

/// <summary>Client keys and the admin key hash in the embedded database.</summary>
public sealed class SqliteKeyStore(SqliteDatabase database, TimeProvider time) : IKeyStore, IDisposable
{
    private const string AdminKeySetting = "admin_key_hash";

    // data_version is per connection: it changes when *another* connection commits. One long-lived
    // connection, used only for this pragma, sees every commit made by any other connection or process.
    private readonly SemaphoreSlim _stampGate = new(1, 1);
    private SqliteConnection? _stampConnection;

    public async Task<CreatedApiKey> CreateAsync(string name, CancellationToken cancellationToken)
    {
        var key = ApiKeys.NewSecret(ApiKeys.ClientPrefix);
        var record = new ApiKeyRecord(ApiKeys.NewId(), name, ApiKeys.VisiblePrefix(key), ApiKeys.Hash(key), time.GetUtcNow(), null);
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO api_keys (id, name, prefix, hash, created_at) VALUES ($id, $name, $prefix, $hash, $created)";
        command.Parameters.AddWithValue("$id", record.Id);
        command.Parameters.AddWithValue("$name", record.Name);
        command.Parameters.AddWithValue("$prefix", record.Prefix);
        command.Parameters.AddWithValue("$hash", record.Hash);
        command.Parameters.AddWithValue("$created", Format(record.CreatedAt));
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return new CreatedApiKey(record, key);
    }

    public async Task<IReadOnlyList<ApiKeyRecord>> ListAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT id, name, prefix, hash, created_at, revoked_at FROM api_keys ORDER BY created_at, id";
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
        command.CommandText = "SELECT id, name, prefix, hash, created_at, revoked_at FROM api_keys WHERE hash = $hash";
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

    public async Task<long> GetChangeStampAsync(CancellationToken cancellationToken)
    {
        await _stampGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _stampConnection ??= await database.OpenAsync(cancellationToken).ConfigureAwait(false);
            using var command = _stampConnection.CreateCommand();
            command.CommandText = "PRAGMA data_version";
            return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
        }
        finally
        {
            _stampGate.Release();
        }
    }

    public void Dispose()
    {
        _stampConnection?.Dispose();
        _stampGate.Dispose();
    }

    private static ApiKeyRecord Read(SqliteDataReader reader) => new(
        reader.GetString(0),
        reader.GetString(1),
        reader.GetString(2),
        reader.GetString(3),
        DateTimeOffset.Parse(reader.GetString(4), CultureInfo.InvariantCulture),
        reader.IsDBNull(5) ? null : DateTimeOffset.Parse(reader.GetString(5), CultureInfo.InvariantCulture));

    private static string Format(DateTimeOffset value) => value.ToString("O", CultureInfo.InvariantCulture);
}
