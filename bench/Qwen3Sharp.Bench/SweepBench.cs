using System.Diagnostics;
using System.Runtime.InteropServices;
using Qwen3Sharp.Cache;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Model;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Bench;

/// <summary>
/// Where a single-token decode step loses against the read bound (`quick 2 sweep=MODEL`): in one process, interleaved
/// rounds, the whole step (Qwen3Model.Forward), the step's products alone in the model's order, a plain vectorised sum
/// over the same matrices with the same dispatches (what the data placement and the dispatch pattern allow), and a sum
/// over one anonymous buffer (the bound as MemoryBandwidth measures it). Each as GB/s of the model's matrix bytes.
/// </summary>
internal static unsafe class SweepBench
{
    private const int ItemBytes = 256 << 10;

    public static void Run(string model, int threads, int rounds = 8)
    {
        using var m = Qwen3Model.Load(model, threads);
        using var pool = new WorkerPool(threads);
        var w = m.Weights;
        var matrices = w.Layers.SelectMany(l => l.Matrices).Append(w.LmHead).ToArray();
        long bytes = w.MatrixBytes;
        int vocab = m.VocabSize;
        KvCache cache = m.CreateCache(64);
        float[] logits = new float[vocab];
        var rng = new Random(3);
        int[] prompt = Enumerable.Range(0, 32).Select(_ => rng.Next(vocab)).ToArray();
        m.Forward(prompt, 0, cache, logits);
        float[] x = new float[m.Config.IntermediateSize], y = new float[vocab];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = 0.01f * ((i * 7919) % 201 - 100);
        }

        long anonBytes = 1L << 30;
        byte* anon = (byte*)NativeMemory.AlignedAlloc((nuint)anonBytes, 64);
        float* sinks = (float*)NativeMemory.AllocZeroed((nuint)threads * 16, sizeof(float));
        MemoryBandwidth.Fill(pool, anon, anonBytes);
        string[] names = ["step (Forward)", "products (MatMul)", "sum over matrices", "sum over anon 1 GiB"];
        var times = names.Select(_ => new List<double>()).ToArray();
        Action[] runs =
        [
            () => m.Forward([prompt[0]], 32, cache, logits),
            () =>
            {
                foreach (WeightView v in matrices)
                {
                    MatMul.Multiply(pool, x.AsSpan(0, v.ColCount), 1, v, y.AsSpan(0, v.RowCount));
                }
            },
            () =>
            {
                foreach (WeightView v in matrices)
                {
                    var job = new SumJob { Data = (byte*)v.Data, Bytes = v.ByteCount, Sinks = sinks };
                    pool.Run(ref job, (int)((v.ByteCount + ItemBytes - 1) / ItemBytes));
                }
            },
            () => MemoryBandwidth.ReadPass(pool, anon, anonBytes, sinks),
        ];
        foreach (Action a in runs)
        {
            a();
        }

        for (int round = 0; round < rounds; round++)
        {
            for (int k = 0; k < runs.Length; k++)
            {
                int slot = (round & 1) == 0 ? k : runs.Length - 1 - k;
                long start = Stopwatch.GetTimestamp();
                runs[slot]();
                times[slot].Add(Stopwatch.GetElapsedTime(start).TotalSeconds);
            }
        }

        Console.WriteLine($"{model}: {matrices.Length} matrices, {bytes / 1e9:F3} GB, {threads} threads, {rounds} rounds; load {File.ReadAllText("/proc/loadavg").Trim()}");
        for (int k = 0; k < runs.Length; k++)
        {
            long b = k == 3 ? anonBytes : bytes;
            var t = times[k].Order().ToArray();
            Console.WriteLine($"{names[k],-22} best {t[0] * 1e3,8:F1} ms {b / t[0] / 1e9,6:F1} GB/s   median {t[t.Length / 2] * 1e3,8:F1} ms {b / t[t.Length / 2] / 1e9,6:F1} GB/s");
        }

        NativeMemory.AlignedFree(anon);
        NativeMemory.Free(sinks);
    }

    private struct SumJob : IPoolJob
    {
        public byte* Data;
        public long Bytes;
        public float* Sinks;

        public readonly void Execute(int index, int worker)
        {
            long offset = (long)index * ItemBytes;
            int n = (int)Math.Min(ItemBytes, Bytes - offset) / 128 * 32;
            float* p = (float*)(Data + offset);
            var a0 = System.Runtime.Intrinsics.Vector256<float>.Zero;
            var a1 = a0;
            var a2 = a0;
            var a3 = a0;
            for (int i = 0; i < n; i += 32)
            {
                a0 += System.Runtime.Intrinsics.Vector256.Load(p + i);
                a1 += System.Runtime.Intrinsics.Vector256.Load(p + i + 8);
                a2 += System.Runtime.Intrinsics.Vector256.Load(p + i + 16);
                a3 += System.Runtime.Intrinsics.Vector256.Load(p + i + 24);
            }

            Sinks[worker * 16] += System.Runtime.Intrinsics.Vector256.Sum(a0 + a1 + a2 + a3);
        }
    }
}
