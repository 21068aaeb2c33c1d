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

    [Theory, MemberData(nameof(LogitCases))]
    public void Logits_match_the_reference_weights_for_prefill_and_decode(string file, string reference)
    {
        string refDir = reference.StartsWith("golden:", StringComparison.Ordinal) ? GoldenCase.Dir(reference[7..]) : Fixture(reference);
        bool loose = file.Contains("f16", StringComparison.Ordinal);
        using Qwen3Model gguf = Qwen3Model.Load(Fixture(file), threadCount: 2);
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
        Assert.Contains("tensor type Q5_0 is not supported", LoadFails(WriteVariant(dir, "q50.gguf", b => BitConverter.TryWriteBytes(b.AsSpan(info + 20), 6u))).Message, StringComparison.Ordinal);
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
