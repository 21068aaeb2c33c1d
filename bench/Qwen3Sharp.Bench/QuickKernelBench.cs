using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Qwen3Sharp.Cache;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Kernels.Jit;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Bench;

/// <summary>
/// A few seconds of Stopwatch figures for the matmul kernels next to the bandwidth measured in the same run.
/// Matvec weights rotate through copies totalling at least 512 MB so every call streams from DRAM, as in a
/// real decode step. Besides wall-clock rates it prints rates per process CPU-second ("cpu"), which stay
/// meaningful when the machine is shared.
/// </summary>
internal static unsafe class QuickKernelBench
{
    private static float s_sink;   // keeps the FMA loop's result observable

    /// <summary>Every matrix of the model (layers, then the output head) in an 8-row group layout (Q8_0x8, Q4_0x8, Q4_Kx8, Q6_Kx8, Affine8x8, Affine4x8).</summary>
    private static WeightView[] GroupMatrices(Qwen3Sharp.Model.Qwen3Model m)
        => [.. m.Weights.Layers.SelectMany(l => l.Matrices).Append(m.Weights.LmHead).Where(v => v.DType.RowGroup() > 1)];

    public static void Run(int threads, string what = "all")
    {
        using var pool = new WorkerPool(threads);
        double bandwidth = MemoryBandwidth.Measure(pool);
        double bandwidthBest;
        {
            const long bytes = 512L << 20;
            byte* buffer = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
            float* sinks = (float*)NativeMemory.AllocZeroed(64, 64);
            MemoryBandwidth.Fill(pool, buffer, bytes);
            (double wall, double cpu) = Time(() => MemoryBandwidth.ReadPass(pool, buffer, bytes, sinks));
            bandwidthBest = bytes / wall / 1e9;
            Console.WriteLine($"threads {threads}  read bandwidth: Measure() {bandwidth:F1} GB/s, best-of like the kernels below " +
                $"{bandwidthBest:F1} GB/s (cpu {bytes / cpu / 1e9 * threads:F1})  load {File.ReadAllText("/proc/loadavg").Trim()}");
            NativeMemory.AlignedFree(buffer);
            NativeMemory.Free(sinks);
        }

        if (what is "all" or "prefill" or "peak")
        {
            (double wall, double cpu) = Time(() => s_sink += FmaPeak(1 << 22));
            double flops = 12.0 * 2 * Vector256<float>.Count * (1 << 22);
            Console.WriteLine($"fma peak (Vector256, 12 chains, 1 thread): {flops / cpu / 1e9:F1} GFLOP/s per CPU-second ({flops / wall / 1e9:F1} wall)");
        }

        if (what is "all" or "matvec")
        {
            foreach ((int rows, int cols) in new[] { (2048, 2048), (6144, 2048), (2048, 6144), (151936, 2048) })
            {
                long bytes = (long)rows * cols * 2;
                int copies = (int)Math.Max(1, (512L << 20) / bytes);
                var weights = new BenchWeights[copies];
                for (int i = 0; i < copies; i++)
                {
                    weights[i] = new BenchWeights(DType.BF16, rows, cols, seed: i);
                }

                float[] x = new float[cols], y = new float[rows];
                Array.Fill(x, 0.01f);
                (double wall, double cpu) = Time(() =>
                {
                    foreach (BenchWeights w in weights)
                    {
                        MatMul.Multiply(pool, x, 1, w.View, y);
                    }
                });
                double gbps = bytes * copies / wall / 1e9;
                Console.WriteLine($"matvec bf16 {rows,6}x{cols}: {wall / copies * 1e6,9:F1} µs  {gbps,6:F1} GB/s  " +
                    $"{100 * gbps / bandwidthBest,5:F1}% of bandwidth  (cpu {bytes * copies / cpu / 1e9 * threads:F1} GB/s)");
                foreach (BenchWeights w in weights)
                {
                    w.Dispose();
                }
            }
        }

        if (what is "all" or "kv")
        {
            KvAttention(pool, threads);
        }

        if (what == "kvstep")
        {
            AttentionStepBench.Run(pool);
        }

        if (what == "affine")
        {
            AffineKernelBench.Run(pool, threads);
        }

        if (what == "jit")
        {
            PrefillJitAb(pool, threads);
        }

        if (what.StartsWith("smallbatch", StringComparison.Ordinal))
        {
            MatMul.WideTiles = Environment.GetEnvironmentVariable("WIDE_TILES") != "0";   // the 4-row tiles on AVX-512, or not
            BatchKernelBench.Run(pool, threads, bandwidthBest, what.Length > 11 ? what[11..] : "stream,panel");
        }

        if (what == "groups")
        {
            FloatGroupsBench.Run(pool, threads, bandwidthBest);
        }

        if (what.StartsWith("batchflops", StringComparison.Ordinal))
        {
            BatchFlopsBench.Run(pool, threads, what.Length > 11 ? what[11..] : "stream,tiled");
        }

        if (what.StartsWith("batchhot", StringComparison.Ordinal))
        {
            BatchFlopsBench.RunHot(what.Length > 9 ? what[9..] : "stream,tiled");
        }

        if (what.StartsWith("step=", StringComparison.Ordinal))
        {
            StepBench.Run(what[5..], threads);
        }

        if (what.StartsWith("sweep=", StringComparison.Ordinal))
        {
            SweepBench.Run(what[6..], threads);
        }

        // Q8_0x8 decode over the model's 2048-column matrices from DRAM, one group per pass against two (the production
        // path), interleaved rounds, the threads each over their share of every matrix: `quick 2 q8pair=MODEL.gguf`
        if (what.StartsWith("q8pair=", StringComparison.Ordinal))
        {
            using var m = Qwen3Sharp.Model.Qwen3Model.Load(what[7..], threads);
            var mats = m.Weights.Layers.SelectMany(l => l.Matrices).Append(m.Weights.LmHead).Where(v => v.DType == DType.Q8_0x8 && v.ColCount == 2048).ToArray();
            int blocks = 2048 / 32;
            long groupBytes = (long)blocks * 264;
            sbyte* xq = (sbyte*)NativeMemory.AlignedAlloc(2048, 64);
            float* xs = (float*)NativeMemory.AlignedAlloc((nuint)blocks * 4, 64);
            for (int i = 0; i < 2048; i++) { xq[i] = (sbyte)((i * 37) % 255 - 127); }
            for (int i = 0; i < blocks; i++) { xs[i] = 0.01f; }
            long totalGroups = mats.Sum(v => (long)(v.RowCount / 8));
            float sink = 0;
            for (int round = 0; round < 10; round++)
            {
                for (int k = 0; k < 2; k++)
                {
                    int slot = (round & 1) == 0 ? k : 1 - k;
                    long st = Stopwatch.GetTimestamp();
                    var ths = Enumerable.Range(0, threads).Select(t => new Thread(() =>
                    {
                        var a = Vector256<float>.Zero;
                        foreach (var v in mats)
                        {
                            int groups = v.RowCount / 8, g0 = groups / threads * t, g1 = t == threads - 1 ? groups : g0 + groups / threads;
                            byte* d = (byte*)v.Data;
                            if (slot == 0)
                            {
                                for (int g = g0; g < g1; g++) a += QuantMatMul.DotGroupQ8_0x8_256(d + g * groupBytes, blocks, xq, xs);
                            }
                            else
                            {
                                int g = g0;
                                for (; g + 1 < g1; g += 2) { QuantMatMul.DotGroupPairQ8_0x8_256(d + g * groupBytes, d + (g + 1) * groupBytes, blocks, xq, xs, out var ra, out var rb); a += ra + rb; }
                                for (; g < g1; g++) a += QuantMatMul.DotGroupQ8_0x8_256(d + g * groupBytes, blocks, xq, xs);
                            }
                        }
                        sink += a[0];
                    })).ToArray();
                    foreach (var th in ths) th.Start();
                    foreach (var th in ths) th.Join();
                    double sec = Stopwatch.GetElapsedTime(st).TotalSeconds;
                    Console.WriteLine($"round {round} {(slot == 0 ? "single" : "pair")}: {totalGroups * groupBytes / sec / 1e9:F1} GB/s");
                }
            }
            Console.WriteLine($"sink {sink} load {File.ReadAllText("/proc/loadavg").Trim()}");
        }

        // Decode (one token) through the production x8 path (QuantMatMul.Run: activation quantization, the pool, every
        // format's kernels) over every grouped matrix of the model, from DRAM, one group per pass against two
        // (QuantMatMul.TwoGroupsPerPass), interleaved rounds; GB/s of weights per variant: `quick 2 x8pair=MODEL.gguf`
        if (what.StartsWith("x8pair=", StringComparison.Ordinal))
        {
            using var m = Qwen3Sharp.Model.Qwen3Model.Load(what[7..], threads);
            WeightView[] mats = GroupMatrices(m);
            long bytes = mats.Sum(v => v.DataBytes);
            Console.WriteLine($"{mats.Length} matrices ({string.Join(", ", mats.GroupBy(v => v.DType).Select(g => $"{g.Count()} {g.Key}"))}), {bytes / 1e9:F2} GB");
            var rng = new Random(5);
            float[] x = Enumerable.Range(0, mats.Max(v => v.ColCount)).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            float[] y = new float[mats.Max(v => v.RowCount)];
            DType[] formats = mats.Select(v => v.DType).Distinct().ToArray();
            var results = formats.ToDictionary(f => f, _ => new[] { new List<double>(), new List<double>() });
            for (int round = 0; round < 12; round++)
            {
                for (int k = 0; k < 2; k++)
                {
                    bool pair = ((round & 1) == 0 ? k : 1 - k) == 1;
                    QuantMatMul.TwoGroupsPerPass = QuantMatMul.Q6PairWalk = pair;
                    QuantMatMul.FourStreamDecode = false;   // the walk this A/B is about (x8read compares it with four streams)
                    foreach (DType format in formats)
                    {
                        long st = Stopwatch.GetTimestamp();
                        foreach (WeightView v in mats.Where(v => v.DType == format))
                        {
                            QuantMatMul.Run(pool, x.AsSpan(0, v.ColCount), 1, v, y.AsSpan(0, v.RowCount), accumulate: false);
                        }

                        double gbs = mats.Where(v => v.DType == format).Sum(v => v.DataBytes) / Stopwatch.GetElapsedTime(st).TotalSeconds / 1e9;
                        if (round > 1)
                        {
                            results[format][pair ? 1 : 0].Add(gbs);   // the first two rounds warm up
                        }
                    }
                }
            }

            QuantMatMul.Q6PairWalk = !System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated;
            QuantMatMul.TwoGroupsPerPass = true;
            QuantMatMul.FourStreamDecode = true;
            foreach (DType format in formats)
            {
                foreach (int k in new[] { 0, 1 })
                {
                    var r = results[format][k].Order().ToArray();
                    Console.WriteLine($"{format} {(k == 0 ? "one group per pass " : "two groups per pass")}: median {r[r.Length / 2]:F1} GB/s, best {r[^1]:F1}, worst {r[0]:F1} ({r.Length} rounds)");
                }
            }

            Console.WriteLine($"load {File.ReadAllText("/proc/loadavg").Trim()}");
        }

        // Decode through the production x8 path (as x8pair) or the float groups' (a BF16 directory), Q8_0x8 read as four
        // streams per item and as pairs of adjacent groups (QuantMatMul.FourStreamDecode; other formats take their one walk
        // either way, so their two lines are the same code twice), beside the pool's four-stream
        // read of the same weights (MemoryBandwidth's pattern, one round per matrix), the three in a rotating order each
        // round: per format and walk the median GB/s and the median of each round's ratio to that read, i.e. what the
        // kernels reach of what this memory gives at that moment. `quick 2 x8read=MODEL.gguf` (rounds: X8ROUNDS, default 24)
        if (what.StartsWith("x8read=", StringComparison.Ordinal))
        {
            // copied, as qwen3 bench and serve load them (a BF16 directory in place from the mapping keeps its rows)
            using var m = Qwen3Sharp.Model.Qwen3Model.Load(what[7..],
                new Qwen3Sharp.Model.Qwen3ModelOptions { ThreadCount = threads, WeightPlacement = Qwen3Sharp.Loading.WeightPlacement.Copy });
            WeightView[] mats = GroupMatrices(m);
            Console.WriteLine($"{mats.Length} matrices ({string.Join(", ", mats.GroupBy(v => v.DType).Select(g => $"{g.Count()} {g.Key}"))}), {mats.Sum(v => v.DataBytes) / 1e9:F2} GB");
            var rng = new Random(5);
            float[] x = Enumerable.Range(0, mats.Max(v => v.ColCount)).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            float[] y = new float[mats.Max(v => v.RowCount)];
            DType[] formats = mats.Select(v => v.DType).Distinct().ToArray();
            int rounds = int.Parse(Environment.GetEnvironmentVariable("X8ROUNDS") ?? "24");
            QuantMatMul.FourStreamBytes = long.Parse(Environment.GetEnvironmentVariable("X8STREAM") ?? QuantMatMul.FourStreamBytes.ToString());   // the shortest stream
            // X8STREAM_B: the "pairs" arm becomes four streams of this length, to A/B two stream lengths in one process
            long streamA = QuantMatMul.FourStreamBytes;
            long? streamB = Environment.GetEnvironmentVariable("X8STREAM_B") is { } b ? long.Parse(b) : null;
            // X8ARM_B=avx2: the "pairs" arm becomes four streams through the AVX2 forms, the other arm the AVX-VNNI ones (Q8_0x8)
            bool vnniAb = Environment.GetEnvironmentVariable("X8ARM_B") == "avx2";
            // X8ARM_B=one: the "pairs" arm reads one group per pass (TwoGroupsPerPass off), the walk without four streams
            bool oneAb = Environment.GetEnvironmentVariable("X8ARM_B") == "one";
            bool vnni = QuantMatMul.UseVnni;
            string armB = vnniAb ? "avx2" : oneAb ? "one group" : streamB is { } sb ? $"{sb / 1024} KiB" : "pairs";
            string armA = vnniAb ? (vnni ? "vnni" : "avx2 (no VNNI)") : streamB is null ? "four streams" : $"{streamA / 1024} KiB";
            var read = new List<double>();
            var rates = formats.ToDictionary(f => f, _ => new[] { new List<double>(), new List<double>() });   // [pairs, four streams]
            float* sinks = (float*)NativeMemory.AllocZeroed((nuint)threads * 16, sizeof(float));
            for (int round = 0; round < rounds; round++)
            {
                for (int step = 0; step < 3; step++)
                {
                    int what3 = (step + round) % 3;   // 0 the read, 1 pairs, 2 four streams
                    long st = Stopwatch.GetTimestamp();
                    if (what3 == 0)
                    {
                        long readBytes = 0;
                        foreach (WeightView v in mats.Where(v => v.DataBytes >= MemoryBandwidth.ChunkBytes))
                        {
                            long n = v.DataBytes / MemoryBandwidth.ChunkBytes * MemoryBandwidth.ChunkBytes;
                            MemoryBandwidth.ReadPass(pool, (byte*)v.Data, n, sinks, fourStreams: true);
                            readBytes += n;
                        }

                        if (round > 1)
                        {
                            read.Add(readBytes / Stopwatch.GetElapsedTime(st).TotalSeconds / 1e9);
                        }

                        continue;
                    }

                    QuantMatMul.FourStreamDecode = what3 == 2 || streamB is not null || vnniAb;
                    QuantMatMul.UseVnni = vnni && !(vnniAb && what3 == 1);
                    QuantMatMul.TwoGroupsPerPass = !(oneAb && what3 == 1);
                    QuantMatMul.FourStreamBytes = what3 == 1 && streamB is { } lengthB ? lengthB : streamA;
                    foreach (DType format in formats)
                    {
                        st = Stopwatch.GetTimestamp();
                        foreach (WeightView v in mats.Where(v => v.DType == format))
                        {
                            if (format.IsFloatGroups())
                            {
                                MatMul.RunFloatGroups(pool, x.AsSpan(0, v.ColCount), 1, v, y.AsSpan(0, v.RowCount), accumulate: false);
                            }
                            else
                            {
                                QuantMatMul.Run(pool, x.AsSpan(0, v.ColCount), 1, v, y.AsSpan(0, v.RowCount), accumulate: false);
                            }
                        }

                        if (round > 1)
                        {
                            rates[format][what3 - 1].Add(mats.Where(v => v.DType == format).Sum(v => v.DataBytes) / Stopwatch.GetElapsedTime(st).TotalSeconds / 1e9);
                        }
                    }
                }
            }

            QuantMatMul.FourStreamDecode = true;
            QuantMatMul.TwoGroupsPerPass = true;
            QuantMatMul.FourStreamBytes = streamA;
            QuantMatMul.UseVnni = vnni;
            NativeMemory.Free(sinks);
            static double Median(IEnumerable<double> values) { var r = values.Order().ToArray(); return r[r.Length / 2]; }
            Console.WriteLine($"four-stream read of the same weights: median {Median(read):F1} GB/s, best {read.Max():F1} ({read.Count} rounds)");
            foreach (DType format in formats)
            {
                for (int k = 1; k >= 0; k--)
                {
                    List<double> r = rates[format][k];
                    Console.WriteLine($"{format} decode, {(k == 1 ? armA : armB),-12}: median {Median(r):F1} GB/s, best {r.Max():F1}; " +
                        $"/ the read, same round: median {Median(r.Zip(read, (a, b) => a / b)):F3}");
                }

                Console.WriteLine($"{format} {armA} / {armB}, same round: median {Median(rates[format][1].Zip(rates[format][0], (a, b) => a / b)):F3}");
            }

            Console.WriteLine($"load {File.ReadAllText("/proc/loadavg").Trim()}");
        }

        // The same A/B from L2: the first 256 rows of each format's first 2048-column matrix, 400 passes per round
        // (compute cost, no DRAM): `quick 1 x8hot=MODEL.gguf`
        if (what.StartsWith("x8hot=", StringComparison.Ordinal))
        {
            using var m = Qwen3Sharp.Model.Qwen3Model.Load(what[6..], threads);
            WeightView[] mats = GroupMatrices(m).Where(v => v.ColCount == 2048 && v.RowCount >= 256)
                .GroupBy(v => v.DType).Select(g => g.Key.IsAffine()
                    ? new WeightView(g.First().Data, g.Key, g.First().GroupSize, g.First().SourceBits, 256, 2048)
                    : new WeightView(g.First().Data, g.Key, 256, 2048)).ToArray();
            float[] x = Enumerable.Range(0, 2048).Select(i => MathF.Sin(i * 0.37f)).ToArray();
            float[] y = new float[256];
            bool vnniAb = Environment.GetEnvironmentVariable("X8ARM_B") == "avx2", vnni = QuantMatMul.UseVnni;   // as x8read: AVX2 against AVX-VNNI pairs
            foreach (WeightView v in mats)
            {
                var best = new double[2];
                for (int round = 0; round < 8; round++)
                {
                    foreach (bool pair in (round & 1) == 0 ? new[] { false, true } : new[] { true, false })
                    {
                        QuantMatMul.TwoGroupsPerPass = QuantMatMul.Q6PairWalk = pair || vnniAb;
                        QuantMatMul.UseVnni = vnni && (!vnniAb || pair);
                        QuantMatMul.FourStreamDecode = false;   // the walk this A/B is about (x8read compares it with four streams)
                        long st = Stopwatch.GetTimestamp();
                        for (int pass = 0; pass < 400; pass++)
                        {
                            QuantMatMul.Run(pool, x, 1, v, y, accumulate: false);
                        }

                        double gbs = 400.0 * v.DataBytes / Stopwatch.GetElapsedTime(st).TotalSeconds / 1e9;
                        best[pair ? 1 : 0] = Math.Max(best[pair ? 1 : 0], gbs);
                    }
                }

                Console.WriteLine(vnniAb
                    ? $"{v.DType} 256x2048 from L2 ({v.DataBytes >> 10} KiB), pairs: avx2 {best[0]:F1} GB/s, {(vnni ? "vnni" : "avx2 (no VNNI)")} {best[1]:F1} (best of 8)"
                    : $"{v.DType} 256x2048 from L2 ({v.DataBytes >> 10} KiB): one group per pass {best[0]:F1} GB/s, two {best[1]:F1} (best of 8)");
            }

            QuantMatMul.UseVnni = vnni;
            QuantMatMul.Q6PairWalk = !System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated;
            QuantMatMul.TwoGroupsPerPass = true;
            QuantMatMul.FourStreamDecode = true;
            Console.WriteLine($"load {File.ReadAllText("/proc/loadavg").Trim()}");
        }

        if (what == "pattern")
        {
            PatternBench.Run(pool);
        }

        if (what == "ceiling")
        {
            BatchFlopsBench.Ceiling();
        }

        if (what == "int8")
        {
            Int8DecodeAb(pool, bandwidthBest, threads);
        }

        if (what == "x8")
        {
            Q4x8DecodeAb(pool, bandwidthBest, threads);
        }

        if (what.StartsWith("x8=", StringComparison.Ordinal))
        {
            Q4x8DecodeAb(pool, threads, Enum.Parse<DType>(what[3..]));   // one format, e.g. x8=Q6_K
        }

        if (what == "int8hot")
        {
            // Compute cost from L2 (no DRAM), one thread, per CPU-second: what each variant could stream at most.
            using var single = new WorkerPool(1);
            foreach (DType dtype in new[] { DType.Q8_0, DType.Q4_0 })
            {
                using var w = new BenchBlockWeights(dtype, 128, 2048);
                float[] x = new float[2048], y = new float[128];
                var rng = new Random(2);
                for (int i = 0; i < x.Length; i++)
                {
                    x[i] = (float)(rng.NextDouble() * 2 - 1);
                }

                foreach ((string name, QuantMatMul.Int8Tuning? tuning) in Int8Variants)
                {
                    (double wall, double cpu) = Time(() =>
                    {
                        for (int i = 0; i < 100; i++)
                        {
                            RunQuant(single, x, w.View, y, tuning);
                        }
                    });
                    double weights = 128.0 * 2048 * 100;
                    Console.WriteLine($"int8hot {dtype} 128x2048 1 thread {name,-16}: {weights / cpu / 1e9,6:F2} G weights per CPU-second " +
                        $"= {weights / cpu / 1e9 * dtype.RowBytes(2048) / 2048.0,5:F1} GB/s of weights per core  (wall {weights / wall / 1e9:F2})");
                }
            }
        }

        if (what == "ab")
        {
            DecodeAb(pool, bandwidthBest, threads);
        }

        if (what == "micro")
        {
            // Cache-resident compute cost per weight (no DRAM): 128 × 2048 BF16 = 512 KB.
            using var w = new BenchWeights(DType.BF16, 128, 2048);
            foreach (int tokens in new[] { 1, 2, 4, 8, 16 })
            {
                float[] x = new float[tokens * 2048], y = new float[tokens * 128];
                Array.Fill(x, 0.01f);
                (double wall, double cpu) = Time(() =>
                {
                    for (int i = 0; i < 100; i++)
                    {
                        MatMul.Multiply(pool, x, tokens, w.View, y);
                    }
                });
                Console.WriteLine($"micro 128x2048 tokens {tokens,2}: {cpu / 100 * 1e6,8:F1} µs cpu per call, " +
                    $"{128.0 * 2048 * 100 / cpu / 1e9:F2} G weights per cpu-second");
            }
        }

        if (what.StartsWith("x8check=", StringComparison.Ordinal))
        {
            X8Check(pool, what[8..]);
        }

        if (what.StartsWith("file=", StringComparison.Ordinal))
        {
            // Every matrix of layer 0 and the output head of a model file, one token, best of 5: which format costs what.
            using Loading.ModelWeights m = Loading.ModelWeights.Load(what[5..]);
            var l0 = m.Layers[0];
            foreach ((string name, WeightView w) in new[] { ("q", l0.QProj), ("k", l0.KProj), ("v", l0.VProj), ("o", l0.OProj),
                ("gate", l0.GateProj), ("up", l0.UpProj), ("down", l0.DownProj), ("head", m.LmHead) })
            {
                float[] x = new float[w.ColCount], y = new float[w.RowCount];
                Array.Fill(x, 0.01f);
                double best = double.MaxValue;
                for (int i = 0; i < 5; i++)
                {
                    best = Math.Min(best, Time(() => MatMul.Multiply(pool, x, 1, w, y)).Item1);
                }

                using var random = new BenchBlockWeights(w.DType, w.RowCount, w.ColCount);
                double bestRandom = double.MaxValue;
                for (int i = 0; i < 5; i++)
                {
                    bestRandom = Math.Min(bestRandom, Time(() => MatMul.Multiply(pool, x, 1, random.View, y)).Item1);
                }

                Console.WriteLine($"{name,-5} {w.DType,-5} {w.RowCount}x{w.ColCount}: {best * 1e6,9:F1} µs  {w.ByteCount / best / 1e9,6:F1} GB/s" +
                    $"  (random codes: {bestRandom * 1e6,9:F1} µs)");
            }
        }

        if (what is "all" or "quant")
        {
            // Block formats: the compute cost per weight from cache (128 × 2048), then 6144 × 2048 streamed from DRAM.
            foreach (DType dtype in new[] { DType.Q8_0, DType.Q4_0, DType.Q4_K, DType.Q5_K, DType.Q6_K })
            {
                using (var w = new BenchBlockWeights(dtype, 128, 2048))
                {
                    foreach (int tokens in new[] { 1, 4 })
                    {
                        float[] x = new float[tokens * 2048], y = new float[tokens * 128];
                        Array.Fill(x, 0.01f);
                        (double wall, double cpu) = Time(() =>
                        {
                            for (int i = 0; i < 100; i++)
                            {
                                MatMul.Multiply(pool, x, tokens, w.View, y);
                            }
                        });
                        Console.WriteLine($"quant {dtype} micro 128x2048 tokens {tokens}: {128.0 * 2048 * 100 / cpu / 1e9 * tokens,6:F2} G weight·tokens per cpu-second");
                    }
                }

                long bytes = 6144 * dtype.RowBytes(2048);
                int copies = (int)Math.Max(1, (512L << 20) / bytes);
                var weights = Enumerable.Range(0, copies).Select(i => new BenchBlockWeights(dtype, 6144, 2048, seed: i)).ToArray();
                float[] xs = new float[2048], ys = new float[6144];
                Array.Fill(xs, 0.01f);
                (double wall2, double cpu2) = Time(() =>
                {
                    foreach (BenchBlockWeights w in weights)
                    {
                        MatMul.Multiply(pool, xs, 1, w.View, ys);
                    }
                });
                double gbps = bytes * copies / wall2 / 1e9;
                Console.WriteLine($"quant {dtype} matvec 6144x2048: {wall2 / copies * 1e6,9:F1} µs  {gbps,6:F1} GB/s  {100 * gbps / bandwidthBest,5:F1}% of bandwidth  " +
                    $"(cpu {bytes * copies / cpu2 / 1e9 * threads:F1} GB/s)");
                foreach (BenchBlockWeights w in weights)
                {
                    w.Dispose();
                }
            }
        }

        if (what is "all" or "batch")
        {
            // Batched decode (a few sequences per step): still one pass over the weights per call.
            const int rows = 6144, cols = 2048;
            long bytes = (long)rows * cols * 2;
            int copies = (int)Math.Max(1, (512L << 20) / bytes);
            var weights = new BenchWeights[copies];
            for (int i = 0; i < copies; i++)
            {
                weights[i] = new BenchWeights(DType.BF16, rows, cols, seed: i);
            }

            foreach (int tokens in new[] { 1, 2, 4, 8, 16, 32 })
            {
                float[] x = new float[tokens * cols], y = new float[tokens * rows];
                Array.Fill(x, 0.01f);
                (double wall, double cpu) = Time(() =>
                {
                    foreach (BenchWeights w in weights)
                    {
                        MatMul.Multiply(pool, x, tokens, w.View, y);
                    }
                });
                Console.WriteLine($"batch bf16 {rows}x{cols} tokens {tokens,2}: {wall / copies * 1e6,9:F1} µs per matrix  " +
                    $"{bytes * copies / wall / 1e9,6:F1} GB/s of weights  (cpu {bytes * copies / cpu / 1e9 * threads:F1} GB/s)");
            }

            foreach (BenchWeights w in weights)
            {
                w.Dispose();
            }
        }

        if (what is "all" or "prefill")
        {
            foreach ((int rows, int cols, int tokens) in new[] { (2048, 2048, 64), (2048, 2048, 512), (6144, 2048, 512), (2048, 6144, 512) })
            {
                using var w = new BenchWeights(DType.BF16, rows, cols);
                float[] x = new float[tokens * cols], y = new float[tokens * rows];
                Array.Fill(x, 0.01f);
                (double wall, double cpu) = Time(() => MatMul.Multiply(pool, x, tokens, w.View, y));
                double flops = 2.0 * tokens * rows * cols;
                Console.WriteLine($"matmul bf16 {rows}x{cols} tokens {tokens}: {wall * 1e3,8:F2} ms  {flops / wall / 1e9,6:F1} GFLOP/s  " +
                    $"(cpu {flops / cpu / 1e9 * threads:F1} GFLOP/s per {threads} busy threads)");
            }
        }
    }

