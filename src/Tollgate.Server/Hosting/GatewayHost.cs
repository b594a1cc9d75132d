using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging.Console;
using Tollgate.Providers;
using Tollgate.Providers.Anthropic;
using Tollgate.Providers.Gemini;
using Tollgate.Providers.OpenAI;
using Tollgate.Routing;
using Tollgate.Server.Auth;
using Tollgate.Server.Billing;
using Tollgate.Server.Dashboard;
using Tollgate.Server.Diagnostics;
using Tollgate.Server.Dispatch;
using Tollgate.Server.Endpoints.Admin;
using Tollgate.Server.Endpoints.OpenAI;
using Tollgate.Server.Endpoints.Usage;
using Tollgate.Server.Json;
using Tollgate.Server.Metering;
using Tollgate.Storage;

namespace Tollgate.Server.Hosting;

/// <summary>Composes the gateway: services, middleware order and endpoints.</summary>
public static class GatewayHost
{
    /// <summary>
    /// A slim web application builder that does not watch its content root. The default host reloads
    /// <c>appsettings*.json</c> on change, which puts a recursive file watcher on the working directory; with the
    /// database under <c>./data</c> (the default) every ledger commit then woke a watcher thread several times,
    /// on the same cores as the requests. Tollgate reads its own configuration file once, at start.
    /// </summary>
    internal static WebApplicationBuilder CreateBuilder() =>
        WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = ["--hostBuilder:reloadConfigOnChange=false"] });

    /// <summary>Builds the web application; the database must already be migrated and the admin key resolved (see <see cref="GatewayStartup"/>).</summary>
    public static WebApplication Build(GatewaySettings settings, string adminKeyHash)
    {
        var builder = CreateBuilder();
        builder.WebHost.UseUrls([.. settings.Urls]);
        IoScheduling.ConfigureKestrel(builder.WebHost, settings.Options.Server);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = settings.Options.Server.MaxRequestBodyBytes;
        });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);

        // A burst of upstream errors must not stall the proxy (possibly on an I/O thread) behind a slow
        // console: past the logger's queue, messages are dropped (and the drop is logged) instead of waiting.
        builder.Services.Configure<ConsoleLoggerOptions>(o => o.QueueFullMode = ConsoleLoggerQueueFullMode.DropWrite);
        builder.Logging.SetMinimumLevel(settings.MinimumLogLevel);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);

        // While this category is enabled at all, ASP.NET Core opens a log scope and starts an Activity for every
        // request (both flow through AsyncLocal into every await after), only for its own request-start and
        // request-finish lines, which the filter above drops anyway. Startup failures still surface: they are thrown.
        builder.Logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None);

        var services = builder.Services;
        services.ConfigureHttpJsonOptions(o => o.SerializerOptions.TypeInfoResolverChain.Insert(0, ServerJsonContext.Default));
        services.AddProblemDetails();
        services.AddSingleton(settings.Time);
        services.AddSingleton(settings.Options);
        services.AddSingleton(sp => Catalog.Build(settings.Options, settings.Secrets, settings.Time, Telemetry.TracingEnabled(settings.Options.Telemetry)));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IProviderAdapter, OpenAICompatibleAdapter>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IProviderAdapter, GeminiAdapter>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IProviderAdapter, AnthropicAdapter>());
        services.AddSingleton<GatewayDispatcher>();
        services.AddSingleton<AnswerVerifier>();
        services.AddSingleton(_ => GatewayStartup.OpenStorage(settings.Options, settings.Secrets, settings.DataDirectory, settings.Time));
        services.AddSingleton(sp => sp.GetRequiredService<GatewayStorage>().Keys);
        services.AddSingleton(sp => sp.GetRequiredService<GatewayStorage>().Tenants);
        services.AddSingleton(sp => sp.GetRequiredService<GatewayStorage>().Ledger);
        services.AddSingleton(sp => sp.GetRequiredService<GatewayStorage>().Billing);
        services.AddSingleton(sp => sp.GetRequiredService<GatewayStorage>().Limiter);
        services.AddSingleton(sp => sp.GetRequiredService<GatewayStorage>().Sessions);
        services.AddSingleton(sp => sp.GetRequiredService<GatewayStorage>().HealthBroadcast);
        services.AddSingleton<LedgerWriter>();
        services.AddHostedService(sp => sp.GetRequiredService<LedgerWriter>());
        services.AddSingleton<ClientKeyCache>();
        services.AddSingleton<TenantDirectory>();
        services.AddSingleton(new AdminKey(adminKeyHash));
        services.AddSingleton<KeyGuessLimiter>();
        services.AddSingleton<DashboardSessions>();
        services.AddSingleton<DashboardAssets>();
        services.AddSingleton<ModelCatalogClock>();
        services.AddHostedService<KeyChangeWatcher>();
        services.AddHostedService<ReachabilityProbe>();
        services.AddHostedService<SharedRateLimits>();
        services.AddBilling();
        services.AddTelemetry(settings.Options.Telemetry);

        var app = builder.Build();
        app.UseMiddleware<RequestIdMiddleware>();
        app.UseMiddleware<ExceptionMiddleware>();
        app.UseMiddleware<AuthMiddleware>();
        app.UseMetricsEndpoint(settings.Options.Telemetry);

        // The proxy path and the in-memory status endpoints never block and may run on the I/O thread;
        // everything that touches the database runs on the thread pool (see IoScheduling).
        app.MapOpenAI();
        app.MapHealth();
        var storage = app.MapGroup("").RunOnThreadPool(settings.Options.Server);
        storage.MapGroup("/v1").MapUsageV1();
        var admin = storage.MapGroup("/admin");
        admin.MapKeys();
        admin.MapTenants();
        admin.MapUsageAdmin();
        admin.MapHealthAdmin();
        storage.MapBilling();
        storage.MapDashboard();
        app.MapGet("/", () => TypedResults.Text("Tollgate LLM gateway. OpenAI-compatible API under /v1; health at /health.\n"));
        return app;
    }
}
