using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Bench;

/// <summary>
/// Batched decode GFLOP/s against the machine's FMA peak (`quick 2 batchflops[=stream,tiled]`): every
/// Qwen3-1.7B matrix shape (6144×2048, 2048×6144, 2048×2048, 1024×2048) at 2..32 tokens, each small-batch variant in
/// turn, interleaved rounds, best per cell. "stream" is the production dispatch (pair kernel below 2 vectors of
/// tokens, the prefill panels from there on). Weights rotate through copies totalling at least 192 MB per shape, so
/// every product streams from DRAM as in a real step. The peak is Vector256 FMAs on 12 independent chains, measured
/// on every pool thread at once in the same process.
/// </summary>
internal static unsafe class BatchFlopsBench
{
    private static readonly (int Rows, int Cols)[] Shapes = [(6144, 2048), (2048, 6144), (2048, 2048), (1024, 2048)];

    public static void Run(WorkerPool pool, int threads, string variants, int rounds = 5)
    {
        int[] tokenCounts = [2, 4, 8, 12, 16, 24, 32];
        MatMul.SmallBatchBf16[] kernels = variants.Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(v => Enum.Parse<MatMul.SmallBatchBf16>(v, ignoreCase: true)).ToArray();
        double peak = Peak(pool, threads);
        Console.WriteLine($"fma peak, {threads} threads at once (Vector256, 12 chains): {peak:F1} GFLOP/s wall; " +
            $"load {File.ReadAllText("/proc/loadavg").Trim()}");

        foreach ((int rows, int cols) in Shapes)
        {
            long bytes = (long)rows * cols * 2;
            int copies = (int)Math.Max(1, (192L << 20) / bytes);
            var weights = Enumerable.Range(0, copies).Select(i => new BenchWeights(DType.BF16, rows, cols, seed: i)).ToArray();
            float[] x = new float[32 * cols], y = new float[32 * rows];
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

            // Same products through every variant first: the largest difference from the first variant, relative to its largest |y|.
            float[] reference = new float[y.Length];
            double worst = 0;
            foreach (int tokens in tokenCounts)
            {
                Multiply(pool, x, tokens, weights[0].View, reference, kernels[0]);
                float scale = reference.AsSpan(0, tokens * rows).ToArray().Max(MathF.Abs);
                for (int k = 1; k < kernels.Length; k++)
                {
                    Multiply(pool, x, tokens, weights[0].View, y, kernels[k]);
                    for (int i = 0; i < tokens * rows; i++)
                    {
                        worst = Math.Max(worst, Math.Abs(y[i] - reference[i]) / scale);
                    }
                }
            }

            using var process = Process.GetCurrentProcess();
            for (int round = 0; round < rounds; round++)
            {
                for (int ti = 0; ti < tokenCounts.Length; ti++)
                {
                    for (int k = 0; k < kernels.Length; k++)
                    {
                        int slot = (round & 1) == 0 ? k : kernels.Length - 1 - k;
                        process.Refresh();
                        TimeSpan cpu0 = process.TotalProcessorTime;
                        long start = Stopwatch.GetTimestamp();
                        foreach (BenchWeights w in weights)
                        {
                            Multiply(pool, x, tokenCounts[ti], w.View, y, kernels[slot]);
                        }

                        best[ti, slot] = Math.Min(best[ti, slot], Stopwatch.GetElapsedTime(start).TotalSeconds / copies);
                        process.Refresh();
                        bestCpu[ti, slot] = Math.Min(bestCpu[ti, slot], (process.TotalProcessorTime - cpu0).TotalSeconds / copies);
                    }
                }
            }

            Console.WriteLine($"{rows}x{cols} bf16 ({copies} copies, {threads} threads, {KernelSelection.VectorBits}-bit, best of {rounds}); max |Δ| from {kernels[0]} {worst:E1} of max |y|; " +
                $"load {File.ReadAllText("/proc/loadavg").Trim()}");
            Console.WriteLine("tokens | " + string.Join(" | ", kernels.Select(k => $"{k}: µs, GFLOP/s wall (% peak), cpu GFLOP/s per {threads} busy threads")));
            for (int ti = 0; ti < tokenCounts.Length; ti++)
            {
                double flops = 2.0 * tokenCounts[ti] * rows * cols;
                Console.WriteLine($"{tokenCounts[ti],6} | " + string.Join(" | ", kernels.Select((k, s) =>
                    $"{best[ti, s] * 1e6,7:F0} {flops / best[ti, s] / 1e9,6:F1} ({100 * flops / best[ti, s] / 1e9 / peak,3:F0}%) " +
                    $"{flops / bestCpu[ti, s] / 1e9 * threads,6:F1}")));
            }

            foreach (BenchWeights w in weights)
            {
                w.Dispose();
            }
        }
    }

