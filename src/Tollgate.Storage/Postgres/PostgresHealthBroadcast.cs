using System.Globalization;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Npgsql;
using Tollgate.Health;

namespace Tollgate.Storage.Postgres;

/// <summary>
/// Rate limits told between the instances of one database with PostgreSQL's <c>NOTIFY</c> / <c>LISTEN</c>: at once,
/// with nothing stored and nothing to poll. A notice is <c>instance id \n remaining ms \n deployment id</c> on the
/// channel <see cref="Channel"/>; an instance ignores its own.
/// </summary>
public sealed class PostgresHealthBroadcast(PostgresDatabase database) : IHealthBroadcast
{
    public const string Channel = "tollgate_health";

    private static readonly TimeSpan ReconnectDelay = TimeSpan.FromSeconds(1);

    private readonly string _instance = Guid.NewGuid().ToString("N");

    public void Publish(CooldownNotice notice) => _ = SendAsync(notice);

    public async IAsyncEnumerable<CooldownNotice> ListenAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var notices = System.Threading.Channels.Channel.CreateUnbounded<CooldownNotice>(new UnboundedChannelOptions { SingleReader = true });
        var listening = ListenLoopAsync(notices.Writer, cancellationToken);
        try
        {
            await foreach (var notice in notices.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                yield return notice;
            }
        }
        finally
        {
            await listening.ConfigureAwait(false);
        }
    }

    private async Task SendAsync(CooldownNotice notice)
    {
        try
        {
            await using var connection = await database.OpenAsync(CancellationToken.None).ConfigureAwait(false);
            await using var command = new NpgsqlCommand("SELECT pg_notify($1, $2)", connection);
            command.Parameters.Add(PostgresKeyStore.Text(Channel));
            command.Parameters.Add(PostgresKeyStore.Text(string.Create(CultureInfo.InvariantCulture, $"{_instance}\n{(long)notice.Remaining.TotalMilliseconds}\n{notice.DeploymentId}")));
            await command.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or IOException or TimeoutException or InvalidOperationException)
        {
            // Best effort: the other instances then learn the rate limit from the provider itself.
        }
    }

    /// <summary>
    /// Holds one connection of its own (outside the pool: a pooled connection would take its LISTEN to the next
    /// borrower) and passes on every notice of another instance; after a failure it connects again.
    /// </summary>
    private async Task ListenLoopAsync(ChannelWriter<CooldownNotice> notices, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = database.CreateUnpooledConnection();
                connection.Notification += (_, e) =>
                {
                    if (Parse(e.Payload) is { } notice)
                    {
                        notices.TryWrite(notice);
                    }
                };
                await connection.OpenAsync(CancellationToken.None).ConfigureAwait(false);
                await using (var listen = new NpgsqlCommand($"LISTEN {Channel}", connection))
                {
                    await listen.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
                }

                // The one Npgsql call given a token that can be cancelled (see PostgresDatabase): only at shutdown, on a
                // connection that reads only when a notice arrives, and a listener has no other way to stop waiting.
                while (true)
                {
                    await connection.WaitAsync(cancellationToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (ex is NpgsqlException or IOException or TimeoutException or InvalidOperationException)
            {
                // The database went away: notices sent meanwhile are lost, which costs only a 429 per instance.
                try
                {
                    await Task.Delay(ReconnectDelay, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }

        notices.TryComplete();
    }

    private CooldownNotice? Parse(string payload)
    {
        var parts = payload.Split('\n', 3);
        return parts.Length == 3 && parts[0] != _instance && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var ms) && parts[2].Length > 0
            ? new CooldownNotice(parts[2], TimeSpan.FromMilliseconds(ms))
            : null;
    }
}
