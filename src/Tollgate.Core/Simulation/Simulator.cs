using System.Buffers;
using System.Text.Json;
using Tollgate.Configuration;
using Tollgate.Health;
using Tollgate.Metering;
using Tollgate.Providers;
using Tollgate.Requests;
using Tollgate.Routing;
using Tollgate.Routing.Classification;

namespace Tollgate.Simulation;

/// <summary>What to simulate: the configuration, the route, how providers behave, and the arrival rate.</summary>
internal sealed record SimulationSettings
{
    public required TollgateOptions Options { get; init; }

    /// <summary>The route (or deployment id) every request names as its <c>model</c>. Default <c>auto</c>.</summary>
    public string Route { get; init; } = "auto";

    /// <summary>Per-deployment changes to the built-in provider profiles (a <c>--providers</c> file); null for none.</summary>
    public IReadOnlyDictionary<string, ProviderProfileOverride>? Providers { get; init; }

    /// <summary>Seeds the provider draws (failures, latencies, arrivals). Default 1.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Mean arrival rate in requests per simulated second (arrivals are a Poisson process). Default 10.</summary>
    public double RequestsPerSecond { get; init; } = 10;

    /// <summary>
    /// Send each labelled request's task as a stated task (<c>tollgate.task</c>, like <c>x-tollgate-task</c>) instead of
    /// letting the classifier read the messages. Default false: the classifier decides, as for a client that states nothing.
    /// </summary>
    public bool StateTasks { get; init; }

    /// <summary>Where the workload came from, for the report (a file name, or <c>generated</c>).</summary>
    public string Workload { get; init; } = "generated";

    /// <summary>The seed of a generated workload, for the report; null for a file.</summary>
    public int? WorkloadSeed { get; init; }

    /// <summary>The classifier of task routes; null (default) uses the catalog's, built on the configured tier table, as the gateway does.</summary>
    public TaskClassifier? Classifier { get; init; }
}

/// <summary>How a simulated request ended.</summary>
internal enum SimulatedStatus
{
    Served,

    /// <summary>No candidate met the request's constraints (the gateway's 422 <c>constraints_unsatisfiable</c>).</summary>
    Unsatisfiable,

    /// <summary>Every attempt failed (502 <c>all_providers_failed</c>).</summary>
    AllFailed,

    /// <summary>Nothing could be tried: circuits open, cooling down (503 <c>no_provider_available</c>).</summary>
    NoProvider,
}

/// <summary>One simulated request's outcome.</summary>
internal sealed record SimulatedOutcome(WorkloadRequest Request, SimulatedStatus Status)
{
    public Deployment? Served { get; init; }

    public TaskDecision? Task { get; init; }

    /// <summary>What the client waited for: the first token of a stream, the whole answer otherwise, failed attempts included.</summary>
    public double LatencyMs { get; init; }

    public decimal? CostUsd { get; init; }

    /// <summary>The same tokens on the route's most expensive candidate (the always-premium baseline).</summary>
    public decimal? BaselineUsd { get; init; }

    public int FailedAttempts { get; init; }

    public RequestConstraints Constraints { get; init; } = RequestConstraints.None;

    public bool TierFallback { get; init; }

    public bool BestEffort { get; init; }

    /// <summary>A deployment that would have been tried first was left out for an open circuit or a cooldown.</summary>
    public bool RoutedAround { get; init; }

    /// <summary>The request set a latency, cost, tier or provider constraint.</summary>
    public bool HadConstraints => Constraints.MaxLatencyMs is not null || Constraints.MaxCostUsd is not null || Constraints.MinTier is not null
        || Constraints.Providers is not null || Constraints.ExcludeProviders is not null;

    /// <summary>Served, within its latency budget and cost ceiling (the tier and provider lists the router already enforced).</summary>
    public bool MetConstraints => Status == SimulatedStatus.Served
        && (Constraints.MaxLatencyMs is not { } budget || LatencyMs <= budget)
        && (Constraints.MaxCostUsd is not { } ceiling || CostUsd <= ceiling);
}

/// <summary>What happened to one deployment over the run, beyond the requests it served.</summary>
internal sealed class DeploymentTally
{
    public int FailedAttempts { get; set; }