    /// <summary>
    /// Decode kernel variants A/B (four-rows vs one-row), interleaved in rounds in this process: every matrix
    /// shape of qwen3-1.7b at 1 token and 6144×2048 / 2048×6144 at 2..16 tokens, each best of a round.
    /// </summary>
    private static void DecodeAb(WorkerPool pool, double bandwidth, int threads)
    {
        var cases = new List<(int Rows, int Cols, int Tokens)>
        {
            (2048, 2048, 1), (1024, 2048, 1), (6144, 2048, 1), (2048, 6144, 1), (151936, 2048, 1),
        };
        foreach (int t in new[] { 2, 4, 8, 16 })
        {
            cases.Add((6144, 2048, t));
            cases.Add((2048, 6144, t));
        }

        // AB_KERNELS=one-row,four-streams (the names QWEN3_DECODE_KERNEL takes) picks the pair; default four-rows against one-row
        DecodeKernel[] kernels = Environment.GetEnvironmentVariable("AB_KERNELS") is { } names
            ? [.. names.Split(',').Select(n => KernelSelection.ChooseDecode(n))]
            : [DecodeKernel.FourRows, DecodeKernel.OneRow];
        var best = new double[cases.Count, kernels.Length];
        for (int i = 0; i < best.Length; i++)
        {
            best[i / kernels.Length, i % kernels.Length] = double.MaxValue;
        }

        var sets = new Dictionary<(int, int), BenchWeights[]>();
        foreach ((int rows, int cols, _) in cases)
        {
            if (!sets.ContainsKey((rows, cols)))
            {
                long bytes = (long)rows * cols * 2;
                int copies = (int)Math.Max(1, (512L << 20) / bytes);
                sets[(rows, cols)] = Enumerable.Range(0, copies).Select(i => new BenchWeights(DType.BF16, rows, cols, seed: i)).ToArray();
            }
        }

        for (int round = 0; round < 5; round++)
        {
            for (int ci = 0; ci < cases.Count; ci++)
            {
                (int rows, int cols, int tokens) = cases[ci];
                BenchWeights[] weights = sets[(rows, cols)];
                float[] x = new float[tokens * cols], y = new float[tokens * rows];
                Array.Fill(x, 0.01f);
                for (int k = 0; k < kernels.Length; k++)
                {
                    DecodeKernel kernel = (round & 1) == 0 ? kernels[k] : kernels[kernels.Length - 1 - k];
                    int slot = Array.IndexOf(kernels, kernel);
                    for (int rep = 0; rep < 2; rep++)
                    {
                        long start = Stopwatch.GetTimestamp();
                        foreach (BenchWeights w in weights)
                        {
                            Multiply(pool, x, tokens, w.View, y, kernel);
                        }

                        best[ci, slot] = Math.Min(best[ci, slot], Stopwatch.GetElapsedTime(start).TotalSeconds / weights.Length);
                    }
                }
            }
        }

        Console.WriteLine($"decode A/B, {threads} threads, best of 5 interleaved rounds; GB/s of weights (% of {bandwidth:F1} GB/s read)");
        for (int ci = 0; ci < cases.Count; ci++)
        {
            (int rows, int cols, int tokens) = cases[ci];
            double bytes = (double)rows * cols * 2;
            double a = best[ci, 0], b = best[ci, 1];
            string na = KernelSelection.Name(kernels[0]), nb = KernelSelection.Name(kernels[1]);
            Console.WriteLine($"  bf16 {rows,6}x{cols} tokens {tokens,2}: {na} {a * 1e6,8:F1} µs {bytes / a / 1e9,5:F1} GB/s ({100 * bytes / a / 1e9 / bandwidth,3:F0}%)  " +
                $"{nb} {b * 1e6,8:F1} µs {bytes / b / 1e9,5:F1} GB/s ({100 * bytes / b / 1e9 / bandwidth,3:F0}%)  {nb}/{na} speed {a / b:F2}×");
        }

        foreach (BenchWeights[] set in sets.Values)
        {
            foreach (BenchWeights w in set)
            {
                w.Dispose();
            }
        }
    }