    /// <summary>
    /// The kernels' compute ceiling (`quick 1 batchhot[=…]`): one thread, a 64×2048 BF16 matrix that stays in L2, 2..32
    /// tokens, GFLOP/s per CPU-second against the FMA loop's, interleaved rounds, best per cell.
    /// </summary>
    public static void RunHot(string variants, int rounds = 7)
    {
        const int rows = 192, cols = 1024, reps = 50;
        using var pool = new WorkerPool(1);
        int[] tokenCounts = [2, 3, 4, 5, 6, 8, 12, 16, 24, 32];
        MatMul.SmallBatchBf16[] kernels = variants.Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(v => Enum.Parse<MatMul.SmallBatchBf16>(v, ignoreCase: true)).ToArray();
        using var w = new BenchWeights(DType.BF16, rows, cols);
        float[] x = new float[32 * cols], y = new float[32 * rows];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = 0.01f * ((i * 7919) % 201 - 100);
        }

        using var process = Process.GetCurrentProcess();
        double peak = 0;
        var best = new double[tokenCounts.Length, kernels.Length];
        for (int round = 0; round < rounds; round++)
        {
            process.Refresh();
            TimeSpan p0 = process.TotalProcessorTime;
            float sink = QuickKernelBench.FmaPeak(1 << 21);
            process.Refresh();
            peak = Math.Max(peak, 12.0 * 2 * Vector256<float>.Count * (1 << 21) / (process.TotalProcessorTime - p0).TotalSeconds / 1e9 + sink * 0);
            for (int ti = 0; ti < tokenCounts.Length; ti++)
            {
                for (int k = 0; k < kernels.Length; k++)
                {
                    int slot = (round & 1) == 0 ? k : kernels.Length - 1 - k;
                    process.Refresh();
                    TimeSpan cpu0 = process.TotalProcessorTime;
                    for (int i = 0; i < reps; i++)
                    {
                        Multiply(pool, x, tokenCounts[ti], w.View, y, kernels[slot]);
                    }

                    process.Refresh();
                    double flops = 2.0 * tokenCounts[ti] * rows * cols * reps;
                    best[ti, slot] = Math.Max(best[ti, slot], flops / (process.TotalProcessorTime - cpu0).TotalSeconds / 1e9);
                }
            }
        }

        Console.WriteLine($"hot {rows}x{cols} bf16, 1 thread, {KernelSelection.VectorBits}-bit, best of {rounds}; fma peak {peak:F1} GFLOP/s per CPU-second; " +
            $"load {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine("tokens | " + string.Join(" | ", kernels.Select(k => $"{k}: GFLOP/s per CPU-second (% peak)")));
        for (int ti = 0; ti < tokenCounts.Length; ti++)
        {
            Console.WriteLine($"{tokenCounts[ti],6} | " + string.Join(" | ", kernels.Select((k, s) => $"{best[ti, s],6:F1} ({100 * best[ti, s] / peak,3:F0}%)")));
        }
    }