    public int RateLimited { get; set; }

    /// <summary>Attempts over the provider's attempt timeout: to the first token of a stream, to the whole body otherwise.</summary>
    public int TimedOut { get; set; }

    public int CircuitOpens { get; set; }

    /// <summary>Plans that left it out because its circuit was open or it was cooling down, plus attempts its breaker refused.</summary>
    public int CircuitSkips { get; set; }
}

/// <summary>
/// Replays a workload through the real <see cref="Router"/>, <see cref="TaskClassifier"/> and <see cref="DeploymentHealth"/>
/// against simulated providers, in simulated time: each request's body is built and parsed as the gateway would,
/// its task decided, its route planned, and its candidates tried in order like the dispatcher's failover loop, with
/// failures, 429s and latencies drawn from the provider profiles, and the provider's attempt timeout applied.
/// Nothing is sent over the network.
/// </summary>
/// <remarks>
/// Requests are served one after another at their arrival times, and an attempt's outcome reaches the breaker at its
/// request's arrival rather than when it ends. The gateway overlaps requests, so there a failure is seen a few seconds
/// later by requests already in flight; against a 30 s break that shifts breaker timings a little, not the traffic
/// shares. Hedging and verify-then-escalate are not simulated (they need answers to race or check).
/// </remarks>
internal static class Simulator
{
    private const string SimulatedKey = "simulated";

    public static SimulationReport Run(SimulationSettings settings, IReadOnlyList<WorkloadRequest> workload)
    {
        var profiles = ProviderProfiles.Resolve(settings.Options, settings.Providers);
        var options = ProviderProfiles.WithPrices(settings.Options, profiles);
        var clock = new SimulatedClock(SimulatedClock.DefaultStart);

        // Every provider counts as configured: keyed ones get a placeholder key, keyless ones are marked reachable.
        var keys = options.Providers.Values.Where(p => p.ApiKeyEnv is not null).Select(p => p.ApiKeyEnv!).Distinct(StringComparer.Ordinal)
            .ToDictionary(k => k, _ => SimulatedKey, StringComparer.Ordinal);
        using var catalog = Catalog.Build(options, new SecretSource(keys), clock);
        foreach (var provider in catalog.Providers.Values)
        {
            provider.Reachable = true;
        }

        if (!catalog.Routes.TryGetValue(settings.Route, out var route))
        {
            throw new SimulationException($"No route or deployment is named '{settings.Route}' ('tollgate config check' lists the configuration).");
        }

        var run = new Replay(settings, catalog, route, profiles);
        var outcomes = new List<SimulatedOutcome>(workload.Count);
        foreach (var request in workload)
        {
            outcomes.Add(run.Simulate(request));
            clock.Advance(TimeSpan.FromSeconds(run.Random.Exponential(1 / settings.RequestsPerSecond)));
        }

        return SimulationReportBuilder.Build(settings, route, catalog.TaskTiers, outcomes, run.Tallies, clock.Elapsed);
    }

    private sealed class Replay(SimulationSettings settings, Catalog catalog, Route route, Dictionary<string, ProviderProfile> profiles)
    {
        // Not the workload generator's sequence: the same workload can be replayed under different provider draws.
        public SimulationRandom Random { get; } = new(unchecked((settings.Seed * 7919) + 104_729));

        public Dictionary<Deployment, DeploymentTally> Tallies { get; } = route.Candidates.Distinct().ToDictionary(d => d, _ => new DeploymentTally());

