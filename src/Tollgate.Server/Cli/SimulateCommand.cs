using System.CommandLine;
using System.Text;
using Tollgate.Configuration;
using Tollgate.Server.Hosting;
using Tollgate.Simulation;

namespace Tollgate.Server.Cli;

/// <summary>
/// <c>tollgate simulate</c>: replays a workload (a JSON Lines file, or a generated mix) through the real router
/// in-process against simulated providers, and prints where the requests went, what they cost against the
/// always-premium baseline, latencies, and how many met their constraints. Offline: no keys, no network.
/// </summary>
internal static class SimulateCommand
{
    private const int DefaultRequests = 10_000;

    public static Command Create(TextWriter output, TextWriter error)
    {
        var workload = new Option<FileInfo?>("--workload") { Description = "JSON Lines workload to replay (default: a generated mix of the seven task types)" };
        var requests = new Option<int?>("--requests") { Description = $"Requests to generate (default {DefaultRequests}), or the first N lines of --workload" };
        var seed = new Option<int>("--seed") { Description = "Seed of the generated workload and of the provider draws; the same seed gives the same report", DefaultValueFactory = _ => 1 };
        var providers = new Option<FileInfo?>("--providers") { Description = "JSON file of deployment ids to simulated behaviour: ttftMs, msPerOutputToken, jitter, failureRate, rateLimitRate, and price overrides" };
        var route = new Option<string>("--route") { Description = "The route (model name) every request asks for", DefaultValueFactory = _ => "auto" };
        var rps = new Option<double>("--rps") { Description = "Mean arrivals per simulated second", DefaultValueFactory = _ => 10 };
        var stateTasks = new Option<bool>("--state-tasks") { Description = "Send each request's task label as a stated task (tollgate.task) instead of classifying its messages" };
        var writeWorkload = new Option<FileInfo?>("--write-workload") { Description = "Write the generated workload to this file as JSON Lines and exit" };
        var json = new Option<bool>("--json") { Description = "Print the report as JSON" };

        var command = new Command("simulate", "Replay a workload through the router against simulated providers: distribution, cost, saving, latency, constraints met.")
        {
            workload, requests, seed, providers, route, rps, stateTasks, writeWorkload, json,
        };
        command.SetAction(result =>
        {
            try
            {
                var count = result.GetValue(requests);
                if (count is < 1 || result.GetValue(rps) is not > 0)
                {
                    error.WriteLine("--requests and --rps must be positive.");
                    return 2;
                }

                var file = result.GetValue(workload);
                var items = file is null
                    ? WorkloadGenerator.Generate(count ?? DefaultRequests, result.GetValue(seed))
                    : ReadWorkload(file, count);
                if (result.GetValue(writeWorkload) is { } target)
                {
                    if (file is not null)
                    {
                        error.WriteLine("--write-workload writes a generated workload; it cannot be combined with --workload.");
                        return 2;
                    }

                    using var writer = new StreamWriter(target.FullName, append: false, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false));
                    WorkloadFile.Write(writer, items);
                    output.WriteLine($"Wrote {items.Count} requests to {target.FullName}.");
                    return 0;
                }

                if (!TryLoad(result, error, out var options))
                {
                    return 2;
                }

                var settings = new SimulationSettings
                {
                    Options = options,
                    Route = result.GetValue(route)!,
                    Providers = result.GetValue(providers) is { } profiles ? ProviderProfiles.Read(File.ReadAllText(profiles.FullName)) : null,
                    Seed = result.GetValue(seed),
                    RequestsPerSecond = result.GetValue(rps),
                    StateTasks = result.GetValue(stateTasks),
                    Workload = file?.Name ?? "generated",
                    WorkloadSeed = file is null ? result.GetValue(seed) : null,
                };
                var report = Simulator.Run(settings, items);
                if (result.GetValue(json))
                {
                    output.WriteLine(report.ToJson());
                }
                else
                {
                    SimulationReportText.Write(output, report);
                }

                return 0;
            }
            catch (SimulationException ex)
            {
                error.WriteLine(ex.Message);
                return 1;
            }
            catch (IOException ex)
            {
                error.WriteLine(ex.Message);
                return 1;
            }
        });
        return command;
    }

    private static List<WorkloadRequest> ReadWorkload(FileInfo file, int? count)
    {
        if (!file.Exists)
        {
            throw new SimulationException($"The workload file '{file.FullName}' does not exist.");
        }

        using var reader = file.OpenText();
        var items = WorkloadFile.Read(reader);
        return count is { } n && n < items.Count ? items[..n] : items;
    }

    /// <summary>The same configuration the server would load (<c>--config</c>, <c>TOLLGATE_CONFIG</c>, <c>./tollgate.json</c>, defaults). Keys are not needed.</summary>
    private static bool TryLoad(ParseResult result, TextWriter error, out TollgateOptions options)
    {
        try
        {
            (options, _) = GatewayStartup.LoadConfiguration(GatewayStartup.ResolveConfigPath(result.GetValue<string?>("--config")));
            return true;
        }
        catch (TollgateConfigurationException ex)
        {
            error.WriteLine(ex.Message);
            options = null!;
            return false;
        }
    }
}
