using System.Globalization;
using Npgsql;

namespace Tollgate.Storage.Postgres;

/// <summary>
/// A PostgreSQL database shared by several gateway instances: keys, tenants, the usage ledger and invoices.
/// One pooled <see cref="NpgsqlDataSource"/> per process. Migrations are applied in order at start, each once,
/// under an advisory lock so instances that start together do not race each other through them.
/// </summary>
/// <remarks>
/// Npgsql is never handed a token that can be cancelled: a caller's token is checked before a connection is taken,
/// and every command then runs to its end (or to its command timeout). When a token is cancelled, Npgsql cancels the
/// command on the cancelling thread, and a reply that completes the command at that moment waits, on the thread that
/// completes it, for that cancellation to end. With <c>server.inlineIo</c> that thread is the socket I/O thread, and
/// the cancellation did not end while it waited: clients that left during their queries stalled every connection of
/// the instance until the command timeout (<c>docs/performance.md</c>, "Several instances").
/// </remarks>
public sealed class PostgresDatabase : IAsyncDisposable
{
    /// <summary>Any constant works; it names the migration lock among the database's advisory locks.</summary>
    private const long MigrationLock = 0x546f6c6c67617465; // "Tollgate"

    /// <summary>Ordered, append-only. Never edit a shipped migration; add a new one.</summary>
    private static readonly (int Version, string Name, string Sql)[] Migrations =
    [
        (1, "keys, tenants, ledger, invoices", """
            CREATE TABLE settings (
                name   text PRIMARY KEY,
                value  text NOT NULL
            );

            CREATE TABLE tenants (
                id          text PRIMARY KEY,
                name        text NOT NULL,
                plan        text NULL,
                suspended   boolean NOT NULL DEFAULT false,
                created_at  timestamptz NOT NULL
            );
            -- Keys made without a tenant belong to the default tenant, which has no plan (no limits).
            INSERT INTO tenants (id, name, plan, suspended, created_at) VALUES ('default', 'default', NULL, false, now());

            CREATE TABLE api_keys (
                id                  text PRIMARY KEY,
                name                text NOT NULL,
                prefix              text NOT NULL,
                hash                text NOT NULL UNIQUE,
                created_at          timestamptz NOT NULL,
                revoked_at          timestamptz NULL,
                tenant_id           text NOT NULL REFERENCES tenants (id),
                monthly_tokens      bigint NULL,
                monthly_budget_usd  numeric NULL,
                rpm                 integer NULL,
                tpm                 integer NULL,
                models              text NULL,              -- newline-separated allow-list
                expires_at          timestamptz NULL
            );
            CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

            -- A counter bumped by every change to keys or tenants: what every running instance polls to drop its
            -- caches. Ledger writes (constant) do not touch it, so they never look like key changes.
            INSERT INTO settings (name, value) VALUES ('auth_version', '0');
            CREATE FUNCTION tollgate_bump_auth_version() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE settings SET value = (value::bigint + 1)::text WHERE name = 'auth_version';
                RETURN NULL;
            END $$;
            CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE ON api_keys
                FOR EACH STATEMENT EXECUTE FUNCTION tollgate_bump_auth_version();
            CREATE TRIGGER tenants_changed AFTER INSERT OR UPDATE OR DELETE ON tenants
                FOR EACH STATEMENT EXECUTE FUNCTION tollgate_bump_auth_version();

            -- One row per request (and per extra billed attempt). Money in integer picodollars, summed by
            -- PostgreSQL as exact numeric; times in Unix milliseconds (UTC), as in the embedded database.
            CREATE TABLE ledger (
                seq               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                request_id        text NOT NULL,
                ts_ms             bigint NOT NULL,
                tenant_id         text NOT NULL,
                key_id            text NOT NULL,
                model             text NOT NULL,
                route             text NULL,
                provider          text NULL,
                deployment        text NULL,
                attempts          integer NOT NULL,
                input_uncached    bigint NOT NULL,
                input_cached      bigint NOT NULL,
                cache_write_5m    bigint NOT NULL,
                cache_write_1h    bigint NOT NULL,
                output_text       bigint NOT NULL,
                output_reasoning  bigint NOT NULL,
                usage_source      text NULL,
                cost_pusd         bigint NULL,
                price_pusd        bigint NOT NULL,
                first_byte_ms     bigint NULL,
                total_ms          bigint NOT NULL,
                status            integer NOT NULL,
                error_code        text NULL,
                task              text NULL,
                baseline_pusd     bigint NULL,
                attempt_kind      text NULL,                -- null: the request's own row; 'hedge' / 'escalated'
                escalations       integer NOT NULL DEFAULT 0
            );
            CREATE INDEX ledger_tenant_time ON ledger (tenant_id, ts_ms);
            CREATE INDEX ledger_time ON ledger (ts_ms);

            -- One row per issued invoice version; issued invoices never change (a re-issue is a new version).
            CREATE TABLE invoices (
                id              text PRIMARY KEY,           -- inv_{yyyy-MM}_{tenant}_{version}
                tenant_id       text NOT NULL,
                month           text NOT NULL,              -- yyyy-MM (UTC calendar month)
                version         integer NOT NULL,
                issued_at       timestamptz NOT NULL,
                total_due_usd   numeric NOT NULL,
                document        text NOT NULL,
                UNIQUE (tenant_id, month, version)
            );
            CREATE INDEX invoices_month ON invoices (month, tenant_id);
            CREATE FUNCTION tollgate_invoices_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'issued invoices are immutable and kept; re-issue makes a new version';
            END $$;
            CREATE TRIGGER invoices_immutable BEFORE UPDATE OR DELETE ON invoices
                FOR EACH ROW EXECUTE FUNCTION tollgate_invoices_immutable();
            """),
        (2, "limit counters shared by every instance", """
            -- Settled usage of one scope ('t:' tenant with a plan, 'k:' key with limits of its own) in one calendar
            -- month (year * 12 + month, UTC). Made on first use from the ledger; deleted when the scope's plan or limits
            -- change, so it is made again from the ledger then (usage while it had no limits was not counted here).
            CREATE TABLE limit_months (
                scope     text NOT NULL,
                month     bigint NOT NULL,
                tokens    bigint NOT NULL,
                cost_pusd numeric NOT NULL,                 -- picodollars, exact at any size
                PRIMARY KEY (scope, month)
            );
            -- Requests and tokens of one scope in one Unix minute (rows of past minutes are deleted as they go).
            CREATE TABLE limit_minutes (
                scope     text NOT NULL,
                minute    bigint NOT NULL,
                requests  bigint NOT NULL,
                tokens    bigint NOT NULL,
                PRIMARY KEY (scope, minute)
            );
            -- The worst case of each limited request in flight, until it settles. A hold whose instance died stops
            -- counting at expires_at.
            CREATE TABLE limit_holds (
                id            uuid PRIMARY KEY,
                tenant_scope  text NULL,
                key_scope     text NULL,
                month         bigint NOT NULL,
                tokens        bigint NOT NULL,
                cost_pusd     numeric NOT NULL,
                expires_at    timestamptz NOT NULL
            );
            CREATE INDEX limit_holds_tenant ON limit_holds (tenant_scope);
            CREATE INDEX limit_holds_key ON limit_holds (key_scope);
            """),
        (3, "dashboard sessions shared by every instance", """
            -- One logged-in dashboard browser, under the SHA-256 hash of its cookie (never the cookie itself).
            CREATE TABLE dashboard_sessions (
                id_hash     text PRIMARY KEY,
                role        text NOT NULL,                  -- admin | tenant
                key_hash    text NULL,                      -- a tenant session's client key, re-checked on every request
                tenant_id   text NULL,
                expires_at  timestamptz NOT NULL
            );
            CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);
            """),
        (4, "ledger: the provider's own reported cost", """
            -- What the provider itself said the row cost (OpenRouter's usage.cost), in picodollars rounded to the nearest
            -- (half to even) as cost_pusd is. Null when it said nothing, as most providers do: never 0 for unknown. Kept
            -- beside cost_pusd, never instead of it, so a stale price table shows. Rows written before it stay null.
            -- Nullable without a default, so PostgreSQL only changes the catalog: the ledger is not rewritten or held
            -- locked for longer than the ALTER itself, even when it is large.
            ALTER TABLE ledger ADD COLUMN provider_reported_cost_pusd bigint NULL;
            """),
    ];

