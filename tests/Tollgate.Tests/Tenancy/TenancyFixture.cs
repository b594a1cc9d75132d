using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Tenancy;

/// <summary>Helpers for tenancy tests: make tenants and keys through the admin API, read the ledger file directly.</summary>
internal static class Tenants
{
    public static async Task<string> CreateAsync(TestGateway gateway, string name, string plan, CancellationToken cancellationToken)
    {
        using var response = await gateway.Admin.PostAsJsonAsync("admin/tenants", new { name, plan }, cancellationToken);
        Assert.Equal(System.Net.HttpStatusCode.Created, response.StatusCode);
        return (string)(await response.Content.ReadFromJsonAsync<JsonObject>(cancellationToken))!["id"]!;
    }

    public static async Task<JsonObject> CreateKeyAsync(TestGateway gateway, object body, CancellationToken cancellationToken)
    {
        using var response = await gateway.Admin.PostAsJsonAsync("admin/keys", body, cancellationToken);
        var json = (await response.Content.ReadFromJsonAsync<JsonObject>(cancellationToken))!;
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.Created, json.ToJsonString());
        return json;
    }

    /// <summary>Runs a query against the gateway's SQLite file with a connection of its own (as an auditor would).</summary>
    public static async Task<List<object?[]>> QueryAsync(string dataDirectory, string sql, CancellationToken cancellationToken)
    {
        var builder = new SqliteConnectionStringBuilder { DataSource = Path.Combine(dataDirectory, "tollgate.db"), Pooling = false, Mode = SqliteOpenMode.ReadOnly };
        await using var connection = new SqliteConnection(builder.ToString());
        await connection.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        var rows = new List<object?[]>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var row = new object?[reader.FieldCount];
            for (var i = 0; i < row.Length; i++)
            {
                row[i] = reader.IsDBNull(i) ? null : reader.GetValue(i);
            }

            rows.Add(row);
        }

        return rows;
    }

    public static JsonObject Chat(int maxTokens, bool stream = false)
    {
        var body = GatewayScenario.ChatBody(stream: stream);
        body["max_tokens"] = maxTokens;
        return body;
    }
}
