using System.Reflection;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Tollgate.Configuration;

namespace Tollgate.Server.Diagnostics;

/// <summary>
/// OpenTelemetry for the gateway (<see cref="TelemetryOptions"/>): Prometheus metrics at <c>/metrics</c> (the
/// gateway's <see cref="GatewayMetrics"/> and the runtime's), and, when an OTLP
/// endpoint is configured, a trace span per request with one child per upstream attempt, exported over OTLP.
/// Nothing is exported that could carry a secret or a prompt: spans hold paths, status codes, configuration names
/// and counts (the instrumentations redact query strings and record no headers or bodies).
/// </summary>
internal static class Telemetry
{
    public const string MetricsPath = "/metrics";

    /// <summary>The OTLP variables that turn tracing on when <see cref="TelemetryOptions.Tracing"/> is not set.</summary>
    private static readonly string[] OtlpEndpointVariables = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

    public static bool TracingEnabled(TelemetryOptions options) =>
        options.Tracing ?? OtlpEndpointVariables.Any(v => !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(v)));

    public static IServiceCollection AddTelemetry(this IServiceCollection services, TelemetryOptions options)
    {
        services.AddSingleton<GatewayMetrics>();
        var tracing = TracingEnabled(options);
        if (!options.Metrics && !tracing)
        {
            return services;
        }

        var version = typeof(Telemetry).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        var telemetry = services.AddOpenTelemetry().ConfigureResource(resource => resource.AddService("tollgate", serviceVersion: version));
        if (options.Metrics)
        {
            // ASP.NET Core's own http.server.* and kestrel.* meters are left out: listening to them cost ~2.4 µs
            // of the ~42 µs of CPU a proxied request takes (docs/performance.md), and tollgate.requests already
            // counts every request the gateway meters. The runtime's meter (GC, heap, thread pool) costs nothing
            // per request: it is read at scrape time.
            telemetry.WithMetrics(metrics => metrics
                .AddMeter(GatewayMetrics.MeterName, "System.Runtime")

                // Every scrape collects afresh: a cached answer could hide a request that finished just before it.
                .AddPrometheusExporter(prometheus => prometheus.ScrapeResponseCacheDurationMilliseconds = 0));
        }

        if (tracing)
        {
            // Endpoint, protocol, headers and sampling come from the standard OTEL_* variables.
            telemetry.WithTracing(traces => traces
                .AddAspNetCoreInstrumentation(aspNetCore => aspNetCore.Filter = static context =>
                    !context.Request.Path.StartsWithSegments("/health") && !context.Request.Path.StartsWithSegments(MetricsPath))

                // The runtime's own spans of upstream calls (url.full, status, errors). Not OpenTelemetry's
                // HttpClient instrumentation: that one writes traceparent into the provider's request itself.
                .AddSource("System.Net.Http")
                .AddOtlpExporter());
        }

        return services;
    }

    /// <summary>
    /// Serves <c>/metrics</c> when metrics are on. The scrape runs on the thread pool: with inline I/O the request
    /// would otherwise hold the socket thread that other connections are waiting on while every series is serialised.
    /// Runs after <c>AuthMiddleware</c>, which asks for the admin key here unless configured not to.
    /// </summary>
    public static void UseMetricsEndpoint(this WebApplication app, TelemetryOptions options)
    {
        if (!options.Metrics)
        {
            return;
        }

        // Created now, not with the first request: the deployments' circuit gauges are scraped from the start.
        _ = app.Services.GetRequiredService<GatewayMetrics>();
        app.MapWhen(
            static context => context.Request.Path.Equals(MetricsPath, StringComparison.OrdinalIgnoreCase),
            metrics =>
            {
                metrics.Use(static next => context => Task.Run(() => next(context)));
                metrics.UseOpenTelemetryPrometheusScrapingEndpoint(static _ => true);
            });
    }
}
