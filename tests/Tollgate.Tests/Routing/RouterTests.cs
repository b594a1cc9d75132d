using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Tollgate.Configuration;
using Tollgate.Requests;
using Tollgate.Routing;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Routing;

public sealed class RouterTests : IDisposable
{
    private readonly FakeTimeProvider _time = new();
    private readonly Catalog _catalog;

    public RouterTests()
    {
        var config = new JsonObject
        {
            ["useDefaults"] = false,
            ["providers"] = new JsonObject
            {
                ["a"] = Configs.Provider(new Uri("http://127.0.0.1:1/v1"), "A_KEY"),
                ["b"] = Configs.Provider(new Uri("http://127.0.0.1:2/v1"), "B_KEY"),
                ["nokey"] = Configs.Provider(new Uri("http://127.0.0.1:3/v1"), "MISSING_KEY"),
            },
            ["models"] = new JsonObject
            {
                ["premium"] = Configs.Model("a", "big", 2.50m, 10m),
                ["cheap"] = Configs.Model("b", "small", 0.28m, 0.42m, capabilities: ["json"]),
                ["tiny-context"] = Configs.Model("b", "tiny", 0.01m, 0.01m, contextWindow: 100),
                ["unpriced"] = new JsonObject { ["provider"] = "a", ["upstreamModel"] = "u" },
                ["unkeyed"] = Configs.Model("nokey", "x", 0m, 0m),
            },
            ["routes"] = new JsonObject
            {
                ["gpt-4o"] = Configs.Route("cheapest", "unpriced", "premium", "cheap", "tiny-context", "unkeyed"),
                ["chain"] = Configs.Route("ordered", "premium", "cheap"),
            },
        };
        var options = ConfigurationLoader.Load(config, new Dictionary<string, string>());
        _catalog = Catalog.Build(options, new SecretSource(new Dictionary<string, string> { ["A_KEY"] = "a", ["B_KEY"] = "b" }), _time);
    }

    public void Dispose() => _catalog.Dispose();

    private static ParsedRequest Request(string extra = "", int contentLength = 10)
    {
        var json = $$"""{"model":"gpt-4o","messages":[{"role":"user","content":"{{new string('x', contentLength)}}"}]{{extra}}}""";
        Assert.True(RequestParser.TryParse(RequestKind.ChatCompletion, Encoding.UTF8.GetBytes(json), out var request, out _));
        return request!;
    }

    [Fact]
    public void Plan_Cheapest_OrdersByExpectedCostWithUnknownPricesLast()
    {
        var plan = Router.Plan(_catalog.Routes["gpt-4o"], Request(",\"max_tokens\":10"));

        Assert.Equal(["tiny-context", "cheap", "premium", "unpriced"], plan.Candidates.Select(c => c.Deployment.Id));
        Assert.Null(plan.Candidates[^1].ExpectedCostUsd);
        Assert.Equal([("unkeyed", SkipReason.NotConfigured)], plan.Skipped.Select(s => (s.Deployment.Id, s.Reason)));
    }

    [Fact]
    public void Plan_Ordered_KeepsTheConfiguredOrder()
    {
        var plan = Router.Plan(_catalog.Routes["chain"], Request());

        Assert.Equal(["premium", "cheap"], plan.Candidates.Select(c => c.Deployment.Id));
    }

    [Fact]
    public void Plan_RequestWithTools_SkipsDeploymentsWithoutTools()
    {
        var plan = Router.Plan(_catalog.Routes["gpt-4o"], Request(",\"max_tokens\":10,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]"));

        Assert.DoesNotContain(plan.Candidates, c => c.Deployment.Id == "cheap");
        Assert.Contains(plan.Skipped, s => s.Deployment.Id == "cheap" && s.Reason == SkipReason.MissingCapability);
    }

    [Fact]
    public void Plan_LongPrompt_SkipsSmallContextWindows()
    {
        var plan = Router.Plan(_catalog.Routes["gpt-4o"], Request(contentLength: 2_000));

        Assert.Contains(plan.Skipped, s => s.Deployment.Id == "tiny-context" && s.Reason == SkipReason.ContextTooSmall);
    }

    [Fact]
    public void Plan_OpenCircuit_IsSkipped()
    {
        var cheap = _catalog.Deployments["cheap"];
        for (var i = 0; i < 3; i++)
        {
            cheap.Health.RecordFailure("down", false, null);
        }

        var plan = Router.Plan(_catalog.Routes["chain"], Request());

        Assert.Equal(["premium"], plan.Candidates.Select(c => c.Deployment.Id));
        Assert.Equal(SkipReason.CircuitOpen, plan.Skipped.Single().Reason);
    }

    [Fact]
    public void Plan_ExpectedCost_UsesMaxTokensElseTheDeploymentMaximum()
    {
        var withCap = Router.Plan(_catalog.Routes["chain"], Request(",\"max_tokens\":100"));
        var withoutCap = Router.Plan(_catalog.Routes["chain"], Request());

        var input = withCap.Candidates[0].ExpectedCostUsd!.Value - (100 * 10m / 1_000_000m);
        Assert.Equal(input + (4_096 * 10m / 1_000_000m), withoutCap.Candidates[0].ExpectedCostUsd);
    }
}
