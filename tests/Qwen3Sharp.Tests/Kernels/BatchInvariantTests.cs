using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Tests.Kernels;

/// <summary>
/// Batch invariance of the matrix products: with batchInvariant every token of a batch of 1..40 gets the bits its
/// one-token (decode) product gives it, on every path a token count can select (BF16 decode / 2 × 2 tiles, F32/F16 row
/// blocks, the block formats' matrix-vector kernels at 32+ tokens) and under every instruction set.
/// </summary>
public sealed unsafe class BatchInvariantTests
{
    private const int MaxTokens = 40;

    /// <summary>y = product of x [tokens, cols] into y [tokens, rows] (initialised by the caller).</summary>
    private delegate void Product(float[] x, int tokens, float[] y);

    public static TheoryData<DType, string> FloatCases()
    {
        var data = new TheoryData<DType, string>();
        foreach (DType d in new[] { DType.BF16, DType.F16, DType.F32 })
        {
            foreach (string isa in Isa.All)
            {
                data.Add(d, isa);
            }
        }

        return data;
    }

    private static void Run(string isa, WorkerPool pool, float[] x, int tokens, in WeightView w, float[] y, bool accumulate)
    {
        switch (isa)
        {
            case Isa.Dispatch when accumulate:
                MatMul.MultiplyAdd(pool, x, tokens, w, y, KernelSelection.Prefill, KernelSelection.QuantDecode, batchInvariant: true);
                break;
            case Isa.Dispatch:
                MatMul.Multiply(pool, x, tokens, w, y, KernelSelection.Prefill, KernelSelection.QuantDecode, batchInvariant: true);
                break;
            case "V512": MatMul.Run<Vector512<float>, Simd512>(pool, x, tokens, w, y, accumulate, batchInvariant: true); break;
            case "V256": MatMul.Run<Vector256<float>, Simd256>(pool, x, tokens, w, y, accumulate, batchInvariant: true); break;
            case "V128": MatMul.Run<Vector128<float>, Simd128>(pool, x, tokens, w, y, accumulate, batchInvariant: true); break;
            default: MatMul.Run<float, SimdScalar>(pool, x, tokens, w, y, accumulate, batchInvariant: true); break;
        }
    }

    /// <summary>
    /// Every token's row of a batch of n = 1..<see cref="MaxTokens"/> against the same token alone, bit for bit
    /// (reports the first difference: batch size, token, row and both values).
    /// </summary>
    private static void AssertSameBitsAsAlone(int rows, int cols, Product product, int seed, string context)
    {
        var rng = new Random(seed);
        float[] x = KernelAssert.Random(rng, MaxTokens * cols);
        float[] initial = KernelAssert.Random(rng, MaxTokens * rows);
        var alone = new float[MaxTokens * rows];
        for (int t = 0; t < MaxTokens; t++)
        {
            float[] y = initial.AsSpan(t * rows, rows).ToArray();
            product(x.AsSpan(t * cols, cols).ToArray(), 1, y);
            y.CopyTo(alone, t * rows);
        }

        for (int n = 1; n <= MaxTokens; n++)
        {
            float[] y = initial.AsSpan(0, n * rows).ToArray();
            product(x.AsSpan(0, n * cols).ToArray(), n, y);
            for (int i = 0; i < n * rows; i++)
            {
                if (BitConverter.SingleToInt32Bits(y[i]) != BitConverter.SingleToInt32Bits(alone[i]))
                {
                    Assert.Fail($"{context} rows={rows} cols={cols}: in a batch of {n}, token {i / rows} row {i % rows} is " +
                        $"{y[i]:R}, alone {alone[i]:R} (Δ {y[i] - alone[i]:E2})");
                }
            }
        }
    }

    [Theory, MemberData(nameof(FloatCases))]
    public void Multiply_BatchInvariant_EveryBatchTo40_SameBitsAsAlone(DType dtype, string isa)
    {
        // Rows past the 4-row groups, 16-row blocks and 24-row tile items (and odd, for the 2 × 2 tiles' last row);
        // columns with tails and crossing the 1024-column chunks.
        using var pool = new WorkerPool(2);
        var rng = new Random(5);
        foreach ((int rows, int cols) in new[] { (13, 37), (70, 100), (29, 2080) })
        {
            using var weights = new TestWeights(rng, dtype, rows, cols);
            WeightView w = weights.View;
            foreach (bool accumulate in new[] { false, true })
            {
                AssertSameBitsAsAlone(rows, cols, (x, n, y) => Run(isa, pool, x, n, w, y, accumulate), rows + cols,
                    $"{dtype} {isa} accumulate={accumulate}");
            }
        }
    }