        public SimulatedOutcome Simulate(WorkloadRequest item)
        {
            var body = Body(item);
            if (!RequestParser.TryParse(RequestKind.ChatCompletion, body, out var parsed, out var error))
            {
                throw new SimulationException($"Workload line {item.Line}: the gateway would refuse it: {error!.Message}");
            }

            var request = parsed!;
            var constraints = request.Constraints;
            var task = DecideTask(request, constraints);
            var plan = Router.Plan(route, request, constraints, task, verify: false);
            var routedAround = false;
            foreach (var skipped in plan.Skipped)
            {
                if (skipped.Reason is SkipReason.CircuitOpen or SkipReason.CoolingDown)
                {
                    Tally(skipped.Deployment).CircuitSkips++;
                    routedAround |= WouldHaveLed(skipped.Deployment, request, task, plan);
                }
            }

            var outcome = new SimulatedOutcome(item, SimulatedStatus.NoProvider)
            {
                Task = task,
                Constraints = constraints,
                TierFallback = plan.TierFallback,
                BestEffort = plan.BestEffort,
                RoutedAround = routedAround,
            };
            if (plan.Candidates.Length == 0)
            {
                return Array.Exists(plan.Skipped, s => s.Reason.IsConstraint()) ? outcome with { Status = SimulatedStatus.Unsatisfiable } : outcome;
            }

            // The parser's estimate (UTF-8 bytes / 4 plus framing), which the router also plans on: counting 10,000
            // prompts with the tokenizer would take most of the run, and a provider's own count differs from either.
            var input = item.InputTokens ?? request.EstimatedInputTokens;
            var elapsedMs = 0.0;
            var failed = 0;
            foreach (var candidate in plan.Candidates)
            {
                var deployment = candidate.Deployment;
                var health = deployment.Health;
                if (!health.TryBeginAttempt())
                {
                    Tally(deployment).CircuitSkips++;
                    continue;
                }

                var profile = profiles[deployment.Id];
                var ttft = profile.TtftMs * Spread(profile);
                var roll = Random.NextDouble();
                if (roll < profile.RateLimitRate + profile.FailureRate)
                {
                    var rateLimited = roll < profile.RateLimitRate;
                    Fail(deployment, rateLimited ? FailureKind.RateLimited : FailureKind.ServerError);
                    failed++;

                    // A 429 is refused at once; a 5xx arrives about when the first token would have.
                    elapsedMs += rateLimited ? ttft / 4 : ttft;
                    continue;
                }

                var perToken = profile.MsPerOutputToken * Spread(profile);
                var total = ttft + (item.OutputTokens * perToken);
                var timeout = deployment.Provider.AttemptTimeout.TotalMilliseconds;
                if ((item.Stream ? ttft : total) > timeout)
                {
                    // The attempt timeout runs to the first token of a stream but to the whole body of a buffered answer.
                    Fail(deployment, FailureKind.Timeout);
                    failed++;
                    elapsedMs += timeout;
                    continue;
                }

                if (item.Stream)
                {
                    health.RecordSuccess(TimeSpan.FromMilliseconds(ttft), streamed: true);
                    health.RecordCompletion(TimeSpan.FromMilliseconds(total), TimeSpan.FromMilliseconds(ttft), item.OutputTokens, streamed: true);
                }
                else
                {
                    health.RecordSuccess(TimeSpan.FromMilliseconds(total));
                    health.RecordCompletion(TimeSpan.FromMilliseconds(total), TimeSpan.FromMilliseconds(total), item.OutputTokens, streamed: false);
                }

                var usage = new UsageBuckets(input, 0, 0, 0, item.OutputTokens, 0);
                return outcome with
                {
                    Status = SimulatedStatus.Served,
                    Served = deployment,
                    LatencyMs = elapsedMs + (item.Stream ? ttft : total),
                    CostUsd = CostCalculator.Cost(deployment.Prices, usage),
                    BaselineUsd = CostCalculator.Baseline(route.Candidates, usage),
                    FailedAttempts = failed,
                };
            }

            return outcome with { Status = failed > 0 ? SimulatedStatus.AllFailed : SimulatedStatus.NoProvider, FailedAttempts = failed, LatencyMs = elapsedMs };
        }

        private void Fail(Deployment deployment, FailureKind kind)
        {
            var tally = Tally(deployment);
            var rateLimited = kind == FailureKind.RateLimited;
            var wasAvailable = deployment.Health.Check() == Availability.Available;
            deployment.Health.RecordFailure($"simulated {kind.ToString().ToLowerInvariant()}", rateLimited, cooldown: null);
            tally.FailedAttempts++;
            if (rateLimited)
            {
                tally.RateLimited++;
                return;
            }

            if (kind == FailureKind.Timeout)
            {
                tally.TimedOut++;
            }

            if (wasAvailable && deployment.Health.Check() == Availability.CircuitOpen)
            {
                tally.CircuitOpens++;
            }
        }

