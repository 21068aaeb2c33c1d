using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace Qwen3Sharp.Bench;

/// <summary>
/// Short in-process runs (a couple of minutes for the whole kernel suite) with throughput columns:
/// GB/s of weights read for matvecs and the bandwidth row, GFLOP/s for prefill products, and each matvec as a
/// percentage of the read bandwidth measured by <see cref="MatVecBench.ReadBandwidth"/> in the same run.
/// </summary>
public sealed class KernelBenchConfig : ManualConfig
{
    public KernelBenchConfig()
    {
        AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance).WithId("ShortRun-InProcess"));
        AddColumn(new ThroughputColumn("GB/s", c => c.BytesPerInvoke, 1e9));
        AddColumn(new ThroughputColumn("GFLOP/s", c => c.FlopsPerInvoke, 1e9));
        AddColumn(new BandwidthShareColumn());
        AddDiagnoser(MemoryDiagnoser.Default);
        WithOption(ConfigOptions.DisableOptimizationsValidator, true);
    }
}

/// <summary>What one benchmark invocation moves or computes, for the throughput columns.</summary>
public interface IThroughputBench
{
    double BytesPerInvoke { get; }
    double FlopsPerInvoke { get; }
}

internal static class ThroughputMath
{
    /// <summary>The per-invocation work of a case: a fresh instance with the case's parameters applied.</summary>
    public static IThroughputBench? Work(BenchmarkCase c)
    {
        if (Activator.CreateInstance(c.Descriptor.Type) is not IThroughputBench bench)
        {
            return null;
        }

        foreach (var p in c.Parameters.Items)
        {
            c.Descriptor.Type.GetProperty(p.Name)?.SetValue(bench, p.Value);
            c.Descriptor.Type.GetField(p.Name)?.SetValue(bench, p.Value);
        }

        if (bench is MatVecBench mv)
        {
            mv.Method = c.Descriptor.WorkloadMethod.Name;
        }

        return bench;
    }

    public static double? Rate(Summary summary, BenchmarkCase c, Func<IThroughputBench, double> amount)
    {
        var stats = summary[c]?.ResultStatistics;
        IThroughputBench? work = Work(c);
        if (stats is null || work is null || amount(work) <= 0)
        {
            return null;
        }

        return amount(work) / (stats.Mean * 1e-9);
    }
}

internal sealed class ThroughputColumn(string name, Func<IThroughputBench, double> amount, double unit) : IColumn
{
    public string Id => "Throughput" + name;
    public string ColumnName => name;
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => $"{name} of the benchmark's work per mean invocation time";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
        => ThroughputMath.Rate(summary, benchmarkCase, amount) is double r ? (r / unit).ToString("F1") : "-";
}

/// <summary>A matvec's GB/s as a percentage of the ReadBandwidth row's GB/s from the same summary.</summary>
internal sealed class BandwidthShareColumn : IColumn
{
    public string Id => "BandwidthShare";
    public string ColumnName => "% of bandwidth";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 1;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "GB/s of weights read relative to the ReadBandwidth row with the same parameters (measured alongside, same run)";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        BenchmarkCase? reference = summary.BenchmarksCases.FirstOrDefault(c =>
            c.Descriptor.WorkloadMethod.Name == nameof(MatVecBench.ReadBandwidth)
            && c.Parameters.DisplayInfo == benchmarkCase.Parameters.DisplayInfo);
        if (reference is null || benchmarkCase.Descriptor.WorkloadMethod.Name != nameof(MatVecBench.MatVec))
        {
            return "-";
        }

        double? bandwidth = ThroughputMath.Rate(summary, reference, w => w.BytesPerInvoke);
        double? rate = ThroughputMath.Rate(summary, benchmarkCase, w => w.BytesPerInvoke);
        return bandwidth is > 0 && rate is double r ? (100 * r / bandwidth.Value).ToString("F1") : "-";
    }
}
