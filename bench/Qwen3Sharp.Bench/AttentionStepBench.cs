using System.Diagnostics;
using Qwen3Sharp.Cache;
using Qwen3Sharp.Kernels;

namespace Qwen3Sharp.Bench;

/// <summary>
/// The attention of one engine step, Qwen3-1.7B-shaped (16 query heads over 8 kv heads of 128, f16 cache, 16-position
/// blocks), as the engine ran it before (one pool dispatch per sequence per layer) and as it runs it now (one
/// dispatch per layer for the whole step), interleaved in rounds in this process so the neighbours' load hits both
/// alike; best of the rounds each. Four layers of their own stores, so the step reads its KV from DRAM.
/// </summary>
internal static class AttentionStepBench
{
    private const int Layers = 4, Heads = 16, KvHeads = 8, HeadDim = 128, BlockSize = 16, KvDim = KvHeads * HeadDim;

    public static void Run(WorkerPool pool)
    {
        // (name, sequences as (start position, tokens))
        var steps = new (string Name, (int Start, int T)[] Seqs)[]
        {
            ("16 decodes at 88", Enumerable.Repeat((88, 1), 16).ToArray()),
            ("16 decodes at 500", Enumerable.Repeat((500, 1), 16).ToArray()),
            ("16 decodes at 2000", Enumerable.Repeat((2000, 1), 16).ToArray()),
            ("4 decodes at 2000", Enumerable.Repeat((2000, 1), 4).ToArray()),
            ("1 decode at 4000", [(4000, 1)]),
            ("chunk 512 at 1536", [(1536, 512)]),
            ("1 decode at 8000 + 15 at 100", [(100, 1), (100, 1), (100, 1), (100, 1), (100, 1), (100, 1), (100, 1), (8000, 1),
                (100, 1), (100, 1), (100, 1), (100, 1), (100, 1), (100, 1), (100, 1), (100, 1)]),
            ("15 decodes at 100 + chunk 256 at 0", [.. Enumerable.Repeat((100, 1), 15), (0, 256)]),
        };
        Console.WriteLine($"attention step, {Layers} layers, f16 KV, {pool.ThreadCount} threads; load {File.ReadAllText("/proc/loadavg").Trim()}");
        foreach (var (name, seqs) in steps)
        {
            var rng = new Random(3);
            int[] blocksOf = seqs.Select(s => (s.Start + s.T + BlockSize - 1) / BlockSize).ToArray();
            int blocks = blocksOf.Sum();
            int rowBytes = (int)KvCacheDType.F16.Bytes(KvDim);
            var keys = new byte[Layers][];
            var values = new byte[Layers][];
            for (int l = 0; l < Layers; l++)
            {
                keys[l] = new byte[(long)blocks * BlockSize * rowBytes];
                values[l] = new byte[keys[l].Length];
                rng.NextBytes(keys[l]);
                rng.NextBytes(values[l]);
                for (int i = 1; i < keys[l].Length; i += 2)
                {
                    keys[l][i] &= 0x3B;   // f16 exponents well inside range: no inf/nan
                    values[l][i] &= 0x3B;
                }
            }

            // Shuffled blocks: a long-running server's fragmented pool; KVSTEP_SEQUENTIAL=1 gives each sequence consecutive
            // blocks, as a fresh pool does.
            int[] tables = Environment.GetEnvironmentVariable("KVSTEP_SEQUENTIAL") == "1"
                ? Enumerable.Range(0, blocks).ToArray()
                : Enumerable.Range(0, blocks).OrderBy(_ => rng.Next()).ToArray();
            int tokens = seqs.Sum(s => s.T);
            var step = new AttentionSequence[seqs.Length];
            for (int i = 0, row = 0, at = 0; i < seqs.Length; row += seqs[i].T, at += blocksOf[i], i++)
            {
                step[i] = new AttentionSequence(row, seqs[i].T, seqs[i].Start, at, blocksOf[i]);
            }

            float[] q = new float[tokens * Heads * HeadDim], output = new float[q.Length];
            for (int i = 0; i < q.Length; i++)
            {
                q[i] = (float)(rng.NextDouble() * 2 - 1);
            }

            void PerSequence()
            {
                for (int l = 0; l < Layers; l++)
                {
                    foreach (AttentionSequence s in step)
                    {
                        int n = s.TokenCount * Heads * HeadDim;
                        Attention.Causal(pool, q.AsSpan(s.TokenOffset * Heads * HeadDim, n), s.TokenCount, s.StartPosition, keys[l], values[l],
                            KvCacheDType.F16, tables.AsSpan(s.TableOffset, s.TableLength), BlockSize, Heads, KvHeads, HeadDim, 0.088f,
                            output.AsSpan(s.TokenOffset * Heads * HeadDim, n));
                    }
                }
            }

            void OneDispatch()
            {
                for (int l = 0; l < Layers; l++)
                {
                    Attention.Causal(pool, q, step, keys[l], values[l], KvCacheDType.F16, tables, BlockSize, Heads, KvHeads, HeadDim, 0.088f, output);
                }
            }

            PerSequence();
            OneDispatch();
            double a = double.MaxValue, b = double.MaxValue;
            var total = Stopwatch.StartNew();
            for (int round = 0; round < 5 || total.Elapsed.TotalSeconds < 3; round++)
            {
                long t0 = Stopwatch.GetTimestamp();
                PerSequence();
                long t1 = Stopwatch.GetTimestamp();
                OneDispatch();
                long t2 = Stopwatch.GetTimestamp();
                a = Math.Min(a, Stopwatch.GetElapsedTime(t0, t1).TotalSeconds);
                b = Math.Min(b, Stopwatch.GetElapsedTime(t1, t2).TotalSeconds);
            }

            double kvBytes = seqs.Sum(s => (double)(s.Start + s.T) * 2 * rowBytes);   // each sequence's keys and values, read once
            Console.WriteLine($"{name,-36} per sequence {a / Layers * 1e6,8:F1} µs/layer   one dispatch {b / Layers * 1e6,8:F1} µs/layer   ({a / b:F2}x)" +
                (seqs.All(s => s.T == 1) ? $"   the KV once at {kvBytes / (b / Layers) / 1e9:F1} GB/s" : ""));
        }
    }
}
