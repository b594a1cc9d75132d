using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Text;
using System.Text.Json;
using Tollgate.Configuration;
using Tollgate.Health;
using Tollgate.Providers;
using Tollgate.Routing.Classification;

namespace Tollgate.Routing;

/// <summary>
/// The runtime view of the configuration: providers with their HTTP clients and keys, deployments
/// with their live health, and routes resolved to deployment objects. Built once at start-up;
/// lookups on the request path are <see cref="FrozenDictionary{TKey, TValue}"/> reads.
/// </summary>
public sealed class Catalog : IDisposable
{
    private Catalog(
        FrozenDictionary<string, Provider> providers,
        FrozenDictionary<string, Deployment> deployments,
        FrozenDictionary<string, Route> routes,
        FrozenDictionary<string, Route> publicRoutes,
        TaskTierTable taskTiers,
        TaskClassifier classifier)
    {
        Classifier = classifier;
        Providers = providers;
        Deployments = deployments;
        Routes = routes;
        PublicRoutes = publicRoutes;
        TaskTiers = taskTiers;
    }

    public FrozenDictionary<string, Provider> Providers { get; }

    public FrozenDictionary<string, Deployment> Deployments { get; }

    /// <summary>Every requestable name: configured routes plus one single-candidate route per deployment id.</summary>
    public FrozenDictionary<string, Route> Routes { get; }

    /// <summary>The routes configured under <c>routes</c> (what <c>/v1/models</c> lists first).</summary>
    public FrozenDictionary<string, Route> PublicRoutes { get; }

    /// <summary>The minimum tier per task (<c>routing.taskTiers</c> over the defaults).</summary>
    public TaskTierTable TaskTiers { get; }

    /// <summary>
    /// The task classifier of task routes. Its decision weighs the cost of under-tiering, so it is built with
    /// the same tier table the router uses (the trained model itself is shared).
    /// </summary>
    public TaskClassifier Classifier { get; }

    /// <param name="traceUpstreamCalls">Give each upstream call a trace span (see <see cref="ProviderHttpClientFactory.Create"/>).</param>
    public static Catalog Build(TollgateOptions options, SecretSource secrets, TimeProvider time, bool traceUpstreamCalls = false)
    {
        var routing = options.Routing;
        var policy = new HealthPolicy(
            routing.CircuitFailureThreshold,
            TimeSpan.FromMilliseconds(routing.CircuitBreakMs),
            HealthPolicy.Default.DefaultCooldown,
            TimeSpan.FromMilliseconds(routing.MaxCooldownMs));

        var providers = new Dictionary<string, Provider>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, p) in options.Providers)
        {
            var timeout = TimeSpan.FromMilliseconds(p.TimeoutMs ?? routing.AttemptTimeoutMs);
            providers[name] = new Provider(
                name,
                p.Type.ToLowerInvariant(),
                new Uri(p.BaseUrl!.TrimEnd('/') + "/"),
                secrets.Get(p.ApiKeyEnv),
                p.ApiKeyEnv,
                timeout,
                ProviderHttpClientFactory.Create(timeout, traceUpstreamCalls));
        }

        var deployments = new Dictionary<string, Deployment>(StringComparer.OrdinalIgnoreCase);
        foreach (var (id, m) in options.Models)
        {
            deployments[id] = new Deployment(
                id,
                providers[m.Provider!],
                m.UpstreamModel!,
                new DeploymentPrices(
                    m.InputPerMillion,
                    m.CachedInputPerMillion,
                    m.CacheWrite5mPerMillion,
                    m.CacheWrite1hPerMillion,
                    m.OutputPerMillion,
                    m.ReasoningOutputPerMillion),
                m.ContextWindow,
                m.MaxOutputTokens,
                Capabilities.Parse(m.Capabilities),
                new DeploymentHealth(time, policy))
            {
                Tier = m.Tier,
                Strengths = TaskSet.Parse(m.Strengths),
            };
        }

        var taskTiers = TaskTierTable.From(routing.TaskTiers);
        var publicRoutes = new Dictionary<string, Route>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, r) in options.Routes)
        {
            var strategy = r.Strategy.ToLowerInvariant() switch
            {
                RouteStrategies.Ordered => RouteStrategy.Ordered,
                RouteStrategies.Task => RouteStrategy.Task,
                _ => RouteStrategy.Cheapest,
            };
            publicRoutes[name] = new Route(name, strategy, [.. r.Candidates.Select(c => deployments[c])])
            {
                Hedge = r.Hedge,
                HedgeDelay = TimeSpan.FromMilliseconds(r.HedgeDelayMs),
                Verify = r.Verify,
            };
        }

        var routes = new Dictionary<string, Route>(publicRoutes, StringComparer.OrdinalIgnoreCase);
        foreach (var deployment in deployments.Values)
        {
            routes.TryAdd(deployment.Id, new Route(deployment.Id, RouteStrategy.Ordered, [deployment]));
        }

        return new Catalog(
            providers.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase),
            deployments.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase),
            routes.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase),
            publicRoutes.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase),
            taskTiers,
            routing.TaskTiers.Count == 0 ? TaskClassifier.Default : new TaskClassifier(taskTiers.ToDictionary()));
    }

    public void Dispose()
    {
        foreach (var provider in Providers.Values)
        {
            provider.Http.Dispose();
        }
    }
}

