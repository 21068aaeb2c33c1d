using System.Runtime.Intrinsics;

namespace Qwen3Sharp.Kernels;

/// <summary>How the BF16 decode and small-batch kernels stream weight rows (see <see cref="MatMul"/>).</summary>
public enum DecodeKernel
{
    /// <summary>
    /// Four rows at once with a <c>prefetcht0</c> of the next four rows. Kept where it was measured to win:
    /// Zen 3 (AVX2), where it streams at 82–97% of the measured read bandwidth (README, Zen 3 block).
    /// </summary>
    FourRows,

    /// <summary>
    /// One row at a time, four independent accumulators, no software prefetch (what llama.cpp's
    /// <c>ggml_vec_dot_bf16</c> does at decode). On Zen 4 the four-row kernel's T0 prefetch (16–48 KB ahead in a
    /// 32 KB L1D) evicted lines before use. Small batches (2..16 tokens) keep the four-row tile with its prefetch
    /// under both variants: they are compute bound, and dropping the prefetch there measured 0.55–0.78× (Zen 4).
    /// The AVX-512 default until <see cref="FourStreams"/> beat it on a Zen 5.
    /// </summary>
    OneRow,

    /// <summary>
    /// Four rows at once from the four quarters of a work item (streams of 64 KiB for 2048 columns, far apart, each
    /// running on through its quarter's rows), no software prefetch: the quantized decode's four-stream walk for BF16
    /// rows. Each row gets <see cref="OneRow"/>'s arithmetic in its order, so the two give the same bits. The default where
    /// 512-bit vectors are accelerated (<see cref="KernelSelection.ChooseDecode"/>).
    /// </summary>
    FourStreams,
}

/// <summary>How BF16 products of a few tokens (batched decode, 3..31 tokens) are computed (see <see cref="MatMul"/>).</summary>
public enum BatchKernel
{
    /// <summary>
    /// The decode kernel with tokens in pairs below two vectors of tokens (each 4-row group's bf16 re-converted for
    /// every pair), the float32 prefill panels from there on.
    /// </summary>
    Stream,

    /// <summary>
    /// Register tiles of 2 rows × 4–5 tokens or 3 × 3 (4 × 3–5 with 32 vector registers) in dot-product form (each bf16 vector converted once per group of
    /// 3–5 tokens, no idle lanes whatever the count), 1024-column chunks so a token group's activations stay in L1,
    /// for 3..31 tokens. Two tokens keep the pair kernel and 32+ the panels.
    /// </summary>
    Tiled,

    /// <summary>
    /// The pair kernel below two vectors of tokens (as <see cref="Stream"/>), the tiles of <see cref="Tiled"/> from there
    /// to 31 tokens in place of the panels. On the shared Zen 3 (2 threads, weights from DRAM) the tiles beat the panels
    /// at 16 and 24 tokens and tied the pair kernel at 12, but trailed it by about 5% at 4–8 tokens, although they led it
    /// by 10–25% on L2-resident weights: so the pair kernel keeps the smaller batches until a quiet run says otherwise.
    /// </summary>
    Hybrid,
}

/// <summary>How GGML block-format products of fewer than <see cref="MatMul.QuantPanelTokens"/> tokens (decode) treat the activations.</summary>
public enum QuantDecodeKernel
{
    /// <summary>float32 activations; every weight widened to float32 in registers and FMA'd (compute bound).</summary>
    Float,

    /// <summary>
    /// Activations quantized once per product to 8-bit blocks of 32 and dotted with the weight codes in integers
    /// (<c>vpmaddubsw</c>/<c>vpmaddwd</c>, as llama.cpp does) for Q8_0, Q4_0 and the K-quants (Q4_K, Q5_K, Q6_K: QuantMatMul.KQuantsInt8.cs).
    /// </summary>
    Int8,
}

/// <summary>How products of at least <see cref="MatMul.QuantPanelTokens"/> tokens (prefill) with 8-row group matrices (Q8_0x8, Q4_0x8, Q4_Kx8, Q5_Kx8, Q6_Kx8, Affine8x8, Affine4x8) are computed.</summary>
public enum QuantPrefillKernel
{
    /// <summary>Each row block dequantized to float32 once, then the float32 prefill panels (activations stay float32).</summary>
    Panels,

