using System.Runtime.InteropServices;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Kernels.Reference;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Tests.Kernels;

/// <summary>
/// The integer-activation Q8_0/Q4_0 kernels (QuantMatMul.Int8.cs): the activation quantizer bit for bit against its
/// scalar twin and the reference, the products against a float64 reference of the same integer math, and against the
/// float-activation path within the bound the activation rounding allows.
/// </summary>
public sealed unsafe class Int8MatMulTests
{
    // 1..31: decode and the server's batched decode (below MatMul.QuantPanelTokens); 4-token groups and remainders.
    private static readonly int[] TokenCounts = [1, 2, 3, 4, 5, 7, 9, 31];

    // Odd row counts (not multiples of the 16-row chunk or of 4), one block, odd block counts, Qwen3-1.7B's widths.
    private static readonly (int Rows, int Cols)[] Shapes = [(1, 32), (3, 64), (17, 96), (37, 160), (19, 2048), (5, 6144)];

    public static TheoryData<DType, string> Cases()
    {
        var data = new TheoryData<DType, string>();
        foreach (DType d in new[] { DType.Q8_0, DType.Q4_0 })
        {
            data.Add(d, nameof(QuantMatMul.Isa.Scalar));
            data.Add(d, nameof(QuantMatMul.Isa.Avx2));
            data.Add(d, nameof(QuantMatMul.Isa.Avx512));
        }

        return data;
    }

    private static bool Supported(QuantMatMul.Isa isa) => isa switch
    {
        QuantMatMul.Isa.Avx512 => QuantMatMul.Best == QuantMatMul.Isa.Avx512,
        QuantMatMul.Isa.Avx2 => QuantMatMul.Best != QuantMatMul.Isa.Scalar,
        _ => true,
    };

    internal static float[] Activations(Random rng, int count)
    {
        var x = new float[count];
        for (int i = 0; i < count; i++)
        {
            // mixed magnitudes, a zero block now and then, values exactly on a rounding tie (k + 0.5)·d
            x[i] = (i / 32 % 7) switch
            {
                3 => 0,
                5 => (i % 32 == 0 ? 127 : (i % 9) - 4.5f) * 0.25f,
                _ => (float)(rng.NextDouble() * 2 - 1) * (i % 5 == 0 ? 8 : 1),
            };
        }

        return x;
    }

    internal static byte* Quantized(DType dtype, int rows, int cols, int seed)
    {
        var rng = new Random(seed);
        long rowBytes = dtype.RowBytes(cols);
        byte* data = (byte*)NativeMemory.AlignedAlloc((nuint)(rows * rowBytes), 64);
        var f = new float[cols];
        fixed (float* pf = f)
        {
            for (int r = 0; r < rows; r++)
            {
                for (int c = 0; c < cols; c++)
                {
                    f[c] = (float)(rng.NextDouble() * 2 - 1) * (r % 3 == 0 ? 0.01f : 1f);
                }

                if (dtype == DType.Q8_0)
                {
                    QuantScalar.QuantizeRowQ8_0(pf, cols, data + r * rowBytes);
                    if (r % 4 == 1)
                    {
                        ((sbyte*)(data + r * rowBytes))[2] = -128;   // a code llama.cpp's quantizer never writes, but a file may hold
                    }
                }
                else
                {
                    QuantScalar.QuantizeRowQ4_0(pf, cols, data + r * rowBytes);
                }
            }
        }

        return data;
    }