    [Theory]
    [InlineData(DType.BF16, 2048)]
    [InlineData(DType.BF16, 6144)]
    [InlineData(DType.F32, 2048)]
    public void Multiply_BatchInvariantQwenShape_EveryBatchTo40_SameBitsAsAlone(DType dtype, int cols)
    {
        // Qwen3-1.7B's row lengths (hidden 2048, intermediate 6144) through the public dispatch; 100 rows = 4 tile
        // items of 24 and a short one.
        using var pool = new WorkerPool(2);
        using var weights = new TestWeights(new Random(cols), dtype, 100, cols, scale: 0.05f);
        WeightView w = weights.View;
        AssertSameBitsAsAlone(100, cols, (x, n, y) => Run(Isa.Dispatch, pool, x, n, w, y, accumulate: true), cols, $"{dtype} dispatch");
    }

    public static TheoryData<DType, QuantDecodeKernel> QuantCases()
    {
        var data = new TheoryData<DType, QuantDecodeKernel>();
        foreach (DType d in new[] { DType.Q8_0, DType.Q4_0, DType.Q4_K, DType.Q5_K, DType.Q6_K, DType.Q8_0x8, DType.Q4_0x8, DType.Q4_Kx8, DType.Q6_Kx8 })
        {
            data.Add(d, QuantDecodeKernel.Int8);
            data.Add(d, QuantDecodeKernel.Float);
        }

        return data;
    }

    [Theory, MemberData(nameof(QuantCases))]
    public void Multiply_BatchInvariantBlockFormat_EveryBatchTo40_SameBitsAsAlone(DType dtype, QuantDecodeKernel kernel)
    {
        // 32+ tokens would take the float32 panels (QuantPanelTokens) without batch invariance.
        using var pool = new WorkerPool(2);
        foreach ((int rows, int cols) in new[] { (13, 512), (37, 768) })
        {
            (nint data, WeightView w) = Matrix(dtype, rows, cols, seed: rows);
            try
            {
                AssertSameBitsAsAlone(rows, cols, (x, n, y) => MatMul.MultiplyAdd(pool, x, n, w, y, PrefillKernel.Managed, kernel, batchInvariant: true),
                    rows, $"{dtype} {kernel}");
            }
            finally
            {
                NativeMemory.AlignedFree((void*)data);
            }
        }
    }

    [Theory]
    [InlineData(4, 64, DType.BF16)]
    [InlineData(8, 64, DType.F16)]
    [InlineData(4, 32, DType.F32)]
    public void Multiply_BatchInvariantMlxAffine_EveryBatchTo40_SameBitsAsAlone(int bits, int groupSize, DType groupDType)
    {
        using var pool = new WorkerPool(2);
        foreach ((int rows, int cols) in new[] { (13, 256), (37, 640) })
        {
            using var m = new AffineMatMulTests.AffineMatrix(bits, groupSize, groupDType, rows, cols, seed: rows);
            WeightView w = m.View;
            AssertSameBitsAsAlone(rows, cols, (x, n, y) => MatMul.MultiplyAdd(pool, x, n, w, y, PrefillKernel.Managed, QuantDecodeKernel.Int8, batchInvariant: true),
                rows, $"affine {bits}-bit group {groupSize} {groupDType}");
        }
    }

    private static (nint Data, WeightView View) Matrix(DType dtype, int rows, int cols, int seed)
    {
        DType source = dtype switch { DType.Q8_0x8 => DType.Q8_0, DType.Q4_0x8 => DType.Q4_0, DType.Q4_Kx8 => DType.Q4_K, DType.Q6_Kx8 => DType.Q6_K, _ => dtype };
        byte* rowData = source is DType.Q8_0 or DType.Q4_0
            ? Int8MatMulTests.Quantized(source, rows, cols, seed)
            : KQuantInt8Tests.Quantized(source, rows, cols, seed);
        if (source == dtype)
        {
            return ((nint)rowData, new WeightView(rowData, dtype, rows, cols));
        }

        byte* packed = (byte*)NativeMemory.AlignedAlloc((nuint)QuantMatMul.RepackedBytes(source, rows, cols), 64);
        QuantMatMul.Repack(source, rowData, rows, cols, packed);
        NativeMemory.AlignedFree(rowData);
        return ((nint)packed, new WeightView(packed, dtype, rows, cols));
    }
}
