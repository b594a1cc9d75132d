using BenchmarkDotNet.Running;
using Tollgate.Benchmarks;

// dotnet run -c Release --project bench/Tollgate.Benchmarks -- --filter '*'          BenchmarkDotNet hot paths
// dotnet run -c Release --project bench/Tollgate.Benchmarks -- ledger [--rows N]     ledger at scale
if (args.Length > 0 && args[0] == "ledger")
{
    var rows = args.Length > 2 && args[1] == "--rows" ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 5_000_000;
    await LedgerScaleBenchmark.RunAsync(rows, Console.Out);
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(HotPathBenchmarks).Assembly).Run(args);