        /// <summary>
        /// Whether a deployment left out for its breaker or cooldown would otherwise have been tried first: it passed every
        /// check before health (provider lists, capabilities, context, minimum tier), serves the task, and is expected to be
        /// cheaper than the plan's first candidate. Its latency and cost budgets were not checked, so this is an upper bound.
        /// </summary>
        private static bool WouldHaveLed(Deployment skipped, ParsedRequest request, TaskDecision? task, RoutePlan plan)
        {
            if (task is { } t && !skipped.Serves(t.Task, t.MinimumTier))
            {
                return false;
            }

            if (plan.Candidates.Length == 0 || plan.Route.Strategy == RouteStrategy.Ordered)
            {
                return plan.Candidates.Length == 0 || Array.IndexOf(plan.Route.Candidates, skipped) < Array.IndexOf(plan.Route.Candidates, plan.Candidates[0].Deployment);
            }

            var cost = CostCalculator.Expected(skipped.Prices, request.EstimatedInputTokens, Router.ExpectedOutputTokens(skipped, request));
            return cost < (plan.Candidates[0].ExpectedCostUsd ?? decimal.MaxValue);
        }

        private DeploymentTally Tally(Deployment deployment)
        {
            if (!Tallies.TryGetValue(deployment, out var tally))
            {
                Tallies[deployment] = tally = new DeploymentTally();
            }

            return tally;
        }

        /// <summary>The multiplier e^(jitter·z): the profile's times are medians with a long right tail.</summary>
        private double Spread(ProviderProfile profile) => profile.Jitter == 0 ? 1 : Math.Exp(profile.Jitter * Random.Normal());

        /// <summary>As the gateway's dispatcher decides it: the caller's stated task, else the classifier's verdict; none off task routes.</summary>
        private TaskDecision? DecideTask(ParsedRequest request, RequestConstraints constraints)
        {
            if (route.Strategy != RouteStrategy.Task)
            {
                return null;
            }

            if (constraints.Task is { } stated)
            {
                return new TaskDecision(stated, TaskSource.Stated, 1f, catalog.TaskTiers[stated]);
            }

            var classified = (settings.Classifier ?? catalog.Classifier).Classify(request);
            return new TaskDecision(classified.Task, TaskSource.Classified, classified.Confidence, catalog.TaskTiers[classified.Task]);
        }

        /// <summary>The chat completion body a client would send: the route as model, the item's constraints as the <c>tollgate</c> object.</summary>
        private byte[] Body(WorkloadRequest item)
        {
            var buffer = new ArrayBufferWriter<byte>(item.MessagesJson.Length + 256);
            using (var writer = new Utf8JsonWriter(buffer))
            {
                writer.WriteStartObject();
                writer.WriteString("model"u8, route.Name);
                writer.WritePropertyName("messages"u8);
                writer.WriteRawValue(item.MessagesJson, skipInputValidation: true);
                if (item.MaxTokens is { } max)
                {
                    writer.WriteNumber("max_tokens"u8, max);
                }

                if (item.Stream)
                {
                    writer.WriteBoolean("stream"u8, true);
                }

                var stated = settings.StateTasks ? item.Label : null;
                if (item.ConstraintsJson is not null || stated is not null)
                {
                    writer.WritePropertyName("tollgate"u8);
                    writer.WriteStartObject();
                    if (item.ConstraintsJson is { } constraints)
                    {
                        using var document = JsonDocument.Parse(constraints);
                        foreach (var property in document.RootElement.EnumerateObject())
                        {
                            stated = property.NameEquals("task"u8) ? null : stated;
                            property.WriteTo(writer);
                        }
                    }

                    if (stated is { } task)
                    {
                        writer.WriteString("task"u8, task.Name());
                    }

                    writer.WriteEndObject();
                }

                writer.WriteEndObject();
            }

            return buffer.WrittenSpan.ToArray();
        }
    }
}
