using System.CommandLine;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Tollgate.Billing;
using Tollgate.Configuration;
using Tollgate.Keys;
using Tollgate.Server.Billing;
using Tollgate.Server.Demo;
using Tollgate.Server.Hosting;

namespace Tollgate.Server.Cli;

/// <summary>
/// <c>tollgate demo</c>: the whole product in a minute without a provider key. Starts demo providers on loopback,
/// a gateway on a fresh database in front of them, three tenants on different plans, sends a few thousand mixed
/// requests through it, issues this month's invoices (not final), and prints the savings report and the dashboard's
/// address with the keys to log in. Then it keeps serving until Ctrl+C so the dashboard can be explored.
/// </summary>
internal static class DemoCommand
{
    private static readonly (string Name, string Plan)[] Tenants = [("acme", DemoCatalog.Plans.Team), ("globex", DemoCatalog.Plans.Startup), ("initech", DemoCatalog.Plans.Hobby)];

    public static Command Create(Option<string?> dataDirOption, Option<string?> urlsOption, TextWriter output, TextWriter error)
    {
        var requestsOption = new Option<int>("--requests") { Description = "How many requests to send (default 2000)", DefaultValueFactory = _ => 2000 };
        var concurrencyOption = new Option<int>("--concurrency") { Description = "Requests in flight at once (default 32)", DefaultValueFactory = _ => 32 };
        var seedOption = new Option<int>("--seed") { Description = "Seed of the traffic mix and the demo providers' faults (default 7)", DefaultValueFactory = _ => 7 };
        var noWaitOption = new Option<bool>("--no-wait") { Description = "Exit after the report instead of serving the dashboard until Ctrl+C" };
        var demo = new Command("demo", "Run Tollgate against demo providers (no keys needed): mixed traffic, savings report, dashboard.")
        {
            requestsOption, concurrencyOption, seedOption, noWaitOption,
        };
        demo.SetAction(async (result, ct) =>
        {
            var requests = result.GetValue(requestsOption);
            var concurrency = result.GetValue(concurrencyOption);
            if (requests <= 0 || concurrency <= 0)
            {
                error.WriteLine("--requests and --concurrency must be positive.");
                return 2;
            }

            var dataDirectory = Path.GetFullPath(result.GetValue(dataDirOption)
                ?? Path.Combine(Path.GetTempPath(), "tollgate-demo-" + DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)));
            var urls = result.GetValue(urlsOption) ?? "http://127.0.0.1:5080";
            return await RunAsync(dataDirectory, urls, requests, concurrency, result.GetValue(seedOption), result.GetValue(noWaitOption), output, ct).ConfigureAwait(false);
        });
        return demo;
    }

    private static async Task<int> RunAsync(string dataDirectory, string urls, int requests, int concurrency, int seed, bool noWait, TextWriter output, CancellationToken cancellationToken)
    {
        output.WriteLine("Tollgate demo: every provider below is a DEMO provider running on this machine; nothing leaves it.");
        // Before the demo providers open the process's first socket; the demo gateway uses the default server options.
        IoScheduling.ConfigureProcess(new ServerOptions());
        await using var upstream = await DemoUpstream.StartAsync(seed, cancellationToken).ConfigureAwait(false);
        var adminKey = ApiKeys.NewSecret(ApiKeys.AdminPrefix);
        var settings = new GatewaySettings
        {
            Options = DemoCatalog.Options(upstream.BaseUrl),
            Secrets = new SecretSource(new Dictionary<string, string> { [DemoCatalog.KeyVariable] = "demo", [GatewayStartup.AdminKeyVariable] = adminKey }),
            DataDirectory = dataDirectory,
            Urls = urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            // Failovers from the demo providers' injected faults are expected; the report counts them.
            MinimumLogLevel = LogLevel.Error,
        };

        var adminHash = await GatewayStartup.PrepareAsync(settings, _ => { }, cancellationToken).ConfigureAwait(false);
        var app = await StartGatewayAsync(settings, adminHash, output, cancellationToken).ConfigureAwait(false);
        await using (app.ConfigureAwait(false))
        {
            var baseUrl = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/') + "/");
            using var http = new HttpClient { BaseAddress = baseUrl, Timeout = TimeSpan.FromMinutes(2) };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", adminKey);
            var keys = new List<(string Tenant, string Plan, string Key)>();
            foreach (var (name, plan) in Tenants)
            {
                keys.Add((name, plan, await CreateTenantKeyAsync(http, name, plan, cancellationToken).ConfigureAwait(false)));
            }

            output.WriteLine($"Gateway on {baseUrl} (data: {dataDirectory}). Demo providers: {string.Join(", ", DemoCatalog.Deployments.Select(d => d.Id))}.");
            output.WriteLine($"Sending {requests} requests from {Tenants.Length} tenants ({concurrency} at a time; demo latencies are real ones / {DemoCatalog.TimeCompression})...");
            output.Flush();
            var started = DateTimeOffset.UtcNow;
            using var client = new HttpClient { BaseAddress = baseUrl, Timeout = TimeSpan.FromMinutes(2) };
            var traffic = new DemoTraffic(client, [.. keys.Select(k => k.Key)], seed);
            var (answered, failed) = await traffic.RunAsync(requests, concurrency, n =>
            {
                output.WriteLine($"  {n} sent");
                output.Flush();
            }, cancellationToken).ConfigureAwait(false);
            output.WriteLine(failed == 0
                ? $"Done: {answered} answered in {(DateTimeOffset.UtcNow - started).TotalSeconds:0.0} s (the demo providers' injected faults were failed over)."
                : $"Done: {answered} answered, {failed} failed on every candidate, in {(DateTimeOffset.UtcNow - started).TotalSeconds:0.0} s.");
            output.WriteLine();

            var billing = app.Services.GetRequiredService<BillingService>();
            var month = started.ToString("yyyy-MM", CultureInfo.InvariantCulture);
            var issued = await billing.IssueAsync(month, tenantId: null, reissue: false, cancellationToken).ConfigureAwait(false);
            var summary = await SavingsSummaries.BuildAsync(billing, new ReportQuery(started.AddSeconds(-1), DateTimeOffset.UtcNow.AddSeconds(1), null, []), SavingsBaseline.Default, cancellationToken).ConfigureAwait(false);
            output.Write(SavingsSummaries.Table(summary));
            output.WriteLine();
            output.WriteLine($"Invoices for {month} (not final): {issued.Invoices.Count} issued.");
            output.WriteLine();
            output.WriteLine($"Dashboard: {baseUrl}dashboard");
            output.WriteLine($"  admin key:  {adminKey}");
            foreach (var (tenant, plan, key) in keys)
            {
                output.WriteLine($"  {tenant} ({plan} plan) key: {key}");
            }

            output.WriteLine($"  API:        {baseUrl}v1 (OpenAI-compatible; try model \"auto\")");
            output.Flush();
            if (!noWait)
            {
                output.WriteLine("Serving until Ctrl+C.");
                output.Flush();
                try
                {
                    await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                }
            }

            await app.StopAsync(CancellationToken.None).ConfigureAwait(false);
        }

        return 0;
    }

    /// <summary>Starts the gateway on the asked URL, or on a free port when that one is taken.</summary>
    private static async Task<WebApplication> StartGatewayAsync(GatewaySettings settings, string adminHash, TextWriter output, CancellationToken cancellationToken)
    {
        var app = GatewayHost.Build(settings, adminHash);
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
            return app;
        }
        catch (IOException)
        {
            await app.DisposeAsync().ConfigureAwait(false);
            output.WriteLine($"{string.Join(";", settings.Urls)} is in use; the demo takes a free port instead.");
            app = GatewayHost.Build(settings with { Urls = ["http://127.0.0.1:0"] }, adminHash);
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
            return app;
        }
    }

    private static async Task<string> CreateTenantKeyAsync(HttpClient admin, string name, string plan, CancellationToken cancellationToken)
    {
        using var tenant = await admin.PostAsJsonAsync("admin/tenants", new JsonObject { ["name"] = name, ["plan"] = plan }, cancellationToken).ConfigureAwait(false);
        tenant.EnsureSuccessStatusCode();
        var id = (string)(await tenant.Content.ReadFromJsonAsync<JsonObject>(cancellationToken).ConfigureAwait(false))!["id"]!;
        using var key = await admin.PostAsJsonAsync("admin/keys", new JsonObject { ["name"] = name + "-app", ["tenant"] = id }, cancellationToken).ConfigureAwait(false);
        key.EnsureSuccessStatusCode();
        return (string)(await key.Content.ReadFromJsonAsync<JsonObject>(cancellationToken).ConfigureAwait(false))!["key"]!;
    }
}
