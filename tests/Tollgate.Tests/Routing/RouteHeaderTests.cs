using System.Diagnostics.Metrics;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Tollgate.Configuration;
using Tollgate.Requests;
using Tollgate.Routing;
using Tollgate.Server.Diagnostics;
using Tollgate.Server.Dispatch;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Routing;

/// <summary>The <c>x-tollgate-route</c> header as <see cref="AttemptLog"/> writes it, character for character.</summary>
public sealed class RouteHeaderTests : IDisposable
{
    private const string Long = "a-provider-with-a-rather-long-name/a-model-deployment-with-a-long-name";

    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly Catalog _catalog;
    private readonly GatewayMetrics _metrics;

    public RouteHeaderTests()
    {
        var config = new JsonObject
        {
            ["useDefaults"] = false,
            ["providers"] = new JsonObject
            {
                ["p"] = Configs.Provider(new Uri("http://127.0.0.1:1/v1"), "P_KEY"),
                ["nokey"] = Configs.Provider(new Uri("http://127.0.0.1:2/v1"), "MISSING_KEY"),
            },
            ["models"] = new JsonObject
            {
                ["cheap"] = Configs.Model("p", "small", 0.28m, 0.42m),
                ["unpriced"] = new JsonObject { ["provider"] = "p", ["upstreamModel"] = "u" },
                ["unkeyed"] = Configs.Model("nokey", "x", 0m, 0m),
                [Long + "-1"] = Configs.Model("p", "l1", 1m, 2m),
                [Long + "-2"] = Configs.Model("p", "l2", 3m, 4m),
                [Long + "-3"] = Configs.Model("p", "l3", 5m, 6m),
                [Long + "-4"] = Configs.Model("p", "l4", 7m, 8m),
            },
            ["routes"] = new JsonObject
            {
                ["short"] = Configs.Route("cheapest", "unpriced", "cheap", "unkeyed"),
                ["long"] = Configs.Route("ordered", Long + "-1", Long + "-2", Long + "-3", Long + "-4"),
                ["modèle"] = Configs.Route("cheapest", "cheap"),
            },
        };
        var options = ConfigurationLoader.Load(config, new Dictionary<string, string>());
        _catalog = Catalog.Build(options, new SecretSource(new Dictionary<string, string> { ["P_KEY"] = "p" }), new FakeTimeProvider());
        _metrics = new GatewayMetrics(_services.GetRequiredService<IMeterFactory>(), _catalog);
    }

    public void Dispose()
    {
        _catalog.Dispose();
        _services.Dispose();
    }

    [Fact]
    public void ToHeader_ListsCandidatesWithTheirCosts_UnknownPricesAsSuch_SkipsAttemptsAndChoice()
    {
        var plan = Router.Plan(_catalog.Routes["short"], Request("short", ",\"max_tokens\":10"));
        var log = new AttemptLog(plan, _metrics);
        log.Add(plan.Candidates[1].Deployment, "upstream_503");
        log.Add(plan.Candidates[0].Deployment, "ok");
        log.Chosen = plan.Candidates[0].Deployment;

        var cost = plan.Candidates[0].ExpectedCostUsd!.Value.ToString("0.##########", System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(
            $"short; strategy=cheapest; candidates=cheap:${cost},unpriced:price_unknown; skipped=unkeyed:not_configured; " +
            $"tried=unpriced:upstream_503,cheap:ok; chosen=cheap; expected_cost_usd={cost}",
            log.ToHeader());
    }

    [Fact]
    public void ToHeader_ChosenWithAnUnknownPrice_HasNoExpectedCost()
    {
        var plan = Router.Plan(_catalog.Routes["short"], Request("short"));
        var log = new AttemptLog(plan, _metrics) { Chosen = plan.Candidates[1].Deployment };
        log.Add(plan.Candidates[1].Deployment, "ok");

        Assert.EndsWith("; tried=unpriced:ok; chosen=unpriced", log.ToHeader(), StringComparison.Ordinal);
    }

    [Fact]
    public void ToHeader_LongerThanItsStackBuffer_IsWhole()
    {
        var plan = Router.Plan(_catalog.Routes["long"], Request("long"));
        var log = new AttemptLog(plan, _metrics);
        foreach (var candidate in plan.Candidates)
        {
            log.Add(candidate.Deployment, candidate == plan.Candidates[^1] ? "ok" : "timeout");
        }

        log.Chosen = plan.Candidates[^1].Deployment;

        var header = log.ToHeader();
        Assert.True(header.Length > 512, header);
        Assert.StartsWith($"long; strategy=ordered; candidates={Long}-1:$", header, StringComparison.Ordinal);
        Assert.Contains($"; tried={Long}-1:timeout,{Long}-2:timeout,{Long}-3:timeout,{Long}-4:ok; chosen={Long}-4; expected_cost_usd=", header, StringComparison.Ordinal);
        Assert.Equal(4, header.Split(":$").Length - 1);
    }

    [Fact]
    public void ToHeader_WithANameThatIsNotAscii_IsEscaped()
    {
        var plan = Router.Plan(_catalog.Routes["modèle"], Request("modèle"));
        var log = new AttemptLog(plan, _metrics);

        Assert.StartsWith("mod%C3%A8le%3B%20strategy%3Dcheapest", log.ToHeader(), StringComparison.Ordinal);
    }

    private static ParsedRequest Request(string model, string extra = "")
    {
        var json = $$"""{"model":"{{model}}","messages":[{"role":"user","content":"hello"}]{{extra}}}""";
        Assert.True(RequestParser.TryParse(RequestKind.ChatCompletion, Encoding.UTF8.GetBytes(json), out var request, out _));
        return request!;
    }
}
