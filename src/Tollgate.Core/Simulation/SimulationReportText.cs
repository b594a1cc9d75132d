using System.Globalization;

namespace Tollgate.Simulation;

/// <summary>The terminal form of a <see cref="SimulationReport"/>: a deployment table, the headline figures, a task table.</summary>
internal static class SimulationReportText
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;
    private static readonly string[] DeploymentHeader = ["Deployment", "Tier", "Requests", "Share", "Cost USD", "p50 ms", "Failed", "Opens", "Skips"];

    public static void Write(TextWriter output, SimulationReport report)
    {
        var source = report.WorkloadSeed is { } workloadSeed ? $"{report.Workload}, seed {workloadSeed}" : report.Workload;
        output.WriteLine($"Routing simulation of route '{report.Route}': {Count(report.Requests)} requests ({source}), tasks {report.TaskSource}, "
            + $"{Number(report.RequestsPerSecond)} req/s over {Duration(report.SimulatedSeconds)} simulated, provider seed {report.Seed}");
        output.WriteLine();

        var deployments = new List<string[]> { DeploymentHeader };
        foreach (var d in report.Deployments)
        {
            deployments.Add([d.Deployment, Count(d.Tier), Count(d.Requests), Percent(d.SharePercent), Money(d.CostUsd), d.LatencyP50Ms is { } p50 ? Count(p50) : "-",
                Count(d.FailedAttempts), Count(d.CircuitOpens), Count(d.CircuitSkips)]);
        }

        foreach (var t in report.Tiers)
        {
            deployments.Add([$"  tier {Count(t.Tier)}", string.Empty, Count(t.Requests), Percent(t.SharePercent), Money(t.CostUsd), string.Empty, string.Empty, string.Empty, string.Empty]);
        }

        Table(output, deployments);
        output.WriteLine();

        var o = report.Outcomes;
        var c = report.Constraints;
        var f = report.Failover;
        var k = report.Classification;
        Line(output, "Served", $"{Count(o.Served)} of {Count(report.Requests)} (constraints unsatisfiable {Count(o.ConstraintsUnsatisfiable)}, all attempts failed {Count(o.AllFailed)}, no provider available {Count(o.NoProvider)}"
            + (o.Unpriced > 0 ? $", unpriced {Count(o.Unpriced)}" : string.Empty) + ")");
        Line(output, "Cost", $"${Money(report.CostUsd)}, always-premium baseline ${Money(report.BaselineUsd)}");
        Line(output, "Saving", $"${Money(report.SavingUsd)} ({Number(report.SavingPercent)}%)");
        Line(output, "Latency", $"p50 {Count(report.LatencyMs.P50)} ms, p90 {Count(report.LatencyMs.P90)} ms, p99 {Count(report.LatencyMs.P99)} ms (first token of streams, whole answer otherwise)");
        Line(output, "Constraints", $"{Count(c.Met)} of {Count(c.Requests)} constrained requests met them ({Percent(c.MetPercent)}): {Count(c.Unsatisfiable)} unsatisfiable, "
            + $"{Count(c.OverLatency)} over their latency budget, {Count(c.OverCost)} over their cost ceiling, {Count(c.BestEffort)} served best effort");
        Line(output, "Failover", $"{Count(f.FailedAttempts)} failed attempts ({Count(f.RateLimited)} rate-limited, {Count(f.TimedOut)} timed out), {Count(f.RequestsFailedOver)} requests failed over, "
            + $"{Count(f.CircuitOpens)} circuit opens, {Count(f.RequestsRoutedAround)} requests routed around an open circuit or a cooldown, {Count(f.TierFallbacks)} tier fallbacks");
        Line(output, "Classification", k.AgreementPercent is { } agreement
            ? $"{Count(k.Agreed)} of {Count(k.Labelled)} labelled requests classified as labelled ({Percent(agreement)}); tier right {Count(k.SameTier)}, too low {Count(k.UnderTier)}, too high {Count(k.OverTier)}"
            : "no labelled requests were classified");
        output.WriteLine();

        var tiers = report.Tiers.Select(t => t.Tier).Union(report.Tasks.SelectMany(t => t.Tiers).Select(t => t.Tier)).Order().ToList();
        var header = new List<string> { "Task", "Requests", "Served" };
        header.AddRange(tiers.Select(t => $"Tier {Count(t)}"));
        header.AddRange(["Cost USD", "Baseline USD", "Agreement", "Misclassified as"]);
        var tasks = new List<string[]> { header.ToArray() };
        foreach (var t in report.Tasks)
        {
            var row = new List<string> { t.Task, Count(t.Requests), Count(t.Served) };
            row.AddRange(tiers.Select(tier => Count(t.Tiers.FirstOrDefault(x => x.Tier == tier)?.Requests ?? 0)));
            row.AddRange([Money(t.CostUsd), Money(t.BaselineUsd), t.AgreementPercent is { } a ? Percent(a) : "-",
                string.Join(", ", t.ClassifiedAs.Take(3).Select(x => $"{x.Task} {Count(x.Requests)}"))]);
            tasks.Add(row.ToArray());
        }

        Table(output, tasks, lastTextColumns: 1);
    }

    private static void Line(TextWriter output, string label, string text) => output.WriteLine($"{label,-16}{text}");

    /// <summary>Columns padded to their widest cell: text columns left-aligned, numbers right-aligned.</summary>
    private static void Table(TextWriter output, List<string[]> rows, int lastTextColumns = 0)
    {
        var columns = rows[0].Length;
        var widths = new int[columns];
        foreach (var row in rows)
        {
            for (var i = 0; i < columns; i++)
            {
                widths[i] = Math.Max(widths[i], row[i].Length);
            }
        }

        foreach (var row in rows)
        {
            var cells = new string[columns];
            for (var i = 0; i < columns; i++)
            {
                var left = i == 0 || i >= columns - lastTextColumns;
                cells[i] = left ? row[i].PadRight(widths[i]) : row[i].PadLeft(widths[i]);
            }

            output.WriteLine(string.Join("  ", cells).TrimEnd());
        }
    }

    private static string Count(double value) => value.ToString("#,0", Invariant);

    private static string Number(decimal value) => value.ToString("0.##", Invariant);

    private static string Number(double value) => value.ToString("0.##", Invariant);

    private static string Percent(decimal value) => value.ToString("0.00", Invariant) + "%";

    private static string Money(decimal usd) => usd.ToString("#,0.000000", Invariant);

    private static string Duration(double seconds)
    {
        var span = TimeSpan.FromSeconds(seconds);
        return span.TotalHours >= 1 ? $"{(int)span.TotalHours}h {span.Minutes}m" : span.TotalMinutes >= 1 ? $"{span.Minutes}m {span.Seconds}s" : $"{span.Seconds}s";
    }
}
