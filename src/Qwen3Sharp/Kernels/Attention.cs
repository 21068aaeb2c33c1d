namespace Qwen3Sharp.Kernels;

public static class Attention
{
    /// <summary>
    /// Causal grouped-query attention of a batch of new tokens against the cache.
    /// q [tokenCount, headCount * headDim]; keys and values [≥ startPosition + tokenCount, kvHeadCount * headDim]
    /// already hold the new tokens' k and v; token t sits at position startPosition + t and sees positions
    /// 0..startPosition + t. Query head h reads kv head h / (headCount / kvHeadCount).
    /// destination [tokenCount, headCount * headDim].
    /// </summary>
    public static void Causal(WorkerPool pool, ReadOnlySpan<float> q, int tokenCount, int startPosition,
        ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int headCount, int kvHeadCount, int headDim,
        float scale, Span<float> destination)
        => Reference.ScalarKernels.CausalAttention(q, tokenCount, startPosition, keys, values, headCount,
            kvHeadCount, headDim, scale, destination);
}
