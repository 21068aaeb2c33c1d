namespace Qwen3Sharp.Kernels;

public static class SwiGlu
{
    /// <summary>destination = silu(gate) * up, elementwise; destination may alias gate.</summary>
    public static void SiluMul(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> destination)
        => Reference.ScalarKernels.SiluMul(gate, up, destination);
}

public static class Softmax
{
    /// <summary>In-place numerically stable softmax.</summary>
    public static void Apply(Span<float> x) => Reference.ScalarKernels.Softmax(x);
}
