using System.Collections;
using System.Text.Json;
using System.Text.Json.Nodes;
using Tollgate.Configuration;
using Tollgate.Server.Cli;
using Tollgate.Simulation;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Simulation;

/// <summary>
/// The routing simulation: the real router, classifier and breakers against simulated providers in simulated time.
/// Hand-written workloads run with jitter 0 and no failures, so every latency and cost is known in advance.
/// </summary>
public sealed class SimulationTests
{
    private static readonly TollgateOptions Defaults = ConfigurationLoader.Load((string?)null, new Hashtable());

    /// <summary>small (tier 1, local), mid and mid2 (tier 2), big (tier 3); one task route over all four.</summary>
    private static TollgateOptions Tiered()
    {
        var config = new JsonObject
        {
            ["useDefaults"] = false,
            ["providers"] = new JsonObject
            {
                ["local"] = Configs.Provider(new Uri("http://127.0.0.1:1/v1"), apiKeyEnv: null),
                ["cloud"] = Configs.Provider(new Uri("http://127.0.0.1:2/v1"), "C_KEY"),
            },
            ["models"] = new JsonObject
            {
                ["small"] = Tier(Configs.Model("local", "s", 0.1m, 0.2m), 1),
                ["mid"] = Tier(Configs.Model("cloud", "m", 0.5m, 1m), 2),
                ["mid2"] = Tier(Configs.Model("cloud", "m2", 0.6m, 2m), 2),
                ["big"] = Tier(Configs.Model("cloud", "b", 3m, 15m), 3),
            },
            ["routes"] = new JsonObject { ["auto"] = Configs.Route("task", "small", "mid", "mid2", "big") },
        };
        return ConfigurationLoader.Load(config, new Hashtable());
    }

    private static JsonObject Tier(JsonObject model, int tier)
    {
        model["tier"] = tier;
        return model;
    }

    /// <summary>Exact behaviour: no jitter, no failures; ttft and per-token times as given.</summary>
    private static Dictionary<string, ProviderProfileOverride> Exact(params (string Id, double TtftMs, double MsPerToken)[] deployments) =>
        deployments.ToDictionary(d => d.Id, d => new ProviderProfileOverride { TtftMs = d.TtftMs, MsPerOutputToken = d.MsPerToken, Jitter = 0, FailureRate = 0, RateLimitRate = 0 });

    private static readonly Dictionary<string, ProviderProfileOverride> ExactTiered = Exact(("small", 100, 10), ("mid", 200, 5), ("mid2", 300, 5), ("big", 500, 20));

    private static List<WorkloadRequest> Workload(params string[] lines) => WorkloadFile.Read(new StringReader(string.Join('\n', lines)));

    /// <summary>One workload line; <paramref name="constraints"/> is the inside of its constraints object.</summary>
    private static string Line(string constraints, int output = 100, int maxTokens = 128, bool stream = false, string? label = null, int? input = null)
    {
        var line = new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hello there" }),
            ["max_tokens"] = maxTokens,
            ["stream"] = stream,
            ["output_tokens"] = output,
            ["constraints"] = JsonNode.Parse("{" + constraints + "}"),
        };
        if (label is not null)
        {
            line["task"] = label;
        }

        if (input is not null)
        {
            line["input_tokens"] = input;
        }

