using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Kernels;

public static class Embedding
{
    /// <summary>Rows of <paramref name="table"/> [vocab, hidden] for each token id into destination [tokens, hidden].</summary>
    public static void Gather(in WeightView table, ReadOnlySpan<int> tokenIds, Span<float> destination)
        => Reference.ScalarKernels.Gather(table, tokenIds, destination);
}
