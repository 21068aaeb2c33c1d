using Qwen3Sharp.Sampling;

namespace Qwen3Sharp.Tests.Sampling;

public class SamplerTests
{
    private static float[] LogitsOf(params double[] probs) => probs.Select(p => (float)Math.Log(p)).ToArray();

    /// <summary>The final candidate set as (id -> normalized probability).</summary>
    private static Dictionary<int, double> Candidates(Sampler s)
    {
        ReadOnlySpan<int> ids = s.LastCandidateIds;
        ReadOnlySpan<float> w = s.LastCandidateWeights;
        double total = 0;
        foreach (float x in w)
        {
            total += x;
        }

        var d = new Dictionary<int, double>();
        for (int i = 0; i < ids.Length; i++)
        {
            d[ids[i]] = w[i] / total;
        }

        return d;
    }

    private static void AssertDistribution(Dictionary<int, double> expected, Dictionary<int, double> actual, double tolerance = 1e-6)
    {
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach ((int id, double p) in expected)
        {
            Assert.True(Math.Abs(p - actual[id]) <= tolerance, $"token {id}: expected {p}, got {actual[id]}");
        }
    }

    private static Dictionary<int, double> Softmax(IReadOnlyList<(int Id, double Logit)> items)
    {
        double max = items.Max(x => x.Logit);
        double sum = items.Sum(x => Math.Exp(x.Logit - max));
        return items.ToDictionary(x => x.Id, x => Math.Exp(x.Logit - max) / sum);
    }

    [Fact]
    public void LogitBias_AddsPerToken()
    {
        var s = new Sampler(4, new SamplingParams { LogitBias = new Dictionary<int, float> { [0] = 5f, [3] = -100f } });
        s.ApplyBiasAndPenalties([1f, 2f, 3f, 4f]);
        Assert.Equal([6f, 2f, 3f, -96f], s.ProcessedLogits.ToArray());
    }

    [Fact]
    public void Penalties_GeneratedTokens_FollowOpenAiAndHfFormulas()
    {
        // repetition 2 (prompt + output): 2 -> 1, -2 -> -4, prompt-only 0.5 -> 0.25;
        // then presence 0.5 + frequency 0.25 * count on generated tokens only.
        var p = new SamplingParams { RepetitionPenalty = 2f, PresencePenalty = 0.5f, FrequencyPenalty = 0.25f };
        var s = new Sampler(5, p, promptTokens: [3]);
        s.Accept(0);
        s.Accept(0);
        s.Accept(1);
        s.ApplyBiasAndPenalties([2f, -2f, 1f, 0.5f, -1f]);
        Assert.Equal([0f, -4.75f, 1f, 0.25f, -1f], s.ProcessedLogits.ToArray());
    }

    [Fact]
    public void Penalties_PresenceAndFrequencyOnly_IgnorePrompt()
    {
        var s = new Sampler(4, new SamplingParams { PresencePenalty = 1f, FrequencyPenalty = 0.5f }, promptTokens: [2, 3]);
        s.Accept(1);
        s.Accept(1);
        s.Accept(1);
        s.ApplyBiasAndPenalties([1f, 1f, 1f, 1f]);
        Assert.Equal([1f, -1.5f, 1f, 1f], s.ProcessedLogits.ToArray());
    }

    [Fact]
    public void Greedy_TemperatureZero_PicksArgMaxAfterBiasAndPenalties()
    {
        var s = new Sampler(4, new SamplingParams { Temperature = 0f, PresencePenalty = 2f });
        Assert.Equal(2, s.Sample([0.1f, 0.5f, 3f, 2f]));
        s.Accept(2);
        Assert.Equal(3, s.Sample([0.1f, 0.5f, 3f, 2f]));   // 3 - 2 = 1 < 2
    }

    [Fact]
    public void Greedy_TinyTemperature_IsGreedy()
    {
        var s = new Sampler(3, new SamplingParams { Temperature = 1e-7f, Seed = 1 });
        Assert.Equal(1, s.Sample([1f, 1.0001f, 1f]));
        Assert.Equal(1, s.LastCandidateIds.Length);
    }

    [Fact]
    public void Greedy_Ties_PickLowestId()
    {
        var s = new Sampler(4, new SamplingParams { Temperature = 0f });
        Assert.Equal(1, s.Sample([0f, 5f, 5f, float.NaN]));
    }

    [Fact]
    public void Temperature_ScalesLogitsBeforeSoftmax()
    {
        var s = new Sampler(4, new SamplingParams { Temperature = 0.5f, Seed = 1 });
        s.Sample([1f, 2f, 3f, 4f]);
        // softmax([2, 4, 6, 8])
        AssertDistribution(Softmax([(0, 2), (1, 4), (2, 6), (3, 8)]), Candidates(s));
        Assert.Equal(0.8649549, Candidates(s)[3], 1e-6);   // 1 / (1 + e^-2 + e^-4 + e^-6)
    }

