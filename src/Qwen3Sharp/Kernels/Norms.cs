namespace Qwen3Sharp.Kernels;

public static class RmsNorm
{
    /// <summary>Row-wise RMSNorm: x [rows, weight.Length] -> destination, same shape.</summary>
    public static void Apply(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> destination)
        => Reference.ScalarKernels.RmsNorm(x, weight, eps, destination);

    /// <summary>Qwen3's q/k norm: RMSNorm of every head_dim slice of x [tokens, heads * headDim] in place.</summary>
    public static void ApplyPerHead(Span<float> x, ReadOnlySpan<float> weight, float eps)
        => Reference.ScalarKernels.RmsNorm(x, weight, eps, x);
}
