using System.Runtime.Intrinsics;

namespace Qwen3Sharp.Kernels;

/// <summary>How the BF16 decode and small-batch kernels stream weight rows (see <see cref="MatMul"/>).</summary>
public enum DecodeKernel
{
    /// <summary>
    /// Four rows at once with a <c>prefetcht0</c> of the next four rows. Kept where it was measured to win:
    /// Zen 3 (AVX2), 1.15× llama.cpp decode in the README's Zen 3 block.
    /// </summary>
    FourRows,

    /// <summary>
    /// One row at a time, four independent accumulators, no software prefetch (what llama.cpp's
    /// <c>ggml_vec_dot_bf16</c> does at decode). On Zen 4 the four-row kernel's T0 prefetch (16–48 KB ahead in a
    /// 32 KB L1D) evicted lines before use. Small batches (2..16 tokens) keep the four-row tile with its prefetch
    /// under both variants: they are compute bound, and dropping the prefetch there measured 0.55–0.78× (Zen 4).
    /// </summary>
    OneRow,
}

/// <summary>Start-up choice of kernel variants by CPU, overridable by environment variable.</summary>
public static class KernelSelection
{
    /// <summary>Environment variable that forces the decode kernel: <c>one-row</c> or <c>four-rows</c>.</summary>
    public const string DecodeKernelVariable = "QWEN3_DECODE_KERNEL";

    private static DecodeKernel? s_decode;

    /// <summary>
    /// The decode kernel <see cref="MatMul"/> uses: chosen on first use from <see cref="DecodeKernelVariable"/> and
    /// the CPU (an unknown value is an <see cref="ArgumentException"/> naming the variable), or set at start-up.
    /// </summary>
    public static DecodeKernel Decode
    {
        get => s_decode ??= ChooseDecode(Environment.GetEnvironmentVariable(DecodeKernelVariable));
        set => s_decode = value;
    }

    /// <summary>
    /// The variable's value when set (anything else is an error), otherwise by CPU: one-row where 512-bit vectors
    /// are accelerated (the AVX-512 machines, Zen 4/5, where it measured faster), four-rows elsewhere (AVX2 Zen 3,
    /// where four-rows is the measured winner and one-row has not been measured).
    /// </summary>
    public static DecodeKernel ChooseDecode(string? setting) => setting?.Trim().ToLowerInvariant() switch
    {
        null or "" or "auto" => Vector512.IsHardwareAccelerated ? DecodeKernel.OneRow : DecodeKernel.FourRows,
        "one-row" => DecodeKernel.OneRow,
        "four-rows" => DecodeKernel.FourRows,
        _ => throw new ArgumentException(
            $"{DecodeKernelVariable}='{setting}' is not one of auto, one-row, four-rows.", nameof(setting)),
    };

    /// <summary>Kebab-case name as the environment variable spells it.</summary>
    public static string Name(DecodeKernel kernel) => kernel == DecodeKernel.OneRow ? "one-row" : "four-rows";

    /// <summary>Widest vector the matmul kernels use on this CPU (bits).</summary>
    public static int VectorBits => Vector512.IsHardwareAccelerated ? 512 : Vector256.IsHardwareAccelerated ? 256
        : Vector128.IsHardwareAccelerated ? 128 : 32;
}