    [Fact]
    public void TopK_KeepsKLargest_ThenSoftmaxOverThem()
    {
        var s = new Sampler(6, new SamplingParams { TopK = 2, Seed = 1 });
        s.Sample([1f, 4f, 3f, 2f, -1f, 0f]);
        AssertDistribution(new() { [1] = 0.7310586, [2] = 0.2689414 }, Candidates(s));
    }

    [Theory]
    [InlineData(0.75f, new[] { 1, 0 })]
    [InlineData(0.85f, new[] { 1, 0, 3 })]
    [InlineData(0.4f, new[] { 1 })]
    [InlineData(1f, new[] { 0, 1, 2, 3 })]
    public void TopP_KeepsSmallestSetReachingP(float topP, int[] kept)
    {
        double[] p = [0.3, 0.5, 0.05, 0.15];                  // unsorted on purpose
        var s = new Sampler(4, new SamplingParams { TopP = topP, Seed = 1 });
        s.Sample(LogitsOf(p));
        double mass = kept.Sum(i => p[i]);
        AssertDistribution(kept.ToDictionary(i => i, i => p[i] / mass), Candidates(s));
    }

    [Theory]
    [InlineData(0.2f, new[] { 0, 1, 2 })]     // threshold 0.1
    [InlineData(0.5f, new[] { 0, 1 })]        // threshold 0.25
    [InlineData(1f, new[] { 0 })]
    public void MinP_DropsBelowFractionOfMax(float minP, int[] kept)
    {
        var s = new Sampler(4, new SamplingParams { MinP = minP, Seed = 1 });
        s.Sample(LogitsOf(0.5, 0.3, 0.15, 0.05));
        double[] p = [0.5, 0.3, 0.15, 0.05];
        double mass = kept.Sum(i => p[i]);
        AssertDistribution(kept.ToDictionary(i => i, i => p[i] / mass), Candidates(s));
    }

    [Fact]
    public void Chain_TemperatureTopKTopPMinP_AppliesInHfOrder()
    {
        // logits by id: [3, 1, 2.5, 0, 2, -1, 1.5, 0.5]; T = 0.5 doubles them; top-k 4 keeps ids 0, 2, 4, 6
        // (logits 6, 5, 4, 3); softmax over those: 0.6439, 0.2369, 0.0871, 0.0321;
        // top-p 0.9 keeps 0, 2, 4 (cumulative 0.968); min-p 0.2 drops 4 (0.0871 < 0.2 * 0.6439).
        var s = new Sampler(8, new SamplingParams { Temperature = 0.5f, TopK = 4, TopP = 0.9f, MinP = 0.2f, Seed = 7 });
        s.Sample([3f, 1f, 2.5f, 0f, 2f, -1f, 1.5f, 0.5f]);
        AssertDistribution(Softmax([(0, 6), (2, 5)]), Candidates(s));
    }

    [Fact]
    public void Sample_DoesNotModifyLogits()
    {
        float[] logits = [1f, 2f, 3f, 4f];
        var s = new Sampler(4, new SamplingParams { LogitBias = new Dictionary<int, float> { [0] = 1f }, PresencePenalty = 1f, TopK = 2 });
        s.Accept(3);
        s.Sample(logits.AsSpan());
        Assert.Equal([1f, 2f, 3f, 4f], logits);
    }

    [Fact]
    public void Sample_SameSeed_SameTokens_DifferentSeed_DifferentTokens()
    {
        float[] logits = Enumerable.Range(0, 8).Select(i => (float)Math.Sin(i) * 0.3f).ToArray();
        int[] Run(ulong seed)
        {
            var s = new Sampler(8, new SamplingParams { Temperature = 1f, Seed = seed, FrequencyPenalty = 0.1f });
            var tokens = new int[200];
            for (int i = 0; i < tokens.Length; i++)
            {
                tokens[i] = s.Sample(logits);
                s.Accept(tokens[i]);
            }

            return tokens;
        }

        Assert.Equal(Run(42), Run(42));
        Assert.NotEqual(Run(42), Run(43));
    }

    [Fact]
    public void Sample_NoSeed_ReportsTheRandomSeedItUses()
    {
        float[] logits = [0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f];
        var a = new Sampler(6, new SamplingParams());
        var b = new Sampler(6, new SamplingParams { Seed = a.Seed });
        for (int i = 0; i < 50; i++)
        {
            Assert.Equal(b.Sample(logits), a.Sample(logits));
        }
    }