    /// <summary>What one core reaches on FMA loops shaped like the kernels (`quick 1 ceiling`), GFLOP/s per CPU-second.</summary>
    public static void Ceiling()
    {
        using var process = Process.GetCurrentProcess();
        double Rate(double flops, Action action)
        {
            action();
            double best = 0;
            for (int i = 0; i < 7; i++)
            {
                process.Refresh();
                TimeSpan c0 = process.TotalProcessorTime;
                action();
                process.Refresh();
                best = Math.Max(best, flops / (process.TotalProcessorTime - c0).TotalSeconds / 1e9);
            }

            return best;
        }

        const int n = 1 << 21;
        float sink = 0;
        Console.WriteLine($"12 independent chains: {Rate(12.0 * 16 * n, () => sink += QuickKernelBench.FmaPeak(n)):F1}");
        Console.WriteLine($" 8 independent chains: {Rate(8.0 * 16 * n, () => sink += Chains8(n)):F1}");
        Console.WriteLine($" 8 chains, 2 FMAs each per step: {Rate(16.0 * 16 * n, () => sink += Chains8x2(n)):F1}");
        Console.WriteLine($"16 chains... 10 chains x2: {Rate(20.0 * 16 * n, () => sink += Chains10x2(n)):F1}");
        const int cols = 1024;
        ushort* w = (ushort*)NativeMemory.AlignedAlloc(3 * cols * 2, 64);
        float* x = (float*)NativeMemory.AlignedAlloc(8 * cols * 4, 64);
        var acc = (Vector256<float>*)NativeMemory.AlignedAlloc(32 * 32, 64);
        for (int i = 0; i < 3 * cols; i++) { w[i] = 0x3f80; }
        for (int i = 0; i < 8 * cols; i++) { x[i] = 1e-3f; }
        for (int i = 0; i < 32; i++) { acc[i] = default; }
        const int calls = 4000;
        Console.WriteLine($"tile 2x4 from L1 (1024 columns): {Rate(2.0 * 8 * cols * calls, () => { for (int i = 0; i < calls; i++) MatMul.TileBf16<Vector256<float>, Simd256, Tile2, Tile4>(w, cols, x, cols, 0, cols, acc, 4, null); }):F1}");
        Console.WriteLine($"tile 2x5 from L1 (1024 columns): {Rate(2.0 * 10 * cols * calls, () => { for (int i = 0; i < calls; i++) MatMul.TileBf16<Vector256<float>, Simd256, Tile2, Tile5>(w, cols, x, cols, 0, cols, acc, 5, null); }):F1}");
        Console.WriteLine($"tile 3x3 from L1 (1024 columns): {Rate(2.0 * 9 * cols * calls, () => { for (int i = 0; i < calls; i++) MatMul.TileBf16<Vector256<float>, Simd256, Tile3, Tile3>(w, cols, x, cols, 0, cols, acc, 3, null); }):F1}");
        Console.WriteLine($"(sink {sink}) load {File.ReadAllText("/proc/loadavg").Trim()}");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Chains8(int n)
    {
        Vector256<float> a0 = Vector256.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        Vector256<float> m = Vector256.Create(0.999999f), c = Vector256.Create(1e-7f);
        for (int i = 0; i < n; i++)
        {
            a0 = Vector256.MultiplyAddEstimate(a0, m, c); a1 = Vector256.MultiplyAddEstimate(a1, m, c);
            a2 = Vector256.MultiplyAddEstimate(a2, m, c); a3 = Vector256.MultiplyAddEstimate(a3, m, c);
            a4 = Vector256.MultiplyAddEstimate(a4, m, c); a5 = Vector256.MultiplyAddEstimate(a5, m, c);
            a6 = Vector256.MultiplyAddEstimate(a6, m, c); a7 = Vector256.MultiplyAddEstimate(a7, m, c);
        }

        return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Chains8x2(int n)
    {
        Vector256<float> a0 = Vector256.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        Vector256<float> m = Vector256.Create(0.999999f), u = Vector256.Create(1e-7f), v = Vector256.Create(2e-7f);
        for (int i = 0; i < n; i++)
        {
            a0 = Vector256.MultiplyAddEstimate(m, u, a0); a1 = Vector256.MultiplyAddEstimate(m, u, a1);
            a2 = Vector256.MultiplyAddEstimate(m, u, a2); a3 = Vector256.MultiplyAddEstimate(m, u, a3);
            a4 = Vector256.MultiplyAddEstimate(m, u, a4); a5 = Vector256.MultiplyAddEstimate(m, u, a5);
            a6 = Vector256.MultiplyAddEstimate(m, u, a6); a7 = Vector256.MultiplyAddEstimate(m, u, a7);
            a0 = Vector256.MultiplyAddEstimate(m, v, a0); a1 = Vector256.MultiplyAddEstimate(m, v, a1);
            a2 = Vector256.MultiplyAddEstimate(m, v, a2); a3 = Vector256.MultiplyAddEstimate(m, v, a3);
            a4 = Vector256.MultiplyAddEstimate(m, v, a4); a5 = Vector256.MultiplyAddEstimate(m, v, a5);
            a6 = Vector256.MultiplyAddEstimate(m, v, a6); a7 = Vector256.MultiplyAddEstimate(m, v, a7);
        }

        return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Chains10x2(int n)
    {
        Vector256<float> a0 = Vector256.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0;
        Vector256<float> m = Vector256.Create(0.999999f), u = Vector256.Create(1e-7f), v = Vector256.Create(2e-7f);
        for (int i = 0; i < n; i++)
        {
            a0 = Vector256.MultiplyAddEstimate(m, u, a0); a1 = Vector256.MultiplyAddEstimate(m, u, a1);
            a2 = Vector256.MultiplyAddEstimate(m, u, a2); a3 = Vector256.MultiplyAddEstimate(m, u, a3);
            a4 = Vector256.MultiplyAddEstimate(m, u, a4); a5 = Vector256.MultiplyAddEstimate(m, u, a5);
            a6 = Vector256.MultiplyAddEstimate(m, u, a6); a7 = Vector256.MultiplyAddEstimate(m, u, a7);
            a8 = Vector256.MultiplyAddEstimate(m, u, a8); a9 = Vector256.MultiplyAddEstimate(m, u, a9);
            a0 = Vector256.MultiplyAddEstimate(m, v, a0); a1 = Vector256.MultiplyAddEstimate(m, v, a1);
            a2 = Vector256.MultiplyAddEstimate(m, v, a2); a3 = Vector256.MultiplyAddEstimate(m, v, a3);
            a4 = Vector256.MultiplyAddEstimate(m, v, a4); a5 = Vector256.MultiplyAddEstimate(m, v, a5);
            a6 = Vector256.MultiplyAddEstimate(m, v, a6); a7 = Vector256.MultiplyAddEstimate(m, v, a7);
            a8 = Vector256.MultiplyAddEstimate(m, v, a8); a9 = Vector256.MultiplyAddEstimate(m, v, a9);
        }

        return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9);
    }

    /// <summary>GFLOP/s of every pool thread running the FMA loop at once, best of 5.</summary>
    private static double Peak(WorkerPool pool, int threads)
    {
        const int n = 1 << 20, items = 8;
        float* sinks = stackalloc float[items * threads];
        var job = new PeakJob { Sinks = sinks, N = n };
        pool.Run(ref job, items * threads);
        double best = double.MaxValue;
        for (int i = 0; i < 5; i++)
        {
            long start = Stopwatch.GetTimestamp();
            pool.Run(ref job, items * threads);
            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
        }

        return 12.0 * 2 * Vector256<float>.Count * n * items * threads / best / 1e9;
    }

    private struct PeakJob : IPoolJob
    {
        public float* Sinks;
        public int N;

        public readonly void Execute(int index, int worker) => Sinks[index] = QuickKernelBench.FmaPeak(N);
    }

    private static void Multiply(WorkerPool pool, float[] x, int tokens, in WeightView w, float[] y, MatMul.SmallBatchBf16 path)
    {
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
