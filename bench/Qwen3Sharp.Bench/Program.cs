using BenchmarkDotNet.Running;

// Pick benchmarks with --filter, e.g. dotnet run -c Release --project bench/Qwen3Sharp.Bench -- --filter '*TokenizerBench*'
BenchmarkSwitcher.FromAssembly(typeof(Qwen3Sharp.Bench.TokenizerBench).Assembly).Run(args);
