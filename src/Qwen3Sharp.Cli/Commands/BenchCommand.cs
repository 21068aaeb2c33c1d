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
        if (o.KlReference is not null)
        {
            return await KlDivergenceAsync(o, directory, threads, ct);
        }

        DecodeKernel decodeKernel = KernelSelection.Decode;   // a bad QWEN3_DECODE_KERNEL fails here, before the load
        PrefillKernel prefillKernel = KernelSelection.Prefill; // likewise QWEN3_PREFILL_KERNEL
        QuantDecodeKernel quantDecode = KernelSelection.QuantDecode; // likewise QWEN3_QUANT_DECODE
        double bandwidth = MeasureBandwidth(threads);

        var clock = Stopwatch.StartNew();
        using ModelWeights weights = ModelWeights.Load(directory, o.Weights, o.Quantize);
        // Q8_0/Q4_0/K-quant models decode with both activation paths, alternating (QuantDecodeRounds × 2 passes of GenTokens).
        // Every decode pass is a fresh sequence at --depth (llama-bench's -d): the depth's tokens are prefilled once and
        // shared through the prefix cache, so all passes, and llama-bench's tg, see the same contexts.
        bool decodeAb = HasInt8Matrices(weights);
        // Matrices repacked into 8-row groups: decode A/Bs against the same file in row layout, loaded after peak RSS is read
        bool layoutAb = HasRepackedMatrices(weights);
        int context = Math.Max(o.PromptTokens, o.Depth + o.GenTokens) + 16;
        var model = new Qwen3Model(weights, new Qwen3ModelOptions { ThreadCount = threads, ContextSize = context, BatchInvariant = o.BatchInvariant });
        // The engine's paged KV cache in the chosen dtype; the runner owns the model. Room for the depth's holder and one
        // decode pass beside it (or the prompt alone).
        int blockSize = KvBlockPool.DefaultBlockSize;
        int blocks = Math.Max((o.PromptTokens + blockSize - 1) / blockSize, (2 * o.Depth + o.GenTokens) / blockSize + 3);
        using var runner = new Engine.Qwen3ModelRunner(model, maxSequences: 2, blocks, o.KvCacheDType);
        double loadSeconds = clock.Elapsed.TotalSeconds;

        var logits = new float[model.VocabSize];
        var random = new Random(1234);
        int[] prompt = Enumerable.Range(0, o.PromptTokens).Select(_ => random.Next(model.VocabSize)).ToArray();

        using (Engine.ISequenceState warm = runner.TryAllocateSequence()!)
        {
            runner.Forward(warm, prompt.AsSpan(0, Math.Min(32, prompt.Length)), logits);  // maps the weights in
            // Decode steps until the runtime's tiered JIT has promoted the per-step methods (30 calls each, compiled on a
            // background thread that otherwise takes a core from the first measured pass: Q8_0 measured 12.7-13.0 tok/s on
            // its first pass and 15.9-16.0 on later ones in the same process), as llama-bench runs a warm-up first.
            int room = Math.Min(context, blocks * blockSize) - Math.Min(32, prompt.Length) - 1;   // positions the warm-up may still take
            for (int i = 0; i < Math.Min(WarmUpDecodeSteps, room); i++)
            {
                runner.Forward(warm, [1 + i % 7], logits);
            }

            Thread.Sleep(500);   // the background compiles queued by the last calls
        }

        // Random prompts never hit the prefix cache (the warm-up's blocks are not full and are released).
        // Where the JIT bf16 kernel can run, prefill is measured with both kernels in this run, alternating (two rounds,
        // best of each), so neighbours' load hits both alike; the selected kernel goes last and its sequence feeds decode.
        bool ab = KernelSelection.JitBf16Supported && weights.Layers[0].QProj.DType == DType.BF16;
        PrefillKernel[] order = !ab ? [prefillKernel]
            : prefillKernel == PrefillKernel.JitBf16 ? [PrefillKernel.Managed, PrefillKernel.JitBf16] : [PrefillKernel.JitBf16, PrefillKernel.Managed];
        var best = new Dictionary<PrefillKernel, double>();
        var bestCpu = new Dictionary<PrefillKernel, double>();   // process CPU seconds: steadier than wall time on a shared machine
        using var process = Process.GetCurrentProcess();
        Engine.ISequenceState? sequence = null;
        try
        {
            for (int round = 0; round < (ab ? 2 : 1); round++)
            {
                foreach (PrefillKernel k in order)
                {
                    sequence?.Dispose();
                    sequence = runner.TryAllocateSequence()!;
                    model.PrefillKernel = k;
                    process.Refresh();
                    TimeSpan cpu0 = process.TotalProcessorTime;
                    clock.Restart();
                    runner.Forward(sequence, prompt, logits);
                    double seconds = clock.Elapsed.TotalSeconds;
                    process.Refresh();
                    best[k] = Math.Min(best.GetValueOrDefault(k, double.MaxValue), seconds);
                    bestCpu[k] = Math.Min(bestCpu.GetValueOrDefault(k, double.MaxValue), (process.TotalProcessorTime - cpu0).TotalSeconds);
                }
            }

            sequence?.Dispose();
            sequence = null;
            // --profile: one more prefill, of a fresh random prompt (no prefix-cache hit), with every phase timed
            PhaseSplit? prefillProfile = o.Profile ? ProfilePrefill(runner, model, o.PromptTokens, random) : null;
            int[] depth = [.. Enumerable.Range(0, o.Depth).Select(_ => random.Next(model.VocabSize))];
            var decode = new DecodeSetup(runner, depth, logits);
            using Engine.ISequenceState holder = decode.HoldDepth();
            return Report(o, w, directory, threads, weights, model, decode, DecodeKernels(weights, decodeKernel, quantDecode), prefillKernel, best, bestCpu,
                loadSeconds, bandwidth, decodeAb, layoutAb ? context : null, prefillProfile, ct);
        }
        finally
        {
            sequence?.Dispose();
        }
    }

    /// <summary>What every decode pass starts from: the runner, the --depth tokens (cached), the logits buffer.</summary>
    private sealed record DecodeSetup(Engine.Qwen3ModelRunner Runner, int[] Depth, float[] Logits)
    {
        /// <summary>A sequence holding the depth's tokens, so their full blocks stay in the prefix cache for every pass; dispose it after the passes.</summary>
        public Engine.ISequenceState HoldDepth()
        {
            Engine.ISequenceState holder = Runner.TryAllocateSequence()!;
            if (Depth.Length > 0)
            {
                Runner.Forward(holder, Depth, Logits);
            }

            return holder;
        }
    }

    private static int Report(BenchOptions o, TextWriter w, string directory, int threads, ModelWeights weights, Qwen3Model model, DecodeSetup decode,
        string decodeKernels, PrefillKernel prefillKernel,
        Dictionary<PrefillKernel, double> prefill, Dictionary<PrefillKernel, double> prefillCpu, double loadSeconds, double bandwidth,
        bool decodeAb, int? layoutAbContext, PhaseSplit? prefillProfile, CancellationToken ct)
    {
        double prefillSeconds = prefill[prefillKernel];
        QuantDecodeKernel selected = model.QuantDecode;
        var decodeBest = new Dictionary<QuantDecodeKernel, (double Wall, double Cpu)>();
        using var process = Process.GetCurrentProcess();
        if (decodeAb)
        {
            // int8 and float activation paths alternate, so neighbours' load hits both alike
            QuantDecodeKernel other = selected == QuantDecodeKernel.Int8 ? QuantDecodeKernel.Float : QuantDecodeKernel.Int8;
            decodeBest = AlternatingBest([other, selected], k => model.QuantDecode = k, () => TimeDecode(o, decode, process, ct));
            model.QuantDecode = selected;
        }

        // BF16 row matrices: the selected decode kernel against four-streams (one-row where four-streams is selected), alternating
        DecodeKernel chosenKernel = KernelSelection.Decode;
        DecodeKernel otherKernel = chosenKernel == DecodeKernel.FourStreams ? DecodeKernel.OneRow : DecodeKernel.FourStreams;
        var bf16Best = new Dictionary<DecodeKernel, (double Wall, double Cpu)>();
        if (!decodeAb && !o.BatchInvariant && MatrixDTypes(weights).Contains(DType.BF16))
        {
            try
            {
                bf16Best = AlternatingBest([otherKernel, chosenKernel], k => KernelSelection.Decode = k, () => TimeDecode(o, decode, process, ct));
            }
            finally
            {
                KernelSelection.Decode = chosenKernel;
            }
        }

        double decodeSeconds = TimeDecode(o, decode, process, ct).Wall;
        long peakRss = Process.GetCurrentProcess().PeakWorkingSet64;
        (double X8, double Rows, double X8Cpu, double RowsCpu)? layoutBest = layoutAbContext is { } context ? LayoutAb(o, directory, threads, context, decode, process, ct) : null;
        // one buffer for the after-read and every paired window, made once peak RSS is read (faulting in a fresh gigabyte
        // for each read cost more than the reads: ~1.7 s of system time per GiB on one Zen 5 VM)
        using var probePool = new WorkerPool(threads);
        using var probe = new MemoryBandwidth.Probe(probePool);
        probe.Measure();                                             // warm-up, as before the first read
        bandwidth = Math.Max(bandwidth, probe.Measure());            // before and after: neighbours on a shared machine vary
        long bytesPerToken = weights.MatrixBytes;   // every projection and the whole output head (read in full even when tied)
        double prefillRate = o.PromptTokens / prefillSeconds;
        double decodeRate = o.GenTokens / decodeSeconds;
        double bound = bandwidth * 1e9 / bytesPerToken;
        long weightBytes = weights.FileBytes;
        double[] paired = PairedBound(o, decode, process, probe, bytesPerToken, ct);

        Qwen3Config c = weights.Config;
        w.WriteLine($"model        {Server.ServerOptions.ModelNameFromDirectory(directory)}: {c.NumHiddenLayers} layers, hidden {c.HiddenSize}, " +
            $"vocab {c.VocabSize}, {MatrixFormats(weights)}, {weightBytes / 1e9:F2} GB of weights");
        w.WriteLine($"threads      {threads}, weights " + (o.Quantize is { } q ? $"quantized to {q} at load (--quantize)"
            : o.Weights == WeightPlacement.HugePageCopy ? "copied into huge pages"
            : o.Weights == WeightPlacement.Copy ? "copied into private memory" : "memory-mapped in place"));
        string floatPrefill = MatrixDTypes(weights).Any(d => d.IsFloatGroups())
            ? "prefill the same 8-row groups (float32 activations; " +
              $"JIT AVX512_BF16 kernel {(KernelSelection.JitBf16Supported ? "available, rows only" : "not available on this CPU")})"
            : $"prefill bf16 {KernelSelection.Name(prefillKernel)} ({KernelSelection.PrefillKernelVariable}; " +
              $"{(prefillKernel == PrefillKernel.JitBf16 ? "generated AVX512_BF16 vdpbf16ps code, bf16 activations" : "float32 panels")}; " +
              $"JIT AVX512_BF16 kernel {(KernelSelection.JitBf16Supported ? "available" : "not available on this CPU")})";
        w.WriteLine($"kernels      decode {decodeKernels}, {KernelSelection.VectorBits}-bit vectors, {floatPrefill}" +
            QuantPrefill(weights) +
            (o.BatchInvariant ? "; batch invariant (--batch-invariant: every product in the decode's order, no panels or JIT)" : ""));
        w.WriteLine($"kv cache     {o.KvCacheDType.Name()}, {KvBlockPool.BytesPerToken(c, o.KvCacheDType) / 1024.0:F0} KiB per token, " +
            $"{decode.Runner.KvCacheBytes / 1e6:F0} MB for {decode.Runner.KvBlockCount} blocks of {decode.Runner.KvBlockSize}");
        w.WriteLine($"load         {loadSeconds:F2} s");
        DType[] groupFormats = GroupFormats(weights);   // their prefill path, else BF16's kernel
        string prefillPath = groupFormats.Length > 0 ? (groupFormats.All(MatMul.PrefillsInt8) ? "int8" : "panels")
            : MatrixDTypes(weights).Any(d => d.IsFloatGroups()) ? "8-row float groups" : KernelSelection.Name(prefillKernel);
        w.WriteLine($"prefill      {prefillRate:F1} tok/s  ({o.PromptTokens} tokens in {prefillSeconds:F2} s, {prefillPath})");
        if (prefill.Count == 2)
        {
            double managed = o.PromptTokens / prefill[PrefillKernel.Managed], jit = o.PromptTokens / prefill[PrefillKernel.JitBf16];
            double managedCpu = o.PromptTokens / prefillCpu[PrefillKernel.Managed], jitCpu = o.PromptTokens / prefillCpu[PrefillKernel.JitBf16];
            w.WriteLine($"prefill A/B  managed {managed:F1} tok/s, jit-bf16 {jit:F1} tok/s ({jit / managed:F2}x; same run, alternating, best of 2 each)");
            w.WriteLine($"             per CPU-second: managed {managedCpu:F1} tok, jit-bf16 {jitCpu:F1} tok ({jitCpu / managedCpu:F2}x)");
        }

        w.WriteLine($"decode       {decodeRate:F2} tok/s  ({o.GenTokens} tokens in {decodeSeconds:F2} s, {1000 / decodeRate:F1} ms/token, " +
            $"positions {o.Depth}..{o.Depth + o.GenTokens - 1}: llama-bench -n {o.GenTokens} -d {o.Depth})");
        if (decodeBest.Count == 2)
        {
            var (iw, ic) = decodeBest[QuantDecodeKernel.Int8];
            var (fw, fc) = decodeBest[QuantDecodeKernel.Float];
            w.WriteLine($"decode A/B   int8 {o.GenTokens / iw:F2} tok/s, float {o.GenTokens / fw:F2} tok/s ({fw / iw:F2}x; same run, alternating, " +
                $"best of {QuantDecodeRounds} each); per CPU-second: int8 {o.GenTokens / ic:F2} tok, float {o.GenTokens / fc:F2} tok ({fc / ic:F2}x)");
        }

        if (bf16Best.Count == 2)
        {
            var (cw, cc) = bf16Best[chosenKernel];
            var (ow, oc) = bf16Best[otherKernel];
            string cn = KernelSelection.Name(chosenKernel), on = KernelSelection.Name(otherKernel);
            w.WriteLine($"decode A/B   {cn} {o.GenTokens / cw:F2} tok/s, {on} {o.GenTokens / ow:F2} tok/s ({ow / cw:F2}x; same run, alternating, " +
                $"best of {QuantDecodeRounds} each); per CPU-second: {cn} {o.GenTokens / cc:F2} tok, {on} {o.GenTokens / oc:F2} tok ({oc / cc:F2}x)");
        }

        if (layoutBest is { } lb)
        {
            w.WriteLine($"layout A/B   x8 {o.GenTokens / lb.X8:F2} tok/s, rows {o.GenTokens / lb.Rows:F2} tok/s ({lb.Rows / lb.X8:F2}x; same run, " +
                $"alternating, best of {QuantDecodeRounds} each; the rows model loaded after peak RSS was read); per CPU-second: " +
                $"x8 {o.GenTokens / lb.X8Cpu:F2} tok, rows {o.GenTokens / lb.RowsCpu:F2} tok ({lb.RowsCpu / lb.X8Cpu:F2}x)");
        }

        w.WriteLine($"peak RSS     {peakRss / 1e9:F2} GB  ({(double)peakRss / weightBytes:F2}x the weight bytes)");
        w.WriteLine($"bandwidth    {bandwidth:F1} GB/s  (measured in this run, best of before and after, {threads} threads)");
        w.WriteLine($"bound        {bound:F2} tok/s  ({bytesPerToken / 1e9:F2} GB of weights read per decoded token)");
        w.WriteLine($"decode/bound {decodeRate / bound:P0}  (the decode line against the bound above: the best bandwidth read of the run)");
        if (paired.Length > 0)
        {
            w.WriteLine($"paired       {paired[paired.Length / 2]:P0} median of {paired.Length} (range {paired[0]:P0}–{paired[^1]:P0}): each of " +
                $"{paired.Length} more decode passes against the bandwidth read just before and after it (--bound-windows)");
        }

        if (o.Profile)
        {
            WritePrefillProfile(o, w, prefillProfile!);
            WriteProfile(o, w, model, decode, process, ct);
        }

        return Qwen3Cli.ExitOk;
    }

    /// <summary>A profiled pass: its wall seconds and the phases' split of it.</summary>
    private sealed record PhaseSplit(double Wall, ForwardProfile Profile);

    /// <summary>One more prefill of <paramref name="tokens"/> random tokens with <see cref="Qwen3Model.Profile"/> set, on a fresh sequence.</summary>
    private static PhaseSplit ProfilePrefill(Engine.Qwen3ModelRunner runner, Qwen3Model model, int tokens, Random random)
    {
        int[] prompt = [.. Enumerable.Range(0, tokens).Select(_ => random.Next(model.VocabSize))];
        var logits = new float[model.VocabSize];
        var profile = new ForwardProfile();
        using Engine.ISequenceState sequence = runner.TryAllocateSequence()!;
        model.Profile = profile;
        try
        {
            var clock = Stopwatch.StartNew();
            runner.Forward(sequence, prompt, logits);
            return new PhaseSplit(clock.Elapsed.TotalSeconds, profile);
        }
        finally
        {
            model.Profile = null;
        }
    }

    /// <summary>Where a prefill's time goes: milliseconds per prefill and share of each phase, and what is spent outside the forward passes.</summary>
    private static void WritePrefillProfile(BenchOptions o, TextWriter w, PhaseSplit split)
    {
        double ms = split.Wall * 1000;
        w.WriteLine($"prefill profile {o.PromptTokens / split.Wall:F1} tok/s with timing on, {ms:F1} ms for {o.PromptTokens} tokens; phases in ms (share of the prefill):");
        WritePhases(w, split.Profile, ms, passes: 1);
    }

    /// <summary>
    /// Each phase's milliseconds per pass (of <paramref name="passes"/>) and share of <paramref name="perPassMs"/>, then
    /// what the pass spent outside the forward pass.
    /// </summary>
    private static void WritePhases(TextWriter w, ForwardProfile profile, double perPassMs, int passes)
    {
        foreach (ForwardPhase phase in Enum.GetValues<ForwardPhase>())
        {
            double ms = profile[phase].TotalMilliseconds / passes;
            w.WriteLine($"  {phase,-18} {ms,7:F2}  {ms / perPassMs,6:P1}");
        }

        double outside = perPassMs - profile.Total.TotalMilliseconds / passes;
        w.WriteLine($"  {"outside forward",-18} {outside,7:F2}  {outside / perPassMs,6:P1}");
    }

    /// <summary>
    /// One more pass of GenTokens decode steps with <see cref="Qwen3Model.Profile"/> set: milliseconds per token and share of
    /// each phase, and what the step spends outside the forward pass (the runner's bookkeeping, the argmax).
    /// </summary>
    private static void WriteProfile(BenchOptions o, TextWriter w, Qwen3Model model, DecodeSetup decode, Process process, CancellationToken ct)
    {
        var profile = new ForwardProfile();
        model.Profile = profile;
        double wall;
        try
        {
            wall = TimeDecode(o, decode, process, ct, profile).Wall;
        }
        finally
        {
            model.Profile = null;
        }

        double perToken = wall * 1000 / o.GenTokens;
        w.WriteLine($"profile      {o.GenTokens / wall:F2} tok/s with timing on, {perToken:F1} ms/token; phases in ms/token (share of the step):");
        WritePhases(w, profile, perToken, o.GenTokens);
    }

    /// <summary>
    /// The decode kernels the model's matrices take: "bf16 four-rows (QWEN3_DECODE_KERNEL)" for BF16, and for block
    /// formats which activation path each format gets, e.g. "Q8_0 int8 activations (QWEN3_QUANT_DECODE=int8)" or, for
    /// Q4_K_M, "Q4_K+Q6_K float activations, Q8_0 int8 activations (…)".
    /// </summary>
    internal static string DecodeKernels(ModelWeights weights, DecodeKernel decodeKernel, QuantDecodeKernel quantDecode)
    {
        DType[] formats = MatrixDTypes(weights);
        var parts = new List<string>();
        DType[] intFormats = [.. formats.Where(d => QuantMatMul.HasInt8Kernel(d) && d.RowGroup() == 1)];
        DType[] floatFormats = [.. formats.Where(d => d.IsBlockQuantized() && !QuantMatMul.HasInt8Kernel(d))];
        if (quantDecode == QuantDecodeKernel.Int8 && intFormats.Length > 0)
        {
            parts.Add($"{string.Join("+", intFormats)} int8 activations (vpmaddubsw block dots)");
            if (floatFormats.Length > 0)
            {
                parts.Add($"{string.Join("+", floatFormats)} float activations");
            }
        }
        else if (intFormats.Length + floatFormats.Length > 0)
        {
            parts.Add($"{string.Join("+", intFormats.Concat(floatFormats))} float activations");
        }

        // formats with an 8-row group layout left in rows by the layout switch (float activations keep every matrix in
        // rows, and say so already)
        DType[] rowFormats = [.. formats.Where(d => QuantMatMul.GroupLayoutOf(d) is not null)];
        if (rowFormats.Length > 0 && quantDecode != QuantDecodeKernel.Float)
        {
            parts.Add($"{string.Join("+", rowFormats)} row layout ({KernelSelection.QuantLayoutVariable}={KernelSelection.Name(QuantLayout.Rows)})");
        }

        DType[] groupFormats = GroupFormats(weights);
        if (groupFormats.Length > 0)
        {
            DType[] vnni = [.. groupFormats.Where(QuantMatMul.UsesVnni)];
            parts.Insert(0, $"{string.Join("+", groupFormats)} int8 activations against 8-row interleaved groups, repacked at load " +
                $"({KernelSelection.QuantLayoutVariable}={KernelSelection.Name(QuantLayout.Interleaved8)})" +
                (vnni.Length > 0 ? $", {string.Join("+", vnni)} through AVX-VNNI (vpdpbusd)" : ""));
        }

        if (formats.Any(d => d.IsFloatGroups()))
        {
            parts.Insert(0, $"{string.Join("+", formats.Where(d => d.IsFloatGroups()))} 8-row interleaved groups, repacked at load, every token count in one summation order " +
                $"({KernelSelection.FloatLayoutVariable}={KernelSelection.Name(QuantLayout.Interleaved8)})");
        }

        if (formats.Contains(DType.Affine))
        {
            parts.Insert(0, "MLX affine float activations (AffineMatMul)");   // widened in registers; no switch
        }

        if (parts.Count > 0)
        {
            return intFormats.Length + floatFormats.Length == 0 ? string.Join(", ", parts)
                : $"{string.Join(", ", parts)} ({KernelSelection.QuantDecodeVariable}={KernelSelection.Name(quantDecode)})";
        }

        return $"bf16 {KernelSelection.Name(decodeKernel)} ({KernelSelection.DecodeKernelVariable})";
    }

    /// <summary>
    /// How the 8-row group matrices prefill, e.g. "; prefill Q8_0x8 int8 activations in 31-token tiles (QWEN3_QUANT_PREFILL=int8)"
    /// (per format where they differ: "in Q4_Kx8 generated 32-token pair tiles, Q6_Kx8 32-token pair tiles"),
    /// or "" for a model without them.
    /// </summary>
    internal static string QuantPrefill(ModelWeights weights)
    {
        DType[] groupFormats = GroupFormats(weights);
        return groupFormats.Length == 0 ? "" : $"; prefill {string.Join("+", groupFormats)} " + (groupFormats.All(MatMul.PrefillsInt8)
            ? "int8 activations in " + string.Join(", ", groupFormats.GroupBy(QuantMatMul.ProductTiles).Select(g =>
                groupFormats.Length == 1 || g.Count() == groupFormats.Length ? g.Key : $"{string.Join("+", g)} {g.Key}"))
            : "dequantized to float32 panels") + $" ({KernelSelection.QuantPrefillVariable}={KernelSelection.Name(KernelSelection.QuantPrefill)})";
    }

    /// <summary>The matrices' 8-row group formats (Q8_0x8, Q4_0x8, Q4_Kx8, Q6_Kx8), most bytes first; empty for a model without them.</summary>
    internal static DType[] GroupFormats(ModelWeights weights) => [.. MatrixDTypes(weights).Where(d => d.RowGroup() > 1 && d.IsBlockQuantized())];

    /// <summary>The matrices' element types, most bytes first: "BF16", or a mixed file's "Q4_K+Q6_K" (Q4_K_M).</summary>
    internal static string MatrixFormats(ModelWeights weights) => string.Join("+", MatrixDTypes(weights));

    /// <summary>As <see cref="MatrixFormats"/>, the element types themselves.</summary>
    internal static DType[] MatrixDTypes(ModelWeights weights)
    {
        var bytes = new Dictionary<DType, long> { [weights.EmbedTokens.DType] = weights.EmbedTokens.ByteCount };
        foreach (Qwen3LayerWeights l in weights.Layers)
        {
            foreach (WeightView m in l.Matrices)
            {
                bytes[m.DType] = bytes.GetValueOrDefault(m.DType) + m.ByteCount;
            }
        }

        return [.. bytes.OrderByDescending(kv => kv.Value).Select(kv => kv.Key)];
    }

    private const int QuantDecodeRounds = 2;

    /// <summary>Decode steps of the warm-up before anything is timed (see RunAsync).</summary>
    private const int WarmUpDecodeSteps = 40;

    /// <summary>
    /// True when some matrix has both an integer- and a float-activation kernel (Q8_0, Q4_0 in rows, K-quants): bench then
    /// A/Bs the two decode paths. The 8-row groups (<see cref="DType.Q4_0x8"/>, <see cref="DType.Q4_Kx8"/>, <see cref="DType.Q6_Kx8"/>, <see cref="DType.Q8_0x8"/>) have only the integer one.
    /// </summary>
    internal static bool HasInt8Matrices(ModelWeights weights) => weights.Layers.Any(l =>
        l.Matrices.Any(m => QuantMatMul.HasInt8Kernel(m.DType) && m.DType.RowGroup() == 1));

    /// <summary>True when some matrix was repacked into 8-row groups at load (<see cref="DType.BF16x8"/>, <see cref="DType.Q4_0x8"/>, <see cref="DType.Q4_Kx8"/>, <see cref="DType.Q6_Kx8"/>, <see cref="DType.Q8_0x8"/>).</summary>
    internal static bool HasRepackedMatrices(ModelWeights weights) => weights.LmHead.DType.RowGroup() > 1 || weights.Layers.Any(l =>
        l.Matrices.Any(m => m.DType.RowGroup() > 1));

    /// <summary>
    /// Decode on the loaded (8-row) model against the same file loaded again in row layout (<see cref="QuantLayout.Rows"/>,
    /// used in place from the mapping), alternating <see cref="QuantDecodeRounds"/> rounds of GenTokens steps: best wall
    /// seconds of each.
    /// </summary>
    private static (double X8, double Rows, double X8Cpu, double RowsCpu) LayoutAb(BenchOptions o, string directory, int threads, int context,
        DecodeSetup decode, Process process, CancellationToken ct)
    {
        ModelWeights rowsWeights = ModelWeights.Load(directory, o.Weights, o.Quantize, QuantLayout.Rows, floatLayout: QuantLayout.Rows);   // the runner owns the model, the model these
        var rowsModel = new Qwen3Model(rowsWeights, new Qwen3ModelOptions { ThreadCount = threads, ContextSize = context, BatchInvariant = o.BatchInvariant });
        int blockSize = KvBlockPool.DefaultBlockSize;
        using var rowsRunner = new Engine.Qwen3ModelRunner(rowsModel, maxSequences: 2, (2 * o.Depth + o.GenTokens) / blockSize + 3, o.KvCacheDType);
        var rowsDecode = new DecodeSetup(rowsRunner, decode.Depth, new float[decode.Logits.Length]);
        using Engine.ISequenceState holder = rowsDecode.HoldDepth();   // the same depth, cached for the rows model's passes
        (double Wall, double Cpu) x8 = (double.MaxValue, double.MaxValue), rows = x8;
        for (int round = 0; round < QuantDecodeRounds; round++)
        {
            (double wall, double cpu) = TimeDecode(o, rowsDecode, process, ct);
            rows = (Math.Min(rows.Wall, wall), Math.Min(rows.Cpu, cpu));
            (wall, cpu) = TimeDecode(o, decode, process, ct);
            x8 = (Math.Min(x8.Wall, wall), Math.Min(x8.Cpu, cpu));
        }

        return (x8.Wall, rows.Wall, x8.Cpu, rows.Cpu);
    }

    /// <summary>
    /// Each of <paramref name="variants"/> selected in turn and timed, <see cref="QuantDecodeRounds"/> rounds, so neighbours'
    /// load hits all alike: per variant the best wall and CPU seconds.
    /// </summary>
    private static Dictionary<T, (double Wall, double Cpu)> AlternatingBest<T>(T[] variants, Action<T> select, Func<(double Wall, double Cpu)> time)
        where T : notnull
    {
        var best = new Dictionary<T, (double Wall, double Cpu)>();
        for (int round = 0; round < QuantDecodeRounds; round++)
        {
            foreach (T k in variants)
            {
                select(k);
                (double wall, double cpu) = time();
                (double bw, double bc) = best.GetValueOrDefault(k, (double.MaxValue, double.MaxValue));
                best[k] = (Math.Min(bw, wall), Math.Min(bc, cpu));
            }
        }

        return best;
    }

    /// <summary>
    /// GenTokens greedy decode steps on a fresh sequence at the depth (its cached blocks taken, the rest of the depth
    /// prefilled untimed, and reset from <paramref name="profile"/>): wall seconds and process CPU seconds. At depth 0 the first step decodes token 1 at position 0.
    /// </summary>
    private static (double Wall, double Cpu) TimeDecode(BenchOptions o, DecodeSetup decode, Process process, CancellationToken ct,
        ForwardProfile? profile = null)
    {
        (Engine.Qwen3ModelRunner runner, int[] depth, float[] logits) = decode;
        using Engine.ISequenceState sequence = runner.TryAllocateSequence()!;
        if (depth.Length > 0)
        {
            int cached = runner.AcquireCachedPrefix(sequence, depth);
            runner.Forward(sequence, depth.AsSpan(cached), logits);
        }
        else
        {
            logits.AsSpan().Clear();
            logits[1] = 1;
        }

        profile?.Reset();   // the depth's tail above is not a decode step
        process.Refresh();
        TimeSpan cpu0 = process.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < o.GenTokens; i++)
        {
            ct.ThrowIfCancellationRequested();
            int next = ArgMax(logits);
            runner.Forward(sequence, [next], logits);
        }

        double wall = clock.Elapsed.TotalSeconds;
        process.Refresh();
        return (wall, (process.TotalProcessorTime - cpu0).TotalSeconds);
    }

    /// <summary>
    /// Decode against the bandwidth of the same moment: <see cref="BenchOptions.BoundWindows"/> more decode passes, each
    /// between two bandwidth reads, and for each its fraction of the bound from the better of those two reads; sorted.
    /// The run-wide line above divides by the best read of the whole run, which on a shared machine whose read bandwidth
    /// moves between ~33 and ~55 GB/s within a minute (Zen 3, this project's machines) mostly measures when that best
    /// read happened; a pass and the reads beside it see the same neighbours.
    /// </summary>
    private static double[] PairedBound(BenchOptions o, DecodeSetup decode, Process process, MemoryBandwidth.Probe probe, long bytesPerToken, CancellationToken ct)
    {
        var ratios = new double[o.BoundWindows];
        double before = probe.Measure();
        for (int i = 0; i < ratios.Length; i++)
        {
            double rate = o.GenTokens / TimeDecode(o, decode, process, ct).Wall;
            double after = probe.Measure();
            ratios[i] = rate * bytesPerToken / (Math.Max(before, after) * 1e9);
            before = after;
        }

        Array.Sort(ratios);
        return ratios;
    }

    /// <summary>The read before the load: its own buffer, freed before the model's weights come in (peak RSS stays theirs).</summary>
    private static double MeasureBandwidth(int threads)
    {
        using var pool = new WorkerPool(threads);
        using var probe = new MemoryBandwidth.Probe(pool);
        probe.Measure();                                        // warm-up
        return probe.Measure();
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
