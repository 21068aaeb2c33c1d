using Qwen3Sharp.Kernels;
using System.Text;
using Qwen3Sharp.Cache;
using Qwen3Sharp.Loading;
using Qwen3Sharp.Model;
using Qwen3Sharp.Tensors;
using Qwen3Sharp.Tests.Model;
using Qwen3Sharp.Tests.TestModels;

namespace Qwen3Sharp.Tests.Loading;

/// <summary>
/// GGUF files written by ../shared/tools/hf_to_gguf.py (llama.cpp's layout) from the golden models (Fixtures/gguf).
/// Quantized files are checked against *-dequantized/: the same weights dequantized by an independent Python
/// reader (tools/fixtures/gguf/dequantize_gguf.py) and stored as float32 safetensors, whose path the golden tests
/// check against transformers' float64 reference.
/// </summary>
public sealed class GgufTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "gguf", name);

    /// <summary>Writes <paramref name="file"/> to <paramref name="path"/> with the fp16 scale of <paramref name="block"/> (found once in it) set to +inf.</summary>
    private static void WithInfiniteScale(byte[] file, byte[] block, string path)
    {
        int at = file.AsSpan().IndexOf(block);
        Assert.True(at > 0 && file.AsSpan(at + 1).IndexOf(block) < 0, "the block is not unique in the file");
        file[at] = 0x00;
        file[at + 1] = 0x7C;   // +inf
        File.WriteAllBytes(path, file);
    }

    [Fact]
    public unsafe void Load_AMatrixWithAnInfiniteScale_StaysInRowLayout_TheOthersAreRepacked()
    {
        // The 8-row kernels widen fp16 scales in-vector, which maps inf/NaN to finite values: such a matrix must keep the
        // row layout (in a matrix of several chunks, the chunks repacked before the bad one have dropped their file pages,
        // which fault back in from the file; tiny-a's matrices are one chunk each).
        string path = Fixture("tiny-a-q8_0.gguf");
        byte[] bytes = File.ReadAllBytes(path);
        byte[] block;
        using (ModelWeights rows = ModelWeights.Load(path, layout: QuantLayout.Rows))
        {
            WeightView down = rows.Layers[0].DownProj;
            Assert.Equal(DType.Q8_0, down.DType);
            block = new ReadOnlySpan<byte>(down.Data + (down.RowCount - 1) * down.RowBytes, 34).ToArray();   // the last row's first block
        }

        using var dir = new TempDir();
        WithInfiniteScale(bytes, block, dir.File("inf.gguf"));
        using ModelWeights x8 = ModelWeights.Load(dir.File("inf.gguf"), layout: QuantLayout.Interleaved8);
        Assert.Equal(DType.Q8_0, x8.Layers[0].DownProj.DType);
        WeightView kept = x8.Layers[0].DownProj;
        Assert.False(float.IsFinite(kept[kept.RowCount - 1, 0]));   // the patched block reads as the file says (code × inf)
        Assert.True(float.IsFinite(kept[0, 0]));
        Assert.Equal(DType.Q8_0x8, x8.Layers[0].QProj.DType);
        Assert.Equal(DType.Q8_0x8, x8.Layers[0].GateProj.DType);
    }

    [Theory]
    [InlineData(WeightPlacement.Mapped)]
    [InlineData(WeightPlacement.Copy)]
    [InlineData(WeightPlacement.HugePageCopy)]
    public unsafe void Load_AnInfiniteScaleInTheLastChunk_AfterEarlierChunksWereRepackedAndDropped_ReadsAsTheFile(WeightPlacement placement)
    {
        // With a copy placement the repack reads the file, not the copy (whose dropped pages would read back as zeros).
        // Chunks of 256 rows split tiny-a's tied 1024-row Q8_0 embedding (68 bytes a row, 17 KB a chunk) into 4: the chunks
        // done before the bad one are repacked and their whole pages dropped before the bad scale is seen, so the row
        // layout the matrix falls back to reads pages that fault back in. Every value must equal a row-layout load.
        string path = Fixture("tiny-a-q8_0.gguf");
        byte[] bytes = File.ReadAllBytes(path);
        byte[] block;
        using (ModelWeights rows = ModelWeights.Load(path, layout: QuantLayout.Rows))
        {
            WeightView head = rows.LmHead;
            Assert.Equal(DType.Q8_0, head.DType);
            Assert.Equal(1024, head.RowCount);
            block = new ReadOnlySpan<byte>(head.Data + (head.RowCount - 1) * head.RowBytes, 34).ToArray();
        }

        using var dir = new TempDir();
        WithInfiniteScale(bytes, block, dir.File("inf.gguf"));
        using ModelWeights expected = ModelWeights.Load(dir.File("inf.gguf"), layout: QuantLayout.Rows);
        ModelWeights.RepackChunkRowsOnThisThread = 256;
        try
        {
            using ModelWeights x8 = ModelWeights.Load(dir.File("inf.gguf"), placement, layout: QuantLayout.Interleaved8);
            Assert.Equal(placement, x8.Placement);
            WeightView kept = x8.LmHead, want = expected.LmHead;
            Assert.Equal(DType.Q8_0, kept.DType);
            Assert.Equal(DType.Q8_0x8, x8.Layers[1].UpProj.DType);
            for (int r = 0; r < kept.RowCount; r++)
            {
                for (int c = 0; c < kept.ColCount; c++)
                {
                    Assert.Equal(BitConverter.SingleToInt32Bits(want[r, c]), BitConverter.SingleToInt32Bits(kept[r, c]));
                }
            }

            // the repacked matrices of a chunked load are the same as a whole-matrix load's
            using ModelWeights whole = ModelWeights.Load(path, layout: QuantLayout.Interleaved8);
            WeightView a = whole.Layers[0].GateProj, b = x8.Layers[0].GateProj;
            Assert.Equal(DType.Q8_0x8, b.DType);
            Assert.True(new ReadOnlySpan<byte>(a.Data, checked((int)a.ByteCount)).SequenceEqual(new ReadOnlySpan<byte>(b.Data, checked((int)b.ByteCount))));
        }
        finally
        {
            ModelWeights.RepackChunkRowsOnThisThread = 0;
        }
    }

    [Fact]
    public unsafe void Load_AQ6_KMatrixWithAnInfiniteScale_StaysInRowLayout_TheOthersAreRepacked()
    {
        // As for Q8_0 above, with Q6_K's super-block scale d (the last 2 of its 210 bytes): tiny-k's attn_v keeps the row
        // layout, its other Q6_K matrices (ffn_down, the tied embedding) are repacked into 8-row groups.
        string path = Fixture(KQuantFile);
        byte[] bytes = File.ReadAllBytes(path);
        byte[] block;
        using (ModelWeights rows = ModelWeights.Load(path, layout: QuantLayout.Rows))
        {
            WeightView v = rows.Layers[0].VProj;
            Assert.Equal(DType.Q6_K, v.DType);
            block = new ReadOnlySpan<byte>(v.Data + (v.RowCount - 1) * v.RowBytes, 210).ToArray();   // the last row's first super-block
        }

        int at = bytes.AsSpan().IndexOf(block);
        Assert.True(at > 0 && bytes.AsSpan(at + 1).IndexOf(block) < 0, "the super-block is not unique in the file");
        bytes[at + 208] = 0x00;
        bytes[at + 209] = 0x7C;   // +inf
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("inf.gguf"), bytes);
        using ModelWeights x8 = ModelWeights.Load(dir.File("inf.gguf"), layout: QuantLayout.Interleaved8);
        WeightView kept = x8.Layers[0].VProj;
        Assert.Equal(DType.Q6_K, kept.DType);
        Assert.False(float.IsFinite(kept[kept.RowCount - 1, 0]));   // the patched d reads as the file says (inf · sc · (q − 32))
        Assert.True(float.IsFinite(kept[0, 0]));
        Assert.Equal(DType.Q6_Kx8, x8.Layers[0].DownProj.DType);
        Assert.Equal(DType.Q6_Kx8, x8.EmbedTokens.DType);
        Assert.Equal(DType.Q4_Kx8, x8.Layers[0].KProj.DType);
    }

    [Fact]
    public void Reads_header_metadata_and_tensor_table()
    {
        using GgufFile f = GgufFile.Open(Fixture("tiny-a-q8_0.gguf"));
        Assert.Equal(3, f.Version);
        Assert.Equal("qwen3", f.Metadata["general.architecture"]);
        Assert.Equal(2L, f.Metadata["qwen3.block_count"]);
        GgufTensorInfo embed = f.Tensors["token_embd.weight"];
        Assert.Equal(GgmlType.Q8_0, embed.Type);
        Assert.Equal(new long[] { 1024, 64 }, embed.Shape);
        Assert.Equal(GgmlType.F32, f.Tensors["blk.0.attn_norm.weight"].Type);
        Qwen3Config c = GgufModel.ReadConfig(f);
        Assert.Equal((64, 160, 4, 2, 32, 1024, true), (c.HiddenSize, c.IntermediateSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.VocabSize, c.TieWordEmbeddings));
    }

    public static TheoryData<string, string> LogitCases() => new()
    {
        { "tiny-a-bf16.gguf", "golden:tiny-a" },          // BF16 source → BF16 GGUF: the very same weights
        { "tiny-a-f16.gguf", "golden:tiny-a" },           // BF16 values as F16: exact but for tiny subnormals
        { "tiny-a-q8_0.gguf", "tiny-a-q8_0-dequantized" },
        { "tiny-a-q4_0.gguf", "tiny-a-q4_0-dequantized" },
        { "tiny-b-q8_0.gguf", "tiny-b-q8_0-dequantized" },
    };

    /// <summary>Float activations in the block kernels: the path that must match the dequantized weights to float32 rounding.</summary>
    private static readonly Qwen3ModelOptions FloatPath = new() { ThreadCount = 2, QuantDecode = QuantDecodeKernel.Float };

    [Theory]
    [InlineData("tiny-a-q8_0.gguf", "tiny-a-q8_0-dequantized")]
    [InlineData("tiny-a-q4_0.gguf", "tiny-a-q4_0-dequantized")]
    [InlineData("tiny-b-q8_0.gguf", "tiny-b-q8_0-dequantized")]
    [InlineData("tiny-k-q4_k_m.gguf", "tiny-k-q4_k_m-dequantized")]
    public void Int8_decode_path_stays_within_activation_rounding_of_the_reference(string file, string reference)
    {
        // Decode steps (1 token) and a 5-token batch go through the integer-activation kernels; prefill of 32+ tokens
        // through the float panels. The activations' 8-bit rounding moves the logits, so the check is on the
        // distribution: KL(reference ‖ int8) and the top-1 token, measured on these fixtures (see the bounds below).
        using Qwen3Model gguf = Qwen3Model.Load(Fixture(file), new Qwen3ModelOptions { ThreadCount = 2, QuantDecode = QuantDecodeKernel.Int8 });
        using Qwen3Model expected = Qwen3Model.Load(Fixture(reference), threadCount: 2);
        int vocab = gguf.VocabSize;
        var rng = new Random(21);
        double worstKl = 0, worstDiff = 0, worstRange = 0;
        int agree = 0, total = 0;
        foreach (int length in new[] { 1, 5, 9 })
        {
            int[] ids = [.. Enumerable.Range(0, length).Select(_ => rng.Next(vocab))];
            var a = new float[length * vocab];
            var b = new float[length * vocab];
            using KvCache ca = gguf.CreateCache(64);
            using KvCache cb = expected.CreateCache(64);
            gguf.ForwardAll(ids, 0, ca, a);
            expected.ForwardAll(ids, 0, cb, b);
            for (int step = 0; step <= 4; step++)
            {
                for (int p = 0; p < a.Length / vocab; p++)
                {
                    ReadOnlySpan<float> la = a.AsSpan(p * vocab, vocab), lb = b.AsSpan(p * vocab, vocab);
                    worstKl = Math.Max(worstKl, KlDivergence(lb, la));
                    worstDiff = Math.Max(worstDiff, GoldenModelTests.MaxAbsDiff(la, lb).Max);
                    worstRange = Math.Max(worstRange, lb.ToArray().Max() - lb.ToArray().Min());
                    agree += ArgMax(la) == ArgMax(lb) ? 1 : 0;
                    total++;
                }

                int next = rng.Next(vocab);
                a = new float[vocab];
                b = new float[vocab];
                gguf.Forward([next], length + step, ca, a);
                expected.Forward([next], length + step, cb, b);
            }
        }

        // Measured (Zen 3, AVX2): max KL 0.0037 (tiny-a/b Q8_0), 0.0077 (tiny-a Q4_0), 8e-13 (tiny-k: Q4_K, Q5_K, Q6_K and
        // Q8_0 all on the int8 path; its logits are peaked, range 104); max |Δ logit| 0.3–0.42 against logit ranges of
        // 23–104; top-1 27/27 everywhere. These fixtures have hidden
        // sizes of 64–256, so each 32-element block's rounding weighs more than at 2048; the bound is 2.5× the worst.
        string measured = $"{file}: int8 decode path, max KL {worstKl:G3}, max |Δ logit| {worstDiff:G3} (logit range {worstRange:G3}), top-1 {agree}/{total}";
        Assert.True(worstKl <= 0.02, measured);
        Assert.True(agree >= total - 1, measured);
        Assert.True(worstDiff <= 0.05 * worstRange, measured);
        Assert.True(worstDiff > 0, $"{file}: the int8 path should move the logits (is it in use?)");
    }

    [Theory]
    [InlineData("tiny-a-q4_0.gguf", "QProj", DType.Q4_0, DType.Q4_0x8)]
    [InlineData("tiny-k-q4_k_m.gguf", "KProj", DType.Q4_K, DType.Q4_Kx8)]
    [InlineData("tiny-k-q4_k_m.gguf", "VProj", DType.Q6_K, DType.Q6_Kx8)]
    public void Q4_files_are_repacked_into_8_row_groups_and_run_as_the_row_layout(string file, string matrix, DType stored, DType grouped)
    {
        // Prefill (40 tokens: int8 activations against the groups, QWEN3_QUANT_PREFILL's default where AVX2 runs, and the
        // row layout its one-token int8 kernels for every token under BatchInvariant, the same activation path; without
        // AVX2 both the float panels) and decode (int8
        // activations) differ from the row layout only in float32 summation order (the kernels are checked against the
        // float64 reference in Q4x8MatMulTests), but that can move an activation across a rounding tie of the next
        // product's 8-bit quantization: measured on tiny-k (logit range 104), one decode step moved a logit by 0.198;
        // bound 0.5% of the range, top-1 equal.
        bool int8Prefill = MatMul.PrefillsInt8(grouped);
        using var x8 = new Qwen3Model(ModelWeights.Load(Fixture(file), layout: QuantLayout.Interleaved8),
            new Qwen3ModelOptions { ThreadCount = 2, QuantDecode = QuantDecodeKernel.Int8 });
        using var rows = new Qwen3Model(ModelWeights.Load(Fixture(file), layout: QuantLayout.Rows),
            new Qwen3ModelOptions { ThreadCount = 2, QuantDecode = QuantDecodeKernel.Int8, BatchInvariant = int8Prefill });
        WeightView Pick(Qwen3Model m) => matrix switch
        {
            "QProj" => m.Weights.Layers[0].QProj,
            "VProj" => m.Weights.Layers[0].VProj,
            _ => m.Weights.Layers[0].KProj,
        };
        Assert.Equal(grouped, Pick(x8).DType);
        Assert.Equal(stored, Pick(rows).DType);
        if (stored is DType.Q4_0 or DType.Q6_K)
        {
            Assert.Equal(grouped, x8.Weights.LmHead.DType);                   // tied: the embedding lookups read the groups too
            Assert.Equal(grouped, x8.Weights.Layers[^1].DownProj.DType);
        }

        var rng = new Random(5);
        int vocab = x8.VocabSize;
        int[] ids = [.. Enumerable.Range(0, 40).Select(_ => rng.Next(vocab))];
        var a = new float[vocab];
        var b = new float[vocab];
        using KvCache ca = x8.CreateCache(64);
        using KvCache cb = rows.CreateCache(64);
        x8.Forward(ids, 0, ca, a);
        rows.Forward(ids, 0, cb, b);
        float range = b.Max() - b.Min();
        (float prefillDiff, int prefillAt) = GoldenModelTests.MaxAbsDiff(a, b);
        Assert.True(prefillDiff <= 5e-3f * range, $"prefill: |Δ| {prefillDiff} at {prefillAt} (range {range})");
        Assert.Equal(Array.IndexOf(b, b.Max()), Array.IndexOf(a, a.Max()));
        for (int step = 0; step < 4; step++)
        {
            int next = rng.Next(vocab);
            x8.Forward([next], ids.Length + step, ca, a);
            rows.Forward([next], ids.Length + step, cb, b);
            (float diff, int at) = GoldenModelTests.MaxAbsDiff(a, b);
            Assert.True(diff <= 5e-3f * range, $"decode step {step}: |Δ| {diff} at {at} (range {range})");
            Assert.Equal(Array.IndexOf(b, b.Max()), Array.IndexOf(a, a.Max()));
        }
    }

    [Fact]
    public async Task Bench_OnAQ8_0File_UsesAndReportsTheInt8DecodePath_AndTheSwitchTurnsItOff()
    {
        string args = $"bench --model {Fixture("tiny-a-q8_0.gguf")} --prompt-tokens 8 --gen-tokens 3 --threads 2";
        var (code, output, error) = await Qwen3Sharp.Tests.Cli.CliProcess.RunAsync(args);   // default: repacked into 8-row groups
        Assert.True(code == 0, error);
        Assert.Contains("decode Q8_0x8 int8 activations against 8-row interleaved groups, repacked at load (QWEN3_QUANT_LAYOUT=x8)", output);
        // on AVX-VNNI CPUs (Zen 5) the groups take vpdpbusd, and bench says so; elsewhere it names no VNNI
        Assert.Equal(System.Runtime.Intrinsics.X86.AvxVnni.IsSupported, output.Contains("x8), Q8_0x8 through AVX-VNNI (vpdpbusd)"));
        Assert.Contains("layout A/B   x8 ", output);   // against the row layout in the same run

        (code, output, error) = await Qwen3Sharp.Tests.Cli.CliProcess.RunAsync(args,
            environment: new Dictionary<string, string> { [KernelSelection.QuantLayoutVariable] = "rows" });
        Assert.True(code == 0, error);
        string kernels = output.Split('\n').First(l => l.StartsWith("kernels", StringComparison.Ordinal));
        Assert.Contains("decode Q8_0 int8 activations", kernels);
        Assert.Contains("Q8_0 row layout (QWEN3_QUANT_LAYOUT=rows)", kernels);   // it has an 8-row layout, switched off
        Assert.Contains("QWEN3_QUANT_DECODE=int8", kernels);
        Assert.Contains("decode A/B   int8 ", output);   // both paths timed in the same run

        (code, output, error) = await Qwen3Sharp.Tests.Cli.CliProcess.RunAsync(args,
            environment: new Dictionary<string, string> { [KernelSelection.QuantDecodeVariable] = "float" });
        Assert.True(code == 0, error);
        Assert.Contains("decode Q8_0 float activations (QWEN3_QUANT_DECODE=float)", output);

        (code, _, error) = await Qwen3Sharp.Tests.Cli.CliProcess.RunAsync(args,
            environment: new Dictionary<string, string> { [KernelSelection.QuantDecodeVariable] = "int4" });
        Assert.NotEqual(0, code);
        Assert.Contains(KernelSelection.QuantDecodeVariable, error);
    }

    [Fact]
    public async Task Bench_KlReference_PrintsMeanKlForBothDecodePaths()
    {
        string text = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(text, string.Concat(Enumerable.Repeat("The quick brown fox jumps over the lazy dog. ", 40)));
            // the synthesized tiny model (real Qwen3 tokenizer) against itself quantized to Q8_0 at load
            var (code, output, error) = await Qwen3Sharp.Tests.Cli.CliProcess.RunAsync(
                $"bench --model {TinyModel.Directory} --quantize q8_0 --kl-reference {TinyModel.Directory} --kl-text {text} " +
                "--kl-context 32 --kl-batch 8 --threads 2");
            Assert.True(code == 0, error + output);
            double Mean(string path)
            {
                string line = output.Split('\n').First(l => l.StartsWith(path + " activations", StringComparison.Ordinal));
                return double.Parse(line.Split("mean KL ")[1].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
            }

            // both paths carry the weights' Q8_0 rounding; int8 adds the activations' (same order of magnitude)
            double kFloat = Mean("float"), kInt8 = Mean("int8");
            Assert.InRange(kFloat, 1e-9, 0.05);
            Assert.InRange(kInt8, 1e-9, 0.05);
            Assert.NotEqual(kFloat, kInt8);
            Assert.Contains("positions scored", output);

            // batches of 32: the int8 path is the 8-row groups' int8 prefill where AVX2 runs (the row layout would take the
            // float panels for both paths and print the same KL twice)
            (code, output, error) = await Qwen3Sharp.Tests.Cli.CliProcess.RunAsync(
                $"bench --model {TinyModel.Directory} --quantize q8_0 --kl-reference {TinyModel.Directory} --kl-text {text} " +
                "--kl-context 32 --kl-batch 32 --threads 2");
            Assert.True(code == 0, error + output);
            Assert.Contains("layouts      int8: Q8_0x8 (8-row groups; batches of 32: prefill Q8_0x8 ", output);
            if (MatMul.PrefillsInt8(DType.Q8_0x8))
            {
                Assert.NotEqual(Mean("float"), Mean("int8"));
                Assert.InRange(Mean("int8"), 1e-9, 0.05);
            }
            else
            {
                Assert.Equal(Mean("float"), Mean("int8"), 1e-5);   // both through the float panels, in two layouts
            }
        }
        finally
        {
            File.Delete(text);
        }
    }

    private static double KlDivergence(ReadOnlySpan<float> reference, ReadOnlySpan<float> other)
    {
        double[] p = GoldenModelTests.LogSoftmax(reference), q = GoldenModelTests.LogSoftmax(other);
        double kl = 0;
        for (int i = 0; i < p.Length; i++)
        {
            kl += Math.Exp(p[i]) * (p[i] - q[i]);
        }

        return kl;
    }

    private static int ArgMax(ReadOnlySpan<float> v)
    {
        int best = 0;
        for (int i = 1; i < v.Length; i++)
        {
            best = v[i] > v[best] ? i : best;
        }

        return best;
    }

    [Theory, MemberData(nameof(LogitCases))]
    public void Logits_match_the_reference_weights_for_prefill_and_decode(string file, string reference)
    {
        string refDir = reference.StartsWith("golden:", StringComparison.Ordinal) ? GoldenCase.Dir(reference[7..]) : Fixture(reference);
        bool loose = file.Contains("f16", StringComparison.Ordinal);
        using Qwen3Model gguf = Qwen3Model.Load(Fixture(file), FloatPath);   // the integer-activation path: Int8_decode_path_…
        using Qwen3Model expected = Qwen3Model.Load(refDir, threadCount: 2);
        Assert.Equal(expected.Config.VocabSize, gguf.Config.VocabSize);
        foreach (GoldenCase c in GoldenCase.LoadAll(file.StartsWith("tiny-a", StringComparison.Ordinal) ? "tiny-a" : "tiny-b"))
        {
            var a = new float[gguf.VocabSize];
            var b = new float[gguf.VocabSize];
            using (KvCache ca = gguf.CreateCache(512))
            using (KvCache cb = expected.CreateCache(512))
            {
                gguf.Forward(c.InputIds, 0, ca, a);          // prefill: many tokens through the quantized matmul
                expected.Forward(c.InputIds, 0, cb, b);
                (float diff, int at) = GoldenModelTests.MaxAbsDiff(a, b);
                Assert.True(diff <= (loose ? 2e-3f : 1e-3f), $"{file} prefill of {c.InputIds.Length}: |Δ| {diff} at {at}");
                gguf.Forward([c.Greedy[0]], c.InputIds.Length, ca, a);   // then one decode step (matvec path)
                expected.Forward([c.Greedy[0]], c.InputIds.Length, cb, b);
                (diff, at) = GoldenModelTests.MaxAbsDiff(a, b);
                Assert.True(diff <= (loose ? 2e-3f : 1e-3f), $"{file} decode after {c.InputIds.Length}: |Δ| {diff} at {at}");
            }
        }
    }

    // ------------------------------------------------------------------ K-quants

    /// <summary>
    /// tiny-k-q4_k_m.gguf: a random Qwen3 (hidden 256, one layer, 2 heads of 128, intermediate 512, vocab 128, tied) made
    /// by tools/fixtures/gguf (tiny_hf_model.py → hf_to_gguf.py bf16 → kquant_gguf.py q4_k_m --override ffn_up=q5_k
    /// --override attn_q.=q8_0): llama-quantize's Q4_K_M recipe (Q4_K; tied embedding, attn_v and ffn_down Q6_K; norms
    /// F32) with Q5_K and Q8_0 forced on two matrices, so one file holds every K-quant beside Q8_0 and F32.
    /// </summary>
    private const string KQuantFile = "tiny-k-q4_k_m.gguf";

    [Fact]
    public void K_quant_file_has_the_llama_quantize_mix()
    {
        using GgufFile f = GgufFile.Open(Fixture(KQuantFile));
        var types = f.Tensors.Values.ToDictionary(t => t.Name, t => t.Type);
        Assert.Equal(GgmlType.Q6_K, types["token_embd.weight"]);
        Assert.Equal(GgmlType.Q8_0, types["blk.0.attn_q.weight"]);
        Assert.Equal(GgmlType.Q4_K, types["blk.0.attn_k.weight"]);
        Assert.Equal(GgmlType.Q6_K, types["blk.0.attn_v.weight"]);
        Assert.Equal(GgmlType.Q4_K, types["blk.0.ffn_gate.weight"]);
        Assert.Equal(GgmlType.Q5_K, types["blk.0.ffn_up.weight"]);
        Assert.Equal(GgmlType.Q6_K, types["blk.0.ffn_down.weight"]);
        Assert.Equal(GgmlType.F32, types["blk.0.attn_norm.weight"]);
        Assert.Equal(15L, f.Metadata["general.file_type"]);   // LLAMA_FTYPE_MOSTLY_Q4_K_M
    }

    /// <summary>Every matrix, read element by element and as embedding rows, equals the independent Python dequantization
    /// (checked bit for bit against gguf-py's quants.py when the fixture was made) bit for bit.</summary>
    [Fact]
    public void K_quant_dequantization_equals_the_python_reference_bit_for_bit()
    {
        // Q4_K, Q5_K, Q6_K and Q8_0 as loaded by default: repacked into 8-row groups (Q4_Kx8, Q5_Kx8, Q6_Kx8, Q8_0x8), read back through the groups
        using ModelWeights gguf = ModelWeights.Load(Fixture(KQuantFile), layout: QuantLayout.Interleaved8);
        using ModelWeights reference = ModelWeights.Load(Fixture("tiny-k-q4_k_m-dequantized"));
        var pairs = new List<(string, WeightView, WeightView)> { ("embed", gguf.EmbedTokens, reference.EmbedTokens) };
        for (int l = 0; l < gguf.Layers.Length; l++)
        {
            Qwen3LayerWeights a = gguf.Layers[l], b = reference.Layers[l];
            pairs.AddRange([($"{l}.q", a.QProj, b.QProj), ($"{l}.k", a.KProj, b.KProj), ($"{l}.v", a.VProj, b.VProj), ($"{l}.o", a.OProj, b.OProj),
                ($"{l}.gate", a.GateProj, b.GateProj), ($"{l}.up", a.UpProj, b.UpProj), ($"{l}.down", a.DownProj, b.DownProj)]);
        }

        var seen = new HashSet<DType>();
        foreach ((string name, WeightView q, WeightView f) in pairs)
        {
            Assert.Equal(DType.F32, f.DType);
            Assert.Equal((f.RowCount, f.ColCount), (q.RowCount, q.ColCount));
            seen.Add(q.DType);
            for (int r = 0; r < q.RowCount; r++)
            {
                for (int c = 0; c < q.ColCount; c++)
                {
                    if (BitConverter.SingleToInt32Bits(q[r, c]) != BitConverter.SingleToInt32Bits(f[r, c]))
                    {
                        Assert.Fail($"{name} ({q.DType}) [{r}, {c}]: {q[r, c]} vs {f[r, c]}");
                    }
                }
            }
        }

        Assert.Equal([DType.Q4_Kx8, DType.Q8_0x8, DType.Q6_Kx8, DType.Q5_Kx8], seen.Order());
        int vocab = gguf.EmbedTokens.RowCount, hidden = gguf.EmbedTokens.ColCount;
        int[] ids = [.. Enumerable.Range(0, vocab)];
        var rows = new float[vocab * hidden];
        var expected = new float[vocab * hidden];
        Qwen3Sharp.Kernels.Embedding.Gather(gguf.EmbedTokens, ids, rows);
        Qwen3Sharp.Kernels.Embedding.Gather(reference.EmbedTokens, ids, expected);
        Assert.Equal(expected, rows);
    }

    [Fact]
    public void K_quant_logits_match_the_dequantized_weights_for_prefill_and_decode()
    {
        using Qwen3Model gguf = Qwen3Model.Load(Fixture(KQuantFile), FloatPath);   // its int8 path (every matrix): Int8_decode_path_…
        using Qwen3Model expected = Qwen3Model.Load(Fixture("tiny-k-q4_k_m-dequantized"), threadCount: 2);
        int vocab = gguf.VocabSize;
        Assert.Equal(128, vocab);
        var rng = new Random(12);
        foreach (int length in new[] { 1, 5, 37 })   // one token (matvec), a group of four and a tail, many groups
        {
            int[] ids = [.. Enumerable.Range(0, length).Select(_ => rng.Next(vocab))];
            var a = new float[length * vocab];
            var b = new float[length * vocab];
            using KvCache ca = gguf.CreateCache(128);
            using KvCache cb = expected.CreateCache(128);
            gguf.ForwardAll(ids, 0, ca, a);            // every position's logits: prefill through the matrix-matrix path
            expected.ForwardAll(ids, 0, cb, b);
            (float diff, int at) = GoldenModelTests.MaxAbsDiff(a, b);
            Assert.True(diff <= 1e-3f, $"prefill of {length}: |Δ| {diff} at {at} ({a[at]} vs {b[at]})");
            Assert.True(b.Max(MathF.Abs) > 1f, "the logits are not all near zero");
            for (int step = 0; step < 3; step++)       // then decode steps (matrix-vector path)
            {
                int next = rng.Next(vocab);
                var da = new float[vocab];
                var db = new float[vocab];
                gguf.Forward([next], length + step, ca, da);
                expected.Forward([next], length + step, cb, db);
                (diff, at) = GoldenModelTests.MaxAbsDiff(da, db);
                Assert.True(diff <= 1e-3f, $"decode {step} after {length}: |Δ| {diff} at {at}");
            }
        }
    }

    [Fact]
    public void K_quant_tensor_with_a_size_that_is_not_whole_super_blocks_is_a_clear_error()
    {
        // blk.0.attn_k.weight is Q4_K [128, 256]: claim rows of 384 elements (1.5 super-blocks) instead.
        using var dir = new TempDir();
        byte[] bytes = File.ReadAllBytes(Fixture(KQuantFile));
        int info = AfterName(bytes, "blk.0.attn_k.weight");
        BitConverter.TryWriteBytes(bytes.AsSpan(info + 4), 384UL);
        string path = Path.Combine(dir.Path, "rows.gguf");
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<ModelFormatException>(() => { using ModelWeights w = ModelWeights.Load(path); });
        Assert.Equal("blk.0.attn_k.weight", e.Tensor);
        Assert.Contains("row length 384 is not a multiple of Q4_K's block of 256", e.Message, StringComparison.Ordinal);

        // A whole number of super-blocks, but a shape the model does not have: named, with the expected shape.
        bytes = File.ReadAllBytes(Fixture(KQuantFile));
        BitConverter.TryWriteBytes(bytes.AsSpan(info + 12), 64UL);   // [64, 256]: half the rows
        File.WriteAllBytes(path, bytes);
        e = Assert.Throws<ModelFormatException>(() => { using ModelWeights w = ModelWeights.Load(path); });
        Assert.Contains("does not match the metadata", e.Message, StringComparison.Ordinal);

        // The file cut inside the last K-quant tensor (ffn_down, Q6_K; only output_norm's 1 KiB follows it).
        bytes = File.ReadAllBytes(Fixture(KQuantFile));
        File.WriteAllBytes(path, bytes[..(bytes.Length - 2000)]);
        e = Assert.Throws<ModelFormatException>(() => { using ModelWeights w = ModelWeights.Load(path); });
        Assert.Equal("blk.0.ffn_down.weight", e.Tensor);
        Assert.Contains("outside the data section", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bf16_gguf_matches_the_transformers_golden_logits()
    {
        using Qwen3Model m = Qwen3Model.Load(Fixture("tiny-a-bf16.gguf"), threadCount: 2);
        foreach (GoldenCase c in GoldenCase.LoadAll("tiny-a"))
        {
            using KvCache cache = m.CreateCache(512);
            var logits = new float[m.VocabSize];
            m.Forward(c.InputIds, 0, cache, logits);
            Assert.True(GoldenModelTests.MaxAbsDiff(logits, c.LastLogits).Max <= 2e-3f);
        }
    }

    // ------------------------------------------------------------------ malformed files

    private static string WriteVariant(TempDir dir, string name, Action<byte[]> patch, int? length = null)
    {
        byte[] bytes = File.ReadAllBytes(Fixture("tiny-a-q4_0.gguf"));
        patch(bytes);
        string path = Path.Combine(dir.Path, name);
        File.WriteAllBytes(path, length is int n ? bytes[..n] : bytes);
        return path;
    }

    /// <summary>Position just after the tensor-info name <paramref name="name"/> (its n_dims field).</summary>
    private static int AfterName(byte[] bytes, string name)
    {
        byte[] needle = Encoding.UTF8.GetBytes(name);
        int i = bytes.AsSpan().IndexOf(needle);
        Assert.True(i > 0);
        return i + needle.Length;
    }

    private static ModelFormatException LoadFails(string path)
    {
        var e = Assert.Throws<ModelFormatException>(() => { using ModelWeights w = ModelWeights.Load(path); });
        Assert.Equal(path, e.File);
        return e;
    }

    [Fact]
    public void Malformed_files_fail_with_a_clear_error()
    {
        using var dir = new TempDir();
        string badMagic = WriteVariant(dir, "magic.gguf", b => b[0] = (byte)'X');
        Assert.False(GgufModel.IsGguf(badMagic));
        Assert.Contains("not a GGUF file", Assert.Throws<ModelFormatException>(() => GgufFile.Open(badMagic)).Message, StringComparison.Ordinal);
        Assert.Throws<ModelFormatException>(() => GgufFile.Open(WriteVariant(dir, "magic3.gguf", b => b[1] = 0)));
        Assert.Contains("version 1", LoadFails(WriteVariant(dir, "v1.gguf", b => BitConverter.TryWriteBytes(b.AsSpan(4), 1u))).Message, StringComparison.Ordinal);
        Assert.Contains("absurd counts", LoadFails(WriteVariant(dir, "count.gguf", b => BitConverter.TryWriteBytes(b.AsSpan(8), 1UL << 60))).Message, StringComparison.Ordinal);

        // token_embd.weight's info: n_dims u32, ne[0] u64, ne[1] u64, type u32, offset u64.
        int info = AfterName(File.ReadAllBytes(Fixture("tiny-a-q4_0.gguf")), "token_embd.weight");
        Assert.Contains("dimension", LoadFails(WriteVariant(dir, "dim.gguf", b => BitConverter.TryWriteBytes(b.AsSpan(info + 12), 1UL << 62))).Message, StringComparison.Ordinal);
        Assert.Contains("dimensions", LoadFails(WriteVariant(dir, "ndims.gguf", b => BitConverter.TryWriteBytes(b.AsSpan(info), 9u))).Message, StringComparison.Ordinal);
        Assert.Contains("unknown GGML tensor type id 77", LoadFails(WriteVariant(dir, "type.gguf", b => BitConverter.TryWriteBytes(b.AsSpan(info + 20), 77u))).Message, StringComparison.Ordinal);
        // token_embd.weight has rows of 64: as a K-quant (super-blocks of 256) its size cannot be right
        Assert.Contains("row length 64 is not a multiple of Q4_K's block of 256", LoadFails(WriteVariant(dir, "k.gguf", b => BitConverter.TryWriteBytes(b.AsSpan(info + 20), 12u))).Message, StringComparison.Ordinal);
        Assert.Contains("Q6_K's block of 256", LoadFails(WriteVariant(dir, "k6.gguf", b => BitConverter.TryWriteBytes(b.AsSpan(info + 20), 14u))).Message, StringComparison.Ordinal);
        Assert.Contains("tensor type IQ4_NL is not supported", LoadFails(WriteVariant(dir, "iq4nl.gguf", b => BitConverter.TryWriteBytes(b.AsSpan(info + 20), 20u))).Message, StringComparison.Ordinal);   // same block size as Q4_0
        Assert.Contains("IQ2_XXS", LoadFails(WriteVariant(dir, "iq.gguf", b => BitConverter.TryWriteBytes(b.AsSpan(info + 20), 16u))).Message, StringComparison.Ordinal);
        Assert.Contains("outside the data section", LoadFails(WriteVariant(dir, "offset.gguf", b => BitConverter.TryWriteBytes(b.AsSpan(info + 24), 1UL << 40))).Message, StringComparison.Ordinal);
        Assert.Contains("alignment", LoadFails(WriteVariant(dir, "align.gguf", b => BitConverter.TryWriteBytes(b.AsSpan(info + 24), 3UL))).Message, StringComparison.Ordinal);
        int second = AfterName(File.ReadAllBytes(Fixture("tiny-a-q4_0.gguf")), "blk.0.attn_norm.weight");   // 1-D: n_dims, ne[0], type, offset
        Assert.Contains("overlaps", LoadFails(WriteVariant(dir, "overlap.gguf", b => BitConverter.TryWriteBytes(b.AsSpan(second + 16), 0UL))).Message, StringComparison.Ordinal);

        int arch = File.ReadAllBytes(Fixture("tiny-a-q4_0.gguf")).AsSpan().IndexOf("qwen3"u8);
        Assert.Contains("architecture 'llama'", LoadFails(WriteVariant(dir, "arch.gguf", b => "llama"u8.CopyTo(b.AsSpan(arch)))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_truncation_is_a_clear_error()
    {
        using var dir = new TempDir();
        int full = File.ReadAllBytes(Fixture("tiny-a-q4_0.gguf")).Length;
        for (int n = 0; n < full; n += n < 4096 ? 37 : 9973)
        {
            string path = WriteVariant(dir, $"t{n}.gguf", _ => { }, n);
            var e = Assert.Throws<ModelFormatException>(() => { using ModelWeights w = ModelWeights.LoadGguf(path); });
            Assert.Equal(path, e.File);
            File.Delete(path);
        }
    }
}