        return line.ToJsonString();
    }

    private static SimulationDeployment Row(SimulationReport report, string id) => report.Deployments.Single(d => d.Deployment == id);

    [Fact]
    public void Run_SameSeed_GivesTheSameReport()
    {
        var settings = new SimulationSettings { Options = Defaults, Seed = 5, WorkloadSeed = 5 };

        var first = Simulator.Run(settings, WorkloadGenerator.Generate(400, 5)).ToJson();
        var second = Simulator.Run(settings, WorkloadGenerator.Generate(400, 5)).ToJson();
        var other = Simulator.Run(settings with { Seed = 6, WorkloadSeed = 6 }, WorkloadGenerator.Generate(400, 6)).ToJson();

        Assert.Equal(first, second);
        Assert.NotEqual(first, other);
    }

    [Fact]
    public void Run_GeneratedWorkload_AddsUp()
    {
        var report = Simulator.Run(new SimulationSettings { Options = Defaults, Seed = 3 }, WorkloadGenerator.Generate(1_000, 3));

        var o = report.Outcomes;
        Assert.Equal(1_000, o.Served + o.ConstraintsUnsatisfiable + o.AllFailed + o.NoProvider);
        Assert.Equal(o.Served, report.Deployments.Sum(d => d.Requests));
        Assert.Equal(report.CostUsd, report.Deployments.Sum(d => d.CostUsd));
        Assert.Equal(1_000, report.Tasks.Sum(t => t.Requests));
        Assert.Equal(7, report.Tasks.Count);
        Assert.Equal(1_000, report.Classification.Labelled);
        Assert.Equal(report.Classification.Agreed, report.Tasks.Sum(t => t.Agreed));
        Assert.InRange(report.Constraints.Requests, 200, 500);
        Assert.True(report.LatencyMs.P50 <= report.LatencyMs.P99);
    }

    [Fact]
    public void WorkloadFile_RoundTrip_ReplaysTheSame()
    {
        var generated = WorkloadGenerator.Generate(200, 9);
        var text = new StringWriter();
        WorkloadFile.Write(text, generated);
        var read = WorkloadFile.Read(new StringReader(text.ToString()));

        var settings = new SimulationSettings { Options = Defaults, Seed = 9 };
        Assert.Equal(Simulator.Run(settings, generated).ToJson(), Simulator.Run(settings, read).ToJson());
    }

    [Fact]
    public void Run_ProviderAlwaysFailing_OpensItsCircuitAndTrafficShifts()
    {
        var providers = new Dictionary<string, ProviderProfileOverride>(ExactTiered) { ["mid"] = ExactTiered["mid"] with { FailureRate = 1.0 } };
        var workload = Workload([.. Enumerable.Repeat(Line("\"task\":\"chat\""), 100)]);

        // 100 arrivals at 10 per second take about 10 s: the circuit (threshold 3, break 30 s) stays open once opened.
        var report = Simulator.Run(new SimulationSettings { Options = Tiered(), Providers = providers, RequestsPerSecond = 10 }, workload);

        var mid = Row(report, "mid");
        Assert.Equal((0, 3, 1, 97), (mid.Requests, mid.FailedAttempts, mid.CircuitOpens, mid.CircuitSkips));
        Assert.Equal(100, Row(report, "mid2").Requests);
        Assert.Equal(3, report.Failover.RequestsFailedOver);
        Assert.Equal(3, report.Failover.FailedAttempts);
        Assert.Equal(97, report.Failover.RequestsRoutedAround);

        // Slow arrivals (one every 2 s on average): the breaker lets a half-open probe through every 30 s, and each fails.
        var slow = Simulator.Run(new SimulationSettings { Options = Tiered(), Providers = providers, RequestsPerSecond = 0.5 }, workload);
        Assert.InRange(Row(slow, "mid").FailedAttempts, 4, 20);
        Assert.Equal(0, Row(slow, "mid").Requests);
        Assert.Equal(100, slow.Outcomes.Served);
    }

    [Fact]
    public void Run_HandWrittenConstraints_CountsWhichWereMet()
    {
        var workload = Workload(
            Line("\"task\":\"classification\",\"max_latency_ms\":1000", output: 10, maxTokens: 16), // small: 100 + 10 × 10 = 200 ms: met
            Line("\"task\":\"classification\",\"max_latency_ms\":50", stream: true), // small, first token at 100 ms: over the budget
            Line("\"task\":\"reasoning\",\"max_cost_usd\":0"), // nothing is free: 422
            Line("\"task\":\"chat\",\"min_tier\":3", output: 50), // big: met
            Line("\"task\":\"chat\"")); // no constraint: not counted

        var report = Simulator.Run(new SimulationSettings { Options = Tiered(), Providers = ExactTiered }, workload);

        Assert.Equal(new SimulationConstraints(Requests: 4, Met: 2, MetPercent: 50m, Unsatisfiable: 1, BestEffort: 0, OverLatency: 1, OverCost: 0), report.Constraints);
        Assert.Equal(new SimulationOutcomes(Served: 4, ConstraintsUnsatisfiable: 1, AllFailed: 0, NoProvider: 0, Unpriced: 0), report.Outcomes);
        Assert.Equal((2, 1, 1), (Row(report, "small").Requests, Row(report, "mid").Requests, Row(report, "big").Requests));

        // Latencies 100, 200, 700 (mid: 200 + 100 × 5) and 1500 (big: 500 + 50 × 20).
        Assert.Equal(new SimulationLatency(P50: 200, P90: 1500, P99: 1500, Max: 1500), report.LatencyMs);
    }

    [Fact]
    public void Run_BufferedAnswerOverTheAttemptTimeout_FailsOver_ButAStreamDoesNot()
    {
        // small: 100 + 5,000 × 10 = 50.1 s to the whole body, over the 30 s attempt timeout; its first token comes at 100 ms.
        var workload = Workload(
            Line("\"task\":\"classification\"", output: 5_000, maxTokens: 8_192),
            Line("\"task\":\"classification\"", output: 5_000, maxTokens: 8_192, stream: true));

        var report = Simulator.Run(new SimulationSettings { Options = Tiered(), Providers = ExactTiered }, workload);

        Assert.Equal((1, 1, 1), (Row(report, "small").TimedOut, Row(report, "small").Requests, Row(report, "mid").Requests));
        Assert.Equal(1, report.Failover.RequestsFailedOver);

        // The buffered one waited out the timeout, then mid's 200 + 5,000 × 5 ms.
        Assert.Equal(new SimulationLatency(P50: 100, P90: 55_200, P99: 55_200, Max: 55_200), report.LatencyMs);
    }

    [Fact]
    public void Run_StatedTasks_GoToTheCheapestDeploymentOfTheirTier()
    {
        var providers = Defaults.Routes["auto"].Candidates.ToDictionary(id => id, _ => new ProviderProfileOverride { FailureRate = 0, RateLimitRate = 0 });
        var workload = Workload(
        [
            .. Enumerable.Repeat(Line("\"best_effort\":false", label: "classification"), 20),
            .. Enumerable.Repeat(Line("\"best_effort\":false", label: "reasoning"), 10),
            .. Enumerable.Repeat(Line("\"task\":\"reasoning\""), 5), // stated in the body, as a client would
        ]);

        var report = Simulator.Run(new SimulationSettings { Options = Defaults, Providers = providers, StateTasks = true }, workload);

        Assert.Equal(20, Row(report, "ollama/llama3.2").Requests);
        Assert.Equal(15, Row(report, "deepseek/deepseek-reasoner").Requests);
        Assert.Equal([new SimulationTierCount(1, 20)], report.Tasks.Single(t => t.Task == "classification").Tiers);
        Assert.Equal([new SimulationTierCount(3, 15)], report.Tasks.Single(t => t.Task == "reasoning").Tiers);
        Assert.Equal("stated", report.TaskSource);
        Assert.Equal(0, report.Classification.Labelled); // stated tasks are not the classifier's verdicts
    }

    [Fact]
    public void Run_Saving_IsOneMinusCostOverBaseline()
    {
        // 1,000 input and 500 output tokens each: small costs 0.0001 + 0.0001; big (the premium baseline) 0.003 + 0.0075.
        var workload = Workload(
            Line("\"task\":\"classification\"", output: 500, maxTokens: 512, input: 1_000),
            Line("\"task\":\"classification\"", output: 500, maxTokens: 512, input: 1_000),
            Line("\"task\":\"reasoning\"", output: 500, maxTokens: 512, input: 1_000));

        var report = Simulator.Run(new SimulationSettings { Options = Tiered(), Providers = ExactTiered }, workload);

        Assert.Equal(0.0109m, report.CostUsd);
        Assert.Equal(0.0315m, report.BaselineUsd);
        Assert.Equal(report.BaselineUsd - report.CostUsd, report.SavingUsd);
        Assert.Equal(Math.Round(100m * (1 - (report.CostUsd / report.BaselineUsd)), 4), report.SavingPercent);
        Assert.Equal(65.3968m, report.SavingPercent);
    }

    [Fact]
    public void ProviderProfiles_UnknownDeploymentOrBadRate_AreRefused()
    {
        var unknown = Assert.Throws<SimulationException>(() => ProviderProfiles.Resolve(Tiered(), ProviderProfiles.Read("""{"nope": {"failureRate": 0.1}}""")));
        var bad = Assert.Throws<SimulationException>(() => ProviderProfiles.Resolve(Tiered(), ProviderProfiles.Read("""{"mid": {"failureRate": 0.8, "rateLimitRate": 0.5}}""")));
        var typo = Assert.Throws<SimulationException>(() => ProviderProfiles.Read("""{"mid": {"failRate": 0.1}}"""));

        Assert.Contains("'nope'", unknown.Message, StringComparison.Ordinal);
        Assert.Contains("add up to at most 1", bad.Message, StringComparison.Ordinal);
        Assert.Contains("failRate", typo.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WorkloadFile_BadLine_NamesTheLine()
    {
        var error = Assert.Throws<SimulationException>(() => Workload(Line("\"task\":\"chat\""), """{"messages":[],"stream":false}"""));

        Assert.StartsWith("Workload line 2:", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_SimulateJson_PrintsTheReport()
    {
        var config = Path.Combine(Path.GetTempPath(), $"tollgate-simulate-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(config, "{}", TestContext.Current.CancellationToken);
        try
        {
            var output = new StringWriter();
            var error = new StringWriter();

            var exit = await TollgateCommandLine.InvokeAsync(["simulate", "--requests", "500", "--json", "--config", config], output, error);

            Assert.True(exit == 0, error.ToString());
            using var json = JsonDocument.Parse(output.ToString());
            var root = json.RootElement;
            Assert.Equal(500, root.GetProperty("requests").GetInt32());
            Assert.Equal("auto", root.GetProperty("route").GetString());
            Assert.True(root.GetProperty("saving_percent").GetDecimal() > 0);
            Assert.Equal(root.GetProperty("outcomes").GetProperty("served").GetInt32(), root.GetProperty("deployments").EnumerateArray().Sum(d => d.GetProperty("requests").GetInt32()));
        }
        finally
        {
            File.Delete(config);
        }
    }
}
