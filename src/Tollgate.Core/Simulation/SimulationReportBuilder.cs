using Tollgate.Routing;
using Tollgate.Routing.Classification;

namespace Tollgate.Simulation;

/// <summary>Folds the outcomes of a run into a <see cref="SimulationReport"/>. Deterministic: rows are sorted, never hashed.</summary>
internal static class SimulationReportBuilder
{
    // Costs are sums of tokens × per-1M rates with at most a few decimals: ten places keep them exact.
    private const int MoneyDecimals = 10;

    public static SimulationReport Build(
        SimulationSettings settings,
        Route route,
        TaskTierTable taskTiers,
        IReadOnlyList<SimulatedOutcome> outcomes,
        IReadOnlyDictionary<Deployment, DeploymentTally> tallies,
        TimeSpan simulated)
    {
        var served = outcomes.Where(o => o.Status == SimulatedStatus.Served).ToList();
        var priced = served.Where(o => o.CostUsd is not null && o.BaselineUsd is not null).ToList();
        var cost = Money(priced.Sum(o => o.CostUsd!.Value));
        var baseline = Money(priced.Sum(o => o.BaselineUsd!.Value));

        return new SimulationReport
        {
            Route = route.Name,
            Workload = settings.Workload,
            WorkloadSeed = settings.WorkloadSeed,
            Seed = settings.Seed,
            TaskSource = settings.StateTasks ? "stated" : "classified",
            Requests = outcomes.Count,
            RequestsPerSecond = settings.RequestsPerSecond,
            SimulatedSeconds = Math.Round(simulated.TotalSeconds, 1),
            Outcomes = new SimulationOutcomes(
                served.Count,
                outcomes.Count(o => o.Status == SimulatedStatus.Unsatisfiable),
                outcomes.Count(o => o.Status == SimulatedStatus.AllFailed),
                outcomes.Count(o => o.Status == SimulatedStatus.NoProvider),
                served.Count - priced.Count),
            CostUsd = cost,
            BaselineUsd = baseline,
            SavingUsd = baseline - cost,
            SavingPercent = baseline == 0 ? 0 : Math.Round(100m * (1 - (cost / baseline)), 4),
            LatencyMs = Latency(served),
            Constraints = Constraints(outcomes),
            Failover = new SimulationFailover(
                tallies.Values.Sum(t => t.FailedAttempts),
                tallies.Values.Sum(t => t.RateLimited),
                tallies.Values.Sum(t => t.TimedOut),
                served.Count(o => o.FailedAttempts > 0),
                tallies.Values.Sum(t => t.CircuitOpens),
                tallies.Values.Sum(t => t.CircuitSkips),
                outcomes.Count(o => o.RoutedAround),
                served.Count(o => o.TierFallback)),
            Classification = Classification(outcomes, taskTiers),
            Deployments = Deployments(route, served, tallies),
            Tiers = [.. served.GroupBy(o => o.Served!.Tier).OrderBy(g => g.Key)
                .Select(g => new SimulationTier(g.Key, g.Count(), Share(g.Count(), served.Count), Money(g.Sum(o => o.CostUsd ?? 0))))],
            Tasks = Tasks(outcomes),
        };
    }

    private static SimulationLatency Latency(List<SimulatedOutcome> served)
    {
        var sorted = served.Select(o => o.LatencyMs).Order().ToArray();
        return new SimulationLatency(Percentile(sorted, 50), Percentile(sorted, 90), Percentile(sorted, 99), sorted.Length > 0 ? Math.Round(sorted[^1]) : 0);
    }