    /// <summary>
    /// Q8_0 and Q4_0 decode (1 token) over every matrix shape of qwen3-1.7b, int8 kernel variants and the float path,
    /// interleaved in rounds in this process (order reversed every other round), best of the rounds; weights rotate
    /// through ≥ 512 MB of copies so every call streams from DRAM. The last line per format weighs the shapes as one
    /// decode step's matmuls (28 layers × q, k, v, o, gate, up, down, plus the output head) and gives the tok/s those
    /// alone would allow against the bandwidth bound.
    /// </summary>
    private static void Int8DecodeAb(WorkerPool pool, double bandwidth, int threads)
    {
        // (rows, cols, uses per step)
        var shapes = new (int Rows, int Cols, int Uses)[] { (2048, 2048, 56), (1024, 2048, 56), (6144, 2048, 56), (2048, 6144, 28), (151936, 2048, 1) };
        var variants = Int8Variants;
        Console.WriteLine($"int8 decode A/B, {threads} threads, 1 token, best of 5 interleaved rounds; GB/s of weights (% of {bandwidth:F1} GB/s read)" +
            $"  load {File.ReadAllText("/proc/loadavg").Trim()}");
        var rng = new Random(1);
        foreach (DType dtype in new[] { DType.Q8_0, DType.Q4_0 })
        {
            var best = new double[shapes.Length, variants.Length];
            for (int i = 0; i < best.Length; i++)
            {
                best[i / variants.Length, i % variants.Length] = double.MaxValue;
            }

            for (int si = 0; si < shapes.Length; si++)
            {
                (int rows, int cols, _) = shapes[si];
                long bytes = rows * dtype.RowBytes(cols);
                int copies = (int)Math.Max(1, (512L << 20) / bytes);
                BenchBlockWeights[] weights = Enumerable.Range(0, copies).Select(i => new BenchBlockWeights(dtype, rows, cols, seed: i)).ToArray();
                float[] x = new float[cols], y = new float[rows];
                for (int i = 0; i < cols; i++)
                {
                    x[i] = (float)(rng.NextDouble() * 2 - 1);
                }

                for (int round = 0; round < 5; round++)
                {
                    for (int k = 0; k < variants.Length; k++)
                    {
                        int v = (round & 1) == 0 ? k : variants.Length - 1 - k;
                        for (int rep = 0; rep < 2; rep++)
                        {
                            long start = Stopwatch.GetTimestamp();
                            foreach (BenchBlockWeights w in weights)
                            {
                                RunQuant(pool, x, w.View, y, variants[v].Tuning);
                            }

                            best[si, v] = Math.Min(best[si, v], Stopwatch.GetElapsedTime(start).TotalSeconds / copies);
                        }
                    }
                }

                foreach (BenchBlockWeights w in weights)
                {
                    w.Dispose();
                }

                Console.WriteLine($"  {dtype} {rows,6}x{cols} ({bytes / 1e6:F1} MB):");
                for (int v = 0; v < variants.Length; v++)
                {
                    double gbps = bytes / best[si, v] / 1e9;
                    Console.WriteLine($"    {variants[v].Name,-16} {best[si, v] * 1e6,9:F1} µs {gbps,5:F1} GB/s ({100 * gbps / bandwidth,3:F0}%)  " +
                        $"vs legacy {best[si, 1] / best[si, v]:F2}×");
                }
            }

            double stepBytes = shapes.Sum(s => (double)s.Uses * s.Rows * dtype.RowBytes(s.Cols));
            Console.WriteLine($"  {dtype} step matmuls ({stepBytes / 1e9:F2} GB; bound {bandwidth * 1e9 / stepBytes:F1} tok/s):");
            for (int v = 0; v < variants.Length; v++)
            {
                double seconds = 0;
                for (int si = 0; si < shapes.Length; si++)
                {
                    seconds += shapes[si].Uses * best[si, v];
                }

                Console.WriteLine($"    {variants[v].Name,-16} {1 / seconds,5:F1} tok/s ({100 * stepBytes / seconds / 1e9 / bandwidth,3:F0}% of bound)");
            }
        }
    }

