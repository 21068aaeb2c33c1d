using BenchmarkDotNet.Running;
using Qwen3Sharp.Bench;

// `dotnet run -c Release -- quick` prints a few seconds of kernel figures without BenchmarkDotNet;
// `-- masks [reps]` prints structured-output mask costs over the real vocabulary (StructuredMaskBench);
// anything else goes to BenchmarkDotNet (e.g. `--filter *MatVec*`).
if (args.Length > 0 && args[0] == "masks")
{
    StructuredMaskBench.Run(args.Length > 1 ? int.Parse(args[1]) : 5);
    return;
}

if (args.Length > 0 && args[0] == "quick")
{
    QuickKernelBench.Run(args.Length > 1 ? int.Parse(args[1]) : 2, args.Length > 2 ? args[2] : "all");
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