    /// <summary>Nearest rank, rounded to a millisecond; 0 for no samples.</summary>
    private static double Percentile(double[] sorted, double percent)
    {
        if (sorted.Length == 0)
        {
            return 0;
        }

        var rank = (int)Math.Ceiling(percent / 100 * sorted.Length);
        return Math.Round(sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)]);
    }

    private static SimulationConstraints Constraints(IReadOnlyList<SimulatedOutcome> outcomes)
    {
        var constrained = outcomes.Where(o => o.HadConstraints).ToList();
        var met = constrained.Count(o => o.MetConstraints);
        var servedConstrained = constrained.Where(o => o.Status == SimulatedStatus.Served).ToList();
        return new SimulationConstraints(
            constrained.Count,
            met,
            Share(met, constrained.Count),
            constrained.Count(o => o.Status == SimulatedStatus.Unsatisfiable),
            servedConstrained.Count(o => o.BestEffort),
            servedConstrained.Count(o => o.Constraints.MaxLatencyMs is { } budget && o.LatencyMs > budget),
            servedConstrained.Count(o => o.Constraints.MaxCostUsd is { } ceiling && !(o.CostUsd <= ceiling)));
    }

    /// <summary>Agreement counts only requests the classifier decided: a stated task agrees by construction.</summary>
    private static SimulationClassification Classification(IReadOnlyList<SimulatedOutcome> outcomes, TaskTierTable taskTiers)
    {
        var judged = outcomes.Where(o => o.Request.Label is not null && o.Task is { Source: TaskSource.Classified }).ToList();
        var agreed = judged.Count(o => o.Task!.Value.Task == o.Request.Label);
        var tierOrder = judged.Select(o => o.Task!.Value.MinimumTier.CompareTo(taskTiers[o.Request.Label!.Value])).ToList();
        return new SimulationClassification(
            judged.Count,
            agreed,
            judged.Count > 0 ? Share(agreed, judged.Count) : null,
            tierOrder.Count(c => c == 0),
            tierOrder.Count(c => c < 0),
            tierOrder.Count(c => c > 0));
    }

    private static List<SimulationDeployment> Deployments(Route route, List<SimulatedOutcome> served, IReadOnlyDictionary<Deployment, DeploymentTally> tallies)
    {
        var rows = new List<SimulationDeployment>();
        foreach (var deployment in route.Candidates.Distinct())
        {
            var mine = served.Where(o => o.Served == deployment).ToList();
            var tally = tallies.TryGetValue(deployment, out var t) ? t : new DeploymentTally();
            var latencies = mine.Select(o => o.LatencyMs).Order().ToArray();
            rows.Add(new SimulationDeployment(
                deployment.Id,
                deployment.Provider.Name,
                deployment.UpstreamModel,
                deployment.Tier,
                mine.Count,
                Share(mine.Count, served.Count),
                Money(mine.Sum(o => o.CostUsd ?? 0)),
                latencies.Length > 0 ? Percentile(latencies, 50) : null,
                tally.FailedAttempts,
                tally.RateLimited,
                tally.TimedOut,
                tally.CircuitOpens,
                tally.CircuitSkips));
        }

        // Stable: equal counts keep the route's order.
        return [.. rows.OrderByDescending(r => r.Requests)];
    }

    private static List<SimulationTask> Tasks(IReadOnlyList<SimulatedOutcome> outcomes)
    {
        var rows = new List<SimulationTask>();
        foreach (var group in outcomes.GroupBy(o => (o.Request.Label ?? o.Task?.Task) is { } task ? (int)task : int.MaxValue).OrderBy(g => g.Key))
        {
            var all = group.ToList();
            var served = all.Where(o => o.Status == SimulatedStatus.Served).ToList();
            var judged = all.Where(o => o.Request.Label is not null && o.Task is { Source: TaskSource.Classified }).ToList();
            var agreed = judged.Count(o => o.Task!.Value.Task == o.Request.Label);
            rows.Add(new SimulationTask(
                group.Key == int.MaxValue ? "none" : ((TaskKind)group.Key).Name(),
                all.Count,
                served.Count,
                [.. served.GroupBy(o => o.Served!.Tier).OrderBy(g => g.Key).Select(g => new SimulationTierCount(g.Key, g.Count()))],
                Money(served.Sum(o => o.CostUsd ?? 0)),
                Money(served.Where(o => o.CostUsd is not null).Sum(o => o.BaselineUsd ?? 0)),
                judged.Count,
                agreed,
                judged.Count > 0 ? Share(agreed, judged.Count) : null,
                [.. judged.Where(o => o.Task!.Value.Task != o.Request.Label).GroupBy(o => o.Task!.Value.Task)
                    .OrderByDescending(g => g.Count()).ThenBy(g => g.Key)
                    .Select(g => new SimulationTaskCount(g.Key.Name(), g.Count()))]));
        }

        return rows;
    }

    private static decimal Share(int part, int whole) => whole == 0 ? 0 : Math.Round(100m * part / whole, 2);

    /// <summary>Rounded to ten places without trailing zeros, so the JSON reads 0.0123 rather than 0.012300000.</summary>
    private static decimal Money(decimal usd) => Math.Round(usd, MoneyDecimals) / 1.0000000000000000000000000000m;
}