    /// <summary>The most connections an instance opens for limit counters (besides the <c>Maximum Pool Size</c> of its data).</summary>
    public const int CountersPoolSize = 8;

    private readonly NpgsqlDataSource _source;
    private readonly string _listenerConnectionString;
    private readonly NpgsqlDataSource _counters;

    public PostgresDatabase(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);

        // Sessions run in UTC so that nothing the server formats depends on its own time zone setting.
        builder.Timezone ??= "UTC";
        builder.ApplicationName ??= "tollgate";

        // The limiter's and the stores' statements repeat on every request: prepared once per connection, the server
        // plans them once instead of per call (the limit check is a statement that takes longer to plan than to run).
        if (builder.MaxAutoPrepare == 0)
        {
            builder.MaxAutoPrepare = 64;
            builder.AutoPrepareMinUsages = 2;
        }

        // Nothing here changes session state (no SET, no temporary tables; the limiter's advisory locks end with their
        // transaction and the migration's is released before its connection goes back), so a connection returned to
        // the pool needs no reset: that reset was five statements on every next use.
        builder.NoResetOnClose = true;
        _source = NpgsqlDataSource.Create(builder);

        // Kept here rather than read back from the data source, which drops the password from its copy.
        _listenerConnectionString = new NpgsqlConnectionStringBuilder(builder.ConnectionString) { Pooling = false, ApplicationName = builder.ApplicationName + " (health)" }.ConnectionString;

