using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Tollgate.Tests.Fakes;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Gateway;

/// <summary>
/// When the ledger cannot take a request's row, the request is not presented as a success: a buffered answer is
/// replaced by <c>500 ledger_unavailable</c>, and a stream ends with an error event instead of <c>[DONE]</c>.
/// The fault is real: a trigger in the gateway's own SQLite file refuses every ledger insert.
/// </summary>
public sealed class LedgerFailureTests : IAsyncLifetime
{
    private GatewayScenario _scenario = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        await BreakLedgerAsync(_scenario.Gateway.DataDirectory);
    }

    public async ValueTask DisposeAsync() => await _scenario.DisposeAsync();

    [Fact]
    public async Task Buffered_LedgerRefusesTheRow_Answers500InsteadOfTheUnrecordedAnswer()
    {
        using var response = await _scenario.PostChatAsync(GatewayScenario.ChatBody(), Ct);

        var body = await response.Content.ReadAsStringAsync(Ct);
        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        var error = JsonNode.Parse(body)!["error"]!;
        Assert.Equal("ledger_unavailable", (string?)error["code"]);
        Assert.Equal("api_error", (string?)error["type"]);
        Assert.DoesNotContain(FakeBehavior.DefaultContent, body, StringComparison.Ordinal);
        Assert.Equal(1, _scenario.Fakes[0].RequestCount); // the provider answered; the gateway could not record it
    }

    [Fact]
    public async Task Stream_LedgerRefusesTheRow_EndsWithAnErrorEventAndNoDone()
    {
        using var response = await _scenario.PostChatAsync(GatewayScenario.ChatBody(stream: true), Ct);
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync(Ct));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode); // the first event had already gone out
        Assert.DoesNotContain("[DONE]", events);
        var last = JsonNode.Parse(events[^1])!;
        Assert.Equal("ledger_unavailable", (string?)last["error"]!["code"]);
    }

    private static async Task BreakLedgerAsync(string dataDirectory)
    {
        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(dataDirectory, "tollgate.db"), Pooling = false }.ToString());
        await connection.OpenAsync(Ct);
        await using var command = connection.CreateCommand();
        command.CommandText = "CREATE TRIGGER refuse_ledger BEFORE INSERT ON ledger BEGIN SELECT RAISE(ABORT, 'the disk is full'); END;";
        await command.ExecuteNonQueryAsync(Ct);
    }
}
