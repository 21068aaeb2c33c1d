using System.Diagnostics;
using Qwen3Sharp.Cache;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Loading;
using Qwen3Sharp.Model;
using Qwen3Sharp.Tokenization;

namespace Qwen3Sharp.Cli.Commands;

/// <summary>
/// <c>qwen3 bench --kl-reference REF --kl-text FILE</c>: how far a (quantized) model's next-token distributions are from
/// a reference model's on the same tokens, scored as llama-perplexity's <c>--kl-divergence</c>: the text's tokens in
/// chunks of <c>--kl-context</c>, each chunk evaluated from an empty cache, the distributions at positions
/// context/2 .. context−2 of each chunk scored (KL(reference ‖ model), and whether the two top-1 tokens agree).
/// The model runs both quantized decode paths (int8 and float activations) on the same tokens, in batches of
/// <c>--kl-batch</c> tokens (under 32: the decode kernels; 32 and more: the float prefill panels).
/// </summary>
public static partial class BenchCommand
{
    private static async Task<int> KlDivergenceAsync(BenchOptions o, string directory, int threads, CancellationToken ct)
    {
        TextWriter w = o.Context.Out;
        if (o.KlText is null)
        {
            await o.Context.Error.WriteLineAsync("--kl-reference needs --kl-text FILE (a text of at least 2 × --kl-context tokens).");
            return Qwen3Cli.ExitUsage;
        }

        string referenceDirectory = await ModelSource.ResolveAsync(o.KlReference!, o.Context, ct);
        string text = await File.ReadAllTextAsync(o.KlText, ct);
        int ctx = o.KlContext;
        var options = new Qwen3ModelOptions { ThreadCount = threads, ContextSize = ctx, MaxBatchTokens = Math.Max(ctx, 32) };
        using var reference = new Qwen3Model(ModelWeights.Load(referenceDirectory, WeightPlacement.Mapped), options);
        // Each path as the engine runs it: float activations in the row layout (the 8-row groups have only the int8 path),
        // int8 in the layout loading gives by default, so that with the 8-row groups a batch of 32 tokens or more takes
        // their int8 prefill (QWEN3_QUANT_PREFILL) as a served prompt does, not the row layout's float panels.
        using var model = new Qwen3Model(ModelWeights.Load(directory, o.Weights, o.Quantize, QuantLayout.Rows), options);
        using Qwen3Model? grouped = KernelSelection.QuantLayout == QuantLayout.Interleaved8 && HasGroupLayout(model.Weights)
            ? new Qwen3Model(ModelWeights.Load(directory, o.Weights, o.Quantize, QuantLayout.Interleaved8), options) : null;
        int[] tokens = LoadTokenizer(referenceDirectory, reference.Weights, directory, model.Weights).Encode(text);
        int chunks = tokens.Length / ctx;
        if (chunks < 2)
        {
            await o.Context.Error.WriteLineAsync($"--kl-text has {tokens.Length} tokens; --kl-context {ctx} needs at least {2 * ctx} (two chunks).");
            return Qwen3Cli.ExitUsage;
        }

        int vocab = reference.VocabSize;
        if (model.VocabSize != vocab)
        {
            await o.Context.Error.WriteLineAsync($"the model's vocabulary ({model.VocabSize}) differs from the reference's ({vocab}).");
            return Qwen3Cli.ExitUsage;
        }

        int first = ctx / 2, scored = ctx - 1 - first;
        QuantDecodeKernel[] paths = [QuantDecodeKernel.Int8, QuantDecodeKernel.Float];
        var stats = paths.ToDictionary(p => p, _ => new KlStats());
        var seconds = paths.ToDictionary(p => p, _ => 0.0);
        var refLogits = new float[ctx * vocab];                 // [ctx, vocab]
        var logits = new float[ctx * vocab];
        var refLogProbs = new double[vocab];
        var logProbs = new double[vocab];
        var clock = new Stopwatch();
        for (int chunk = 0; chunk < chunks; chunk++)
        {
            ct.ThrowIfCancellationRequested();
            ReadOnlySpan<int> ids = tokens.AsSpan(chunk * ctx, ctx);
            using (KvCache cache = reference.CreateCache(ctx))
            {
                reference.ForwardAll(ids, 0, cache, refLogits);
            }

            foreach (QuantDecodeKernel path in paths)
            {
                Qwen3Model measured = path == QuantDecodeKernel.Int8 && grouped is not null ? grouped : model;
                measured.QuantDecode = path;
                clock.Restart();
                using (KvCache cache = measured.CreateCache(ctx))
                {
                    for (int start = 0; start < ctx; start += o.KlBatch)
                    {
                        int count = Math.Min(o.KlBatch, ctx - start);
                        measured.ForwardAll(ids.Slice(start, count), start, cache, logits.AsSpan(start * vocab, count * vocab));
                    }
                }

                seconds[path] += clock.Elapsed.TotalSeconds;
                for (int i = first; i < first + scored; i++)
                {
                    LogSoftmax(refLogits.AsSpan(i * vocab, vocab), refLogProbs);
                    LogSoftmax(logits.AsSpan(i * vocab, vocab), logProbs);
                    stats[path].Add(refLogProbs, logProbs);
                }
            }
        }

        w.WriteLine($"kl           {Server.ServerOptions.ModelNameFromDirectory(directory)} ({MatrixFormats(model.Weights)}) against " +
            $"{Server.ServerOptions.ModelNameFromDirectory(referenceDirectory)} ({MatrixFormats(reference.Weights)})");
        w.WriteLine($"text         {o.KlText}: {tokens.Length} tokens, {chunks} chunks of {ctx}, {chunks * scored} positions scored " +
            $"(positions {first}..{ctx - 2} of each chunk, as llama-perplexity --kl-divergence -c {ctx}); batches of {o.KlBatch} tokens");
        if (grouped is not null)
        {
            w.WriteLine($"layouts      int8: {MatrixFormats(grouped.Weights)} (8-row groups" +
                (o.KlBatch >= 32 ? $"; batches of {o.KlBatch}:{QuantPrefill(grouped.Weights)[1..]}" : "") +
                $"), float: {MatrixFormats(model.Weights)} (rows)");
        }

        foreach (QuantDecodeKernel path in paths)
        {
            KlStats s = stats[path];
            w.WriteLine($"{(KernelSelection.Name(path) + " activations").PadRight(12)} mean KL {s.Mean:F6} ± {s.StandardError:F6}, max {s.Max:F6}, " +
                $"top-1 agreement {100.0 * s.SameTop / s.Count:F2}% ({s.SameTop}/{s.Count}), {chunks * ctx / seconds[path]:F1} tok/s");
        }

        return Qwen3Cli.ExitOk;
    }