        // The limit counters change twice per limited request, and a reservation holds the tenant's lock until its
        // commit returns. Waiting for the WAL flush there would serialise a tenant's requests at the disk's flush rate,
        // so the counters' sessions commit without waiting (synchronous_commit = off). The ledger keeps durable commits: after a
        // database crash the counters can miss the last moments of usage, never the rows that record it.
        var counters = new NpgsqlConnectionStringBuilder(builder.ConnectionString);
        counters.Options = string.IsNullOrEmpty(counters.Options) ? "-c synchronous_commit=off" : counters.Options + " -c synchronous_commit=off";
        counters.ApplicationName = builder.ApplicationName + " (limits)";

        // A reservation waits, on its connection, for its tenant's lock: under a burst of one tenant's requests every
        // one of them would hold a server connection just to wait. A small pool makes them wait in the gateway
        // instead, at the same throughput (the lock passes one at a time), and keeps an instance's connections well
        // under a stock server's max_connections of 100 (with Npgsql's default pool of 100 beside it, 64 limited
        // requests at once refused each other "too many clients").
        counters.MaxPoolSize = Math.Min(counters.MaxPoolSize, CountersPoolSize);
        counters.MinPoolSize = Math.Min(counters.MinPoolSize, counters.MaxPoolSize);
        _counters = NpgsqlDataSource.Create(counters);
        Description = $"PostgreSQL database '{builder.Database}' on {builder.Host}:{builder.Port}";
    }

    /// <summary>Where the data is, for start-up messages: host, port and database, never the credentials.</summary>
    public string Description { get; }

    /// <summary>A pooled connection, unless <paramref name="cancellationToken"/> is already cancelled (see the remarks above).</summary>
    public ValueTask<NpgsqlConnection> OpenAsync(CancellationToken cancellationToken) =>
        cancellationToken.IsCancellationRequested
            ? ValueTask.FromCanceled<NpgsqlConnection>(cancellationToken)
            : _source.OpenConnectionAsync(CancellationToken.None);

    /// <summary>
    /// A connection of its own, outside every pool, not yet open: for a session that must not be handed to anyone
    /// else afterwards (one that LISTENs).
    /// </summary>
    public NpgsqlConnection CreateUnpooledConnection() =>
        new(_listenerConnectionString);

    /// <summary>One round trip to the server (a readiness probe).</summary>
    public async Task PingAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("SELECT 1", connection);
        await command.ExecuteScalarAsync(CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>A connection for the limit counters, whose commits do not wait for the disk (see the constructor).</summary>
    public ValueTask<NpgsqlConnection> OpenCountersAsync(CancellationToken cancellationToken) =>
        cancellationToken.IsCancellationRequested
            ? ValueTask.FromCanceled<NpgsqlConnection>(cancellationToken)
            : _counters.OpenConnectionAsync(CancellationToken.None);

    /// <summary>Applies pending migrations, each in its own transaction, holding the migration lock throughout.</summary>
    public Task MigrateAsync(CancellationToken cancellationToken) => MigrateAsync(int.MaxValue, cancellationToken);

    /// <summary>
    /// Applies pending migrations up to and including <paramref name="lastVersion"/> only: the database an earlier
    /// release left behind, for the tests that upgrade one.
    /// </summary>
    internal async Task MigrateAsync(int lastVersion, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (var lockCommand = new NpgsqlCommand("SELECT pg_advisory_lock($1)", connection))
        {
            lockCommand.Parameters.Add(new NpgsqlParameter<long> { TypedValue = MigrationLock });
            await lockCommand.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
        }

        try
        {
            await using (var setup = new NpgsqlCommand(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)", connection))
            {
                await setup.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
            }

            foreach (var (version, name, sql) in Migrations.TakeWhile(m => m.Version <= lastVersion))
            {
                await using var transaction = await connection.BeginTransactionAsync(CancellationToken.None).ConfigureAwait(false);
                await using (var check = new NpgsqlCommand("SELECT count(*) FROM schema_migrations WHERE version = $1", connection, transaction))
                {
                    check.Parameters.Add(new NpgsqlParameter<int> { TypedValue = version });
                    if (Convert.ToInt64(await check.ExecuteScalarAsync(CancellationToken.None).ConfigureAwait(false), CultureInfo.InvariantCulture) > 0)
                    {
                        continue;
                    }
                }

                await using (var migrate = new NpgsqlCommand(sql, connection, transaction))
                {
                    await migrate.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
                }

                await using (var record = new NpgsqlCommand("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())", connection, transaction))
                {
                    record.Parameters.Add(new NpgsqlParameter<int> { TypedValue = version });
                    record.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
                    await record.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
                }

                await transaction.CommitAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }
        finally
        {
            await using var unlock = new NpgsqlCommand("SELECT pg_advisory_unlock($1)", connection);
            unlock.Parameters.Add(new NpgsqlParameter<long> { TypedValue = MigrationLock });
            await unlock.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _counters.DisposeAsync().ConfigureAwait(false);
        await _source.DisposeAsync().ConfigureAwait(false);
    }
}
