using Qwen3Sharp.Sampling;

namespace Qwen3Sharp.Tests.Sampling;

public class LogprobCalculatorTests
{
    [Fact]
    public void Compute_SmallVocab_IsLogSoftmaxWithTopSortedDescending()
    {
        float[] logits = [1f, 3f, 2f, 3f, 0f];
        double lse = Math.Log(logits.Sum(x => Math.Exp(x)));
        Span<TokenLogprob> top = stackalloc TokenLogprob[3];
        float chosen = LogprobCalculator.Compute(logits, 2, top);

        Assert.Equal(2 - lse, chosen, 1e-5);
        Assert.Equal([1, 3, 2], top.ToArray().Select(t => t.TokenId));      // tie 3 == 3: lower id first
        Assert.Equal(3 - lse, top[0].Logprob, 1e-5);
        Assert.Equal(3 - lse, top[1].Logprob, 1e-5);
        Assert.Equal(2 - lse, top[2].Logprob, 1e-5);
    }

    [Fact]
    public void Compute_FullVocab_MatchesSortedReferenceAndAllocatesNothing()
    {
        const int vocab = 151936;
        var rng = new Random(1);
        float[] logits = Enumerable.Range(0, vocab).Select(_ => (float)(rng.NextDouble() * 20 - 10)).ToArray();
        var top = new TokenLogprob[20];
        float chosen = 0;
        Assert.Equal(0, Allocations.Fewest(() => chosen = LogprobCalculator.Compute(logits, 123, top), windows: 40));

        double max = logits.Max();
        double lse = max + Math.Log(logits.Sum(x => Math.Exp(x - max)));
        Assert.Equal(logits[123] - lse, chosen, 1e-4);
        int[] expected = Enumerable.Range(0, vocab).OrderByDescending(i => logits[i]).ThenBy(i => i).Take(20).ToArray();
        Assert.Equal(expected, top.Select(t => t.TokenId));
        Assert.Equal(logits[expected[19]] - lse, top[19].Logprob, 1e-4);
    }

    [Fact]
    public void Compute_TooManyAlternatives_Throws()
        => Assert.Throws<ArgumentOutOfRangeException>(() => LogprobCalculator.Compute(new float[100], 0, new TokenLogprob[21]));
}
