using Microsoft.Data.Sqlite;

namespace Tollgate.Storage.Sqlite;

/// <summary>
/// The embedded database: one file under the data directory, WAL mode, schema migrations applied
/// in order at start. Each migration runs once and is recorded in <c>schema_migrations</c>.
/// </summary>
public sealed class SqliteDatabase
{
    /// <summary>Ordered, append-only. Never edit a shipped migration; add a new one.</summary>
    private static readonly (int Version, string Name, string Sql)[] Migrations =
    [
        (1, "api keys and settings", """
            CREATE TABLE api_keys (
                id          TEXT PRIMARY KEY,
                name        TEXT NOT NULL,
                prefix      TEXT NOT NULL,
                hash        TEXT NOT NULL UNIQUE,
                created_at  TEXT NOT NULL,
                revoked_at  TEXT NULL
            );
            CREATE TABLE settings (
                name   TEXT PRIMARY KEY,
                value  TEXT NOT NULL
            );
            """),
        (2, "tenants, key limits, usage ledger", """
            CREATE TABLE tenants (
                id          TEXT PRIMARY KEY,
                name        TEXT NOT NULL,
                plan        TEXT NULL,
                suspended   INTEGER NOT NULL DEFAULT 0,
                created_at  TEXT NOT NULL
            );
            -- Every key made before tenancy belongs to the default tenant, which has no plan (no limits).
            INSERT INTO tenants (id, name, plan, suspended, created_at)
                VALUES ('default', 'default', NULL, 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));

            -- SQLite cannot add a REFERENCES column with a non-null default while foreign keys are on;
            -- the stores only ever write existing tenant ids.
            ALTER TABLE api_keys ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
            ALTER TABLE api_keys ADD COLUMN monthly_tokens INTEGER NULL;
            ALTER TABLE api_keys ADD COLUMN monthly_budget_usd TEXT NULL;   -- decimal as text, never REAL
            ALTER TABLE api_keys ADD COLUMN rpm INTEGER NULL;
            ALTER TABLE api_keys ADD COLUMN tpm INTEGER NULL;
            ALTER TABLE api_keys ADD COLUMN models TEXT NULL;               -- newline-separated allow-list
            ALTER TABLE api_keys ADD COLUMN expires_at TEXT NULL;
            CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

            -- A counter bumped by every change to keys or tenants: what running servers poll to drop caches,
            -- so ledger writes (which are constant) do not look like key changes.
            INSERT INTO settings (name, value) VALUES ('auth_version', '0');
            CREATE TRIGGER api_keys_ins AFTER INSERT ON api_keys BEGIN UPDATE settings SET value = CAST(value AS INTEGER) + 1 WHERE name = 'auth_version'; END;
            CREATE TRIGGER api_keys_upd AFTER UPDATE ON api_keys BEGIN UPDATE settings SET value = CAST(value AS INTEGER) + 1 WHERE name = 'auth_version'; END;
            CREATE TRIGGER api_keys_del AFTER DELETE ON api_keys BEGIN UPDATE settings SET value = CAST(value AS INTEGER) + 1 WHERE name = 'auth_version'; END;
            CREATE TRIGGER tenants_ins AFTER INSERT ON tenants BEGIN UPDATE settings SET value = CAST(value AS INTEGER) + 1 WHERE name = 'auth_version'; END;
            CREATE TRIGGER tenants_upd AFTER UPDATE ON tenants BEGIN UPDATE settings SET value = CAST(value AS INTEGER) + 1 WHERE name = 'auth_version'; END;
            CREATE TRIGGER tenants_del AFTER DELETE ON tenants BEGIN UPDATE settings SET value = CAST(value AS INTEGER) + 1 WHERE name = 'auth_version'; END;

            -- One row per request. Money in integer picodollars (exact sums); times in Unix milliseconds (UTC).
            CREATE TABLE ledger (
                seq               INTEGER PRIMARY KEY,
                request_id        TEXT NOT NULL,
                ts_ms             INTEGER NOT NULL,
                tenant_id         TEXT NOT NULL,
                key_id            TEXT NOT NULL,
                model             TEXT NOT NULL,
                route             TEXT NULL,
                provider          TEXT NULL,
                deployment        TEXT NULL,
                attempts          INTEGER NOT NULL,
                input_uncached    INTEGER NOT NULL,
                input_cached      INTEGER NOT NULL,
                cache_write_5m    INTEGER NOT NULL,
                cache_write_1h    INTEGER NOT NULL,
                output_text       INTEGER NOT NULL,
                output_reasoning  INTEGER NOT NULL,
                usage_source      TEXT NULL,
                cost_pusd         INTEGER NULL,
                price_pusd        INTEGER NOT NULL,
                first_byte_ms     INTEGER NULL,
                total_ms          INTEGER NOT NULL,
                status            INTEGER NOT NULL,
                error_code        TEXT NULL
            );
            CREATE INDEX ledger_tenant_time ON ledger (tenant_id, ts_ms);
            CREATE INDEX ledger_time ON ledger (ts_ms);

            -- No index on request_id: ids are random, so every commit would dirty a random index page (more WAL
            -- pages per commit on the request path, measured in docs/performance.md). Lookups by id are audits.
            """),
        (3, "ledger: task, savings baseline, extra billed attempts", """
            -- The task the router served the request as (classified or stated); null when no task routing ran.
            ALTER TABLE ledger ADD COLUMN task TEXT NULL;
            -- What the same tokens would have cost on the route's most expensive candidate, in picodollars:
            -- the default savings baseline. Null when no candidate's price is known or nothing was used.
            ALTER TABLE ledger ADD COLUMN baseline_pusd INTEGER NULL;
            -- Null on a request's own row. 'hedge' or 'escalated' on an extra row that meters an attempt which
            -- used tokens but did not give the answer (a hedged attempt that lost, an answer that failed its
            -- schema check): same request_id, counted in tokens and cost, never as another request.
            ALTER TABLE ledger ADD COLUMN attempt_kind TEXT NULL;
            -- How many times the request was escalated to a stronger tier after a failed answer check.
            ALTER TABLE ledger ADD COLUMN escalations INTEGER NOT NULL DEFAULT 0;
            """),
        (4, "issued invoices", """
            -- One row per issued invoice version: the full snapshot as a JSON document (what the API returns),
            -- plus the columns lists filter by. Issued invoices never change: a re-issue is a new version row.
            CREATE TABLE invoices (
                id              TEXT PRIMARY KEY,           -- inv_{yyyy-MM}_{tenant}_{version}
                tenant_id       TEXT NOT NULL,
                month           TEXT NOT NULL,              -- yyyy-MM (UTC calendar month)
                version         INTEGER NOT NULL,
                issued_at       TEXT NOT NULL,
                total_due_pusd  INTEGER NOT NULL,           -- picodollars, as the ledger
                document        TEXT NOT NULL,
                UNIQUE (tenant_id, month, version)
            );
            CREATE INDEX invoices_month ON invoices (month, tenant_id);
            CREATE TRIGGER invoices_immutable BEFORE UPDATE ON invoices
                BEGIN SELECT RAISE(ABORT, 'issued invoices are immutable; re-issue makes a new version'); END;
            CREATE TRIGGER invoices_kept BEFORE DELETE ON invoices
                BEGIN SELECT RAISE(ABORT, 'issued invoices are kept; re-issue makes a new version'); END;
            """),
        (5, "invoice totals as exact decimals", """
            -- A picodollar INTEGER ends at USD 9.2 million (2^63 - 1 picodollars): one tenant's month above that could
            -- not be issued. The total is now the exact decimal as invariant text, as in the document. SQLite cannot
            -- change a column's type, so the table is rebuilt; its rows are immutable, hence the triggers go first.
            DROP TRIGGER invoices_immutable;
            DROP TRIGGER invoices_kept;
            CREATE TABLE invoices_v5 (
                id              TEXT PRIMARY KEY,           -- inv_{yyyy-MM}_{tenant}_{version}
                tenant_id       TEXT NOT NULL,
                month           TEXT NOT NULL,              -- yyyy-MM (UTC calendar month)
                version         INTEGER NOT NULL,
                issued_at       TEXT NOT NULL,
                total_due_usd   TEXT NOT NULL,              -- exact decimal USD, invariant culture ("7500009.000000000003")
                document        TEXT NOT NULL,
                UNIQUE (tenant_id, month, version)
            );
            INSERT INTO invoices_v5 (id, tenant_id, month, version, issued_at, total_due_usd, document)
                SELECT id, tenant_id, month, version, issued_at,
                       CASE WHEN total_due_pusd < 0 THEN '-' ELSE '' END
                           || (abs(total_due_pusd) / 1000000000000) || '.'
                           || substr('000000000000' || (abs(total_due_pusd) % 1000000000000), -12),
                       document
                FROM invoices;
            DROP TABLE invoices;
            ALTER TABLE invoices_v5 RENAME TO invoices;
            CREATE INDEX invoices_month ON invoices (month, tenant_id);
            CREATE TRIGGER invoices_immutable BEFORE UPDATE ON invoices
                BEGIN SELECT RAISE(ABORT, 'issued invoices are immutable; re-issue makes a new version'); END;
            CREATE TRIGGER invoices_kept BEFORE DELETE ON invoices
                BEGIN SELECT RAISE(ABORT, 'issued invoices are kept; re-issue makes a new version'); END;
            """),
        (6, "ledger: the provider's own reported cost", """
            -- What the provider itself said the row cost (OpenRouter's usage.cost), in picodollars rounded to the nearest
            -- (half to even) as cost_pusd is. Null when it said nothing, as most providers do: never 0 for unknown. Kept
            -- beside cost_pusd, never instead of it, so a stale price table shows. Rows written before it stay null.
            -- A nullable column without a default: SQLite changes only the schema, no row is rewritten.
            ALTER TABLE ledger ADD COLUMN provider_reported_cost_pusd INTEGER NULL;
            """),
    ];