    /// <summary>
    /// The decode path's int8 activations against the 8-row groups, tokens in tiles of <see cref="QuantMatMul.TileTokens"/>
    /// (integer dots, as llama.cpp multiplies quantized weights in prefill): each token gets the bits it gets decoded alone.
    /// </summary>
    Int8,
}

/// <summary>How GGUF Q4_0, Q4_K, Q6_K and Q8_0 matrices are laid out in memory after load.</summary>
public enum QuantLayout
{
    /// <summary>As stored in the file (row-major blocks), used in place from the mapping.</summary>
    Rows,

    /// <summary>
    /// Repacked at load into groups of 8 interleaved rows (<see cref="Tensors.DType.Q4_0x8"/>, Q4_K: <see cref="Tensors.DType.Q4_Kx8"/>, Q5_K: <see cref="Tensors.DType.Q5_Kx8"/>, Q6_K: <see cref="Tensors.DType.Q6_Kx8"/>, Q8_0: <see cref="Tensors.DType.Q8_0x8"/>) in a private buffer, the
    /// file's pages dropped from the resident set: the decode kernel dots each activation block with 8 rows at once.
    /// </summary>
    Interleaved8,
}

/// <summary>How BF16 products of many tokens (prefill) are computed (see <see cref="MatMul"/>).</summary>
public enum PrefillKernel
{
    /// <summary>The managed float32 panel kernels (every CPU; activations stay float32).</summary>
    Managed,

    /// <summary>
    /// Generated AVX512_BF16 machine code (<c>vdpbf16ps</c>, <see cref="Jit.Bf16PanelKernels"/>): activations rounded
    /// to bf16 once per product, float32 accumulation. Only where the CPU has AVX512_BF16 (Linux x86-64).
    /// </summary>
    JitBf16,
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
    /// The variable's value when set (anything else is an error), otherwise by CPU: four-streams where 512-bit vectors
    /// are accelerated (the AVX-512 machines, Zen 4/5), four-rows elsewhere. On a quiet Zen 3 (AVX2, 2026-12-06, 41.7 GB/s
    /// read) one-row measured 0.76–0.95× four-rows per 1.7B matrix in one process (`Qwen3Sharp.Bench quick 2 ab`) and
    /// 7.40 / 6.91 against 8.50 / 8.28 tok/s in alternating whole-model runs. On a Zen 5 (2026-12-07, 84 GB/s read)
    /// four-streams measured 1.01–1.16× one-row per 1.7B matrix (1.06× over a decode step's matrices;
    /// <c>AB_KERNELS=one-row,four-streams Qwen3Sharp.Bench quick 2 ab</c>, two runs) and 1.03× median in five whole-model
    /// A/Bs (<c>qwen3 bench</c>'s decode A/B line: 0.97–1.04×). One-row was chosen on Zen 4 against four-rows.
    /// </summary>
    public static DecodeKernel ChooseDecode(string? setting) => setting?.Trim().ToLowerInvariant() switch
    {
        null or "" or "auto" => Vector512.IsHardwareAccelerated ? DecodeKernel.FourStreams : DecodeKernel.FourRows,
        "one-row" => DecodeKernel.OneRow,
        "four-rows" => DecodeKernel.FourRows,
        "four-streams" => DecodeKernel.FourStreams,
        _ => throw new ArgumentException(
            $"{DecodeKernelVariable}='{setting}' is not one of auto, one-row, four-rows, four-streams.", nameof(setting)),
    };

    /// <summary>Environment variable that picks the BF16 batched-decode kernel: <c>auto</c>, <c>stream</c>, <c>hybrid</c> or <c>tiled</c>.</summary>
    public const string BatchKernelVariable = "QWEN3_BATCH_KERNEL";

    private static BatchKernel? s_batch;

    /// <summary>
    /// The kernel BF16 products of 3..31 tokens take: chosen on first use from <see cref="BatchKernelVariable"/> and
    /// the CPU, or set at start-up.
    /// </summary>
    public static BatchKernel Batch
    {
        get => s_batch ??= ChooseBatch(Environment.GetEnvironmentVariable(BatchKernelVariable));
        set => s_batch = value;
    }

