using BenchmarkDotNet.Running;

// dotnet run -c Release --project bench/Tollgate.Benchmarks -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