/// <summary>One upstream API endpoint with its long-lived HTTP client.</summary>
public sealed class Provider(string name, string type, Uri baseUri, string? apiKey, string? apiKeyEnv, TimeSpan attemptTimeout, HttpMessageInvoker http)
{
    // Absolute request addresses by relative path: building a Uri (parse, combine, host checks) cost more than
    // the rest of preparing an upstream request, and a provider is only ever sent to a handful of paths.
    private readonly ConcurrentDictionary<string, Uri> _endpoints = new(StringComparer.Ordinal);
    private volatile bool _reachable;

    public string Name { get; } = name;

    public string Type { get; } = type;

    /// <summary>Base URL with a trailing slash, so relative paths such as <c>chat/completions</c> resolve under it.</summary>
    public Uri BaseUri { get; } = baseUri;

    /// <summary>The provider's API key. Never logged, never returned, sent only to <see cref="BaseUri"/>.</summary>
    internal string? ApiKey { get; } = apiKey;

    /// <summary><c>Bearer {key}</c>, formatted once for OpenAI-type providers' <c>Authorization</c> header.</summary>
    internal string? BearerAuthorization { get; } = apiKey is null ? null : "Bearer " + apiKey;

    public string? ApiKeyEnv { get; } = apiKeyEnv;

    /// <summary>A provider with no <c>apiKeyEnv</c> (Ollama) needs no key and counts as configured when reachable.</summary>
    public bool IsKeyless => ApiKeyEnv is null;

    public TimeSpan AttemptTimeout { get; } = attemptTimeout;

    public HttpMessageInvoker Http { get; } = http;

    /// <summary><see cref="BaseUri"/> combined with <paramref name="relativePath"/>, built once per path.</summary>
    public Uri Endpoint(string relativePath) =>
        _endpoints.GetOrAdd(relativePath, static (path, baseUri) => new Uri(baseUri, path), BaseUri);

    /// <summary>Set by the reachability probe for keyless providers.</summary>
    public bool Reachable
    {
        get => _reachable;
        set => _reachable = value;
    }

    public bool IsConfigured => IsKeyless ? _reachable : ApiKey is not null;
}

/// <summary>Prices in USD per 1M tokens, one per usage bucket; null means unknown.</summary>
/// <param name="ReasoningOutputPerMillion">Reasoning tokens' rate when it differs from <paramref name="OutputPerMillion"/>; null means the output rate.</param>
public sealed record DeploymentPrices(
    decimal? InputPerMillion,
    decimal? CachedInputPerMillion,
    decimal? CacheWrite5mPerMillion,
    decimal? CacheWrite1hPerMillion,
    decimal? OutputPerMillion,
    decimal? ReasoningOutputPerMillion = null)
{
    public static DeploymentPrices Of(decimal? input, decimal? cachedInput, decimal? output) => new(input, cachedInput, null, null, output);
}