    /// <summary>
    /// The variable's value when set (anything else is an <see cref="ArgumentException"/>); unset or <c>auto</c> is
    /// <c>hybrid</c> where 512-bit vectors are not accelerated (AVX2: measured on Zen 3, see <see cref="BatchKernel.Hybrid"/>),
    /// <c>tiled</c> on AVX-512 machines: on a Zen 5 (2 threads, one 1.7B layer from DRAM, 2026-12-07,
    /// <c>Qwen3Sharp.Bench quick 2 smallbatch=stream,tiled,default,panel</c>) the tiles cost 0.76–0.85× the stream kernel's
    /// time at 4–16 tokens and 0.90× at 24, level at 2–3.
    /// </summary>
    public static BatchKernel ChooseBatch(string? setting) => setting?.Trim().ToLowerInvariant() switch
    {
        null or "" or "auto" => Vector512.IsHardwareAccelerated ? BatchKernel.Tiled : BatchKernel.Hybrid,
        "stream" => BatchKernel.Stream,
        "hybrid" => BatchKernel.Hybrid,
        "tiled" => BatchKernel.Tiled,
        _ => throw new ArgumentException(
            $"{BatchKernelVariable}='{setting}' is not one of auto, stream, hybrid, tiled.", nameof(setting)),
    };

    /// <summary>Kebab-case name as the environment variable spells it.</summary>
    public static string Name(BatchKernel kernel) => kernel switch
    {
        BatchKernel.Tiled => "tiled",
        BatchKernel.Hybrid => "hybrid",
        _ => "stream",
    };

    /// <summary>Environment variable that picks the quantized decode path: <c>auto</c>, <c>int8</c> or <c>float</c>.</summary>
    public const string QuantDecodeVariable = "QWEN3_QUANT_DECODE";

    private static QuantDecodeKernel? s_quantDecode;

    /// <summary>
    /// The activation path of the block-format (Q8_0, Q4_0, K-quant) decode and small-batch kernels: chosen on first use from
    /// <see cref="QuantDecodeVariable"/>, or set at start-up.
    /// </summary>
    public static QuantDecodeKernel QuantDecode
    {
        get => s_quantDecode ??= ChooseQuantDecode(Environment.GetEnvironmentVariable(QuantDecodeVariable));
        set => s_quantDecode = value;
    }

    /// <summary>
    /// The variable's value when set (anything else is an <see cref="ArgumentException"/>); unset or <c>auto</c> is
    /// <c>int8</c> on every CPU: it measured faster than the float path on Zen 3 (AVX2) at 1.7B shapes (README).
    /// </summary>
    public static QuantDecodeKernel ChooseQuantDecode(string? setting) => setting?.Trim().ToLowerInvariant() switch
    {
        null or "" or "auto" => QuantDecodeKernel.Int8,
        "int8" => QuantDecodeKernel.Int8,
        "float" => QuantDecodeKernel.Float,
        _ => throw new ArgumentException(
            $"{QuantDecodeVariable}='{setting}' is not one of auto, int8, float.", nameof(setting)),
    };

    /// <summary>Kebab-case name as the environment variable spells it.</summary>
    public static string Name(QuantDecodeKernel kernel) => kernel == QuantDecodeKernel.Int8 ? "int8" : "float";

    /// <summary>Environment variable that picks the prefill path of 8-row group matrices: <c>auto</c>, <c>int8</c> or <c>panels</c>.</summary>
    public const string QuantPrefillVariable = "QWEN3_QUANT_PREFILL";

    private static QuantPrefillKernel? s_quantPrefill;

    /// <summary>
    /// The prefill path of the 8-row group formats: chosen on first use from <see cref="QuantPrefillVariable"/>, or set
    /// at start-up.
    /// </summary>
    public static QuantPrefillKernel QuantPrefill
    {
        get => s_quantPrefill ??= ChooseQuantPrefill(Environment.GetEnvironmentVariable(QuantPrefillVariable));
        set => s_quantPrefill = value;
    }

    /// <summary>
    /// The variable's value when set (anything else is an <see cref="ArgumentException"/>); unset or <c>auto</c> is
    /// <c>int8</c>: on Zen 3 (AVX2, 2 threads, quiet) 1.7B prefill ran faster than through the panels (README). Its KL
    /// divergence is the int8 decode path's, measured level with llama.cpp's on the same files.
    /// </summary>
    public static QuantPrefillKernel ChooseQuantPrefill(string? setting) => setting?.Trim().ToLowerInvariant() switch
    {
        null or "" or "auto" => QuantPrefillKernel.Int8,
        "int8" => QuantPrefillKernel.Int8,
        "panels" => QuantPrefillKernel.Panels,
        _ => throw new ArgumentException(
            $"{QuantPrefillVariable}='{setting}' is not one of auto, int8, panels.", nameof(setting)),
    };

