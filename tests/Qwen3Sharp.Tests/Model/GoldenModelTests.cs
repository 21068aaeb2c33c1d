using System.Text;
using System.Text.Json;
using Qwen3Sharp.Cache;
using Qwen3Sharp.Model;
using Xunit.Abstractions;

namespace Qwen3Sharp.Tests.Model;

/// <summary>
/// Whole-model acceptance against transformers' Qwen3 (float64 reference) on the golden tiny models:
/// last-token logits, top-5 at every position, greedy continuation with the KV cache, and decode == recompute.
/// These run the dense <see cref="KvCache"/>, which is always float32 whatever the engine's default KV dtype; the
/// drift of the 16-bit caches is measured against the same references in <see cref="KvCacheDTypeGoldenTests"/>.
/// </summary>
public sealed class GoldenModelTests(ITestOutputHelper output)
{
    private const float LogitTolerance = 2e-3f;

    public static TheoryData<string, int> Cases()
    {
        var data = new TheoryData<string, int>();
        foreach (string model in new[] { "tiny-a", "tiny-b" })
        {
            int count = GoldenCase.LoadAll(model).Count;
            for (int i = 0; i < count; i++)
            {
                data.Add(model, i);
            }
        }

        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void Forward_GoldenCase_LastLogitsMatchReference(string model, int caseIndex)
    {
        GoldenCase c = GoldenCase.LoadAll(model)[caseIndex];
        using Qwen3Model m = Qwen3Model.Load(GoldenCase.Dir(model), threadCount: 2);
        using KvCache cache = m.CreateCache(512);
        Assert.Equal(KvCacheDType.F32, cache.DType);
        var logits = new float[m.VocabSize];
        m.Forward(c.InputIds, 0, cache, logits);

        (float maxDiff, int at) = MaxAbsDiff(logits, c.LastLogits);
        output.WriteLine($"{model} case {caseIndex} ({c.InputIds.Length} tokens): max |logit - reference| = {maxDiff:E3} at vocab {at}");
        Assert.True(maxDiff <= LogitTolerance,
            $"{model} case {caseIndex} ({c.InputIds.Length} tokens): max |Δ| = {maxDiff:E3} at vocab {at} (ours {logits[at]}, ref {c.LastLogits[at]}); "
            + $"first values ours [{First(logits)}] ref [{First(c.LastLogits)}]");
    }

    [Theory, MemberData(nameof(Cases))]
    public void ForwardAll_GoldenCase_Top5MatchAtEveryPosition(string model, int caseIndex)
    {
        GoldenCase c = GoldenCase.LoadAll(model)[caseIndex];
        using Qwen3Model m = Qwen3Model.Load(GoldenCase.Dir(model), new Qwen3ModelOptions { ThreadCount = 1, MaxBatchTokens = 128 });
        using KvCache cache = m.CreateCache(512);
        int n = c.InputIds.Length, vocab = m.VocabSize;
        var logits = new float[n * vocab];
        m.ForwardAll(c.InputIds, 0, cache, logits);

        int compared = 0;
        double maxLogprobDiff = 0;
        for (int p = 0; p < n; p++)
        {
            double[] logprobs = LogSoftmax(logits.AsSpan(p * vocab, vocab));
            int[] ours = TopIds(logprobs, 6);
            var reference = c.Top5[p];
            // Ambiguous when our 6th candidate is within tolerance of the reference's 5th.
            if (reference[4].LogProb - logprobs[ours[5]] <= LogitTolerance)
            {
                continue;
            }

            compared++;
            var refIds = reference.Select(r => r.Id).ToArray();
            Assert.True(refIds.Order().SequenceEqual(ours.Take(5).Order()),
                $"{model} case {caseIndex} position {p}: top-5 ours [{string.Join(", ", ours.Take(5))}] ref [{string.Join(", ", refIds)}]");
            for (int r = 0; r < 5; r++)
            {
                double diff = Math.Abs(logprobs[reference[r].Id] - reference[r].LogProb);
                maxLogprobDiff = Math.Max(maxLogprobDiff, diff);
                bool orderAmbiguous = (r > 0 && reference[r - 1].LogProb - reference[r].LogProb <= LogitTolerance)
                    || (r < 4 && reference[r].LogProb - reference[r + 1].LogProb <= LogitTolerance);
                Assert.True(orderAmbiguous || ours[r] == reference[r].Id,
                    $"{model} case {caseIndex} position {p} rank {r}: ours {ours[r]} ref {reference[r].Id}");
            }
        }

        output.WriteLine($"{model} case {caseIndex}: top-5 compared at {compared}/{n} positions, max |logprob Δ| {maxLogprobDiff:E3}");
        Assert.True(maxLogprobDiff <= LogitTolerance, $"{model} case {caseIndex}: max |logprob Δ| over top-5 = {maxLogprobDiff:E3}");
        Assert.True(compared >= n / 2, $"only {compared} of {n} positions were unambiguous enough to compare");
    }

    [Theory, MemberData(nameof(Cases))]
    public void Decode_GoldenCase_GreedyContinuationMatchesAndEqualsRecompute(string model, int caseIndex)
    {
        GoldenCase c = GoldenCase.LoadAll(model)[caseIndex];
        using Qwen3Model m = Qwen3Model.Load(GoldenCase.Dir(model), new Qwen3ModelOptions { ThreadCount = 1 });
        int n = c.InputIds.Length, vocab = m.VocabSize, steps = c.Greedy.Length;

        // Prefill, then one token at a time with the cache.
        using KvCache cache = m.CreateCache(512);
        var decodeLogits = new float[steps * vocab];
        m.Forward(c.InputIds, 0, cache, decodeLogits.AsSpan(0, vocab));
        var generated = new int[steps];
        for (int i = 0; i < steps; i++)
        {
            generated[i] = ArgMax(decodeLogits.AsSpan(i * vocab, vocab));
            if (i + 1 < steps)
            {
                m.Forward([generated[i]], n + i, cache, decodeLogits.AsSpan((i + 1) * vocab, vocab));
            }
        }

        Assert.True(c.Greedy.SequenceEqual(generated),
            $"{model} case {caseIndex}: greedy ours [{string.Join(", ", generated)}] ref [{string.Join(", ", c.Greedy)}]");

        // Full recompute of prompt + continuation in one pass: position n-1+i predicts step i.
        int[] all = [.. c.InputIds, .. generated[..(steps - 1)]];
        using KvCache fresh = m.CreateCache(512);
        var allLogits = new float[all.Length * vocab];
        m.ForwardAll(all, 0, fresh, allLogits);
        float worst = 0;
        for (int i = 0; i < steps; i++)
        {
            (float d, int at) = MaxAbsDiff(decodeLogits.AsSpan(i * vocab, vocab), allLogits.AsSpan((n - 1 + i) * vocab, vocab));
            worst = Math.Max(worst, d);
            Assert.True(d <= 1e-4f, $"{model} case {caseIndex} step {i} (position {n - 1 + i}): decode vs recompute max |Δ| = {d:E3} at vocab {at}; "
                + $"first values decode [{First(decodeLogits.AsSpan(i * vocab, vocab))}] recompute [{First(allLogits.AsSpan((n - 1 + i) * vocab, vocab))}]");
        }

        output.WriteLine($"{model} case {caseIndex}: greedy 16 match; decode vs recompute max |Δ| = {worst:E3}");
    }

    [Fact]
    public void Forward_ChunkedPrefill_EqualsSingleChunk()
    {
        GoldenCase c = GoldenCase.LoadAll("tiny-b").OrderByDescending(x => x.InputIds.Length).First();
        using Qwen3Model whole = Qwen3Model.Load(GoldenCase.Dir("tiny-b"), new Qwen3ModelOptions { ThreadCount = 1, MaxBatchTokens = 512 });
        using Qwen3Model chunked = Qwen3Model.Load(GoldenCase.Dir("tiny-b"), new Qwen3ModelOptions { ThreadCount = 1, MaxBatchTokens = 37 });
        using KvCache a = whole.CreateCache(512);
        using KvCache b = chunked.CreateCache(512);
        var la = new float[whole.VocabSize];
        var lb = new float[whole.VocabSize];
        whole.Forward(c.InputIds, 0, a, la);
        chunked.Forward(c.InputIds, 0, b, lb);
        (float d, int at) = MaxAbsDiff(la, lb);
        Assert.True(d <= 1e-4f, $"chunked (37) vs whole prefill of {c.InputIds.Length} tokens: max |Δ| = {d:E3} at vocab {at}");
    }

    internal static (float Max, int Index) MaxAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        float max = 0;
        int at = 0;
        for (int i = 0; i < a.Length; i++)
        {
            float d = Math.Abs(a[i] - b[i]);
            if (!(d <= max))
            {
                max = d;
                at = i;
                if (float.IsNaN(d))
                {
                    return (float.PositiveInfinity, i);
                }
            }
        }

        return (max, at);
    }