    /// <summary>Whether some matrix of a row-layout load has an 8-row group layout (GGML block formats, MLX affine with BF16 tables).</summary>
    private static bool HasGroupLayout(ModelWeights weights)
        => weights.Layers.SelectMany(l => l.Matrices).Append(weights.EmbedTokens).Append(weights.LmHead)
            .Any(m => QuantMatMul.GroupLayoutOf(m.DType) is not null || QuantMatMul.AffineGroupLayoutOf(m) is not null);

    /// <summary>The reference's tokenizer (GGUF metadata or tokenizer.json), else the measured model's.</summary>
    private static Qwen3Tokenizer LoadTokenizer(string referencePath, ModelWeights reference, string modelPath, ModelWeights model)
    {
        foreach (var (path, weights) in new[] { (referencePath, reference), (modelPath, model) })
        {
            if (weights.Gguf is { } file)
            {
                var (tokenizerJson, tokenizerConfigJson) = GgufModel.ReadTokenizer(file);
                return Qwen3Tokenizer.FromJson(tokenizerJson, tokenizerConfigJson);
            }

            if (File.Exists(Path.Combine(path, "tokenizer.json")))
            {
                return Qwen3Tokenizer.Load(path);
            }
        }

        return Qwen3Tokenizer.Load(referencePath);   // the error names the missing file
    }

    private static void LogSoftmax(ReadOnlySpan<float> logits, double[] destination)
    {
        double max = double.NegativeInfinity;
        foreach (float v in logits)
        {
            max = Math.Max(max, v);
        }

        double sum = 0;
        foreach (float v in logits)
        {
            sum += Math.Exp(v - max);
        }

        double log = max + Math.Log(sum);
        for (int i = 0; i < logits.Length; i++)
        {
            destination[i] = logits[i] - log;
        }
    }

    /// <summary>Running KL(reference ‖ model) over scored positions, and top-1 agreement (llama-perplexity's "Same top p").</summary>
    private sealed class KlStats
    {
        private double _sum, _sum2;

        public int Count { get; private set; }

        public int SameTop { get; private set; }

        public double Max { get; private set; }

        public double Mean => _sum / Count;

        public double StandardError => Count > 1 ? Math.Sqrt(Math.Max(0, _sum2 / Count - Mean * Mean) / (Count - 1)) : 0;

        public void Add(double[] reference, double[] model)
        {
            double kl = 0;
            int refTop = 0, top = 0;
            for (int i = 0; i < reference.Length; i++)
            {
                kl += Math.Exp(reference[i]) * (reference[i] - model[i]);
                refTop = reference[i] > reference[refTop] ? i : refTop;
                top = model[i] > model[top] ? i : top;
            }

            _sum += kl;
            _sum2 += kl * kl;
            Max = Math.Max(Max, kl);
            Count++;
            SameTop += refTop == top ? 1 : 0;
        }
    }
}