    /// <summary>
    /// Q4_0, Q4_K and Q6_K decode (1 token) over every matrix shape of qwen3-1.7b (Q6_K: those llama-quantize's Q4_K_M gives
    /// it, v_proj and down_proj of half the layers and the tied output head): the row-layout int8 kernel (production before the
    /// repack) against the 8-row groups (<see cref="DType.Q4_0x8"/>, <see cref="DType.Q4_Kx8"/>, <see cref="DType.Q6_Kx8"/>), interleaved rounds, best of 5; "cold" rotates
    /// through ≥ 512 MB of copies (DRAM-streamed, as in a decode step), "hot" repeats one 128-row slice from L2 on one
    /// thread (compute cost alone). Wall and per-CPU-second figures: the latter stay meaningful on a shared machine.
    /// </summary>
    private static void Q4x8DecodeAb(WorkerPool pool, double bandwidth, int threads)
    {
        foreach (DType dtype in new[] { DType.Q4_0, DType.Q4_K, DType.Q6_K })
        {
            Q4x8DecodeAb(pool, threads, dtype);
        }
    }

    private static void Q4x8DecodeAb(WorkerPool pool, int threads, DType dtype)
    {
        DType grouped = dtype switch { DType.Q4_0 => DType.Q4_0x8, DType.Q6_K => DType.Q6_Kx8, _ => DType.Q4_Kx8 };
        var shapes = dtype == DType.Q6_K
            ? new (int Rows, int Cols, int Uses)[] { (1024, 2048, 14), (2048, 6144, 14), (151936, 2048, 1) }
            : new (int Rows, int Cols, int Uses)[] { (2048, 2048, 56), (1024, 2048, 56), (6144, 2048, 56), (2048, 6144, 28), (151936, 2048, 1) };
        Console.WriteLine($"{dtype} rows vs x8 decode A/B, {threads} threads, 1 token, best of 5 interleaved rounds  load {File.ReadAllText("/proc/loadavg").Trim()}");
        var rng = new Random(1);
        double[] stepWall = new double[2], stepCpu = new double[2];
        foreach (var (rows, cols, uses) in shapes)
        {
            long bytes = rows * dtype.RowBytes(cols);
            int copies = (int)Math.Max(1, (512L << 20) / bytes);
            BenchBlockWeights[] weights = Enumerable.Range(0, copies).Select(i => new BenchBlockWeights(dtype, rows, cols, seed: i)).ToArray();
            var packed = new nint[copies];
            for (int i = 0; i < copies; i++)
            {
                packed[i] = Repack(dtype, weights[i].View.Data, rows, cols);
            }

            float[] x = new float[cols], y = new float[rows];
            for (int i = 0; i < cols; i++)
            {
                x[i] = (float)(rng.NextDouble() * 2 - 1);
            }

            var bestWall = new[] { double.MaxValue, double.MaxValue };
            var bestCpu = new[] { double.MaxValue, double.MaxValue };
            for (int round = 0; round < 5; round++)
            {
                for (int k = 0; k < 2; k++)
                {
                    int v = (round & 1) == 0 ? k : 1 - k;
                    (double wall, double cpu) = Time(() =>
                    {
                        for (int i = 0; i < copies; i++)
                        {
                            WeightView w = v == 0 ? weights[i].View : new WeightView((byte*)packed[i], grouped, rows, cols);
                            QuantMatMul.Run(QuantMatMul.Best, pool, x, 1, w, y, accumulate: false, QuantDecodeKernel.Int8);
                        }
                    });
                    bestWall[v] = Math.Min(bestWall[v], wall / copies);
                    bestCpu[v] = Math.Min(bestCpu[v], cpu / copies);
                }
            }

            for (int v = 0; v < 2; v++)
            {
                stepWall[v] += uses * bestWall[v];
                stepCpu[v] += uses * bestCpu[v];
            }

            Console.WriteLine($"  cold {rows,6}x{cols}: rows {bestWall[0] * 1e6,8:F1} µs ({bytes / bestWall[0] / 1e9:F1} GB/s), " +
                $"x8 {bestWall[1] * 1e6,8:F1} µs ({bytes / bestWall[1] / 1e9:F1} GB/s)  x8 {bestWall[0] / bestWall[1]:F2}× wall, {bestCpu[0] / bestCpu[1]:F2}× per CPU-second");
            foreach (BenchBlockWeights w in weights)
            {
                w.Dispose();
            }

            foreach (nint p in packed)
            {
                NativeMemory.AlignedFree((void*)p);
            }
        }

        Console.WriteLine($"  step matmuls: rows {1 / stepWall[0]:F1} tok/s, x8 {1 / stepWall[1]:F1} tok/s ({stepWall[0] / stepWall[1]:F2}× wall, " +
            $"{stepCpu[0] / stepCpu[1]:F2}× per CPU-second)");

        using var single = new WorkerPool(1);
        foreach (var (cols, tokens) in new[] { (2048, 1), (6144, 1), (2048, 4), (2048, 16) })   // and small batches (batched decode)
        {
            using var hot = new BenchBlockWeights(dtype, 128, cols);
            byte* hotPacked = (byte*)Repack(dtype, hot.View.Data, 128, cols);
            float[] x = new float[tokens * cols], y = new float[tokens * 128];
            for (int i = 0; i < x.Length; i++)
            {
                x[i] = (float)(rng.NextDouble() * 2 - 1);
            }

            var best = new[] { double.MaxValue, double.MaxValue };
            for (int round = 0; round < 5; round++)
            {
                for (int v = 0; v < 2; v++)
                {
                    WeightView w = v == 0 ? hot.View : new WeightView(hotPacked, grouped, 128, cols);
                    (_, double cpu) = Time(() =>
                    {
                        for (int i = 0; i < 200; i++)
                        {
                            QuantMatMul.Run(QuantMatMul.Best, single, x, tokens, w, y, accumulate: false, QuantDecodeKernel.Int8);
                        }
                    });
                    best[v] = Math.Min(best[v], cpu / 200);
                }
            }

            double weightsPerCall = 128.0 * cols * tokens;
            Console.WriteLine($"  hot 128x{cols} {tokens,2} token(s) 1 thread: rows {weightsPerCall / best[0] / 1e9:F2}, x8 {weightsPerCall / best[1] / 1e9:F2} G weights per CPU-second " +
                $"({best[0] / best[1]:F2}×)");
            NativeMemory.AlignedFree(hotPacked);
        }
    }