    /// <summary>Kebab-case name as the environment variable spells it.</summary>
    public static string Name(QuantPrefillKernel kernel) => kernel == QuantPrefillKernel.Int8 ? "int8" : "panels";

    /// <summary>Environment variable that picks the Q4_0/Q4_K layout at load: <c>auto</c>, <c>x8</c> or <c>rows</c>.</summary>
    public const string QuantLayoutVariable = "QWEN3_QUANT_LAYOUT";

    private static QuantLayout? s_quantLayout;

    /// <summary>
    /// The layout GGUF loading gives Q4_0, Q4_K, Q6_K and Q8_0 matrices: chosen on first use from <see cref="QuantLayoutVariable"/>, or set
    /// at start-up (the A/B benches load the same file both ways).
    /// </summary>
    public static QuantLayout QuantLayout
    {
        get => s_quantLayout ??= ChooseQuantLayout(Environment.GetEnvironmentVariable(QuantLayoutVariable));
        set => s_quantLayout = value;
    }

    /// <summary>
    /// The variable's value when set (anything else is an <see cref="ArgumentException"/>); unset or <c>auto</c> is
    /// <c>x8</c> on every CPU (the 8-row kernel has an AVX2 form and a scalar twin; measured faster at decode on Zen 3,
    /// see QuantMatMul.Q4x8.cs).
    /// </summary>
    public static QuantLayout ChooseQuantLayout(string? setting) => setting?.Trim().ToLowerInvariant() switch
    {
        null or "" or "auto" => QuantLayout.Interleaved8,
        "x8" => QuantLayout.Interleaved8,
        "rows" => QuantLayout.Rows,
        _ => throw new ArgumentException(
            $"{QuantLayoutVariable}='{setting}' is not one of auto, x8, rows.", nameof(setting)),
    };

    /// <summary>Kebab-case name as the environment variable spells it.</summary>
    public static string Name(QuantLayout layout) => layout == QuantLayout.Interleaved8 ? "x8" : "rows";

    /// <summary>Environment variable that picks the layout of BF16, F16 and F32 matrices at load: <c>auto</c>, <c>x8</c> or <c>rows</c>.</summary>
    public const string FloatLayoutVariable = "QWEN3_FLOAT_LAYOUT";

    private static QuantLayout? s_floatLayout;

    /// <summary>
    /// The layout loads give BF16, F16 and F32 matrices copied into private memory (<c>--weights copy|hugepage-copy</c>;
    /// mapped weights stay rows): chosen on first use from <see cref="FloatLayoutVariable"/> and the CPU, or set at start-up.
    /// </summary>
    public static QuantLayout FloatLayout
    {
        get => s_floatLayout ??= ChooseFloatLayout(Environment.GetEnvironmentVariable(FloatLayoutVariable), MatMul.FloatGroupsSupported,
            Vector512.IsHardwareAccelerated, Prefill == PrefillKernel.JitBf16);
        set => s_floatLayout = value == QuantLayout.Interleaved8 && !MatMul.FloatGroupsSupported
            ? throw new NotSupportedException("the 8-row float group kernels need AVX2 and FMA") : value;
    }

    /// <summary>
    /// The variable's value when set (anything else is an <see cref="ArgumentException"/>; <c>x8</c> without AVX2 + FMA a
    /// <see cref="NotSupportedException"/>). Unset or <c>auto</c>: <c>x8</c> on AVX2 machines without 512-bit vectors (Zen 3:
    /// batched steps 1.2–1.3× faster and batch invariant by default, decode level or better: README), <c>rows</c> where
    /// 512-bit vectors are accelerated (the Zen 4/5 kernels were chosen on rows; the groups are unmeasured there) and under
    /// the JIT bf16 prefill (it reads rows).
    /// </summary>
    public static QuantLayout ChooseFloatLayout(string? setting, bool supported, bool wideVectors, bool jitPrefill) => setting?.Trim().ToLowerInvariant() switch
    {
        null or "" or "auto" => supported && !wideVectors && !jitPrefill ? QuantLayout.Interleaved8 : QuantLayout.Rows,
        "x8" when supported => QuantLayout.Interleaved8,
        "x8" => throw new NotSupportedException($"{FloatLayoutVariable}=x8: the 8-row float group kernels need AVX2 and FMA."),
        "rows" => QuantLayout.Rows,
        _ => throw new ArgumentException(
            $"{FloatLayoutVariable}='{setting}' is not one of auto, x8, rows.", nameof(setting)),
    };