    [Theory]
    [InlineData(0, new[] { 0.1, 0.2, 0.3, 0.4 })]
    [InlineData(3, new[] { 0.0, 0.2 / 0.9, 0.3 / 0.9, 0.4 / 0.9 })]
    public void Sample_20kDraws_FrequenciesMatchProbabilities(int topK, double[] expected)
    {
        var s = new Sampler(4, new SamplingParams { TopK = topK, Seed = 2024 });
        float[] logits = LogitsOf(0.1, 0.2, 0.3, 0.4);
        var counts = new int[4];
        const int draws = 20_000;
        for (int i = 0; i < draws; i++)
        {
            counts[s.Sample(logits)]++;
        }

        for (int t = 0; t < 4; t++)
        {
            double f = counts[t] / (double)draws;
            Assert.True(Math.Abs(f - expected[t]) < 0.012, $"token {t}: frequency {f}, probability {expected[t]}");
        }
    }

    [Fact]
    public void Sample_EverythingBanned_Throws()
    {
        var s = new Sampler(2, new SamplingParams());
        Assert.Throws<InvalidOperationException>(() => s.Sample([float.NegativeInfinity, float.NaN]));
    }

    [Fact]
    public void Sample_PositiveInfinityLogit_TakesAllMass()
    {
        var s = new Sampler(3, new SamplingParams { Seed = 3 });
        for (int i = 0; i < 20; i++)
        {
            Assert.Equal(1, s.Sample([5f, float.PositiveInfinity, 4f]));
        }
    }

    [Fact]
    public void Sample_WrongLength_Throws()
    {
        var s = new Sampler(4, new SamplingParams());
        Assert.Throws<ArgumentException>(() => s.Sample(new float[3]));
        Assert.Throws<ArgumentOutOfRangeException>(() => s.Accept(4));
    }