    /// <summary>
    /// Every matrix of a GGUF file that the load repacks into 8-row groups, against the same matrix in row layout on the
    /// row int8 kernel (the path KL runs measure: they load rows), for 1 and 5 tokens of random activations: the max |Δ|
    /// against the outputs' RMS, how many outputs are bit-identical, and whether the AVX2 group kernel equals its scalar
    /// twin bit for bit on the real weights.
    /// </summary>
    private static void X8Check(WorkerPool pool, string path)
    {
        using Loading.ModelWeights rows = Loading.ModelWeights.Load(path, layout: QuantLayout.Rows);
        using Loading.ModelWeights x8 = Loading.ModelWeights.Load(path, layout: QuantLayout.Interleaved8);
        var pairs = new List<(string Name, WeightView Rows, WeightView X8)> { ("head", rows.LmHead, x8.LmHead) };
        for (int l = 0; l < rows.Layers.Length; l++)
        {
            WeightView[] a = [.. rows.Layers[l].Matrices], b = [.. x8.Layers[l].Matrices];
            for (int i = 0; i < a.Length; i++)
            {
                pairs.Add(($"{l}.{i}", a[i], b[i]));
            }
        }

        var rng = new Random(3);
        var worst = new Dictionary<DType, (double Rel, long Same, long Count, bool TwinEqual)>();
        foreach (var (name, r, g) in pairs)
        {
            if (g.DType.RowGroup() == 1)
            {
                continue;
            }

            foreach (int tokens in new[] { 1, 5 })
            {
                float[] x = new float[tokens * r.ColCount];
                for (int i = 0; i < x.Length; i++)
                {
                    x[i] = (float)(rng.NextDouble() * 2 - 1) * (i % 97 == 0 ? 20 : 1);   // an outlier now and then, as normed hidden states have
                }

                float[] yr = new float[tokens * r.RowCount], yg = new float[yr.Length];
                QuantMatMul.Run(QuantMatMul.Best, pool, x, tokens, r, yr, accumulate: false, QuantDecodeKernel.Int8);
                QuantMatMul.Run(QuantMatMul.Best, pool, x, tokens, g, yg, accumulate: false, QuantDecodeKernel.Int8);
                bool twin = true;
                if (tokens == 1)
                {
                    float[] ys = new float[yr.Length];
                    QuantMatMul.Run(QuantMatMul.Isa.Scalar, pool, x, tokens, g, ys, accumulate: false, QuantDecodeKernel.Int8);
                    twin = ys.AsSpan().SequenceEqual(yg);
                }

                double rms = Math.Sqrt(yr.Sum(v => (double)v * v) / yr.Length), maxDiff = 0;
                long same = 0;
                for (int i = 0; i < yr.Length; i++)
                {
                    maxDiff = Math.Max(maxDiff, Math.Abs((double)yr[i] - yg[i]));
                    same += BitConverter.SingleToInt32Bits(yr[i]) == BitConverter.SingleToInt32Bits(yg[i]) ? 1 : 0;
                }

                var (rel, s0, c0, t0) = worst.GetValueOrDefault(g.DType, (0, 0, 0, true));
                worst[g.DType] = (Math.Max(rel, maxDiff / rms), s0 + same, c0 + yr.Length, t0 && twin);
            }
        }

        // prefill panels and embedding lookups dequantize rows: the output head's, both layouts, best of 3, one thread
        float* row = (float*)NativeMemory.AlignedAlloc((nuint)(rows.LmHead.ColCount * sizeof(float)), 64);
        var bestRow = new[] { double.MaxValue, double.MaxValue };
        for (int round = 0; round < 3; round++)
        {
            for (int v = 0; v < 2; v++)
            {
                WeightView w = v == 0 ? rows.LmHead : x8.LmHead;
                (double wall, _) = Time(() =>
                {
                    for (int r = 0; r < 16384; r++)
                    {
                        QuantMatMul.DequantizeRow(w, r, row);
                    }
                });
                bestRow[v] = Math.Min(bestRow[v], wall / 16384);
            }
        }

        NativeMemory.AlignedFree(row);
        Console.WriteLine($"dequantize one output-head row ({rows.LmHead.DType} / {x8.LmHead.DType}, {rows.LmHead.ColCount} columns): rows {bestRow[0] * 1e9:F0} ns, x8 {bestRow[1] * 1e9:F0} ns");
        foreach (var (dtype, (rel, same, count, twin)) in worst)
        {
            Console.WriteLine($"{dtype} vs row int8 kernel over every such matrix of {Path.GetFileName(path)}, 1 and 5 tokens: max |Δ| {rel:E2} of the outputs' RMS, " +
                $"{same}/{count} outputs bit-identical; AVX2 == scalar twin bit for bit: {twin}");
        }
    }

