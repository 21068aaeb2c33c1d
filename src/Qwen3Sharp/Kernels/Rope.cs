namespace Qwen3Sharp.Kernels;

/// <summary>
/// Rotary position embedding, rotate-half form (Hugging Face's <c>apply_rotary_pos_emb</c>):
/// dimension i pairs with i + headDim/2.
/// </summary>
public static class Rope
{
    /// <summary>
    /// Rotates every head of x [tokenCount, headCount * headDim] in place; token t is at positions[t].
    /// <paramref name="inverseFrequencies"/> has headDim/2 entries; cos and sin are multiplied by
    /// <paramref name="attentionScaling"/> (1 except YaRN).
    /// </summary>
    public static void Apply(Span<float> x, int headCount, int headDim, ReadOnlySpan<int> positions,
        ReadOnlySpan<float> inverseFrequencies, float attentionScaling)
        => Reference.ScalarKernels.Rope(x, headCount, headDim, positions, inverseFrequencies, attentionScaling);
}