    public SqliteDatabase(string dataDirectory)
    {
        Directory.CreateDirectory(dataDirectory);
        FilePath = Path.GetFullPath(Path.Combine(dataDirectory, "tollgate.db"));
        ConnectionString = new SqliteConnectionStringBuilder
        {
            DataSource = FilePath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
    }

    public string FilePath { get; }

    public string ConnectionString { get; }

    public async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(ConnectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        using var pragma = connection.CreateCommand();

        // busy_timeout lets a CLI command and a running server share the file without SQLITE_BUSY.
        pragma.CommandText = "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;";
        await pragma.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return connection;
    }

    /// <summary>Creates the file if needed, switches it to WAL and applies pending migrations in one transaction each.</summary>
    public Task MigrateAsync(CancellationToken cancellationToken) => MigrateAsync(int.MaxValue, cancellationToken);

    /// <summary>
    /// Applies pending migrations up to and including <paramref name="lastVersion"/> only: the database an earlier
    /// release left behind, for the tests that upgrade one.
    /// </summary>
    internal async Task MigrateAsync(int lastVersion, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        using (var setup = connection.CreateCommand())
        {
            setup.CommandText = """
                PRAGMA journal_mode = WAL;
                PRAGMA synchronous = NORMAL;
                CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);
                """;
            await setup.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        foreach (var (version, name, sql) in Migrations.TakeWhile(m => m.Version <= lastVersion))
        {
            await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            using var check = connection.CreateCommand();
            check.Transaction = transaction;
            check.CommandText = "SELECT COUNT(*) FROM schema_migrations WHERE version = $v";
            check.Parameters.AddWithValue("$v", version);
            if (Convert.ToInt64(await check.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture) > 0)
            {
                continue;
            }

            using var migrate = connection.CreateCommand();
            migrate.Transaction = transaction;
            migrate.CommandText = sql;
            await migrate.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);

            using var record = connection.CreateCommand();
            record.Transaction = transaction;
            record.CommandText = "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($v, $n, $t)";
            record.Parameters.AddWithValue("$v", version);
            record.Parameters.AddWithValue("$n", name);
            record.Parameters.AddWithValue("$t", TimeProvider.System.GetUtcNow().ToString("O", System.Globalization.CultureInfo.InvariantCulture));
            await record.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
    }
}
