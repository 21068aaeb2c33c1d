using System.Diagnostics;
using Qwen3Sharp.Cache;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Model;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Bench;

/// <summary>
/// Where a batched decode step goes (`quick 2 step=MODEL_DIR`): T sequences of 32 cached tokens each decode one token
/// (Qwen3Model.Forward with T sequences, logits for all), against the same step's products alone (every layer's seven
/// matrices and the head at T tokens, MatMul.Multiply on a pool of the same size), for each QWEN3_BATCH_KERNEL value,
/// interleaved rounds, best per cell. The difference is what the step spends outside the products.
/// </summary>
internal static class StepBench
{
    public static void Run(string directory, int threads, int rounds = 3)
    {
        int[] tokenCounts = [1, 4, 8, 16];
        const int context = 48, cached = 32;
        // copied as `qwen3 serve` does (BF16: into the 8-row groups where QWEN3_FLOAT_LAYOUT gives them)
        using var model = Qwen3Model.Load(directory, new Qwen3ModelOptions { ThreadCount = threads, WeightPlacement = Qwen3Sharp.Loading.WeightPlacement.Copy });
        using var pool = new WorkerPool(threads);
        int vocab = model.VocabSize, kvDim = model.Config.NumKeyValueHeads * model.Config.HeadDim;
        var caches = Enumerable.Range(0, tokenCounts.Max()).Select(_ => model.CreateCache(context)).ToArray();
        float[] logits = new float[tokenCounts.Max() * vocab];
        var rng = new Random(5);
        foreach (KvCache cache in caches)
        {
            int[] prompt = Enumerable.Range(0, cached).Select(_ => rng.Next(vocab)).ToArray();
            model.Forward(prompt, 0, cache, logits.AsSpan(0, vocab));
        }

        BatchKernel[] kernels = [BatchKernel.Stream, BatchKernel.Hybrid, BatchKernel.Tiled];
        var step = new double[tokenCounts.Length, kernels.Length];
        var products = new double[tokenCounts.Length, kernels.Length];
        foreach (double[,] a in new[] { step, products })
        {
            for (int i = 0; i < a.Length; i++)
            {
                a[i / kernels.Length, i % kernels.Length] = double.MaxValue;
            }
        }

        BatchKernel saved = KernelSelection.Batch;
        var w = model.Weights;
        int maxCols = model.Config.IntermediateSize;
        float[] x = new float[tokenCounts.Max() * maxCols], y = new float[tokenCounts.Max() * vocab];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = 0.01f * ((i * 7919) % 201 - 100);
        }

        for (int round = 0; round < rounds; round++)
        {
            for (int ti = 0; ti < tokenCounts.Length; ti++)
            {
                int t = tokenCounts[ti];
                int[] ids = Enumerable.Range(0, t).Select(_ => rng.Next(vocab)).ToArray();
                var sequences = new BatchSequence[t];
                for (int s = 0; s < t; s++)
                {
                    sequences[s] = new BatchSequence(s, 1, cached, new KvCacheView(caches[s], [0], context, kvDim), computeLogits: true);
                }

                for (int k = 0; k < kernels.Length; k++)
                {
                    int slot = (round & 1) == 0 ? k : kernels.Length - 1 - k;
                    KernelSelection.Batch = kernels[slot];
                    long start = Stopwatch.GetTimestamp();
                    model.Forward(new ForwardBatch(ids, sequences), logits.AsSpan(0, t * vocab));
                    step[ti, slot] = Math.Min(step[ti, slot], Stopwatch.GetElapsedTime(start).TotalSeconds);

                    start = Stopwatch.GetTimestamp();
                    foreach (Loading.Qwen3LayerWeights l in w.Layers)
                    {
                        foreach (WeightView m in new[] { l.QProj, l.KProj, l.VProj, l.OProj, l.GateProj, l.UpProj, l.DownProj })
                        {
                            MatMul.Multiply(pool, x.AsSpan(0, t * m.ColCount), t, m, y.AsSpan(0, t * m.RowCount));
                        }
                    }

                    MatMul.Multiply(pool, x.AsSpan(0, t * w.LmHead.ColCount), t, w.LmHead, y.AsSpan(0, t * vocab));
                    products[ti, slot] = Math.Min(products[ti, slot], Stopwatch.GetElapsedTime(start).TotalSeconds);
                }
            }
        }

        KernelSelection.Batch = saved;
        Console.WriteLine($"batched decode step, {threads} threads, {cached} cached tokens per sequence, best of {rounds}; load {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine("tokens | " + string.Join(" | ", kernels.Select(k => $"{KernelSelection.Name(k)}: step ms (tok/s), products ms, rest ms")));
        for (int ti = 0; ti < tokenCounts.Length; ti++)
        {
            Console.WriteLine($"{tokenCounts[ti],6} | " + string.Join(" | ", kernels.Select((k, s) =>
                $"{step[ti, s] * 1e3,7:F1} ({tokenCounts[ti] / step[ti, s],5:F2}) {products[ti, s] * 1e3,7:F1} {(step[ti, s] - products[ti, s]) * 1e3,6:F1}")));
        }
    }
}
