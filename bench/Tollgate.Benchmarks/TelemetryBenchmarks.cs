using System.Diagnostics.Metrics;
using System.Text.Json.Nodes;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using Tollgate.Configuration;
using Tollgate.Metering;
using Tollgate.Routing;
using Tollgate.Server.Diagnostics;

namespace Tollgate.Benchmarks;

/// <summary>
/// What the metrics cost one answered request: the measurements it records (attempt, first byte, request, two
/// token buckets, cost), into the same OpenTelemetry MeterProvider and Prometheus reader the gateway runs, and,
/// as the baseline, the same calls with nothing listening (<c>telemetry.metrics: false</c>).
/// </summary>
[MemoryDiagnoser]
public class TelemetryBenchmarks
{
    private static readonly MeteredUsage Usage = new(new UsageBuckets(1200, 0, 0, 0, 300, 0), UsageSource.Reported);

    private Catalog _catalog = null!;
    private ServiceProvider _services = null!;
    private GatewayMetrics _metrics = null!;
    private Deployment _deployment = null!;

    // BenchmarkDotNet runs each benchmark in a process of its own, so each gets its own setup: a MeterProvider
    // listens to every meter of the name in its process, and the baseline must have none.
    [GlobalSetup(Target = nameof(Silent))]
    public void SetupSilent() => Setup(listened: false);

    [GlobalSetup(Target = nameof(Listened))]
    public void SetupListened() => Setup(listened: true);

    [GlobalCleanup]
    public void Cleanup()
    {
        _services.Dispose();
        _catalog.Dispose();
    }

    [Benchmark(Baseline = true, Description = "answered request's metrics, nothing listening")]
    public void Silent() => Record(_metrics);

    [Benchmark(Description = "answered request's metrics, OpenTelemetry + Prometheus reader")]
    public void Listened() => Record(_metrics);

    private void Setup(bool listened)
    {
        var config = new JsonObject
        {
            ["useDefaults"] = false,
            ["providers"] = new JsonObject { ["a"] = new JsonObject { ["type"] = "openai", ["baseUrl"] = "http://127.0.0.1:1/v1", ["apiKeyEnv"] = "A" } },
            ["models"] = new JsonObject
            {
                ["a/cheap"] = new JsonObject { ["provider"] = "a", ["upstreamModel"] = "m", ["inputPerMillion"] = 0.28m, ["outputPerMillion"] = 0.42m },
            },
        };
        _catalog = Catalog.Build(ConfigurationLoader.Load(config, new Dictionary<string, string>()), new SecretSource(new Dictionary<string, string> { ["A"] = "x" }), TimeProvider.System);
        _deployment = _catalog.Deployments["a/cheap"];

        var services = new ServiceCollection();
        services.AddMetrics();
        if (listened)
        {
            services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddMeter(GatewayMetrics.MeterName).AddPrometheusExporter());
        }

        _services = services.BuildServiceProvider();
        if (listened)
        {
            _ = _services.GetRequiredService<MeterProvider>();
        }

        _metrics = new GatewayMetrics(_services.GetRequiredService<IMeterFactory>(), _catalog);
    }

    private void Record(GatewayMetrics metrics)
    {
        metrics.Attempt(_deployment, "ok");
        metrics.FirstByte(_deployment, TimeSpan.FromMilliseconds(180), stream: false);
        metrics.Request("gpt-4o", _deployment, 200, Usage, 0.000462m, 0);
    }
}