    [Fact]
    public void ActivationQuantizer_Avx2AndScalar_MatchTheReferenceBitForBit()
    {
        var rng = new Random(3);
        foreach (int cols in new[] { 32, 64, 2048, 6144 })
        {
            float[] x = Activations(rng, cols);
            int blocks = cols / 32;
            var want = (codes: new sbyte[cols], scales: new float[blocks], sums: new int[blocks]);
            var got = (codes: new sbyte[cols], scales: new float[blocks], sums: new int[blocks]);
            fixed (float* px = x)
            fixed (sbyte* wc = want.codes, gc = got.codes)
            fixed (float* ws = want.scales, gs = got.scales)
            fixed (int* wu = want.sums, gu = got.sums)
            {
                QuantScalar.QuantizeActivationQ8(px, cols, wc, ws, wu);
                QuantMatMul.QuantizeQ8Scalar(px, blocks, gc, gs, gu);
                Assert.Equal(want.codes, got.codes);
                Assert.Equal(want.scales, got.scales);
                Assert.Equal(want.sums, got.sums);
                if (QuantMatMul.Best != QuantMatMul.Isa.Scalar)
                {
                    Array.Clear(got.codes);
                    QuantMatMul.QuantizeQ8Avx2(px, blocks, gc, gs, gu);
                    Assert.Equal(want.codes, got.codes);
                    Assert.Equal(want.scales, got.scales);
                    Assert.Equal(want.sums, got.sums);
                }
            }
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void Int8Path_MatchesTheFloat64ReferenceOfTheSameIntegerMath(DType dtype, string isaName)
    {
        var isa = Enum.Parse<QuantMatMul.Isa>(isaName);
        if (!Supported(isa))
        {
            return;   // this ISA is checked on machines (and CI reruns) that have it
        }

        using var pool = new WorkerPool(2);
        var rng = new Random(7);
        foreach (var (rows, cols) in Shapes)
        {
            byte* data = Quantized(dtype, rows, cols, rows * 31 + cols);
            try
            {
                var w = new WeightView(data, dtype, rows, cols);
                foreach (int tokens in TokenCounts)
                {
                    float[] x = Activations(rng, tokens * cols);
                    var expected = new double[tokens * rows];
                    var magnitude = new double[tokens * rows];
                    fixed (float* px = x)
                    fixed (double* pe = expected, pm = magnitude)
                    {
                        QuantScalar.Int8MatMul(px, tokens, w, pe, pm);
                    }

                    foreach (bool accumulate in new[] { false, true })
                    {
                        var y = new float[tokens * rows];
                        Array.Fill(y, accumulate ? 0.5f : float.NaN);
                        QuantMatMul.Run(isa, pool, x, tokens, w, y, accumulate, QuantDecodeKernel.Int8);
                        for (int i = 0; i < y.Length; i++)
                        {
                            // the block dots are exact integers; only the float32 scale products and sums round
                            double want = expected[i] + (accumulate ? 0.5 : 0);
                            double tolerance = 1e-6 * magnitude[i] + 1e-6;
                            Assert.True(Math.Abs(y[i] - want) <= tolerance,
                                $"{dtype} {isa} {rows}x{cols} tokens {tokens} acc {accumulate} [{i}]: {y[i]} vs {want} (tol {tolerance:G3})");
                        }
                    }
                }
            }
            finally
            {
                NativeMemory.AlignedFree(data);
            }
        }
    }

    [Theory]
    [InlineData(DType.Q8_0)]
    [InlineData(DType.Q4_0)]
    public void Int8Walks_ItemSizesAndKernels_MatchTheFloat64Reference(DType dtype)
    {
        // Every walk the A/B bench compares: 4-row items (rows not a multiple of the item, last item short), the
        // eighth-of-the-rows cap, 16-row items, with and without the one-row decode kernel and its prepared offsets;
        // one block, odd block counts and many blocks; 1..3 tokens (decode) and 5 (a 4-token group and a remainder).
        using var pool = new WorkerPool(2);
        var rng = new Random(13);
        var tunings = new[]
        {
            QuantMatMul.Int8Tuning.Default, QuantMatMul.Int8Tuning.Legacy, new QuantMatMul.Int8Tuning(1, RowSide: true),
            new QuantMatMul.Int8Tuning(1, RowSide: false), new QuantMatMul.Int8Tuning(1 << 30, RowSide: true),
        };
        foreach (var (rows, cols) in new[] { (1, 32), (7, 32), (9, 96), (33, 1056), (70, 2048), (13, 6144) })
        {
            byte* data = Quantized(dtype, rows, cols, rows + cols);
            try
            {
                var w = new WeightView(data, dtype, rows, cols);
                foreach (int tokens in new[] { 1, 2, 3, 5 })
                {
                    float[] x = Activations(rng, tokens * cols);
                    var expected = new double[tokens * rows];
                    var magnitude = new double[tokens * rows];
                    fixed (float* px = x)
                    fixed (double* pe = expected, pm = magnitude)
                    {
                        QuantScalar.Int8MatMul(px, tokens, w, pe, pm);
                    }

                    foreach (QuantMatMul.Int8Tuning tuning in tunings)
                    {
                        var y = new float[tokens * rows];
                        Array.Fill(y, 0.25f);
                        fixed (float* px = x, py = y)
                        {
                            QuantMatMul.RunInt8(QuantMatMul.Best, pool, px, tokens, w, py, accumulate: true, tuning);
                        }

                        for (int i = 0; i < y.Length; i++)
                        {
                            double want = expected[i] + 0.25;
                            double tolerance = 1e-6 * magnitude[i] + 1e-6;
                            Assert.True(Math.Abs(y[i] - want) <= tolerance,
                                $"{dtype} {tuning} {rows}x{cols} tokens {tokens} [{i}]: {y[i]} vs {want} (tol {tolerance:G3})");
                        }
                    }
                }
            }
            finally
            {
                NativeMemory.AlignedFree(data);
            }
        }
    }

    [Theory]
    [InlineData(16, 2176, 1, 16)]        // the first kernel's walk
    [InlineData(256 << 10, 2176, 2048, 120)]   // Q8_0 2048 columns: 256 KiB / 2176 B
    [InlineData(256 << 10, 1152, 1024, 128)]   // Q4_0 k/v: capped at an eighth of the rows
    [InlineData(256 << 10, 1152, 9, 4)]        // tiny matrices: at least 4 rows
    public void Int8Tuning_ItemRows_FollowsBytesCapAndFloor(int itemBytes, int rowBytes, int rowCount, int expected)
    {
        var tuning = itemBytes == 16 ? QuantMatMul.Int8Tuning.Legacy : new QuantMatMul.Int8Tuning(itemBytes, RowSide: true);
        Assert.Equal(expected, tuning.ItemRows(rowBytes, rowCount));
    }

    [Fact]
    public void PrepareOffsets_SumsToEightTimesTheBlockCodeSum()
    {
        if (QuantMatMul.Best == QuantMatMul.Isa.Scalar)
        {
            return;
        }

        var rng = new Random(4);
        float[] x = Activations(rng, 6 * 32);
        var codes = new sbyte[x.Length];
        var scales = new float[6];
        var sums = new int[6];
        var offsets = new int[6 * 8];
        fixed (float* px = x)
        fixed (sbyte* pc = codes)
        fixed (float* ps = scales)
        fixed (int* pu = sums, po = offsets)
        {
            QuantMatMul.QuantizeQ8Scalar(px, 6, pc, ps, pu);
            QuantMatMul.PrepareOffsets(pc, 6, (System.Runtime.Intrinsics.Vector256<int>*)po);
        }

        for (int b = 0; b < 6; b++)
        {
            for (int lane = 0; lane < 8; lane++)
            {
                int group = 0;
                for (int j = 0; j < 4; j++)
                {
                    group += codes[b * 32 + lane * 4 + j];
                }

                Assert.Equal(8 * group, offsets[b * 8 + lane]);
            }

            Assert.Equal(8 * sums[b], offsets.Skip(b * 8).Take(8).Sum());
        }
    }

    [Theory]
    [InlineData(DType.Q8_0)]
    [InlineData(DType.Q4_0)]
    public void Int8Path_StaysWithinTheActivationRoundingOfTheFloatPath(DType dtype)
    {
        const int rows = 37, cols = 2048, tokens = 3;
        byte* data = Quantized(dtype, rows, cols, 11);
        try
        {
            AssertWithinActivationRounding(new WeightView(data, dtype, rows, cols), tokens, Activations(new Random(5), tokens * cols));
        }
        finally
        {
            NativeMemory.AlignedFree(data);
        }
    }

    /// <summary>
    /// Each activation moves by at most half its block's step d_x = amax/127, so |int8 − exact| ≤ Σ_blocks (d_x / 2) ·
    /// Σ_j |w_j| (plus float32 rounding); and the int8 path differs from the float path somewhere (it is in use).
    /// Shared with <see cref="KQuantInt8Tests"/>.
    /// </summary>
    internal static void AssertWithinActivationRounding(in WeightView w, int tokens, float[] x)
    {
        using var pool = new WorkerPool(2);
        DType dtype = w.DType;
        int rows = w.RowCount, cols = w.ColCount;
        var exact = new double[tokens * rows];
        fixed (float* px = x)
        fixed (double* pe = exact)
        {
            QuantScalar.MatMul(px, tokens, w, pe);
        }

        var y = new float[tokens * rows];
        QuantMatMul.Run(QuantMatMul.Best, pool, x, tokens, w, y, false, QuantDecodeKernel.Int8);
        double worstRatio = 0;
        for (int t = 0; t < tokens; t++)
        {
            for (int r = 0; r < rows; r++)
            {
                double bound = 0, scale = 0;
                for (int b = 0; b < cols / 32; b++)
                {
                    float amax = 0;
                    double wabs = 0;
                    for (int j = 0; j < 32; j++)
                    {
                        amax = Math.Max(amax, Math.Abs(x[t * cols + b * 32 + j]));
                        wabs += Math.Abs(w[r, b * 32 + j]);
                    }

                    bound += amax / 127.0 / 2 * wabs;
                    scale += amax * wabs;
                }

                double delta = Math.Abs(y[t * rows + r] - exact[t * rows + r]);
                Assert.True(delta <= bound + 1e-5 * scale, $"{dtype} token {t} row {r}: |Δ| {delta:G3} > bound {bound:G3}");
                worstRatio = Math.Max(worstRatio, delta / bound);
            }
        }

        Assert.True(worstRatio > 0, "the int8 path should differ from the float path somewhere (is it in use?)");
    }

    [Theory]
    [InlineData(null, QuantDecodeKernel.Int8)]
    [InlineData("", QuantDecodeKernel.Int8)]
    [InlineData("auto", QuantDecodeKernel.Int8)]
    [InlineData(" INT8 ", QuantDecodeKernel.Int8)]
    [InlineData("float", QuantDecodeKernel.Float)]
    public void ChooseQuantDecode_Setting_PicksThePath(string? setting, QuantDecodeKernel expected)
        => Assert.Equal(expected, KernelSelection.ChooseQuantDecode(setting));

    [Fact]
    public void ChooseQuantDecode_UnknownSetting_NamesTheVariable()
    {
        var e = Assert.Throws<ArgumentException>(() => KernelSelection.ChooseQuantDecode("int4"));
        Assert.Contains(KernelSelection.QuantDecodeVariable, e.Message);
    }

    [Theory]
    [InlineData(null, QuantPrefillKernel.Int8)]
    [InlineData("auto", QuantPrefillKernel.Int8)]
    [InlineData(" Int8", QuantPrefillKernel.Int8)]
    [InlineData("panels", QuantPrefillKernel.Panels)]
    public void ChooseQuantPrefill_Setting_PicksThePath(string? setting, QuantPrefillKernel expected)
        => Assert.Equal(expected, KernelSelection.ChooseQuantPrefill(setting));

    [Fact]
    public void ChooseQuantPrefill_UnknownSetting_NamesTheVariable()
    {
        var e = Assert.Throws<ArgumentException>(() => KernelSelection.ChooseQuantPrefill("float"));
        Assert.Contains(KernelSelection.QuantPrefillVariable, e.Message);
    }
}
