using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Kernels;

/// <summary>Products of activations with a stored weight matrix (<c>y = x · Wᵀ</c>).</summary>
public static class MatMul
{
    /// <summary>
    /// <paramref name="x"/> [tokenCount, w.ColCount] times <paramref name="w"/>ᵀ into
    /// <paramref name="destination"/> [tokenCount, w.RowCount]. tokenCount 1 is the decode matvec.
    /// </summary>
    public static void Multiply(WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w, Span<float> destination)
        => Reference.ScalarKernels.MatMul(x, tokenCount, w, destination, accumulate: false);

    /// <summary>As <see cref="Multiply"/> but adds into <paramref name="destination"/> (fused residual).</summary>
    public static void MultiplyAdd(WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w, Span<float> destination)
        => Reference.ScalarKernels.MatMul(x, tokenCount, w, destination, accumulate: true);
}
