using Qwen3Sharp.Kernels;
using Qwen3Sharp.Loading;
using Qwen3Sharp.Tensors;
using Qwen3Sharp.Tests.Cli;

namespace Qwen3Sharp.Tests.Loading;

/// <summary>
/// <c>--quantize q8_0|q4_0</c>: a BF16 checkpoint quantized in memory at load must hold exactly the blocks that the
/// converter (../shared/tools/hf_to_gguf.py, bit-exact with ggml's quantize_row_q8_0_ref / q4_0_ref) wrote into the
/// GGUF fixtures of the same model — an independent implementation of llama.cpp's rounding — so it also computes the
/// same logits, which GgufTests check against the golden references.
/// </summary>
public sealed class LoadQuantizationTests
{
    private static string GoldenTinyA => Path.Combine(AppContext.BaseDirectory, "Fixtures", "golden", "tiny-a");

    private static string Gguf(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "gguf", name);

    [Theory]
    [InlineData(DType.Q8_0, "tiny-a-q8_0.gguf", QuantLayout.Rows, 0)]
    [InlineData(DType.Q4_0, "tiny-a-q4_0.gguf", QuantLayout.Rows, 0)]
    [InlineData(DType.Q8_0, "tiny-a-q8_0.gguf", QuantLayout.Interleaved8, 0)]   // both repacked into 8-row groups alike
    [InlineData(DType.Q4_0, "tiny-a-q4_0.gguf", QuantLayout.Interleaved8, 0)]
    [InlineData(DType.Q8_0, "tiny-a-q8_0.gguf", QuantLayout.Rows, 8)]           // chunks of 8 rows: each lands at its own rows
    [InlineData(DType.Q8_0, "tiny-a-q8_0.gguf", QuantLayout.Interleaved8, 8)]   // ... and in its own groups
    [InlineData(DType.Q4_0, "tiny-a-q4_0.gguf", QuantLayout.Interleaved8, 8)]
    public unsafe void QuantizedAtLoad_EqualsTheConvertersBlocks_ByteForByte(DType target, string converted, QuantLayout layout, int chunkRows)
    {
        ModelWeights.RepackChunkRowsOnThisThread = chunkRows;
        using ModelWeights quantized = ModelWeights.Load(GoldenTinyA, quantize: target, layout: layout);
        ModelWeights.RepackChunkRowsOnThisThread = 0;
        using ModelWeights file = ModelWeights.Load(Gguf(converted), layout: layout);
        DType stored = layout == QuantLayout.Rows ? target : target == DType.Q8_0 ? DType.Q8_0x8 : DType.Q4_0x8;

        Assert.Equal(target, quantized.LoadQuantization);
        var pairs = new List<(string Name, WeightView Ours, WeightView Theirs)> { ("embed", quantized.EmbedTokens, file.EmbedTokens) };
        for (int l = 0; l < quantized.Layers.Length; l++)
        {
            Qwen3LayerWeights a = quantized.Layers[l], b = file.Layers[l];
            pairs.Add(($"{l}.q", a.QProj, b.QProj));
            pairs.Add(($"{l}.k", a.KProj, b.KProj));
            pairs.Add(($"{l}.v", a.VProj, b.VProj));
            pairs.Add(($"{l}.o", a.OProj, b.OProj));
            pairs.Add(($"{l}.gate", a.GateProj, b.GateProj));
            pairs.Add(($"{l}.up", a.UpProj, b.UpProj));
            pairs.Add(($"{l}.down", a.DownProj, b.DownProj));
        }

        foreach (var (name, ours, theirs) in pairs)
        {
            Assert.Equal(stored, ours.DType);
            Assert.Equal(theirs.DType, ours.DType);
            Assert.Equal((theirs.RowCount, theirs.ColCount), (ours.RowCount, ours.ColCount));
            var a = new ReadOnlySpan<byte>(ours.Data, checked((int)ours.ByteCount));
            var b = new ReadOnlySpan<byte>(theirs.Data, checked((int)theirs.ByteCount));
            Assert.True(a.SequenceEqual(b), $"{name}: the blocks differ from the converter's at byte {a.CommonPrefixLength(b)}");
        }

        // tied embeddings: the output head is the quantized embedding itself, not a second copy
        Assert.True(quantized.LmHead.Data == quantized.EmbedTokens.Data);
        Assert.InRange(quantized.MatrixBytes, 1, file.MatrixBytes);
    }

    [Fact]
    public unsafe void QuantizedAtLoad_AScaleTheGroupsCannotHold_LeavesThatMatrixInRows()
    {
        // A weight of ~1e7 in one BF16 matrix gives its block an fp16 scale of +inf (1e7 / 127 > 65504): that matrix stays
        // in Q8_0 rows, quantized as the row layout quantizes it, while every other matrix goes into the 8-row groups.
        using var dir = new TempDir();
        foreach (string f in Directory.GetFiles(GoldenTinyA))
        {
            File.Copy(f, Path.Combine(dir.Path, Path.GetFileName(f)));
        }

        const string Key = "model.layers.1.mlp.up_proj.weight";
        string weights = Path.Combine(dir.Path, "model.safetensors");
        long offset;
        using (SafetensorsFile st = SafetensorsFile.Open(weights))
        {
            WeightView up = st.GetMatrix(Key);
            Assert.Equal(DType.BF16, up.DType);
            Assert.True(st.Mapping.TryLocate(up.Row(13) + 2 * 5, out offset));   // row 13 (the second chunk of 8), column 5
        }

        using (var stream = new FileStream(weights, FileMode.Open, FileAccess.Write))
        {
            stream.Position = offset;
            stream.Write(BitConverter.GetBytes((ushort)0x4B19));   // bf16 1.0e7
        }

        ModelWeights.RepackChunkRowsOnThisThread = 8;
        using ModelWeights grouped = ModelWeights.Load(dir.Path, quantize: DType.Q8_0, layout: QuantLayout.Interleaved8);
        ModelWeights.RepackChunkRowsOnThisThread = 0;
        using ModelWeights rows = ModelWeights.Load(dir.Path, quantize: DType.Q8_0, layout: QuantLayout.Rows);
        WeightView odd = grouped.Layers[1].UpProj, expected = rows.Layers[1].UpProj;
        Assert.Equal(DType.Q8_0, odd.DType);
        Assert.True(new ReadOnlySpan<byte>(odd.Data, (int)odd.ByteCount).SequenceEqual(new ReadOnlySpan<byte>(expected.Data, (int)expected.ByteCount)));
        Assert.Equal(DType.Q8_0x8, grouped.Layers[1].GateProj.DType);
        Assert.Equal(DType.Q8_0x8, grouped.Layers[0].UpProj.DType);
    }

    [Fact]
    public async Task Bench_WithQuantize_RunsTheQuantizedWeights_AsAUserRunsIt()
    {
        var (code, output, error) = await CliProcess.RunAsync($"bench --model {GoldenTinyA} --quantize q4_0 --prompt-tokens 16 --gen-tokens 3 --threads 2");
        Assert.True(code == 0, error);
        Assert.Contains("quantized to Q4_0 at load (--quantize)", output);
        Assert.Contains("Q4_0", output.Split('\n').First(l => l.StartsWith("model", StringComparison.Ordinal)));

        (code, _, error) = await CliProcess.RunAsync($"bench --model {GoldenTinyA} --quantize q2_k");
        Assert.Equal(2, code);
        Assert.Contains("--quantize", error);
    }
}
