using System.Diagnostics;
using System.Runtime.InteropServices;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Bench;

/// <summary>
/// Experiment (`quick 2 bf16x8`): one 1.7B layer's seven BF16 matrices, rows against 8-row groups, 1..16 tokens,
/// streaming from DRAM (copies totalling 512 MB), interleaved rounds, best per cell.
/// </summary>
internal static unsafe class Bf16x8Bench
{
    private static readonly (int Rows, int Cols)[] Layer =
        [(2048, 2048), (1024, 2048), (1024, 2048), (2048, 2048), (6144, 2048), (6144, 2048), (2048, 6144)];

    private struct Job : IPoolJob
    {
        public ushort* W; public float* X; public float* Y; public int Rows, Cols, Tokens, Tile, ItemGroups; public bool Decode4;

        public readonly void Execute(int index, int worker)
        {
            int gA = index * ItemGroups, gB = Math.Min(gA + ItemGroups, Rows / 8);
            for (int k0 = 0; k0 < Cols; k0 += MatMul.PanelColumnBlock)
            {
                int kn = Math.Min(MatMul.PanelColumnBlock, Cols - k0);
                bool add = k0 > 0;
                if (Tokens == 1 && Decode4)
                {
                    for (int g = gA; g < gB; g += 4)
                    {
                        MatMul.Bf16x8G4(W + (long)g * 8 * Cols, Cols, X, k0, kn, Y + g * 8, add);
                    }

                    continue;
                }

                if (Tile == 8)
                {
                    for (int g = gA; g < gB; g++)
                    {
                        ushort* g0 = W + (long)g * 8 * Cols;
                        int tiles = (Tokens + 7) / 8;
                        for (int ti = 0, t0 = 0; ti < tiles; ti++)
                        {
                            int n = (Tokens - t0 + (tiles - ti) - 1) / (tiles - ti);
                            float* x = X + (long)t0 * Cols, y = Y + (long)t0 * Rows + g * 8;
                            switch (n)
                            {
                                case 1: MatMul.Bf16x8G1<MatMul.Tok1>(g0, x, Cols, k0, kn, y, Rows, add); break;
                                case 2: MatMul.Bf16x8G1<MatMul.Tok2>(g0, x, Cols, k0, kn, y, Rows, add); break;
                                case 3: MatMul.Bf16x8G1<MatMul.Tok3>(g0, x, Cols, k0, kn, y, Rows, add); break;
                                case 4: MatMul.Bf16x8G1<MatMul.Tok4>(g0, x, Cols, k0, kn, y, Rows, add); break;
                                case 5: MatMul.Bf16x8G1<MatMul.Tok5>(g0, x, Cols, k0, kn, y, Rows, add); break;
                                case 6: MatMul.Bf16x8G1<MatMul.Tok6>(g0, x, Cols, k0, kn, y, Rows, add); break;
                                case 7: MatMul.Bf16x8G1<MatMul.Tok7>(g0, x, Cols, k0, kn, y, Rows, add); break;
                                default: MatMul.Bf16x8G1<MatMul.Tok8>(g0, x, Cols, k0, kn, y, Rows, add); break;
                            }

                            t0 += n;
                        }
                    }

                    continue;
                }

                for (int g = gA; g < gB; g += 2)
                {
                    ushort* g0 = W + (long)g * 8 * Cols, g1 = g0 + 8L * Cols;
                    int tiles = (Tokens + Tile - 1) / Tile;
                    for (int ti = 0, t0 = 0; ti < tiles; ti++)
                    {
                        int n = Tile == 4 ? (Tokens - t0 + (tiles - ti) - 1) / (tiles - ti) : Math.Min(Tile, Tokens - t0);
                        float* x = X + (long)t0 * Cols, y = Y + (long)t0 * Rows + g * 8;
                        switch (n)
                        {
                            case 1: MatMul.Bf16x8G2<MatMul.Tok1>(g0, g1, x, Cols, k0, kn, y, Rows, add); break;
                            case 2: MatMul.Bf16x8G2<MatMul.Tok2>(g0, g1, x, Cols, k0, kn, y, Rows, add); break;
                            case 3: MatMul.Bf16x8G2<MatMul.Tok3>(g0, g1, x, Cols, k0, kn, y, Rows, add); break;
                            case 4: MatMul.Bf16x8G2<MatMul.Tok4>(g0, g1, x, Cols, k0, kn, y, Rows, add); break;
                            case 5: MatMul.Bf16x8G2<MatMul.Tok5>(g0, g1, x, Cols, k0, kn, y, Rows, add); break;
                            default: MatMul.Bf16x8G2<MatMul.Tok6>(g0, g1, x, Cols, k0, kn, y, Rows, add); break;
                        }

                        t0 += n;
                    }
                }
            }
        }
    }

