using System.Diagnostics;
using System.Runtime.InteropServices;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Bench;

/// <summary>
/// BF16 rows against 8-row groups (`quick 2 groups`): one 1.7B layer's seven BF16 matrices, 1..64 tokens, the rows through
/// the production dispatch (four-row decode, pair kernel, panels) and the same matrices repacked into
/// <see cref="DType.BF16x8"/>, weights rotating through copies totalling 512 MB so every product streams from DRAM,
/// interleaved rounds, best per cell.
/// </summary>
internal static unsafe class FloatGroupsBench
{
    private static readonly (int Rows, int Cols)[] Layer =
        [(2048, 2048), (1024, 2048), (1024, 2048), (2048, 2048), (6144, 2048), (6144, 2048), (2048, 6144)];

    public static void Run(WorkerPool pool, int threads, double bandwidth)
    {
        int[] tokenCounts = [1, 2, 4, 6, 8, 12, 16, 24, 32, 64];
        long layerBytes = Layer.Sum(s => (long)s.Rows * s.Cols * 2);
        int copies = (int)Math.Max(1, (512L << 20) / layerBytes);
        var rows = new BenchWeights[copies][];
        var groups = new WeightView[copies][];
        for (int i = 0; i < copies; i++)
        {
            rows[i] = Layer.Select((s, j) => new BenchWeights(DType.BF16, s.Rows, s.Cols, seed: i * 7 + j)).ToArray();
            groups[i] = new WeightView[Layer.Length];
            for (int j = 0; j < Layer.Length; j++)
            {
                (int r, int c) = Layer[j];
                byte* data = (byte*)NativeMemory.AlignedAlloc((nuint)MatMul.FloatGroupBytes(DType.BF16, r, c), 64);
                MatMul.RepackFloatGroups(DType.BF16, rows[i][j].View.Data, r, c, 0, r, data);
                groups[i][j] = new WeightView(data, DType.BF16x8, r, c);
            }
        }

        float[] x = new float[64 * 6144], y = new float[64 * 6144];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = 0.01f * ((i * 7919) % 201 - 100);
        }

        var best = new double[tokenCounts.Length, 2];
        for (int i = 0; i < best.Length; i++)
        {
            best[i / 2, i % 2] = double.MaxValue;
        }

        for (int round = 0; round < 5; round++)
        {
            for (int ti = 0; ti < tokenCounts.Length; ti++)
            {
                for (int k = 0; k < 2; k++)
                {
                    int slot = (round & 1) == 0 ? k : 1 - k, t = tokenCounts[ti];
                    long start = Stopwatch.GetTimestamp();
                    for (int i = 0; i < copies; i++)
                    {
                        for (int j = 0; j < Layer.Length; j++)
                        {
                            (int r, int c) = Layer[j];
                            MatMul.Multiply(pool, x.AsSpan(0, t * c), t, slot == 0 ? rows[i][j].View : groups[i][j], y.AsSpan(0, t * r));
                        }
                    }

                    best[ti, slot] = Math.Min(best[ti, slot], Stopwatch.GetElapsedTime(start).TotalSeconds / copies);
                }
            }
        }

        Console.WriteLine($"BF16 rows against 8-row groups, one 1.7B layer ({layerBytes / 1e6:F0} MB, {copies} copies), {threads} threads, " +
            $"best of 5 interleaved rounds; read bandwidth {bandwidth:F1} GB/s; load {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine("tokens | rows µs/layer (× one token in rows) | groups µs/layer (×) | groups GFLOP/s | rows / groups");
        for (int ti = 0; ti < tokenCounts.Length; ti++)
        {
            double flops = 2.0 * tokenCounts[ti] * layerBytes / 2;
            Console.WriteLine($"{tokenCounts[ti],6} | {best[ti, 0] * 1e6,7:F0} ({best[ti, 0] / best[0, 0],5:F2}×) | " +
                $"{best[ti, 1] * 1e6,7:F0} ({best[ti, 1] / best[0, 0],5:F2}×) | {flops / best[ti, 1] / 1e9,6:F1} | {best[ti, 0] / best[ti, 1]:F2}");
        }

        foreach (var layer in rows)
        {
            foreach (BenchWeights w in layer)
            {
                w.Dispose();
            }
        }

        foreach (var layer in groups)
        {
            foreach (WeightView w in layer)
            {
                NativeMemory.AlignedFree(w.Data);
            }
        }
    }
}