    private static nint Repack(DType dtype, byte* source, int rows, int cols)
    {
        byte* packed = (byte*)NativeMemory.AlignedAlloc((nuint)QuantMatMul.RepackedBytes(dtype, rows, cols), 64);
        QuantMatMul.Repack(dtype, source, rows, cols, packed);
        return (nint)packed;
    }

    // "legacy": the first int8 kernel's walk (16-row items, DotI1_256) with today's block loads; "default": production.
    private static readonly (string Name, QuantMatMul.Int8Tuning? Tuning)[] Int8Variants =
    [
        ("float", null),
        ("legacy 16r", QuantMatMul.Int8Tuning.Legacy),
        ("64K items", new(64 << 10, RowSide: false)),
        ("256K items", new(256 << 10, RowSide: false)),
        ("64K+row", new(64 << 10, RowSide: true)),
        ("default", QuantMatMul.Int8Tuning.Default),
        ("1M+row", new(1 << 20, RowSide: true)),
    ];

    private static void RunQuant(WorkerPool pool, float[] x, in WeightView w, float[] y, QuantMatMul.Int8Tuning? tuning)
    {
        if (tuning is not { } t)
        {
            QuantMatMul.Run(QuantMatMul.Best, pool, x, 1, w, y, accumulate: false, QuantDecodeKernel.Float);
            return;
        }

        fixed (float* px = x, py = y)
        {
            QuantMatMul.RunInt8(QuantMatMul.Best, pool, px, 1, w, py, accumulate: false, t);
        }
    }