    [Theory]
    [InlineData("temperature")]
    [InlineData("top_k")]
    [InlineData("top_p")]
    [InlineData("min_p")]
    [InlineData("presence_penalty")]
    [InlineData("repetition_penalty")]
    [InlineData("logit_bias")]
    public void Constructor_OutOfRangeParameter_ThrowsNamingField(string field)
    {
        SamplingParams p = field switch
        {
            "temperature" => new() { Temperature = -0.1f },
            "top_k" => new() { TopK = -2 },
            "top_p" => new() { TopP = 0f },
            "min_p" => new() { MinP = 1.5f },
            "presence_penalty" => new() { PresencePenalty = 3f },
            "repetition_penalty" => new() { RepetitionPenalty = 0f },
            _ => new() { LogitBias = new Dictionary<int, float> { [4] = 1f } },
        };
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new Sampler(4, p));
        Assert.Equal(field, ex.ParamName);
    }

    [Theory]
    [InlineData(1, 3)]
    [InlineData(7, 1000)]
    [InlineData(100, 5)]
    [InlineData(999, 50)]
    public void TopKSteps_QuickselectAndScan_KeepTheKLargest(int k, int distinctValues)
    {
        var rng = new Random(k * 31 + distinctValues);
        float[] source = Enumerable.Range(0, 1000).Select(_ => (float)rng.Next(distinctValues)).ToArray();
        float[] expected = source.OrderByDescending(v => v).Take(k).ToArray();

        float[] values = (float[])source.Clone();
        int[] ids = Enumerable.Range(0, source.Length).ToArray();
        int n = SamplerSteps.TopK(values, ids, values.Length, k);
        Assert.Equal(k, n);
        Assert.Equal(expected, values.Take(k).OrderByDescending(v => v));
        Assert.All(Enumerable.Range(0, k), i => Assert.Equal(source[ids[i]], values[i]));

        var scanValues = new float[k];
        var scanIds = new int[k];
        Assert.Equal(k, SamplerSteps.TopKScan(source, k, scanValues, scanIds));
        Assert.Equal(expected, scanValues);
        Assert.All(Enumerable.Range(0, k), i => Assert.Equal(source[scanIds[i]], scanValues[i]));
    }

    [Fact]
    public void TopKScan_FewerFiniteThanK_ReturnsThoseSorted()
    {
        var values = new float[4];
        var ids = new int[4];
        int n = SamplerSteps.TopKScan([float.NegativeInfinity, 2f, float.NaN, 5f, 2f], 4, values, ids);
        Assert.Equal(3, n);
        Assert.Equal([3, 1, 4], ids.Take(3));
    }

    [Fact]
    public void SeededRandom_MatchesReferenceXoshiro256StarStar()
    {
        // Values from an independent Python implementation (SplitMix64 seeding, xoshiro256**).
        var r = new SeededRandom(42);
        Assert.Equal(0x15780b2e0c2ec716UL, r.NextUInt64());
        Assert.Equal(0x6104d9866d113a7eUL, r.NextUInt64());
        Assert.Equal(0xae17533239e499a1UL, r.NextUInt64());
        var z = new SeededRandom(0);
        Assert.Equal(0x99ec5f36cb75f2b4UL, z.NextUInt64());
    }

    private static float[] RandomLogits(int n, int seed)
    {
        var rng = new Random(seed);
        var l = new float[n];
        for (int i = 0; i < n; i++)
        {
            l[i] = (float)(rng.NextDouble() * 12 - 6);
        }

        return l;
    }

    [Theory]
    [InlineData(0, 0.3f)]
    [InlineData(50, 0.3f)]      // one-scan top-k
    [InlineData(200, 0.3f)]     // quickselect top-k
    [InlineData(400, 1f)]       // quickselect, no sort at all
    public void Sample_FullVocabulary_MatchesNaiveReference(int topK, float topP)
    {
        const int vocab = 151936;
        float[] logits = RandomLogits(vocab, 5);
        var p = new SamplingParams { Temperature = 0.8f, TopK = topK, TopP = topP, MinP = 0.05f, Seed = 11 };
        var s = new Sampler(vocab, p);
        int token = s.Sample(logits);

        // Naive chain: full sort, no prefilter.
        var order = Enumerable.Range(0, vocab).OrderByDescending(i => logits[i]).ThenBy(i => i).ToList();
        if (p.TopK > 0)
        {
            order = order.Take(p.TopK).ToList();
        }

        double max = logits[order[0]] / p.Temperature;
        double sum = order.Sum(i => Math.Exp(logits[i] / p.Temperature - max));
        var probs = order.Select(i => (Id: i, P: Math.Exp(logits[i] / p.Temperature - max) / sum)).ToList();
        double cumulative = 0;
        int cut = probs.Count;
        for (int i = 0; i < probs.Count; i++)
        {
            cumulative += probs[i].P;
            if (cumulative >= p.TopP)
            {
                cut = i + 1;
                break;
            }
        }

        probs = probs.Take(cut).Where(x => x.P >= p.MinP * probs[0].P).ToList();
        double mass = probs.Sum(x => x.P);

        Assert.True(probs.Count > 1, "the case should leave a real choice");
        AssertDistribution(probs.ToDictionary(x => x.Id, x => x.P / mass), Candidates(s), tolerance: 1e-4);
        Assert.Contains(token, probs.Select(x => x.Id));
    }

    [Fact]
    public void Sample_FullVocabulary_QwenDefaultsPickFromTop20AndGreedyPicksArgMax()
    {
        const int vocab = 151936;
        float[] logits = RandomLogits(vocab, 9);
        var top20 = Enumerable.Range(0, vocab).OrderByDescending(i => logits[i]).Take(20).ToHashSet();
        var s = new Sampler(vocab, SamplingDefaults.ForMode(thinking: true) with { Seed = 1 });
        for (int i = 0; i < 20; i++)
        {
            Assert.Contains(s.Sample(logits), top20);
        }

        var greedy = new Sampler(vocab, new SamplingParams { Temperature = 0f });
        Assert.Equal(Array.IndexOf(logits, logits.Max()), greedy.Sample(logits));
    }

    public static TheoryData<string> AllocationConfigs() => ["qwen-thinking", "no-top-k", "greedy", "plain"];

    [Theory, MemberData(nameof(AllocationConfigs))]
    public void Sample_AfterWarmUp_AllocatesNothing(string config)
    {
        const int vocab = 151936;
        SamplingParams p = config switch
        {
            "qwen-thinking" => SamplingDefaults.ForMode(true) with
            {
                Seed = 5, PresencePenalty = 0.5f, FrequencyPenalty = 0.1f, RepetitionPenalty = 1.1f, MinP = 0.01f,
                LogitBias = new Dictionary<int, float> { [7] = 2f, [151935] = -100f },
            },
            "no-top-k" => new SamplingParams { Temperature = 0.9f, TopP = 0.9f, MinP = 0.02f, Seed = 5 },
            "greedy" => new SamplingParams { Temperature = 0f, RepetitionPenalty = 1.2f },
            _ => new SamplingParams { Seed = 5 },
        };
        float[] logits = RandomLogits(vocab, 3);
        var s = new Sampler(vocab, p, promptTokens: [1, 2, 3, 4, 5]);
        for (int i = 0; i < 3; i++)
        {
            s.Accept(s.Sample(logits));
        }

        long allocated = Allocations.Fewest(() =>
        {
            for (int i = 0; i < 64; i++)
            {
                s.Accept(s.Sample(logits));
            }
        });
        Assert.Equal(0, allocated);
    }
}
