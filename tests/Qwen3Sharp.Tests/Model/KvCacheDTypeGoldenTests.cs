using Qwen3Sharp.Cache;
using Qwen3Sharp.Engine;
using Qwen3Sharp.Model;
using Xunit.Abstractions;

namespace Qwen3Sharp.Tests.Model;

/// <summary>
/// The logit drift of each KV-cache dtype against the golden float64 reference, through the engine's paged runner:
/// every golden case is fed one token at a time (each position's logits come from attention over the stored keys
/// and values), then greedy decoding continues. The golden tests themselves (<see cref="GoldenModelTests"/>) run the
/// dense float32 cache; here float32 must meet the same 2e-3 and the 16-bit caches the bounds measured for them
/// (README, "KV cache dtype"), with a margin.
/// </summary>
public sealed class KvCacheDTypeGoldenTests(ITestOutputHelper output)
{
    // Measured on tiny-a / tiny-b (every case, prompts of 1 to 300 tokens; README, "KV cache dtype"):
    //   f32  max |Δlogit| 1.5e-5 / 9.1e-6, max |Δlogprob| 2.3e-5 / 2.3e-5
    //   bf16 max |Δlogit| 5.4e-2 / 6.5e-2, max |Δlogprob| 6.6e-2 / 5.7e-2
    //   f16  max |Δlogit| 8.1e-3 / 6.0e-3, max |Δlogprob| 9.9e-3 / 1.0e-2
    //   q8_0 max |Δlogit| 0.28 (tiny-a only: tiny-b's heads of 16 cannot hold blocks of 32), max |Δlogprob| 0.23
    // bf16 keeps 8 bits of mantissa, f16 11: f16 drifts 6-9x less; q8_0 keeps ~7 bits relative to each block's largest
    // element, ~5x bf16's drift. Bounds: float32 the golden 2e-3, the others about 2.3x the measured worst.
    private static float LogitBound(KvCacheDType dtype) => dtype switch
    {
        KvCacheDType.F32 => 2e-3f,
        KvCacheDType.BF16 => 0.15f,
        KvCacheDType.Q8_0 => 0.65f,
        _ => 0.02f,
    };

    private static double LogprobBound(KvCacheDType dtype) => dtype switch
    {
        KvCacheDType.F32 => 2e-3,
        KvCacheDType.BF16 => 0.15,
        KvCacheDType.Q8_0 => 0.5,
        _ => 0.025,
    };

    public static TheoryData<string, KvCacheDType> Cases()
    {
        var data = new TheoryData<string, KvCacheDType>();
        foreach (string model in new[] { "tiny-a", "tiny-b" })
        {
            foreach (KvCacheDType dtype in new[] { KvCacheDType.F32, KvCacheDType.BF16, KvCacheDType.F16 })
            {
                data.Add(model, dtype);
            }
        }

        data.Add("tiny-a", KvCacheDType.Q8_0);   // tiny-b's head_dim 16 cannot hold q8_0's blocks of 32
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void PagedRunner_GoldenCases_DriftWithinTheDTypesBound(string model, KvCacheDType dtype)
    {
        IReadOnlyList<GoldenCase> cases = GoldenCase.LoadAll(model);
        var m = Qwen3Model.Load(GoldenCase.Dir(model), new Qwen3ModelOptions { ThreadCount = 2, ContextSize = 512 });
        using var runner = new Qwen3ModelRunner(m, maxSequences: 1, kvBlockCount: 512 / KvBlockPool.DefaultBlockSize, dtype);
        Assert.Equal(dtype, runner.KvDType);
        int vocab = runner.VocabSize;
        var logits = new float[vocab];
        float worstLogit = 0;
        double worstLogprob = 0;
        string worstCase = "";
        int greedyMatched = 0, greedyTotal = 0;
        for (int ci = 0; ci < cases.Count; ci++)
        {
            GoldenCase c = cases[ci];
            using ISequenceState s = runner.TryAllocateSequence()!;
            for (int p = 0; p < c.InputIds.Length; p++)
            {
                runner.Forward(s, c.InputIds.AsSpan(p, 1), logits);
                double[] logprobs = GoldenModelTests.LogSoftmax(logits);
                foreach ((int id, double reference) in c.Top5[p])
                {
                    worstLogprob = Math.Max(worstLogprob, Math.Abs(logprobs[id] - reference));
                }
            }

            (float d, int at) = GoldenModelTests.MaxAbsDiff(logits, c.LastLogits);
            if (!(d <= worstLogit))
            {
                worstLogit = d;
                worstCase = $"case {ci} ({c.InputIds.Length} tokens) at vocab {at}: ours {logits[at]}, ref {c.LastLogits[at]}; " +
                    $"first values ours [{GoldenModelTests.First(logits)}] ref [{GoldenModelTests.First(c.LastLogits)}]";
            }

            // Greedy continuation: the steps that match before the first divergence (a 16-bit cache may flip a step whose
            // top-2 margin is below its drift; the smallest margin in the fixtures is 1e-3).
            for (int i = 0; i < c.Greedy.Length; i++)
            {
                int next = GoldenModelTests.ArgMax(logits);
                if (next != c.Greedy[i])
                {
                    break;
                }

                greedyMatched++;
                runner.Forward(s, [next], logits);
            }

            greedyTotal += c.Greedy.Length;
        }

        Assert.Equal(0, runner.UsedKvBlockCount);
        output.WriteLine($"{model} kv {dtype.Name()}: max |Δlogit| (last position) {worstLogit:E2}, max |Δlogprob| (top-5, every position) " +
            $"{worstLogprob:E2}, greedy steps matching the reference before any divergence {greedyMatched}/{greedyTotal}");
        Assert.True(worstLogit <= LogitBound(dtype), $"{model} {dtype.Name()}: max |Δlogit| {worstLogit:E3} in {worstCase}");
        Assert.True(worstLogprob <= LogprobBound(dtype), $"{model} {dtype.Name()}: max |Δlogprob| over top-5 = {worstLogprob:E3}");
        if (dtype == KvCacheDType.F32)
        {
            Assert.Equal(greedyTotal, greedyMatched);
        }
    }
}