    internal static string First(ReadOnlySpan<float> x)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < Math.Min(5, x.Length); i++)
        {
            sb.Append(i == 0 ? "" : ", ").Append(x[i].ToString("G6", System.Globalization.CultureInfo.InvariantCulture));
        }

        return sb.ToString();
    }

    internal static int ArgMax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++)
        {
            if (x[i] > x[best])
            {
                best = i;
            }
        }

        return best;
    }

    /// <summary>log softmax in float64 (the golden references are logprobs); shared by the other reference-logit tests.</summary>
    internal static double[] LogSoftmax(ReadOnlySpan<float> x)
    {
        double max = double.NegativeInfinity;
        foreach (float v in x)
        {
            max = Math.Max(max, v);
        }

        double sum = 0;
        foreach (float v in x)
        {
            sum += Math.Exp(v - max);
        }

        double lse = max + Math.Log(sum);
        var result = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            result[i] = x[i] - lse;
        }

        return result;
    }

    private static int[] TopIds(double[] x, int k)
        => Enumerable.Range(0, x.Length).OrderByDescending(i => x[i]).ThenBy(i => i).Take(k).ToArray();
}

/// <summary>One case of a golden.json (see Fixtures/golden/README.md).</summary>
internal sealed record GoldenCase(int[] InputIds, float[] LastLogits, (int Id, double LogProb)[][] Top5, int[] Greedy)
{
    private static readonly Dictionary<string, IReadOnlyList<GoldenCase>> Cache = [];

    public static string Dir(string model) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "golden", model);

    public static IReadOnlyList<GoldenCase> LoadAll(string model)
    {
        lock (Cache)
        {
            if (Cache.TryGetValue(model, out var cached))
            {
                return cached;
            }

            using JsonDocument doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Dir(model), "golden.json")));
            var cases = new List<GoldenCase>();
            foreach (JsonElement c in doc.RootElement.GetProperty("cases").EnumerateArray())
            {
                cases.Add(new GoldenCase(
                    c.GetProperty("input_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
                    c.GetProperty("last_logits").EnumerateArray().Select(e => (float)e.GetDouble()).ToArray(),
                    c.GetProperty("top5_logprobs").EnumerateArray()
                        .Select(pos => pos.EnumerateArray().Select(pair => (pair[0].GetInt32(), pair[1].GetDouble())).ToArray()).ToArray(),
                    c.GetProperty("greedy").EnumerateArray().Select(e => e.GetInt32()).ToArray()));
            }

            Cache[model] = cases;
            return cases;
        }
    }
}
