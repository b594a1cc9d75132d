namespace Tollgate.Configuration;

/// <summary>
/// The whole of <c>tollgate.json</c> after the built-in defaults, the user's file and environment
/// variables have been layered. Immutable: a configuration change builds a new instance.
/// </summary>
public sealed record TollgateOptions
{
    /// <summary>When true (default) the built-in provider/model/route catalog is merged under the user's file.</summary>
    public bool UseDefaults { get; init; } = true;

    /// <summary>Upstream providers by name (e.g. <c>openai</c>, <c>deepseek</c>).</summary>
    public Dictionary<string, ProviderOptions> Providers { get; init; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Deployments by id: a provider plus an upstream model and its prices.</summary>
    public Dictionary<string, DeploymentOptions> Models { get; init; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Public model names mapped to a list of candidate deployments.</summary>
    public Dictionary<string, RouteOptions> Routes { get; init; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Plans tenants subscribe to, by name. The built-in four (free, starter, pro, business) are always
    /// present unless this section names a plan the same way, which replaces it whole.</summary>
    public Dictionary<string, PlanOptions> Plans { get; init; } = new(StringComparer.OrdinalIgnoreCase);

    public RoutingOptions Routing { get; init; } = new();

    public ServerOptions Server { get; init; } = new();

    public StorageOptions Storage { get; init; } = new();

    public TelemetryOptions Telemetry { get; init; } = new();
}

/// <summary>One upstream API endpoint and how to authenticate to it.</summary>
public sealed record ProviderOptions
{
    /// <summary><c>openai</c> (any OpenAI-compatible API), <c>anthropic</c> or <c>gemini</c>.</summary>
    public string Type { get; init; } = ProviderTypes.OpenAI;

    /// <summary>Base URL including the version segment, e.g. <c>https://api.deepseek.com/v1</c>.</summary>
    public string? BaseUrl { get; init; }

    /// <summary>Name of the environment variable (or <c>.env</c> entry) holding the API key.
    /// A provider without one is keyless (Ollama) and counts as configured when it is reachable.</summary>
    public string? ApiKeyEnv { get; init; }

    /// <summary>Per-attempt timeout up to the first byte, overriding <see cref="RoutingOptions.AttemptTimeoutMs"/>.</summary>
    public int? TimeoutMs { get; init; }
}

public static class ProviderTypes
{
    public const string OpenAI = "openai";
    public const string Anthropic = "anthropic";
    public const string Gemini = "gemini";

    /// <summary>Types a provider may declare.</summary>
    public static readonly IReadOnlyList<string> Known = [OpenAI, Anthropic, Gemini];
}

/// <summary>A deployment: one upstream model at one provider, with its list prices.</summary>
public sealed record DeploymentOptions
{
    public string? Provider { get; init; }

    /// <summary>The model name sent upstream. May contain characters such as <c>:</c> (Ollama tags).</summary>
    public string? UpstreamModel { get; init; }

    /// <summary>USD per 1M uncached input tokens.</summary>
    public decimal? InputPerMillion { get; init; }

    /// <summary>USD per 1M output tokens.</summary>
    public decimal? OutputPerMillion { get; init; }

    /// <summary>USD per 1M cached input tokens; when absent and cached tokens occur, the cost is unknown.</summary>
    public decimal? CachedInputPerMillion { get; init; }

    /// <summary>USD per 1M input tokens written to a 5-minute prompt cache (Anthropic: 1.25 × input).</summary>
    public decimal? CacheWrite5mPerMillion { get; init; }

    /// <summary>USD per 1M input tokens written to a 1-hour prompt cache (Anthropic: 2 × input).</summary>
    public decimal? CacheWrite1hPerMillion { get; init; }

    /// <summary>USD per 1M reasoning output tokens, when different from <see cref="OutputPerMillion"/>.</summary>
    public decimal? ReasoningOutputPerMillion { get; init; }

    /// <summary>Context window in tokens (input + output).</summary>
    public int ContextWindow { get; init; } = 128_000;

    /// <summary>The most output tokens the deployment produces; used as the expected output when a request sets no max_tokens.</summary>
    public int MaxOutputTokens { get; init; } = 4_096;

    /// <summary>Any of <c>tools</c>, <c>vision</c>, <c>json</c>, <c>embeddings</c>.</summary>
    public List<string> Capabilities { get; init; } = [];

    /// <summary>
    /// Quality tier: 1 small or local, 2 mid-size, 3 frontier. Task routing sends a task only to deployments
    /// at or above the task's minimum tier (<see cref="RoutingOptions.TaskTiers"/>). Default 2.
    /// </summary>
    public int Tier { get; init; } = 2;

    /// <summary>Tasks (e.g. <c>translation</c>, <c>code</c>) this deployment is trusted with whatever its tier.</summary>
    public List<string> Strengths { get; init; } = [];
}

/// <summary>A public model name and the deployments that can answer it.</summary>
public sealed record RouteOptions
{
    /// <summary><c>cheapest</c> (default): order by expected cost; <c>ordered</c>: keep the listed order.</summary>
    /// <summary><c>task</c>: classify the request, keep candidates whose tier serves the task, then cheapest first.</summary>
    public string Strategy { get; init; } = RouteStrategies.Cheapest;

    public List<string> Candidates { get; init; } = [];

    /// <summary>
    /// Hedging: when the chosen deployment has not produced its first token within its p95 time to first
    /// token, start the next candidate too; the first to answer wins and the other is cancelled. Default false.
    /// </summary>
    public bool Hedge { get; init; }

    /// <summary>The hedge delay used while a deployment has too few latency samples for a p95. Default 2000 ms.</summary>
    public int HedgeDelayMs { get; init; } = 2_000;

    /// <summary>
    /// Verify-then-escalate: for non-streaming requests with a <c>json_schema</c> response format, try the
    /// cheapest capable deployment first and move to a higher tier only when the answer fails the schema. Default false
    /// (a request can ask for it with <c>x-tollgate-verify: true</c>).
    /// </summary>
    public bool Verify { get; init; }
}

public static class RouteStrategies
{
    public const string Cheapest = "cheapest";
    public const string Ordered = "ordered";
    public const string Task = "task";
    public static readonly IReadOnlyList<string> Known = [Cheapest, Ordered, Task];
}

public sealed record RoutingOptions
{
    /// <summary>Time allowed for one attempt up to its first byte (whole body when not streaming). Default 30000 ms.</summary>
    public int AttemptTimeoutMs { get; init; } = 30_000;

    /// <summary>Longest silence tolerated between two events of a stream once it has started. Default 120000 ms.</summary>
    public int StreamIdleTimeoutMs { get; init; } = 120_000;

    /// <summary>Consecutive upstream failures that open a deployment's circuit. Default 3.</summary>
    public int CircuitFailureThreshold { get; init; } = 3;

    /// <summary>How long an open circuit stays open before one half-open probe is allowed. Default 30000 ms.</summary>
    public int CircuitBreakMs { get; init; } = 30_000;

    /// <summary>Longest cooldown honoured from an upstream <c>Retry-After</c>. Default 300000 ms.</summary>
    public int MaxCooldownMs { get; init; } = 300_000;

    /// <summary>
    /// Minimum tier per task for task routing, e.g. <c>{"code": 3}</c>; tasks not named keep their defaults
    /// (classification, extraction, summarization 1; translation, chat, code 2; reasoning 3).
    /// </summary>
    public Dictionary<string, int> TaskTiers { get; init; } = new(StringComparer.OrdinalIgnoreCase);
}

/// <summary>
/// A plan: what a tenant pays each month, what it may use, and at what price usage beyond the included
/// tokens is sold. Money is decimal USD.
/// </summary>
public sealed record PlanOptions
{
    /// <summary>Monthly fee in USD. Default 0.</summary>
    public decimal MonthlyFeeUsd { get; init; }

    /// <summary>Tokens (input + output) included in the fee each calendar month (UTC). Default 0.</summary>
    public long IncludedTokens { get; init; }

    /// <summary>Selling price in USD per 1K tokens beyond <see cref="IncludedTokens"/>. Default 0.005.</summary>
    public decimal OveragePer1KTokensUsd { get; init; } = 0.005m;

    /// <summary>When true, <see cref="IncludedTokens"/> is a hard monthly quota: requests past it are refused
    /// (<c>monthly_token_quota_exceeded</c>) instead of billed as overage. Default false.</summary>
    public bool HardQuota { get; init; }

    /// <summary>Most the tenant's requests may cost the gateway in provider charges per month, in USD; null (default) is no budget.</summary>
    public decimal? MonthlyBudgetUsd { get; init; }

    /// <summary>Requests per minute for the whole tenant; null (default) is unlimited.</summary>
    public int? Rpm { get; init; }

    /// <summary>Tokens per minute for the whole tenant; null (default) is unlimited.</summary>
    public int? Tpm { get; init; }
}

public sealed record ServerOptions
{
    /// <summary>Largest accepted request body. Default 8 MiB.</summary>
    public long MaxRequestBodyBytes { get; init; } = 8 * 1024 * 1024;

    /// <summary>
    /// When true (default), request handling continues on the socket I/O thread that received the data
    /// instead of being handed to the thread pool at every step: fewer thread switches, about a quarter
    /// more requests per core (docs/performance.md). Endpoints that read the database are still moved to
    /// the thread pool. Set false if code that blocks is ever added to the request path.
    /// </summary>
    public bool InlineIo { get; init; } = true;
}

public sealed record StorageOptions
{
    public const string Sqlite = "sqlite";
    public const string Postgres = "postgres";
    public const string DatabaseLimiter = "database";
    public const string RedisLimiter = "redis";

    /// <summary>
    /// <c>sqlite</c> (default): the embedded file under <see cref="DataDirectory"/>, for one instance.
    /// <c>postgres</c>: a PostgreSQL database that several instances share (keys, tenants, ledger, invoices).
    /// </summary>
    public string Database { get; init; } = Sqlite;

    /// <summary>
    /// The environment variable (or <c>.env</c> entry) holding the PostgreSQL connection string, either
    /// <c>Host=...;Username=...;Password=...;Database=...</c> or a <c>postgres://user:password@host:port/database</c>
    /// URL. Default <c>TOLLGATE_POSTGRES</c>. The string itself never goes in the file: it carries a password.
    /// </summary>
    public string ConnectionStringEnv { get; init; } = "TOLLGATE_POSTGRES";

    /// <summary>
    /// Where the limit counters of a shared database live. <c>database</c> (default): in PostgreSQL itself, nothing
    /// more to run. <c>redis</c>: in Redis, which takes a hot tenant's reservations many times faster; keys, tenants,
    /// the ledger and invoices stay in PostgreSQL, and the counters are made again from its ledger whenever Redis
    /// has lost them. Needs <c>database: postgres</c>.
    /// </summary>
    public string Limiter { get; init; } = DatabaseLimiter;

    /// <summary>
    /// The environment variable (or <c>.env</c> entry) holding the Redis connection string when <see cref="Limiter"/>
    /// is <c>redis</c>: <c>host:port,password=...</c> (StackExchange.Redis's form) or a
    /// <c>redis://[:password@]host:port[/database]</c> URL (<c>rediss://</c> for TLS). Default <c>TOLLGATE_REDIS</c>.
    /// </summary>
    public string RedisConnectionStringEnv { get; init; } = "TOLLGATE_REDIS";

    /// <summary>Directory of the embedded SQLite database. Default <c>./data</c>.</summary>
    public string DataDirectory { get; init; } = "data";

    /// <summary>
    /// When true, every ledger commit is flushed to disk (SQLite <c>synchronous = FULL</c>): committed rows
    /// survive an OS crash or power cut, at the cost of one disk flush per batch of requests. Default false
    /// (<c>synchronous = NORMAL</c> in WAL mode): a committed row survives the gateway process being killed,
    /// but an OS crash or power cut can lose the rows committed since the last WAL checkpoint.
    /// </summary>
    public bool LedgerFsync { get; init; }
}

/// <summary>Metrics and traces (OpenTelemetry).</summary>
public sealed record TelemetryOptions
{
    /// <summary>Serve Prometheus metrics at <c>/metrics</c>. Default true.</summary>
    public bool Metrics { get; init; } = true;

    /// <summary>
    /// When true (default), <c>/metrics</c> asks for the admin key (<c>Authorization: Bearer</c>), like
    /// <c>/providers</c>. False serves it to anyone who can reach the port: for a scraper on a private network.
    /// </summary>
    public bool MetricsRequireAdminKey { get; init; } = true;

    /// <summary>
    /// Export a trace span per request over OTLP. Null (default): on when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> or
    /// <c>OTEL_EXPORTER_OTLP_TRACES_ENDPOINT</c> is set. The exporter reads its endpoint, protocol and headers
    /// from the standard <c>OTEL_*</c> variables.
    /// </summary>
    public bool? Tracing { get; init; }
}