/// <summary>A provider plus an upstream model: the unit the router chooses and the breaker protects.</summary>
public sealed class Deployment(
    string id,
    Provider provider,
    string upstreamModel,
    DeploymentPrices prices,
    int contextWindow,
    int maxOutputTokens,
    Capability capabilities,
    DeploymentHealth health)
{
    public string Id { get; } = id;

    public Provider Provider { get; } = provider;

    public string UpstreamModel { get; } = upstreamModel;

    /// <summary>The upstream model as a JSON string literal (quotes included), spliced into request bodies without re-serialising them.</summary>
    public byte[] UpstreamModelJson { get; } = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(upstreamModel, TollgateJsonContext.Default.String));

    public DeploymentPrices Prices { get; } = prices;

    public int ContextWindow { get; } = contextWindow;

    public int MaxOutputTokens { get; } = maxOutputTokens;

    public Capability Capabilities { get; } = capabilities;

    public DeploymentHealth Health { get; } = health;

    /// <summary>Quality tier: 1 small or local, 2 mid-size, 3 frontier.</summary>
    public int Tier { get; init; } = 2;

    /// <summary>Tasks this deployment is trusted with whatever its tier.</summary>
    public TaskSet Strengths { get; init; }

    /// <summary>Whether task routing may give it <paramref name="task"/>, which needs at least <paramref name="minimumTier"/>.</summary>
    public bool Serves(TaskKind task, int minimumTier) => Tier >= minimumTier || Strengths.Contains(task);
}

public enum RouteStrategy
{
    Cheapest,
    Ordered,

    /// <summary>Classify the task, keep candidates whose tier serves it, then cheapest first.</summary>
    Task,
}

/// <summary>A requestable model name and its candidate deployments, in configured order.</summary>
public sealed record Route(string Name, RouteStrategy Strategy, Deployment[] Candidates)
{
    /// <summary>Start the next candidate too when the chosen one is slower than its p95 to the first token.</summary>
    public bool Hedge { get; init; }

    /// <summary>The hedge delay while a deployment has too few samples for a p95.</summary>
    public TimeSpan HedgeDelay { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Verify JSON-schema answers and escalate to a higher tier only when the check fails.</summary>
    public bool Verify { get; init; }
}

/// <summary>A set of tasks as bit flags: allocation-free membership on the request path.</summary>
public readonly record struct TaskSet(int Bits)
{
    public bool Contains(TaskKind task) => (Bits & (1 << (int)task)) != 0;

    public static TaskSet Parse(IEnumerable<string> names)
    {
        var bits = 0;
        foreach (var name in names)
        {
            if (TaskKinds.TryParse(name, out var task))
            {
                bits |= 1 << (int)task;
            }
        }

        return new TaskSet(bits);
    }
}

/// <summary>The minimum tier each task needs, indexed by <see cref="TaskKind"/>.</summary>
public sealed class TaskTierTable
{
    private readonly int[] _tiers;

    private TaskTierTable(int[] tiers) => _tiers = tiers;

    public static TaskTierTable Default { get; } = From(new Dictionary<string, int>());

    public int this[TaskKind task] => _tiers[(int)task];

    public IReadOnlyDictionary<TaskKind, int> ToDictionary() => TaskKinds.All.ToDictionary(t => t, t => _tiers[(int)t]);

    /// <summary>The defaults of <see cref="TaskKinds.DefaultMinimumTier"/>, overridden by <paramref name="configured"/>.</summary>
    public static TaskTierTable From(IReadOnlyDictionary<string, int> configured)
    {
        var tiers = new int[TaskKinds.All.Count];
        foreach (var task in TaskKinds.All)
        {
            tiers[(int)task] = TaskKinds.DefaultMinimumTier(task);
        }

        foreach (var (name, tier) in configured)
        {
            if (TaskKinds.TryParse(name, out var task))
            {
                tiers[(int)task] = tier;
            }
        }

        return new TaskTierTable(tiers);
    }
}
