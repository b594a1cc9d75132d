using Microsoft.AspNetCore.Http.HttpResults;
using Tollgate.Health;
using Tollgate.Routing;
using Tollgate.Server.Diagnostics;
using Tollgate.Server.Json;
using Tollgate.Storage;

namespace Tollgate.Server.Endpoints.Admin;

/// <summary><c>/health</c> (no auth), <c>/providers</c> and <c>/admin/health/reset</c> (admin key).</summary>
internal static class HealthEndpoints
{
    public static IEndpointRouteBuilder MapHealth(this IEndpointRouteBuilder app)
    {
        app.MapGet("/health", (Catalog catalog) => TypedResults.Ok(new HealthResponse(
            "ok",
            catalog.Providers.Values.Count(p => p.IsConfigured),
            catalog.Providers.Count)));
        app.MapGet("/health/ready", ReadyAsync);
        app.MapGet("/providers", ListProviders);
        return app;
    }

    /// <summary>
    /// Readiness for a load balancer: 503 while the database cannot be reached (keys cannot be checked on a cache
    /// miss and no answer can be recorded). A Redis of limit counters that is down leaves the instance ready but
    /// "degraded": callers without limits are served, limited ones are refused 503 until it is back, and taking
    /// every instance out of rotation for it would refuse everyone. Says nothing of where the servers are.
    /// </summary>
    private static async Task<IResult> ReadyAsync(GatewayStorage storage, CancellationToken cancellationToken)
    {
        var health = await storage.CheckAsync(cancellationToken).ConfigureAwait(false);
        var counters = health.CountersReachable switch
        {
            null => storage.IsShared ? "in database" : "in memory",
            true => "ok",
            false => "unreachable",
        };
        var status = !health.DatabaseReachable ? "unready" : health.CountersReachable == false ? "degraded" : "ready";
        var body = new ReadinessResponse(status, health.DatabaseReachable ? "ok" : "unreachable", counters);
        return health.DatabaseReachable
            ? TypedResults.Ok(body)
            : TypedResults.Json(body, ServerJsonContext.Default.ReadinessResponse, statusCode: StatusCodes.Status503ServiceUnavailable);
    }

    public static RouteGroupBuilder MapHealthAdmin(this RouteGroupBuilder admin)
    {
        admin.MapPost("/health/reset", Reset);
        return admin;
    }

    private static Ok<HealthResetResponse> Reset(Catalog catalog, ILogger<KeysLog> logger)
    {
        foreach (var deployment in catalog.Deployments.Values)
        {
            deployment.Health.Reset();
        }

        Log.HealthReset(logger, catalog.Deployments.Count);
        return TypedResults.Ok(new HealthResetResponse(catalog.Deployments.Count));
    }

    private static Ok<ProvidersResponse> ListProviders(Catalog catalog)
    {
        var providers = new List<ProviderStatus>(catalog.Providers.Count);
        foreach (var provider in catalog.Providers.Values.OrderBy(p => p.Name, StringComparer.Ordinal))
        {
            var deployments = new List<DeploymentStatus>();
            foreach (var deployment in catalog.Deployments.Values.Where(d => d.Provider == provider).OrderBy(d => d.Id, StringComparer.Ordinal))
            {
                var h = deployment.Health.Snapshot();
                deployments.Add(new DeploymentStatus(
                    deployment.Id,
                    deployment.UpstreamModel,
                    Name(h.Circuit),
                    h.CoolingDownUntil,
                    Round(h.LatencyP50Ms),
                    Math.Round(h.ErrorRate, 4),
                    h.Successes + h.Failures,
                    h.Failures,
                    h.LastError,
                    h.LastErrorAt)
                {
                    Tier = deployment.Tier,
                    FirstTokenP50Ms = Round(h.FirstTokenP50Ms),
                    FirstTokenP95Ms = Round(h.FirstTokenP95Ms),
                    FirstTokenEwmaMs = Round(h.FirstTokenEwmaMs),
                    ResponseP50Ms = Round(h.ResponseP50Ms),
                    ResponseP95Ms = Round(h.ResponseP95Ms),
                    MsPerOutputToken = Round(h.MsPerOutputToken),
                });
            }

            var lastFailure = deployments.Where(d => d.LastErrorAt is not null).MaxBy(d => d.LastErrorAt);
            var latencies = deployments.Where(d => d.LatencyP50Ms is not null).Select(d => d.LatencyP50Ms!.Value).Order().ToArray();
            var requests = deployments.Sum(d => d.Requests);
            providers.Add(new ProviderStatus(
                provider.Name,
                provider.Type,
                provider.IsConfigured,
                provider.IsConfigured && deployments.Any(d => d.Circuit != "open"),
                WorstCircuit(deployments),
                latencies.Length > 0 ? latencies[latencies.Length / 2] : null,
                requests == 0 ? 0 : Math.Round((double)deployments.Sum(d => d.Failures) / requests, 4),
                lastFailure?.LastError,
                lastFailure?.LastErrorAt,
                provider.IsKeyless ? null : provider.ApiKeyEnv,
                deployments));
        }

        return TypedResults.Ok(new ProvidersResponse(providers));
    }

