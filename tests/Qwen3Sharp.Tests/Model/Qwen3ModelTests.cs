using Qwen3Sharp.Cache;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Loading;
using Qwen3Sharp.Model;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Tests.Model;

public sealed class Qwen3ModelTests
{
    private static Qwen3Model LoadTinyA(Qwen3ModelOptions? options = null)
        => Qwen3Model.Load(GoldenCase.Dir("tiny-a"), options ?? new Qwen3ModelOptions { ThreadCount = 1 });

    [Fact]
    public void Load_DefaultOptions_ContextIsMinOfMaxPositionsAnd4096()
    {
        using Qwen3Model m = LoadTinyA();
        Assert.Equal(4096, m.ContextSize);
        using KvCache cache = m.CreateCache();
        Assert.Equal((4096, 2, 32, 2), (cache.ContextSize, cache.KvHeadCount, cache.HeadDim, cache.LayerCount));
        Assert.Equal(4096L * 64 * 4 * 2 * 2, cache.TotalBytes);
    }

    [Fact]
    public void Forward_TokenOutsideVocabulary_Throws()
    {
        using Qwen3Model m = LoadTinyA();
        using KvCache cache = m.CreateCache(16);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => m.Forward([1, 1024], 0, cache, new float[1024]));
        Assert.Contains("1024", ex.Message);
    }

    [Fact]
    public void Forward_PastCacheEnd_Throws()
    {
        using Qwen3Model m = LoadTinyA();
        using KvCache cache = m.CreateCache(4);
        Assert.Throws<ArgumentOutOfRangeException>(() => m.Forward([1, 2, 3], 2, cache, new float[1024]));
    }

    [Fact]
    public void Forward_LogitsTooShort_Throws()
    {
        using Qwen3Model m = LoadTinyA();
        using KvCache cache = m.CreateCache(8);
        Assert.Throws<ArgumentException>(() => m.Forward([1], 0, cache, new float[10]));
        Assert.Throws<ArgumentException>(() => m.ForwardAll([1, 2], 0, cache, new float[1024]));
    }

    [Fact]
    public void Forward_CacheOfAnotherModel_Throws()
    {
        using Qwen3Model m = LoadTinyA();
        using KvCache other = KvCache.Create(Qwen3Config.Load(GoldenCase.Dir("tiny-b")), 8);
        Assert.Throws<ArgumentException>(() => m.Forward([1], 0, other, new float[1024]));
    }

    [Fact]
    public void ForwardAll_LastRow_EqualsForward()
    {
        using Qwen3Model m = LoadTinyA(new Qwen3ModelOptions { ThreadCount = 1, MaxBatchTokens = 3 });
        int[] prompt = [5, 17, 900, 3, 44, 1000, 2];
        using KvCache a = m.CreateCache(16);
        using KvCache b = m.CreateCache(16);
        var all = new float[prompt.Length * 1024];
        var last = new float[1024];
        m.ForwardAll(prompt, 0, a, all);
        m.Forward(prompt, 0, b, last);
        Assert.Equal(all.AsSpan((prompt.Length - 1) * 1024).ToArray(), last);
    }

    [Fact]
    public void KvCache_WritePastEnd_Throws()
    {
        using var cache = new KvCache(1, 4, 1, 2);
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Write(0, 3, new float[4], new float[4], 2));
        cache.Write(0, 2, [1, 2, 3, 4], [5, 6, 7, 8], 2);
        Assert.Equal([1f, 2f, 3f, 4f], cache.Keys(0).Slice(4, 4).ToArray());
        Assert.Equal([5f, 6f, 7f, 8f], cache.Values(0).Slice(4, 4).ToArray());
    }

    [Fact]
    public void Forward_YarnConfig_ChangesLogitsOnlyThroughRope()
    {
        // Same weights, YaRN scaling: runs, stays finite, and differs from plain RoPE (the scaling reaches the kernels).
        using var dir = new TempDir();
        foreach (string f in Directory.GetFiles(GoldenCase.Dir("tiny-a")))
        {
            File.Copy(f, Path.Combine(dir.Path, Path.GetFileName(f)));
        }

        string config = File.ReadAllText(Path.Combine(dir.Path, "config.json"));
        File.WriteAllText(Path.Combine(dir.Path, "config.json"), config.Replace("\"rope_scaling\": null",
            "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0, \"original_max_position_embeddings\": 32768}"));
        int[] prompt = GoldenCase.LoadAll("tiny-a")[3].InputIds;
        float[] Run(string path)
        {
            using Qwen3Model m = Qwen3Model.Load(path, new Qwen3ModelOptions { ThreadCount = 1 });
            using KvCache cache = m.CreateCache(128);
            var logits = new float[m.VocabSize];
            m.Forward(prompt, 0, cache, logits);
            return logits;
        }

        float[] plain = Run(GoldenCase.Dir("tiny-a"));
        float[] yarn = Run(dir.Path);
        Assert.All(yarn, x => Assert.True(float.IsFinite(x)));
        Assert.True(GoldenModelTests.MaxAbsDiff(plain, yarn).Max > 1e-4f);
    }

    [Theory]
    [InlineData("tiny-a", WeightPlacement.HugePageCopy)]
    [InlineData("tiny-b", WeightPlacement.HugePageCopy)]
    [InlineData("tiny-a", WeightPlacement.Copy)]
    [InlineData("tiny-b", WeightPlacement.Copy)]
    public void Forward_CopiedWeights_LogitsEqualMapped(string model, WeightPlacement placement)
    {
        using Qwen3Model mapped = Qwen3Model.Load(GoldenCase.Dir(model), new Qwen3ModelOptions { ThreadCount = 2, WeightPlacement = WeightPlacement.Mapped });
        using Qwen3Model copied = Qwen3Model.Load(GoldenCase.Dir(model),
            new Qwen3ModelOptions { ThreadCount = 2, WeightPlacement = placement, FloatLayout = QuantLayout.Rows });
        Assert.Equal(WeightPlacement.Mapped, mapped.Weights.Placement);
        Assert.Equal(placement, copied.Weights.Placement);
        Assert.False(copied.Weights.Layers[0].QProj.DType.IsFloatGroups());
        int[] prompt = GoldenCase.LoadAll(model)[0].InputIds;
        float[] expected = RunWithDecode(mapped, prompt);
        float[] actual = RunWithDecode(copied, prompt);
        Assert.Equal(expected, actual);   // the same bytes in another place: bit-identical logits
    }

    [Theory]
    [InlineData("tiny-a", WeightPlacement.Copy, DType.BF16x8)]
    [InlineData("tiny-a", WeightPlacement.HugePageCopy, DType.BF16x8)]
    [InlineData("tiny-b", WeightPlacement.Copy, DType.F32x8)]
    public void Forward_CopiedIntoFloatGroups_MatchesTheGoldenLogits(string model, WeightPlacement placement, DType groups)
    {
        // The 8-row float groups (the default copy on AVX2 machines; tiny-a is BF16, tiny-b F32): every matrix repacked, the
        // embedding read from the groups of the tied output head, and the logits within the goldens' tolerance of the
        // independent reference.
        using Qwen3Model copied = Qwen3Model.Load(GoldenCase.Dir(model),
            new Qwen3ModelOptions { ThreadCount = 2, WeightPlacement = placement, FloatLayout = QuantLayout.Interleaved8 });
        Assert.All(copied.Weights.Layers.SelectMany(l => l.Matrices), m => Assert.Equal(groups, m.DType));
        Assert.Equal(groups, copied.Weights.EmbedTokens.DType);
        foreach (GoldenCase c in GoldenCase.LoadAll(model))
        {
            using KvCache cache = copied.CreateCache(512);
            var logits = new float[copied.VocabSize];
            copied.Forward(c.InputIds, 0, cache, logits);
            (float maxDiff, int at) = GoldenModelTests.MaxAbsDiff(logits, c.LastLogits);
            Assert.True(maxDiff <= 2e-3f, $"{model} ({c.InputIds.Length} tokens): max |logit - reference| = {maxDiff:E3} at vocab {at}");
        }
    }

    private static float[] RunWithDecode(Qwen3Model m, int[] prompt)
    {
        using KvCache cache = m.CreateCache(256);
        var logits = new float[m.VocabSize];
        m.Forward(prompt, 0, cache, logits);
        m.Forward([GoldenModelTests.ArgMax(logits)], prompt.Length, cache, logits);
        return logits;
    }
}