    /// <summary>Environment variable that forces the prefill kernel: <c>auto</c>, <c>managed</c> or <c>jit-bf16</c>.</summary>
    public const string PrefillKernelVariable = "QWEN3_PREFILL_KERNEL";

    private static PrefillKernel? s_prefill;

    /// <summary>
    /// The BF16 prefill kernel <see cref="MatMul"/> dispatches to for batches of at least
    /// <see cref="Bf16Prefill.MinTokens"/> tokens: chosen on first use from <see cref="PrefillKernelVariable"/> and the
    /// CPU, or set at start-up.
    /// </summary>
    public static PrefillKernel Prefill
    {
        get => s_prefill ??= ChoosePrefill(Environment.GetEnvironmentVariable(PrefillKernelVariable), Jit.Bf16PanelKernels.IsSupported);
        set
        {
            if (value == PrefillKernel.JitBf16 && !Jit.Bf16PanelKernels.IsSupported)
            {
                throw new NotSupportedException(JitUnsupported);
            }

            s_prefill = value;
        }
    }

    /// <summary>
    /// True where the JIT bf16 prefill kernel can run: Linux x86-64, AVX512F enabled in the runtime
    /// (<c>DOTNET_EnableAVX512=0</c> turns it off) and AVX512_BF16 in CPUID leaf 7 sub-leaf 1 (EAX bit 5).
    /// </summary>
    public static bool JitBf16Supported => Jit.Bf16PanelKernels.IsSupported;

    internal const string JitUnsupported =
        "the JIT bf16 prefill kernel needs Linux x86-64 with AVX512F enabled in the runtime and AVX512_BF16 (CPUID 7.1 EAX bit 5)";

    /// <summary>
    /// The variable's value when set (anything else is an <see cref="ArgumentException"/>; <c>jit-bf16</c> where
    /// <paramref name="jitSupported"/> is false is a <see cref="NotSupportedException"/>). Unset or <c>auto</c> is the
    /// managed kernel on every CPU for now: the JIT kernel's bf16-rounded activations move the golden models' logits by
    /// up to 0.155 against the suite's 2e-3 tolerance (README, "JIT bf16 prefill"), so it is opt-in until that drift
    /// is accepted.
    /// </summary>
    public static PrefillKernel ChoosePrefill(string? setting, bool jitSupported) => setting?.Trim().ToLowerInvariant() switch
    {
        null or "" or "auto" => PrefillKernel.Managed,
        "managed" => PrefillKernel.Managed,
        "jit-bf16" when jitSupported => PrefillKernel.JitBf16,
        "jit-bf16" => throw new NotSupportedException($"{PrefillKernelVariable}=jit-bf16: {JitUnsupported}."),
        _ => throw new ArgumentException(
            $"{PrefillKernelVariable}='{setting}' is not one of auto, managed, jit-bf16.", nameof(setting)),
    };

    /// <summary>Kebab-case name as the environment variable spells it.</summary>
    public static string Name(PrefillKernel kernel) => kernel == PrefillKernel.JitBf16 ? "jit-bf16" : "managed";

    /// <summary>Kebab-case name as the environment variable spells it.</summary>
    public static string Name(DecodeKernel kernel) => kernel switch
    {
        DecodeKernel.OneRow => "one-row",
        DecodeKernel.FourStreams => "four-streams",
        _ => "four-rows",
    };

    /// <summary>Widest vector the matmul kernels use on this CPU (bits).</summary>
    public static int VectorBits => Vector512.IsHardwareAccelerated ? 512 : Vector256.IsHardwareAccelerated ? 256
        : Vector128.IsHardwareAccelerated ? 128 : 32;
}
