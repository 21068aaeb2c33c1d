using System.Runtime.InteropServices;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Tests.Kernels;

/// <summary>
/// BF16, F16 and F32 in 8-row groups (<see cref="DType.BF16x8"/>, <see cref="DType.F16x8"/>, <see cref="DType.F32x8"/>:
/// MatMul.FloatGroups.cs): the repack keeps every element, the products
/// match a float64 reference on odd shapes (a short last group, two tokens' tiles, the 4,096-column blocks), the scalar
/// twin gives the vector kernels' bits, and every token of a batch of 1..40 gets the bits it gets alone, through the
/// default dispatch (no batch-invariant switch).
/// </summary>
public sealed unsafe class FloatGroupsTests
{
    /// <summary>A random BF16/F16/F32 matrix and its 8-row group repack, in native memory.</summary>
    private sealed class Grouped : IDisposable
    {
        private readonly TestWeights _rows;
        private readonly byte* _groups;

        public Grouped(DType dtype, int seed, int rows, int cols, float scale = 1f)
        {
            _rows = new TestWeights(new Random(seed), dtype, rows, cols, scale);
            _groups = (byte*)NativeMemory.AlignedAlloc((nuint)MatMul.FloatGroupBytes(dtype, rows, cols), 64);
            // in two pieces, as the load copies them (the first a whole number of groups)
            int first = Math.Min(rows, 8);
            MatMul.RepackFloatGroups(dtype, _rows.View.Data, rows, cols, 0, first, _groups);
            MatMul.RepackFloatGroups(dtype, _rows.View.Data, rows, cols, first, rows - first, _groups + first * _rows.View.RowBytes);
            View = new WeightView(_groups, MatMul.FloatGroupLayoutOf(dtype)!.Value, rows, cols);
        }

        public WeightView Rows => _rows.View;

        public WeightView View { get; }

        public void Dispose()
        {
            _rows.Dispose();
            NativeMemory.AlignedFree(_groups);
        }
    }

    private static readonly (int Rows, int Cols)[] Shapes = [(13, 38), (70, 100), (29, 4100), (16, 2), (8, 2048)];

    public static TheoryData<DType> Formats() => new() { DType.BF16, DType.F16, DType.F32 };

    [Theory, MemberData(nameof(Formats))]
    public void Repack_KeepsEveryElement_AndPadsTheLastGroupWithZeros(DType dtype)
    {
        using var g = new Grouped(dtype, 1, 13, 38);
        float* row = stackalloc float[38];
        for (int r = 0; r < 13; r++)
        {
            MatMul.FloatGroupRow(g.View, r, row);
            for (int c = 0; c < 38; c++)
            {
                Assert.Equal(g.Rows[r, c], g.View[r, c]);
                Assert.Equal(g.Rows[r, c], row[c]);
            }
        }

        for (int r = 13; r < 16; r++)
        {
            for (int c = 0; c < 38; c++)
            {
                Assert.Equal(0f, g.View[r, c]);
            }
        }

        Assert.Equal(16L * 38 * dtype.ByteSize(), g.View.DataBytes);
    }

    public static TheoryData<DType, bool> FormatsAndPaths() => new()
    {
        { DType.BF16, true }, { DType.BF16, false }, { DType.F16, true }, { DType.F16, false }, { DType.F32, true }, { DType.F32, false },
    };

    [Theory, MemberData(nameof(FormatsAndPaths))]
    public void Multiply_MatchesFloat64Reference(DType dtype, bool simd)
    {
        using var pool = new WorkerPool(2);
        var rng = new Random(3);
        foreach ((int rows, int cols) in Shapes)
        {
            using var g = new Grouped(dtype, rows * cols, rows, cols);
            foreach (int tokens in new[] { 1, 2, 3, 5, 8, 9, 17 })
            {
                float[] x = KernelAssert.Random(rng, tokens * cols);
                float[] initial = KernelAssert.Random(rng, tokens * rows);
                foreach (bool accumulate in new[] { false, true })
                {
                    float[] y = (float[])initial.Clone();
                    MatMul.RunFloatGroups(pool, x, tokens, g.View, y, accumulate, simd);
                    for (int t = 0; t < tokens; t++)
                    {
                        for (int r = 0; r < rows; r++)
                        {
                            double sum = accumulate ? initial[t * rows + r] : 0, magnitude = Math.Abs(sum);
                            for (int c = 0; c < cols; c++)
                            {
                                double p = (double)g.Rows[r, c] * x[t * cols + c];
                                sum += p;
                                magnitude += Math.Abs(p);
                            }

                            Assert.True(Math.Abs(y[t * rows + r] - sum) <= 1e-6 * magnitude + 1e-30,
                                $"{dtype} {rows}x{cols}, {tokens} tokens, accumulate={accumulate}, simd={simd}: y[{t}, {r}] = {y[t * rows + r]:R}, float64 {sum:R}");
                        }
                    }
                }
            }
        }
    }

