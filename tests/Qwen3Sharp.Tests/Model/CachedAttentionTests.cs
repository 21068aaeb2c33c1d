using Qwen3Sharp.Kernels.Reference;
using Qwen3Sharp.Model;

namespace Qwen3Sharp.Tests.Model;

public sealed class CachedAttentionTests
{
    [Theory]
    [InlineData(1, 0, 4, 2, 32)]     // decode, first position
    [InlineData(1, 37, 6, 1, 16)]    // decode deep into the cache, MQA
    [InlineData(9, 5, 16, 8, 128)]   // chunk after a prefix, Qwen3-1.7B head shape
    [InlineData(7, 0, 4, 4, 6)]      // MHA, head_dim below a vector width
    public void Causal_MatchesScalarKernel(int tokenCount, int startPosition, int heads, int kvHeads, int headDim)
    {
        var rng = new Random(tokenCount * 1000 + startPosition);
        int context = startPosition + tokenCount;
        float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        float[] q = Random(tokenCount * heads * headDim);
        float[] k = Random(context * kvHeads * headDim);
        float[] v = Random(context * kvHeads * headDim);
        var expected = new float[q.Length];
        var actual = new float[q.Length];
        float scale = 1f / MathF.Sqrt(headDim);
        ScalarKernels.CausalAttention(q, tokenCount, startPosition, k, v, heads, kvHeads, headDim, scale, expected);
        CachedAttention.Causal(q, tokenCount, startPosition, k, v, heads, kvHeads, headDim, scale, new float[context], actual);
        (float max, int at) = GoldenModelTests.MaxAbsDiff(expected, actual);
        Assert.True(max <= 1e-5f, $"max |Δ| {max:E3} at {at}: expected {expected[at]} actual {actual[at]}");
    }
}
