using System.Security.Cryptography;
using Qwen3Sharp.Cache;
using Qwen3Sharp.Loading;
using Qwen3Sharp.Model;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Tests.Model;

public sealed class ModelSynthesizerTests
{
    private static string TokenizerDir => Path.Combine(AppContext.BaseDirectory, "Fixtures", "qwen3-tokenizer");

    private static float[] LastLogits(string dir, int[] prompt)
    {
        using Qwen3Model m = Qwen3Model.Load(dir, new Qwen3ModelOptions { ThreadCount = 1 });
        using KvCache cache = m.CreateCache(64);
        var logits = new float[m.VocabSize];
        m.Forward(prompt, 0, cache, logits);
        return logits;
    }

    private static string Hash(string dir) => string.Join(",", Directory.GetFiles(dir).Order()
        .Select(f => Path.GetFileName(f) + ":" + Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))));

    [Fact]
    public void Write_TinyPreset_LoadsRunsAndIsByteIdenticalAcrossRuns()
    {
        using var a = new TempDir();
        using var b = new TempDir();
        var options = new SynthesisOptions { Seed = 42, TokenizerDirectory = TokenizerDir };
        ModelSynthesizer.Write(a.Path, "tiny", options);
        ModelSynthesizer.Write(b.Path, "tiny", options);
        Assert.Equal(Hash(a.Path), Hash(b.Path));
        Assert.True(File.Exists(Path.Combine(a.Path, "tokenizer.json")));
        Assert.True(File.Exists(Path.Combine(a.Path, "tokenizer_config.json")));

        Qwen3Config c = Qwen3Config.Load(a.Path);
        Assert.Equal((151936, 64, 2, 4, 2, 32, 128, true), (c.VocabSize, c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.IntermediateSize, c.TieWordEmbeddings));
        Assert.Equal([151645, 151643], GenerationConfig.Load(a.Path).EosTokenId!);

        int[] prompt = [151644, 872, 198, 9707, 151645];
        float[] first = LastLogits(a.Path, prompt);
        float[] second = LastLogits(b.Path, prompt);
        Assert.All(first, x => Assert.True(float.IsFinite(x)));
        Assert.Equal(first, second);
        Assert.True(first.Max() - first.Min() > 1e-3f, "random weights should give non-constant logits");
    }

    [Fact]
    public void Write_DifferentSeeds_GiveDifferentWeights()
    {
        using var a = new TempDir();
        using var b = new TempDir();
        ModelSynthesizer.Write(a.Path, "tiny-mqa", new SynthesisOptions { Seed = 1 });
        ModelSynthesizer.Write(b.Path, "tiny-mqa", new SynthesisOptions { Seed = 2 });
        Assert.NotEqual(File.ReadAllBytes(Path.Combine(a.Path, "model.safetensors")), File.ReadAllBytes(Path.Combine(b.Path, "model.safetensors")));
    }

    [Theory]
    [InlineData(DType.BF16)]
    [InlineData(DType.F16)]
    [InlineData(DType.F32)]
    public void Write_Sharded_RoundTripsToSameLogitsAsSingleFile(DType dtype)
    {
        using var single = new TempDir();
        using var sharded = new TempDir();
        ModelSynthesizer.Write(single.Path, "tiny-mqa", new SynthesisOptions { Seed = 7, DType = dtype });
        ModelSynthesizer.Write(sharded.Path, "tiny-mqa", new SynthesisOptions { Seed = 7, DType = dtype, MaxShardBytes = 100_000 });

        var dir = ModelDirectory.Open(sharded.Path);
        Assert.True(dir.WeightFiles.Count > 2, $"expected several shards, got {dir.WeightFiles.Count}");
        Assert.Equal(dtype == DType.BF16 ? "bfloat16" : dtype == DType.F16 ? "float16" : "float32", dir.Config.TorchDType);
        Assert.Matches(@"model-00001-of-\d{5}\.safetensors", Path.GetFileName(dir.WeightFiles[0]));
        using (ModelWeights w = ModelWeights.Load(dir))
        {
            Assert.Equal(dtype, w.LmHead.DType);
        }

        int[] prompt = [1, 2, 3, 500, 1023];
        Assert.Equal(LastLogits(single.Path, prompt), LastLogits(sharded.Path, prompt));
    }

    [Fact]
    public void Write_Qwen2Preset_LoadsBiasesAndRuns()
    {
        using var dir = new TempDir();
        ModelSynthesizer.Write(dir.Path, "tiny-qwen2", new SynthesisOptions { Seed = 3 });
        using (ModelWeights w = ModelWeights.Load(dir.Path))
        {
            Assert.NotNull(w.Layers[0].QBias);
            Assert.Null(w.Layers[0].QNorm);
        }

        Assert.All(LastLogits(dir.Path, [5, 6, 7]), x => Assert.True(float.IsFinite(x)));
    }

    [Fact]
    public void Preset_Qwen3_1_7B_HasTheRealShape()
    {
        Qwen3Config c = ModelSynthesizer.Preset("qwen3-1.7b");
        Assert.Equal((2048, 6144, 28, 16, 8, 128, 151936, 40960), (c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.VocabSize, c.MaxPositionEmbeddings));
        Assert.True(c.TieWordEmbeddings);
        Assert.Equal([151643], c.BosTokenId!);
        Assert.Equal([151645], c.EosTokenId!);
        Assert.Throws<ArgumentException>(() => ModelSynthesizer.Preset("qwen3-999b"));
    }
}