    [Theory, MemberData(nameof(Formats))]
    public void ScalarTwin_GivesTheVectorKernelsBits(DType dtype)
    {
        if (!MatMul.FloatGroupsSupported)
        {
            return;   // no vector kernels to compare with (no AVX2 + FMA): the reference test covers the twin alone
        }

        using var pool = new WorkerPool(2);
        var rng = new Random(4);
        foreach ((int rows, int cols) in Shapes)
        {
            using var g = new Grouped(dtype, rows + cols, rows, cols);
            foreach (int tokens in new[] { 1, 2, 4, 7, 12 })
            {
                float[] x = KernelAssert.Random(rng, tokens * cols);
                float[] initial = KernelAssert.Random(rng, tokens * rows);
                float[] vector = (float[])initial.Clone(), scalar = (float[])initial.Clone();
                MatMul.RunFloatGroups(pool, x, tokens, g.View, vector, accumulate: true, simd: true);
                MatMul.RunFloatGroups(pool, x, tokens, g.View, scalar, accumulate: true, simd: false);
                Assert.Equal(scalar.Select(BitConverter.SingleToInt32Bits), vector.Select(BitConverter.SingleToInt32Bits));
            }
        }
    }

    [Theory]
    [InlineData(DType.BF16, false)]
    [InlineData(DType.BF16, true)]
    [InlineData(DType.F16, true)]
    [InlineData(DType.F32, true)]
    public void Multiply_DefaultDispatch_EveryBatchTo40_SameBitsAsAlone(DType dtype, bool accumulate)
    {
        // The default kernels (batchInvariant false): one summation order at every token count, tile and thread split.
        using var pool = new WorkerPool(2);
        foreach ((int rows, int cols) in new[] { (13, 38), (70, 100), (29, 4100), (100, 6144) })
        {
            using var g = new Grouped(dtype, rows ^ cols, rows, cols, scale: 0.05f);
            WeightView w = g.View;
            var rng = new Random(rows + cols);
            const int MaxTokens = 40;
            float[] x = KernelAssert.Random(rng, MaxTokens * cols);
            float[] initial = KernelAssert.Random(rng, MaxTokens * rows);
            var alone = new float[MaxTokens * rows];
            for (int t = 0; t < MaxTokens; t++)
            {
                float[] y = initial.AsSpan(t * rows, rows).ToArray();
                Product(pool, x.AsSpan(t * cols, cols).ToArray(), 1, w, y, accumulate);
                y.CopyTo(alone, t * rows);
            }

            for (int n = 2; n <= MaxTokens; n++)
            {
                float[] y = initial.AsSpan(0, n * rows).ToArray();
                Product(pool, x.AsSpan(0, n * cols).ToArray(), n, w, y, accumulate);
                for (int i = 0; i < n * rows; i++)
                {
                    if (BitConverter.SingleToInt32Bits(y[i]) != BitConverter.SingleToInt32Bits(alone[i]))
                    {
                        Assert.Fail($"{dtype} {rows}x{cols} accumulate={accumulate}: in a batch of {n}, token {i / rows} row {i % rows} is " +
                            $"{y[i]:R}, alone {alone[i]:R}");
                    }
                }
            }
        }
    }

    private static void Product(WorkerPool pool, float[] x, int tokens, in WeightView w, float[] y, bool accumulate)
    {
        if (accumulate)
        {
            MatMul.MultiplyAdd(pool, x, tokens, w, y, KernelSelection.Prefill, KernelSelection.QuantDecode, batchInvariant: false);
        }
        else
        {
            MatMul.Multiply(pool, x, tokens, w, y, KernelSelection.Prefill, KernelSelection.QuantDecode, batchInvariant: false);
        }
    }
}
