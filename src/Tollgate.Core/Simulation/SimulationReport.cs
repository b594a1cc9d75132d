using System.Text.Json;
using System.Text.Json.Serialization;

namespace Tollgate.Simulation;

/// <summary>
/// The result of a routing simulation, as <c>tollgate simulate --json</c> prints it (snake_case). Money is decimal USD;
/// shares and percentages are rounded to two places, the saving to four.
/// </summary>
internal sealed record SimulationReport
{
    public required string Route { get; init; }

    /// <summary>A workload file's name, or <c>generated</c>.</summary>
    public required string Workload { get; init; }

    /// <summary>The seed of a generated workload; null for a file.</summary>
    public int? WorkloadSeed { get; init; }

    /// <summary>The seed of the provider draws (failures, latencies, arrivals).</summary>
    public required int Seed { get; init; }

    /// <summary><c>classified</c> (the classifier reads the messages) or <c>stated</c> (labels sent as <c>tollgate.task</c>).</summary>
    public required string TaskSource { get; init; }

    public required int Requests { get; init; }

    public required double RequestsPerSecond { get; init; }

    /// <summary>Simulated time from the first arrival to the last.</summary>
    public required double SimulatedSeconds { get; init; }

    public required SimulationOutcomes Outcomes { get; init; }

    /// <summary>What the served requests cost on the deployments that served them.</summary>
    public required decimal CostUsd { get; init; }

    /// <summary>What the same requests would have cost on the route's most expensive candidate.</summary>
    public required decimal BaselineUsd { get; init; }

    /// <summary><see cref="BaselineUsd"/> − <see cref="CostUsd"/>.</summary>
    public required decimal SavingUsd { get; init; }

    /// <summary>(1 − <see cref="CostUsd"/> / <see cref="BaselineUsd"/>) × 100, rounded to four places; 0 without a baseline.</summary>
    public required decimal SavingPercent { get; init; }

    public required SimulationLatency LatencyMs { get; init; }

    public required SimulationConstraints Constraints { get; init; }

    public required SimulationFailover Failover { get; init; }

    public required SimulationClassification Classification { get; init; }

    /// <summary>Every candidate of the route, most requests first.</summary>
    public required IReadOnlyList<SimulationDeployment> Deployments { get; init; }

    public required IReadOnlyList<SimulationTier> Tiers { get; init; }

    /// <summary>Per task: the label when the request has one, else the task it was routed as.</summary>
    public required IReadOnlyList<SimulationTask> Tasks { get; init; }

    public string ToJson() => JsonSerializer.Serialize(this, SimulationJsonContext.Default.SimulationReport);
}

/// <param name="Served">Answered by a deployment.</param>
/// <param name="ConstraintsUnsatisfiable">No candidate met the request's constraints (the gateway answers 422).</param>
/// <param name="AllFailed">Every attempt failed (502).</param>
/// <param name="NoProvider">No candidate could be tried: circuits open or cooling down (503).</param>
/// <param name="Unpriced">Served by a deployment with an unknown price: left out of the cost and the baseline.</param>
internal sealed record SimulationOutcomes(int Served, int ConstraintsUnsatisfiable, int AllFailed, int NoProvider, int Unpriced);

/// <summary>Nearest-rank percentiles of what clients waited for (first token of streams, whole answer otherwise), served requests only.</summary>
internal sealed record SimulationLatency(double P50, double P90, double P99, double Max);

/// <param name="Requests">Requests that set a latency budget, cost ceiling, minimum tier or provider list.</param>
/// <param name="Met">Of those: served, within the budget and under the ceiling.</param>
/// <param name="MetPercent">Met as a share of <paramref name="Requests"/>.</param>
/// <param name="Unsatisfiable">Of those: refused because no candidate met them.</param>
/// <param name="BestEffort">Of those: served past their budgets because they allowed best effort.</param>
/// <param name="OverLatency">Served, but slower than the budget (the router plans on expected, not actual, latency).</param>
/// <param name="OverCost">Served, but dearer than the ceiling.</param>
internal sealed record SimulationConstraints(int Requests, int Met, decimal MetPercent, int Unsatisfiable, int BestEffort, int OverLatency, int OverCost);

/// <param name="FailedAttempts">Attempts that failed (5xx, 429 and timeouts).</param>
/// <param name="RateLimited">Of those, 429s.</param>
/// <param name="TimedOut">Of those, over the provider's attempt timeout (default 30 s, to the whole body of a buffered answer).</param>
/// <param name="RequestsFailedOver">Served requests that needed more than one attempt.</param>
/// <param name="CircuitOpens">Times a breaker opened from closed.</param>
/// <param name="CircuitSkips">Candidates left out because their circuit was open or they were cooling down (one per plan and deployment).</param>
/// <param name="RequestsRoutedAround">Requests whose first choice was one of those: they went elsewhere because of a breaker or cooldown.</param>
/// <param name="TierFallbacks">Requests served below their task's tier because nothing at the tier was available.</param>
internal sealed record SimulationFailover(int FailedAttempts, int RateLimited, int TimedOut, int RequestsFailedOver, int CircuitOpens, int CircuitSkips, int RequestsRoutedAround, int TierFallbacks);

/// <param name="Labelled">Requests with a task label whose task the classifier decided.</param>
/// <param name="Agreed">Of those, classified as labelled.</param>
/// <param name="AgreementPercent">Null without labelled, classified requests.</param>
/// <param name="SameTier">Classified as a task that needs the same tier as the label's (cost and quality as if right).</param>
/// <param name="UnderTier">Classified as a task needing a lower tier: cheaper, possibly worse.</param>
/// <param name="OverTier">Classified as a task needing a higher tier: dearer than needed.</param>
internal sealed record SimulationClassification(int Labelled, int Agreed, decimal? AgreementPercent, int SameTier, int UnderTier, int OverTier);

internal sealed record SimulationDeployment(
    string Deployment,
    string Provider,
    string Model,
    int Tier,
    int Requests,
    decimal SharePercent,
    decimal CostUsd,
    double? LatencyP50Ms,
    int FailedAttempts,
    int RateLimited,
    int TimedOut,
    int CircuitOpens,
    int CircuitSkips);

internal sealed record SimulationTier(int Tier, int Requests, decimal SharePercent, decimal CostUsd);

internal sealed record SimulationTierCount(int Tier, int Requests);

internal sealed record SimulationTaskCount(string Task, int Requests);

/// <param name="Task">The label, else the task routed as; <c>none</c> when neither exists (a route that does not route by task).</param>
/// <param name="Tiers">Where the served requests went, by deployment tier.</param>
/// <param name="Labelled">Labelled requests whose task the classifier decided.</param>
/// <param name="ClassifiedAs">For labelled requests the classifier got wrong: what it said instead, most first.</param>
internal sealed record SimulationTask(
    string Task,
    int Requests,
    int Served,
    IReadOnlyList<SimulationTierCount> Tiers,
    decimal CostUsd,
    decimal BaselineUsd,
    int Labelled,
    int Agreed,
    decimal? AgreementPercent,
    IReadOnlyList<SimulationTaskCount> ClassifiedAs);

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    WriteIndented = true)]
[JsonSerializable(typeof(SimulationReport))]
internal sealed partial class SimulationJsonContext : JsonSerializerContext;