    private static string WorstCircuit(List<DeploymentStatus> deployments) =>
        deployments.Any(d => d.Circuit == "open") ? "open" : deployments.Any(d => d.Circuit == "half_open") ? "half_open" : "closed";

    private static string Name(CircuitState state) => state switch
    {
        CircuitState.Open => "open",
        CircuitState.HalfOpen => "half_open",
        _ => "closed",
    };

    private static double? Round(double? value) => value is { } v ? Math.Round(v, 2) : null;
}

internal sealed record HealthResponse(string Status, int ProvidersConfigured, int ProvidersKnown);

/// <param name="Status"><c>ready</c>, <c>degraded</c> (served, but limited keys are refused) or <c>unready</c> (503).</param>
/// <param name="Database"><c>ok</c> or <c>unreachable</c>.</param>
/// <param name="LimitCounters"><c>in database</c> (or in memory, with SQLite), <c>ok</c> or <c>unreachable</c> (Redis).</param>
internal sealed record ReadinessResponse(string Status, string Database, string LimitCounters);

internal sealed record HealthResetResponse(int Reset);

internal sealed record ProvidersResponse(List<ProviderStatus> Providers);

/// <param name="Configured">A key is present (keyless providers: reachable).</param>
/// <param name="Online">Configured and at least one deployment's circuit is not open.</param>
/// <param name="ErrorRate">Failures / requests since start, over all deployments.</param>
internal sealed record ProviderStatus(
    string Name,
    string Type,
    bool Configured,
    bool Online,
    string Circuit,
    double? LatencyP50Ms,
    double ErrorRate,
    string? LastError,
    DateTimeOffset? LastErrorAt,
    string? ApiKeyEnv,
    List<DeploymentStatus> Deployments);

/// <param name="LatencyP50Ms">Median time to the first token (streams), or to the whole answer when only buffered answers were served.</param>
/// <param name="ErrorRate">Recent error rate: an exponentially weighted average over about the last 20 attempts.</param>
internal sealed record DeploymentStatus(
    string Id,
    string UpstreamModel,
    string Circuit,
    DateTimeOffset? CoolingDownUntil,
    double? LatencyP50Ms,
    double ErrorRate,
    long Requests,
    long Failures,
    string? LastError,
    DateTimeOffset? LastErrorAt)
{
    public int Tier { get; init; }

    /// <summary>Streams' time to the first token: median, 95th percentile (the hedge trigger) and decaying average.</summary>
    public double? FirstTokenP50Ms { get; init; }

    public double? FirstTokenP95Ms { get; init; }

    public double? FirstTokenEwmaMs { get; init; }

    /// <summary>Buffered answers' time to the whole answer.</summary>
    public double? ResponseP50Ms { get; init; }

    public double? ResponseP95Ms { get; init; }

    /// <summary>Decaying average generation time per output token.</summary>
    public double? MsPerOutputToken { get; init; }
}
