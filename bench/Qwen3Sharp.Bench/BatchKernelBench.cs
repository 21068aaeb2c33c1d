using System.Diagnostics;
using System.Runtime.Intrinsics;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Bench;

/// <summary>
/// Batched decode cost (`quick 2 smallbatch[=stream,panel]`): one Qwen3-1.7B layer's seven BF16 matrices (q, k, v, o, gate, up, down)
/// multiplied by 1..64 tokens, each small-batch kernel variant in turn, interleaved rounds, best per cell. Besides the
/// <see cref="MatMul.SmallBatchBf16"/> names, <c>default</c> is the production selection (<see cref="KernelSelection.Batch"/>,
/// the panels from 32 tokens) and <c>invariant</c> the batch-invariant kernels (`smallbatch=default,invariant`). Weights
/// rotate through copies of the layer totalling at least 512 MB so every product streams from DRAM, as in a real
/// step. Prints µs per layer and the cost relative to one token of the same variant.
/// </summary>
internal static class BatchKernelBench
{
    private static readonly (int Rows, int Cols)[] Layer =
        [(2048, 2048), (1024, 2048), (1024, 2048), (2048, 2048), (6144, 2048), (6144, 2048), (2048, 6144)];

    public static void Run(WorkerPool pool, int threads, double bandwidth, string variants)
    {

        int[] tokenCounts = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64];
        string[] kernels = variants.Split(',', StringSplitOptions.RemoveEmptyEntries);
        long layerBytes = Layer.Sum(s => (long)s.Rows * s.Cols * 2);
        int copies = (int)Math.Max(1, (512L << 20) / layerBytes);
        var layers = new BenchWeights[copies][];
        for (int i = 0; i < copies; i++)
        {
            layers[i] = Layer.Select((s, j) => new BenchWeights(DType.BF16, s.Rows, s.Cols, seed: i * 7 + j)).ToArray();
        }

        int maxCols = Layer.Max(s => s.Cols), maxRows = Layer.Max(s => s.Rows);
        float[] x = new float[tokenCounts[^1] * maxCols], y = new float[tokenCounts[^1] * maxRows];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = 0.01f * ((i * 7919) % 201 - 100);
        }

        var best = new double[tokenCounts.Length, kernels.Length];
        var bestCpu = new double[tokenCounts.Length, kernels.Length];
        for (int i = 0; i < best.Length; i++)
        {
            best[i / kernels.Length, i % kernels.Length] = double.MaxValue;
            bestCpu[i / kernels.Length, i % kernels.Length] = double.MaxValue;
        }

        using var process = Process.GetCurrentProcess();

        for (int round = 0; round < 5; round++)
        {
            for (int ti = 0; ti < tokenCounts.Length; ti++)
            {
                for (int k = 0; k < kernels.Length; k++)
                {
                    int slot = (round & 1) == 0 ? k : kernels.Length - 1 - k;
                    int tokens = tokenCounts[ti];
                    process.Refresh();
                    TimeSpan cpu0 = process.TotalProcessorTime;
                    long start = Stopwatch.GetTimestamp();
                    foreach (BenchWeights[] layer in layers)
                    {
                        foreach (BenchWeights w in layer)
                        {
                            Multiply(pool, x, tokens, w.View, y, kernels[slot]);
                        }
                    }

                    best[ti, slot] = Math.Min(best[ti, slot], Stopwatch.GetElapsedTime(start).TotalSeconds / copies);
                    process.Refresh();
                    bestCpu[ti, slot] = Math.Min(bestCpu[ti, slot], (process.TotalProcessorTime - cpu0).TotalSeconds / copies);
                }
            }
        }

        Console.WriteLine($"batched BF16 products, one 1.7B layer ({layerBytes / 1e6:F0} MB, {copies} copies), {threads} threads, " +
            $"{KernelSelection.VectorBits}-bit, best of 5 interleaved rounds; read bandwidth {bandwidth:F1} GB/s; load {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine("tokens | " + string.Join(" | ", kernels.Select(k => $"{k}: wall µs/layer (× 1 token), cpu µs (×)")));
        for (int ti = 0; ti < tokenCounts.Length; ti++)
        {
            Console.WriteLine($"{tokenCounts[ti],6} | " + string.Join(" | ", kernels.Select((k, s) =>
                $"{best[ti, s] * 1e6,7:F0} ({best[ti, s] / best[0, s],5:F2}×) {bestCpu[ti, s] * 1e6,7:F0} ({bestCpu[ti, s] / bestCpu[0, s],5:F2}×)")));
        }

        foreach (BenchWeights[] layer in layers)
        {
            foreach (BenchWeights w in layer)
            {
                w.Dispose();
            }
        }
    }

    private static void Multiply(WorkerPool pool, float[] x, int tokens, in WeightView w, float[] y, string variant)
    {
        if (variant is "default" or "invariant")
        {
            MatMul.Multiply(pool, x, tokens, w, y, PrefillKernel.Managed, KernelSelection.QuantDecode, batchInvariant: variant == "invariant");
            return;
        }

        var path = Enum.Parse<MatMul.SmallBatchBf16>(variant, ignoreCase: true);
        if (Vector512.IsHardwareAccelerated)
        {
            MatMul.Run<Vector512<float>, Simd512>(pool, x, tokens, w, y, accumulate: false, KernelSelection.Decode, path);
        }
        else
        {
            MatMul.Run<Vector256<float>, Simd256>(pool, x, tokens, w, y, accumulate: false, KernelSelection.Decode, path);
        }
    }
}