    public static void Run(WorkerPool pool, int threads, double bandwidth)
    {
        int[] tokenCounts = [1, 2, 3, 4, 6, 8, 12, 16];
        string[] variants = ["rows", "x8g1t8", "x8t4", "x8g4"];
        long layerBytes = Layer.Sum(s => (long)s.Rows * s.Cols * 2);
        int copies = (int)Math.Max(1, (512L << 20) / layerBytes);
        var layers = new BenchWeights[copies][];
        var packed = new ushort*[copies][];
        for (int i = 0; i < copies; i++)
        {
            layers[i] = Layer.Select((s, j) => new BenchWeights(DType.BF16, s.Rows, s.Cols, seed: i * 7 + j)).ToArray();
            packed[i] = new ushort*[Layer.Length];
            for (int j = 0; j < Layer.Length; j++)
            {
                (int r, int c) = Layer[j];
                packed[i][j] = (ushort*)NativeMemory.AlignedAlloc((nuint)(MatMul.Bf16x8Elements(r, c) * 2), 64);
                MatMul.RepackBf16x8((ushort*)layers[i][j].View.Data, r, c, 0, r, packed[i][j]);
            }
        }

        float[] x = new float[16 * 6144], y = new float[16 * 6144], y2 = new float[16 * 6144];
        for (int i = 0; i < x.Length; i++) { x[i] = 0.01f * ((i * 7919) % 201 - 100); }

        // check: x8 against the rows' default product
        fixed (float* px = x, py2 = y2)
        {
            foreach (int t in tokenCounts)
            {
                for (int j = 0; j < Layer.Length; j++)
                {
                    (int r, int c) = Layer[j];
                    MatMul.Multiply(pool, x.AsSpan(0, t * c), t, layers[0][j].View, y.AsSpan(0, t * r));
                    foreach (int tile in new[] { 4, 8, 1 })
                    {
                        if (tile == 1 && t != 1) { continue; }
                        Array.Clear(y2);
                        var job = new Job { W = packed[0][j], X = px, Y = py2, Rows = r, Cols = c, Tokens = t, Tile = tile == 1 ? 4 : tile, ItemGroups = 8, Decode4 = tile == 1 };
                        pool.Run(ref job, r / 64);
                        double worst = 0;
                        for (int i = 0; i < t * r; i++) { worst = Math.Max(worst, Math.Abs(y[i] - y2[i])); }
                        if (worst > 1e-4) { Console.WriteLine($"MISMATCH t={t} tile {tile} {r}x{c}: {worst}"); }
                    }
                }
            }
        }

        var best = new double[tokenCounts.Length, variants.Length];
        for (int i = 0; i < best.Length; i++) { best[i / variants.Length, i % variants.Length] = double.MaxValue; }
        fixed (float* px = x, py = y)
        {
            for (int round = 0; round < 5; round++)
            {
                for (int ti = 0; ti < tokenCounts.Length; ti++)
                {
                    for (int k = 0; k < variants.Length; k++)
                    {
                        int slot = (round & 1) == 0 ? k : variants.Length - 1 - k;
                        int t = tokenCounts[ti];
                        if (variants[slot] == "x8g4" && t != 1) { continue; }
                        long start = Stopwatch.GetTimestamp();
                        for (int i = 0; i < copies; i++)
                        {
                            for (int j = 0; j < Layer.Length; j++)
                            {
                                (int r, int c) = Layer[j];
                                if (variants[slot] == "rows")
                                {
                                    MatMul.Multiply(pool, x.AsSpan(0, t * c), t, layers[i][j].View, y.AsSpan(0, t * r));
                                }
                                else
                                {
                                    var job = new Job { W = packed[i][j], X = px, Y = py, Rows = r, Cols = c, Tokens = t,
                                        Tile = variants[slot] == "x8t4" ? 4 : 8, ItemGroups = 8, Decode4 = variants[slot] == "x8g4" };
                                    pool.Run(ref job, r / 64);
                                }
                            }
                        }

                        best[ti, slot] = Math.Min(best[ti, slot], Stopwatch.GetElapsedTime(start).TotalSeconds / copies);
                    }
                }
            }
        }

        Console.WriteLine($"BF16 rows vs 8-row groups, one 1.7B layer ({layerBytes / 1e6:F0} MB, {copies} copies), {threads} threads, best of 5; bandwidth {bandwidth:F1} GB/s; load {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine("tokens | " + string.Join(" | ", variants.Select(v => $"{v} µs (×1 tok of rows)")));
        for (int ti = 0; ti < tokenCounts.Length; ti++)
        {
            Console.WriteLine($"{tokenCounts[ti],6} | " + string.Join(" | ", variants.Select((v, s) =>
                best[ti, s] == double.MaxValue ? "      -" : $"{best[ti, s] * 1e6,7:F0} ({best[ti, s] / best[0, 0],5:F2}×)")));
        }
    }
}
