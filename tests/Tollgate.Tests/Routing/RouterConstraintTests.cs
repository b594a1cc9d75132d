using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Tollgate.Configuration;
using Tollgate.Requests;
using Tollgate.Routing;
using Tollgate.Routing.Classification;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Routing;

/// <summary>The router's constraint checks on live latency, tiers, strengths and verify ordering, with measured samples fed in directly.</summary>
public sealed class RouterConstraintTests : IDisposable
{
    private readonly Catalog _catalog;

    public RouterConstraintTests()
    {
        var config = new JsonObject
        {
            ["useDefaults"] = false,
            ["providers"] = new JsonObject
            {
                ["local"] = Configs.Provider(new Uri("http://127.0.0.1:1/v1"), "L_KEY"),
                ["cloud"] = Configs.Provider(new Uri("http://127.0.0.1:2/v1"), "C_KEY"),
            },
            ["models"] = new JsonObject
            {
                ["small"] = Tiered(Configs.Model("local", "s", 0m, 0m), 1, "translation"),
                ["mid"] = Tiered(Configs.Model("cloud", "m", 0.5m, 1m), 2),
                ["big"] = Tiered(Configs.Model("cloud", "b", 3m, 15m), 3),
            },
            ["routes"] = new JsonObject { ["auto"] = Configs.Route("task", "big", "mid", "small") },
            ["routing"] = new JsonObject { ["taskTiers"] = new JsonObject { ["summarization"] = 2 } },
        };
        var options = ConfigurationLoader.Load(config, new Dictionary<string, string>());
        _catalog = Catalog.Build(options, new SecretSource(new Dictionary<string, string> { ["L_KEY"] = "l", ["C_KEY"] = "c" }), new FakeTimeProvider());
    }

    public void Dispose() => _catalog.Dispose();

    private static JsonObject Tiered(JsonObject model, int tier, params string[] strengths)
    {
        model["tier"] = tier;
        model["strengths"] = new JsonArray([.. strengths.Select(s => (JsonNode)s!)]);
        return model;
    }

    private static ParsedRequest Request(bool stream = false, string extra = "")
    {
        var json = $$"""{"model":"auto","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"hello"}]{{extra}}}""";
        Assert.True(RequestParser.TryParse(RequestKind.ChatCompletion, Encoding.UTF8.GetBytes(json), out var request, out _));
        return request!;
    }

    private TaskDecision Task(TaskKind task) => new(task, TaskSource.Stated, 1f, _catalog.TaskTiers[task]);

    private RoutePlan Plan(ParsedRequest request, RequestConstraints constraints, TaskKind? task = null, bool verify = false) =>
        Router.Plan(_catalog.Routes["auto"], request, constraints, task is { } t ? Task(t) : null, verify);

    [Fact]
    public void LatencyBudget_ForStreams_UsesTheLiveTimeToFirstToken()
    {
        for (var i = 0; i < 5; i++)
        {
            _catalog.Deployments["small"].Health.RecordSuccess(TimeSpan.FromMilliseconds(900), streamed: true);
            _catalog.Deployments["mid"].Health.RecordSuccess(TimeSpan.FromMilliseconds(80), streamed: true);
        }

        var plan = Plan(Request(stream: true), new RequestConstraints { MaxLatencyMs = 100 }, TaskKind.Classification);

        // "big" was never measured: it keeps the benefit of the doubt; "small" is too slow.
        Assert.Equal(["mid", "big"], plan.Candidates.Select(c => c.Deployment.Id));
        Assert.Equal(80, plan.Candidates[0].ExpectedLatencyMs);
        var skip = Assert.Single(plan.Skipped);
        Assert.Equal(("small", SkipReason.TooSlow, "expected 900 ms, budget 100 ms"), (skip.Deployment.Id, skip.Reason, skip.Detail));
    }

    [Fact]
    public void LatencyBudget_ForBufferedAnswers_ScalesTheMeasuredAnswerTimeByTheOutputCap()
    {
        // 200 ms for answers of 100 tokens, generated at 1 ms per token.
        var mid = _catalog.Deployments["mid"].Health;
        mid.RecordSuccess(TimeSpan.FromMilliseconds(200));
        mid.RecordCompletion(TimeSpan.FromMilliseconds(100), TimeSpan.Zero, 100, streamed: true);

        var shortAnswer = Plan(Request(extra: ",\"max_tokens\":50"), new RequestConstraints { MaxLatencyMs = 300, Providers = ["cloud"] });
        var longAnswer = Plan(Request(extra: ",\"max_tokens\":400"), new RequestConstraints { MaxLatencyMs = 300, Providers = ["cloud"] });

        Assert.Equal(150, shortAnswer.Candidates.Single(c => c.Deployment.Id == "mid").ExpectedLatencyMs);
        Assert.Contains(longAnswer.Skipped, s => s.Deployment.Id == "mid" && s.Reason == SkipReason.TooSlow);
    }

    [Fact]
    public void TaskTiers_AreConfigurable_AndStrengthsLetALowerTierServe()
    {
        // summarization raised to tier 2 by configuration; translation is "small"'s strength.
        var summary = Plan(Request(), RequestConstraints.None, TaskKind.Summarization);
        var translation = Plan(Request(), RequestConstraints.None, TaskKind.Translation);

        Assert.Equal(["mid", "big"], summary.Candidates.Select(c => c.Deployment.Id));
        Assert.Equal(["small", "mid", "big"], translation.Candidates.Select(c => c.Deployment.Id));
        Assert.Equal(2, _catalog.TaskTiers[TaskKind.Summarization]);
        Assert.Equal(3, _catalog.TaskTiers[TaskKind.Reasoning]);
    }

    [Fact]
    public void Verify_StartsAtTheCheapestCapableTier_WhateverTheTaskNeeds()
    {
        var plan = Plan(Request(), RequestConstraints.None, TaskKind.Reasoning, verify: true);

        Assert.Equal(["small", "mid", "big"], plan.Candidates.Select(c => c.Deployment.Id));
        Assert.True(plan.Verify);
    }

    [Fact]
    public void MinTier_IsHard_EvenWithBestEffort()
    {
        var plan = Plan(Request(), new RequestConstraints { MinTier = 4, BestEffort = true });

        Assert.Empty(plan.Candidates);
        Assert.All(plan.Skipped, s => Assert.Equal(SkipReason.TierTooLow, s.Reason));
        Assert.False(plan.BestEffort);
    }

    [Fact]
    public void CostCeiling_KeepsOnlyCandidatesUnderIt()
    {
        var plan = Plan(Request(extra: ",\"max_tokens\":100"), new RequestConstraints { MaxCostUsd = 0.0001m });

        Assert.Equal(["small"], plan.Candidates.Select(c => c.Deployment.Id));
        Assert.Equal(2, plan.Skipped.Count(s => s.Reason == SkipReason.TooExpensive));
    }
}