    private static void Multiply(WorkerPool pool, float[] x, int tokens, in WeightView w, float[] y, DecodeKernel kernel)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            MatMul.Run<Vector512<float>, Simd512>(pool, x, tokens, w, y, accumulate: false, kernel);
        }
        else
        {
            MatMul.Run<Vector256<float>, Simd256>(pool, x, tokens, w, y, accumulate: false, kernel);
        }
    }

    internal static float FmaPeak(int n)
    {
        Vector256<float> a0 = Vector256.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
        Vector256<float> a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        Vector256<float> m = Vector256.Create(0.999999f), c = Vector256.Create(1e-7f);
        for (int i = 0; i < n; i++)
        {
            a0 = Vector256.MultiplyAddEstimate(a0, m, c); a1 = Vector256.MultiplyAddEstimate(a1, m, c);
            a2 = Vector256.MultiplyAddEstimate(a2, m, c); a3 = Vector256.MultiplyAddEstimate(a3, m, c);
            a4 = Vector256.MultiplyAddEstimate(a4, m, c); a5 = Vector256.MultiplyAddEstimate(a5, m, c);
            a6 = Vector256.MultiplyAddEstimate(a6, m, c); a7 = Vector256.MultiplyAddEstimate(a7, m, c);
            a8 = Vector256.MultiplyAddEstimate(a8, m, c); a9 = Vector256.MultiplyAddEstimate(a9, m, c);
            a10 = Vector256.MultiplyAddEstimate(a10, m, c); a11 = Vector256.MultiplyAddEstimate(a11, m, c);
        }

        return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }

    /// <summary>Best wall time and best process CPU time of repeated runs (about a second, at least 3) after a warm-up.</summary>
    /// <summary>
    /// One decode token's attention over every layer of a Qwen3-1.7B-shaped KV cache (28 layers, 16 query heads over
    /// 8 kv heads of 128) at 2,000 and 8,000 positions in 16-position blocks, per KV dtype: the part of a decode step
    /// the 16-bit cache halves the bytes of. Each layer has its own pool, so the step streams from DRAM as in decode.
    /// </summary>
    private static void KvAttention(WorkerPool pool, int threads)
    {
        const int Layers = 28, Heads = 16, KvHeads = 8, HeadDim = 128, BlockSize = 16;
        const int KvDim = KvHeads * HeadDim;
        var rng = new Random(1);
        foreach (int context in new[] { 2000, 8000 })
        {
            int blocks = (context + BlockSize - 1) / BlockSize;
            int[] table = Enumerable.Range(0, blocks).OrderBy(_ => rng.Next()).ToArray();
            float[] q = new float[Heads * HeadDim], output = new float[Heads * HeadDim];
            float[] row = new float[(long)blocks * BlockSize * KvDim];
            for (int i = 0; i < row.Length; i++)
            {
                row[i] = (float)(rng.NextDouble() * 2 - 1);
            }

            for (int i = 0; i < q.Length; i++)
            {
                q[i] = (float)(rng.NextDouble() * 2 - 1);
            }

            foreach (KvCacheDType dtype in new[] { KvCacheDType.F32, KvCacheDType.BF16, KvCacheDType.F16, KvCacheDType.Q8_0 })
            {
                var keys = new byte[Layers][];
                var values = new byte[Layers][];
                for (int l = 0; l < Layers; l++)
                {
                    keys[l] = new byte[dtype.Bytes(row.Length)];
                    values[l] = new byte[dtype.Bytes(row.Length)];
                    KvConvert.FromSingle(row, dtype, keys[l]);
                    KvConvert.FromSingle(row, dtype, values[l]);
                }

                (double wall, double cpu) = Time(() =>
                {
                    for (int l = 0; l < Layers; l++)
                    {
                        Attention.Causal(pool, q, 1, context - 1, keys[l], values[l], dtype, table, BlockSize, Heads, KvHeads, HeadDim, 0.088f, output);
                    }
                });
                long bytes = 2L * Layers * context * dtype.Bytes(KvDim);
                Console.WriteLine($"decode attention {dtype.Name(),4} at {context,5} positions, 28 layers: {wall * 1e3,7:F2} ms  " +
                    $"({bytes / 1e6:F0} MB of KV, {bytes / wall / 1e9:F1} GB/s; cpu {cpu * 1e3 / threads:F2} ms per thread)");
            }
        }
    }

    /// <summary>
    /// BF16 prefill products, managed float32 panels vs the generated AVX512_BF16 kernels (several register tiles),
    /// interleaved in rounds in this process so neighbours' load hits each alike; best of the rounds per variant.
    /// Single-thread rows ("1t") take the pool out of the figure: the kernel alone.
    /// </summary>
    // qwen3-1.7b's prefill products at 512 tokens (q/o, k/v, gate/up, down), a short batch, and 12 rows (mostly the packing).
    private static readonly (int Rows, int Cols, int Tokens)[] JitShapes =
        [(2048, 2048, 512), (1024, 2048, 512), (6144, 2048, 512), (2048, 6144, 512), (1024, 2048, 128), (12, 2048, 512)];

    private static void PrefillJitAb(WorkerPool pool, int threads)
    {
        if (!Bf16PanelKernels.IsSupported)
        {
            Console.WriteLine("jit: this CPU/runtime lacks AVX512_BF16 (or Linux x86-64); nothing to compare.");
            return;
        }

        var tiles = new (string Name, Bf16PanelKernels Kernels)[]
        {
            ("jit 12x2 bcst", new Bf16PanelKernels(12, 2, embeddedBroadcast: true)),
            ("jit 14x2 vpbd", new Bf16PanelKernels(14, 2, embeddedBroadcast: false)),
            ("jit 6x4 bcst ", new Bf16PanelKernels(6, 4, embeddedBroadcast: true)),
            ("jit 8x3 bcst ", new Bf16PanelKernels(8, 3, embeddedBroadcast: true)),
        };
        using var single = new WorkerPool(1);
        Console.WriteLine($"load {File.ReadAllText("/proc/loadavg").Trim()}");
        foreach ((int rows, int cols, int tokens) in JitShapes)
        {
            using var w = new BenchWeights(DType.BF16, rows, cols);
            float[] x = new float[tokens * cols], y = new float[tokens * rows];
            var rng = new Random(1);
            for (int i = 0; i < x.Length; i++)
            {
                x[i] = (float)(rng.NextDouble() - 0.5);
            }

            var runs = new List<(string Name, Action Run)>();
            foreach ((WorkerPool p, string suffix) in new[] { (pool, $"{threads}t"), (single, "1t") })
            {
                runs.Add(($"managed f32  {suffix}", () => MatMul.Run<Vector512<float>, Simd512>(p, x, tokens, w.View, y, false)));
                foreach ((string name, Bf16PanelKernels k) in tiles)
                {
                    runs.Add(($"{name} {suffix}", () => Bf16Prefill.Run(p, k, x, tokens, w.View, y, false)));
                }
            }

            double[] best = new double[runs.Count], bestCpu = new double[runs.Count];
            Array.Fill(best, double.MaxValue);
            Array.Fill(bestCpu, double.MaxValue);
            var process = Process.GetCurrentProcess();
            for (int round = 0; round < 5; round++)
            {
                for (int i = 0; i < runs.Count; i++)
                {
                    process.Refresh();
                    TimeSpan cpu0 = process.TotalProcessorTime;
                    long start = Stopwatch.GetTimestamp();
                    runs[i].Run();
                    best[i] = Math.Min(best[i], Stopwatch.GetElapsedTime(start).TotalSeconds);
                    process.Refresh();
                    bestCpu[i] = Math.Min(bestCpu[i], Math.Max(1e-9, (process.TotalProcessorTime - cpu0).TotalSeconds));
                }
            }

            double flops = 2.0 * tokens * rows * cols;
            for (int i = 0; i < runs.Count; i++)
            {
                Console.WriteLine($"prefill bf16 {rows}x{cols} tokens {tokens}  {runs[i].Name}: {best[i] * 1e3,8:F2} ms  {flops / best[i] / 1e9,6:F1} GFLOP/s" +
                    $"  (per CPU-second {flops / bestCpu[i] / 1e9,6:F1})");
            }
        }

        foreach ((_, Bf16PanelKernels k) in tiles)
        {
            k.Dispose();
        }

        Console.WriteLine($"load {File.ReadAllText("/proc/loadavg").Trim()}");
    }

    private static (double Wall, double Cpu) Time(Action action)
    {
        action();
        double best = double.MaxValue, bestCpu = double.MaxValue;
        var total = Stopwatch.StartNew();
        int runs = 0;
        var process = Process.GetCurrentProcess();
        while (runs < 3 || total.Elapsed.TotalSeconds < 1.5)
        {
            process.Refresh();
            TimeSpan cpu0 = process.TotalProcessorTime;
            long start = Stopwatch.GetTimestamp();
            action();
            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
            process.Refresh();
            bestCpu = Math.Min(bestCpu, (process.TotalProcessorTime - cpu0).TotalSeconds);
            runs++;
        }

        return (best, Math.Max(bestCpu, 1e-9));
    }
}
