using System.Diagnostics;
using Qwen3Sharp.Cache;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Loading;
using Qwen3Sharp.Model;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Cli.Commands;

/// <summary>
/// <c>qwen3 bench</c>: load time, prefill and decode speed end to end on the model itself (no sampling, no HTTP),
/// peak RSS, and decode measured against the memory-bandwidth bound, with the bandwidth measured in the same run.
/// </summary>
public static partial class BenchCommand
{
    public static async Task<int> RunAsync(BenchOptions o, CancellationToken ct)
    {
        TextWriter w = o.Context.Out;
        string directory = await ModelSource.ResolveAsync(o.Model, o.Context, ct);
        int threads = o.Threads ?? Environment.ProcessorCount;

        DecodeKernel decodeKernel = KernelSelection.Decode;   // a bad QWEN3_DECODE_KERNEL fails here, before the load
        double bandwidth = MeasureBandwidth(threads);

        var clock = Stopwatch.StartNew();
        using ModelWeights weights = ModelWeights.Load(directory, o.Weights, o.Quantize);
        int context = o.PromptTokens + o.GenTokens + 16;
        using var model = new Qwen3Model(weights, new Qwen3ModelOptions { ThreadCount = threads, ContextSize = context });
        double loadSeconds = clock.Elapsed.TotalSeconds;

        var logits = new float[model.VocabSize];
        var random = new Random(1234);
        int[] prompt = Enumerable.Range(0, o.PromptTokens).Select(_ => random.Next(model.VocabSize)).ToArray();

        using (KvCache warm = model.CreateCache())
        {
            model.Forward(prompt.AsSpan(0, Math.Min(32, prompt.Length)), 0, warm, logits);  // maps the weights in
            model.Forward([1], Math.Min(32, prompt.Length), warm, logits);
        }

        using KvCache cache = model.CreateCache();
        clock.Restart();
        model.Forward(prompt, 0, cache, logits);
        double prefillSeconds = clock.Elapsed.TotalSeconds;

        clock.Restart();
        for (int i = 0; i < o.GenTokens; i++)
        {
            ct.ThrowIfCancellationRequested();
            int next = ArgMax(logits);
            model.Forward([next], o.PromptTokens + i, cache, logits);
        }

        double decodeSeconds = clock.Elapsed.TotalSeconds;
        long peakRss = Process.GetCurrentProcess().PeakWorkingSet64;
        bandwidth = Math.Max(bandwidth, MeasureBandwidth(threads));  // before and after: neighbours on a shared machine vary
        long bytesPerToken = WeightBytesPerToken(weights);
        double prefillRate = o.PromptTokens / prefillSeconds;
        double decodeRate = o.GenTokens / decodeSeconds;
        double bound = bandwidth * 1e9 / bytesPerToken;
        long weightBytes = weights.FileBytes;

        Qwen3Config c = weights.Config;
        w.WriteLine($"model        {Server.ServerOptions.ModelNameFromDirectory(directory)}: {c.NumHiddenLayers} layers, hidden {c.HiddenSize}, " +
            $"vocab {c.VocabSize}, {MatrixFormats(weights)}, {weightBytes / 1e9:F2} GB of weights");
        w.WriteLine($"threads      {threads}, weights " + (o.Quantize is { } q ? $"quantized to {q} at load (--quantize)"
            : o.Weights == WeightPlacement.HugePageCopy ? "copied into huge pages" : "memory-mapped in place"));
        w.WriteLine($"kernels      decode bf16 {KernelSelection.Name(decodeKernel)} ({KernelSelection.DecodeKernelVariable}), " +
            $"{KernelSelection.VectorBits}-bit vectors, prefill managed float32 panels (JIT bf16 prefill: not built)");
        w.WriteLine($"load         {loadSeconds:F2} s");
        w.WriteLine($"prefill      {prefillRate:F1} tok/s  ({o.PromptTokens} tokens in {prefillSeconds:F2} s)");
        w.WriteLine($"decode       {decodeRate:F2} tok/s  ({o.GenTokens} tokens in {decodeSeconds:F2} s, {1000 / decodeRate:F1} ms/token)");
        w.WriteLine($"peak RSS     {peakRss / 1e9:F2} GB  ({(double)peakRss / weightBytes:F2}x the weight bytes)");
        w.WriteLine($"bandwidth    {bandwidth:F1} GB/s  (measured in this run, best of before and after, {threads} threads)");
        w.WriteLine($"bound        {bound:F2} tok/s  ({bytesPerToken / 1e9:F2} GB of weights read per decoded token)");
        w.WriteLine($"decode/bound {decodeRate / bound:P0}");
        return Qwen3Cli.ExitOk;
    }

    /// <summary>
    /// Weight bytes a decode step reads: every projection of every layer and the output projection (vocab × hidden,
    /// read in full even when tied to the embeddings); the embedding lookup reads one row and the norms are negligible.
    /// </summary>
    /// <summary>The matrices' element types, most bytes first: "BF16", or a mixed file's "Q4_K+Q6_K" (Q4_K_M).</summary>
    internal static string MatrixFormats(ModelWeights weights)
    {
        var bytes = new Dictionary<DType, long> { [weights.EmbedTokens.DType] = weights.EmbedTokens.ByteCount };
        foreach (Qwen3LayerWeights l in weights.Layers)
        {
            foreach (WeightView m in new[] { l.QProj, l.KProj, l.VProj, l.OProj, l.GateProj, l.UpProj, l.DownProj })
            {
                bytes[m.DType] = bytes.GetValueOrDefault(m.DType) + m.ByteCount;
            }
        }

        return string.Join("+", bytes.OrderByDescending(kv => kv.Value).Select(kv => kv.Key));
    }

    internal static long WeightBytesPerToken(ModelWeights weights)
    {
        long bytes = weights.LmHead.ByteCount;
        foreach (Qwen3LayerWeights l in weights.Layers)
        {
            foreach (WeightView m in new[] { l.QProj, l.KProj, l.VProj, l.OProj, l.GateProj, l.UpProj, l.DownProj })
            {
                bytes += m.ByteCount;
            }
        }

        return bytes;
    }

    private static double MeasureBandwidth(int threads)
    {
        using var pool = new WorkerPool(threads);
        MemoryBandwidth.Measure(pool, 256L << 20);  // warm-up
        return MemoryBandwidth.Measure(pool);
    }

    private static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
            {
                best = i;
            }
        }

        return best;
    }
}
