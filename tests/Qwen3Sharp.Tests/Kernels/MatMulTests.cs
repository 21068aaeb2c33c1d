using System.Runtime.Intrinsics;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Kernels.Reference;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Tests.Kernels;

public sealed class MatMulTests
{
    private static readonly int[] TokenCounts = [1, 2, 3, 5, 8, 17, 40];

    // (rows, cols): odd rows (not multiples of the 4-row tile or 16-row block), columns with every kind of
    // remainder, and one crossing the 1024-column conversion block.
    private static readonly (int Rows, int Cols)[] Shapes =
        [(1, 1), (3, 7), (5, 33), (17, 64), (33, 100), (20, 1023), (7, 2080), (64, 128)];

    public static TheoryData<DType, string, bool> Cases()
    {
        var data = new TheoryData<DType, string, bool>();
        foreach (DType d in new[] { DType.BF16, DType.F16, DType.F32 })
        {
            foreach (string isa in Isa.All)
            {
                data.Add(d, isa, false);
                data.Add(d, isa, true);
            }
        }

        return data;
    }

    internal static void Run(string isa, WorkerPool pool, float[] x, int tokenCount, in WeightView w, float[] y, bool accumulate)
    {
        switch (isa)
        {
            case Isa.Dispatch when accumulate: MatMul.MultiplyAdd(pool, x, tokenCount, w, y); break;
            case Isa.Dispatch: MatMul.Multiply(pool, x, tokenCount, w, y); break;
            case "V512": MatMul.Run<Vector512<float>, Simd512>(pool, x, tokenCount, w, y, accumulate); break;
            case "V256": MatMul.Run<Vector256<float>, Simd256>(pool, x, tokenCount, w, y, accumulate); break;
            case "V128": MatMul.Run<Vector128<float>, Simd128>(pool, x, tokenCount, w, y, accumulate); break;
            default: MatMul.Run<float, SimdScalar>(pool, x, tokenCount, w, y, accumulate); break;
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void Multiply_EveryShapeAndTokenCount_MatchesScalar(DType dtype, string isa, bool accumulate)
    {
        using var pool = new WorkerPool(2);
        var rng = new Random(42);
        foreach ((int rows, int cols) in Shapes)
        {
            using var weights = new TestWeights(rng, dtype, rows, cols);
            foreach (int tokens in TokenCounts)
            {
                float[] x = KernelAssert.Random(rng, tokens * cols);
                float[] initial = KernelAssert.Random(rng, tokens * rows);
                float[] expected = (float[])initial.Clone();
                float[] actual = (float[])initial.Clone();
                ScalarKernels.MatMul(DispatchedInput(isa, x, tokens, weights.View), tokens, weights.View, expected, accumulate);
                Run(isa, pool, x, tokens, weights.View, actual, accumulate);
                KernelAssert.Close(expected, actual, atol: 1e-5f * (1 + MathF.Sqrt(cols)), rtol: 1e-5f,
                    $"{dtype} {isa} accumulate={accumulate} tokens={tokens} rows={rows} cols={cols}");
            }
        }
    }

    /// <summary>
    /// The activations the kernel multiplies by: bf16-rounded where the public dispatch sends the product to the JIT
    /// bf16 prefill kernel (Bf16JitTests measures that rounding against float32), x itself everywhere else.
    /// </summary>
    internal static float[] DispatchedInput(string isa, float[] x, int tokens, in WeightView w)
        => isa == Isa.Dispatch && w.DType == DType.BF16 && w.ColCount >= 2 && tokens >= Bf16Prefill.MinTokens
            && KernelSelection.Prefill == PrefillKernel.JitBf16 ? Bf16JitTests.RoundedToBf16(x) : x;

    [Theory]
    [InlineData(DType.BF16, 1)]
    [InlineData(DType.BF16, 5)]
    [InlineData(DType.F16, 1)]
    [InlineData(DType.F32, 3)]
    public void Multiply_QwenShape_MatchesScalar(DType dtype, int tokens)
    {
        using var pool = new WorkerPool(2);
        var rng = new Random(7);
        using var weights = new TestWeights(rng, dtype, 256, 2048, scale: 0.05f);
        float[] x = KernelAssert.Random(rng, tokens * 2048);
        float[] expected = new float[tokens * 256];
        float[] actual = new float[tokens * 256];
        ScalarKernels.MatMul(x, tokens, weights.View, expected, accumulate: false);
        MatMul.Multiply(pool, x, tokens, weights.View, actual);
        KernelAssert.Close(expected, actual, atol: 2e-5f, rtol: 1e-5f, $"{dtype} 256x2048 tokens={tokens}");
    }

    [Theory]
    [InlineData(512, false)]
    [InlineData(531, false)]
    [InlineData(531, true)]
    [InlineData(1030, true)]
    public void Multiply_Bf16DecodeLargeRowBlocks_MatchesScalar(int rows, bool accumulate)
    {
        // rows >= 64 * 4 * threads take the 64-row decode items; odd counts leave a short last item and a row tail
        using var pool = new WorkerPool(2);
        var rng = new Random(11);
        using var weights = new TestWeights(rng, DType.BF16, rows, 100);
        foreach (string isa in Isa.All)
        {
            float[] x = KernelAssert.Random(rng, 100);
            float[] initial = KernelAssert.Random(rng, rows);
            float[] expected = (float[])initial.Clone();
            float[] actual = (float[])initial.Clone();
            ScalarKernels.MatMul(x, 1, weights.View, expected, accumulate);
            Run(isa, pool, x, 1, weights.View, actual, accumulate);
            KernelAssert.Close(expected, actual, atol: 1e-4f, rtol: 1e-5f, $"BF16 {isa} rows={rows} accumulate={accumulate}");
        }
    }

    [Theory]
    [InlineData("V512", 0)]
    [InlineData("V256", 0)]
    [InlineData("V128", 0)]
    [InlineData("V512", 1)]
    [InlineData("V256", 1)]
    [InlineData("V128", 1)]
    [InlineData("V512", 2)]
    [InlineData("V256", 2)]
    [InlineData("V128", 2)]
    [InlineData("Scalar", 2)]
    public void Multiply_Bf16EveryTokenCountTo33_MatchesScalar(string isa, int pathIndex)
    {
        var path = (MatMul.SmallBatchBf16)pathIndex;   // Stream, Panel, Tiled
        // Every batched-decode size through each small-batch path and across the panel threshold (2 vectors of
        // tokens): rows past the 4-row tile, the 16-row item, the 2/3-row tiles of the 24-row tiled item and the
        // 6/12-row panel tiles; columns with tails, and more than one tiled column chunk (2080, 3000).
        using var pool = new WorkerPool(2);
        var rng = new Random(23);
        foreach ((int rows, int cols) in new[] { (13, 37), (70, 100), (134, 2080), (53, 3000) })
        {
            using var weights = new TestWeights(rng, DType.BF16, rows, cols);
            for (int tokens = 1; tokens <= 33; tokens++)
            {
                bool accumulate = (tokens & 1) == 0;
                float[] x = KernelAssert.Random(rng, tokens * cols);
                float[] expected = KernelAssert.Random(rng, tokens * rows);
                float[] actual = (float[])expected.Clone();
                ScalarKernels.MatMul(x, tokens, weights.View, expected, accumulate);
                switch (isa)
                {
                    case "V512": MatMul.Run<Vector512<float>, Simd512>(pool, x, tokens, weights.View, actual, accumulate, DecodeKernel.FourRows, path); break;
                    case "V256": MatMul.Run<Vector256<float>, Simd256>(pool, x, tokens, weights.View, actual, accumulate, DecodeKernel.FourRows, path); break;
                    case "Scalar": MatMul.Run<float, SimdScalar>(pool, x, tokens, weights.View, actual, accumulate, DecodeKernel.FourRows, path); break;
                    default: MatMul.Run<Vector128<float>, Simd128>(pool, x, tokens, weights.View, actual, accumulate, DecodeKernel.FourRows, path); break;
                }

                KernelAssert.Close(expected, actual, atol: 1e-5f * (1 + MathF.Sqrt(cols)), rtol: 1e-5f,
                    $"{path} {isa} accumulate={accumulate} tokens={tokens} rows={rows} cols={cols}");
            }
        }
    }

    [Fact]
    public void TiledBf16_FourRowTiles_GiveTheNarrowTilesBits()
    {
        // MatMul.TileBf16x4 (32-register machines, 3..5-token groups): every (row, token) sum takes the same steps as in the
        // 2- and 3-row tiles, so turning the wide tiles off changes no bit. Rows past a 4-row tile and the 24-row item,
        // more than one column chunk, accumulate and overwrite.
        using var pool = new WorkerPool(2);
        var rng = new Random(29);
        bool saved = MatMul.WideTiles;
        try
        {
            foreach ((int rows, int cols) in new[] { (70, 100), (134, 2080), (53, 3000) })
            {
                using var weights = new TestWeights(rng, DType.BF16, rows, cols);
                foreach (int tokens in new[] { 3, 4, 5, 7, 8, 13, 16, 31 })
                {
                    bool accumulate = (tokens & 1) == 0;
                    float[] x = KernelAssert.Random(rng, tokens * cols);
                    float[] narrow = KernelAssert.Random(rng, tokens * rows), wide = (float[])narrow.Clone();
                    MatMul.WideTiles = false;
                    MatMul.Run<Vector512<float>, Simd512>(pool, x, tokens, weights.View, narrow, accumulate, DecodeKernel.FourRows, MatMul.SmallBatchBf16.Tiled);
                    MatMul.WideTiles = true;
                    MatMul.Run<Vector512<float>, Simd512>(pool, x, tokens, weights.View, wide, accumulate, DecodeKernel.FourRows, MatMul.SmallBatchBf16.Tiled);
                    Assert.Equal(narrow, wide);
                }
            }
        }
        finally
        {
            MatMul.WideTiles = saved;
        }
    }

    [Fact]
    public void Multiply_ShortDestination_Throws()
    {
        using var pool = new WorkerPool(1);
        using var weights = new TestWeights(new Random(1), DType.BF16, 4, 8);
        var e = Assert.Throws<ArgumentException>(() => MatMul.Multiply(pool, new float[16], 2, weights.View, new float[7]));
        Assert.Contains("destination", e.Message);
    }

    [Fact]
    public void Multiply_ZeroTokens_LeavesDestinationUntouched()
    {
        using var pool = new WorkerPool(2);
        using var weights = new TestWeights(new Random(1), DType.BF16, 4, 8);
        float[] y = [1, 2, 3];
        MatMul.Multiply(pool, [], 0, weights.View, y);
        Assert.Equal([1f, 2f, 3f], y);
    }

    [Theory]
    [InlineData(DecodeKernel.OneRow, "V512")]
    [InlineData(DecodeKernel.OneRow, "V256")]
    [InlineData(DecodeKernel.OneRow, "V128")]
    [InlineData(DecodeKernel.FourRows, "V512")]
    [InlineData(DecodeKernel.FourRows, "V256")]
    [InlineData(DecodeKernel.FourRows, "V128")]
    [InlineData(DecodeKernel.FourStreams, "V512")]
    [InlineData(DecodeKernel.FourStreams, "V256")]
    [InlineData(DecodeKernel.FourStreams, "V128")]
    public void Multiply_EachDecodeKernel_Bf16MatchesScalar(DecodeKernel kernel, string isa)
    {
        using var pool = new WorkerPool(2);
        var rng = new Random(11);
        // Rows past every 4-row group and 64-row work item; columns with every remainder of one and two blocks.
        foreach ((int rows, int cols) in new[] { (3, 7), (5, 33), (67, 100), (1030, 96), (9, 2080), (13, 6151) })
        {
            using var weights = new TestWeights(rng, DType.BF16, rows, cols);
            foreach (int tokens in new[] { 1, 2, 3, 5 })
            {
                foreach (bool accumulate in new[] { false, true })
                {
                    float[] x = KernelAssert.Random(rng, tokens * cols);
                    float[] expected = KernelAssert.Random(rng, tokens * rows);
                    float[] actual = (float[])expected.Clone();
                    ScalarKernels.MatMul(x, tokens, weights.View, expected, accumulate);
                    switch (isa)
                    {
                        case "V512": MatMul.Run<Vector512<float>, Simd512>(pool, x, tokens, weights.View, actual, accumulate, kernel); break;
                        case "V256": MatMul.Run<Vector256<float>, Simd256>(pool, x, tokens, weights.View, actual, accumulate, kernel); break;
                        default: MatMul.Run<Vector128<float>, Simd128>(pool, x, tokens, weights.View, actual, accumulate, kernel); break;
                    }

                    KernelAssert.Close(expected, actual, atol: 1e-5f * (1 + MathF.Sqrt(cols)), rtol: 1e-5f,
                        $"{kernel} {isa} accumulate={accumulate} tokens={tokens} rows={rows} cols={cols}");
                }
            }
        }
    }

    [Theory]
    [InlineData("V512")]
    [InlineData("V256")]
    public void Decode_FourStreams_GivesTheOneRowKernelsBits(string isa)
    {
        // DecodeFourStreamsBf16: each row's sums in DecodeRowBf16's order, only the walk differs. 64-row items split in
        // quarters of 16 (rows ≥ 512 at 2 threads), a short last item (1030 = 16·64 + 6: quarters of one row and two
        // left over), items of 4 rows (67 rows), column remainders of one and two blocks.
        using var pool = new WorkerPool(2);
        var rng = new Random(12);
        foreach ((int rows, int cols) in new[] { (67, 100), (1030, 96), (600, 2080), (520, 131) })
        {
            using var weights = new TestWeights(rng, DType.BF16, rows, cols);
            foreach (bool accumulate in new[] { false, true })
            {
                float[] x = KernelAssert.Random(rng, cols);
                float[] start = KernelAssert.Random(rng, rows);
                float[] oneRow = (float[])start.Clone(), fourStreams = (float[])start.Clone();
                if (isa == "V512")
                {
                    MatMul.Run<Vector512<float>, Simd512>(pool, x, 1, weights.View, oneRow, accumulate, DecodeKernel.OneRow);
                    MatMul.Run<Vector512<float>, Simd512>(pool, x, 1, weights.View, fourStreams, accumulate, DecodeKernel.FourStreams);
                }
                else
                {
                    MatMul.Run<Vector256<float>, Simd256>(pool, x, 1, weights.View, oneRow, accumulate, DecodeKernel.OneRow);
                    MatMul.Run<Vector256<float>, Simd256>(pool, x, 1, weights.View, fourStreams, accumulate, DecodeKernel.FourStreams);
                }

                Assert.Equal(oneRow, fourStreams);
            }
        }
    }

    [Theory]
    [InlineData("one-row", DecodeKernel.OneRow)]
    [InlineData(" Four-Rows ", DecodeKernel.FourRows)]
    [InlineData("four-streams", DecodeKernel.FourStreams)]
    public void ChooseDecode_NamedVariant_IsUsed(string setting, DecodeKernel expected)
        => Assert.Equal(expected, KernelSelection.ChooseDecode(setting));

    [Fact]
    public void ChooseDecode_Auto_PicksFourStreamsExactlyWhereVector512IsAccelerated()
    {
        DecodeKernel expected = Vector512.IsHardwareAccelerated ? DecodeKernel.FourStreams : DecodeKernel.FourRows;
        Assert.Equal(expected, KernelSelection.ChooseDecode(null));
        Assert.Equal(expected, KernelSelection.ChooseDecode("auto"));
    }

    [Fact]
    public void ChooseDecode_UnknownName_IsAClearError()
    {
        var e = Assert.Throws<ArgumentException>(() => KernelSelection.ChooseDecode("two-rows"));
        Assert.Contains(KernelSelection.DecodeKernelVariable, e.Message);
        Assert.Contains("one-row", e.Message);
    }

    [Theory]
    [InlineData("stream", BatchKernel.Stream)]
    [InlineData(" Hybrid ", BatchKernel.Hybrid)]
    [InlineData("tiled", BatchKernel.Tiled)]
    public void ChooseBatch_NamedVariant_IsUsed(string setting, BatchKernel expected)
        => Assert.Equal(expected, KernelSelection.ChooseBatch(setting));

    [Fact]
    public void ChooseBatch_AutoAndUnknown_HybridWithoutVector512_TiledWithIt_AndAClearError()
    {
        BatchKernel expected = Vector512.IsHardwareAccelerated ? BatchKernel.Tiled : BatchKernel.Hybrid;
        Assert.Equal(expected, KernelSelection.ChooseBatch(null));
        Assert.Equal(expected, KernelSelection.ChooseBatch("auto"));
        var e = Assert.Throws<ArgumentException>(() => KernelSelection.ChooseBatch("panel"));
        Assert.Contains(KernelSelection.BatchKernelVariable, e.Message);
    }

    [Theory]
    [InlineData(BatchKernel.Stream, 2, false)]
    [InlineData(BatchKernel.Stream, 24, false)]
    [InlineData(BatchKernel.Hybrid, 8, false)]
    [InlineData(BatchKernel.Hybrid, 15, false)]
    [InlineData(BatchKernel.Hybrid, 16, true)]
    [InlineData(BatchKernel.Hybrid, 31, true)]
    [InlineData(BatchKernel.Hybrid, 32, false)]
    [InlineData(BatchKernel.Tiled, 2, false)]
    [InlineData(BatchKernel.Tiled, 3, true)]
    [InlineData(BatchKernel.Tiled, 31, true)]
    [InlineData(BatchKernel.Tiled, 32, false)]
    public void SmallBatchFor_Avx2_TilesOnlyInTheirRange(BatchKernel kernel, int tokens, bool tiled)
        => Assert.Equal(tiled, MatMul.SmallBatchFor<Vector256<float>, Simd256>(kernel, tokens) == MatMul.SmallBatchBf16.Tiled);
}
