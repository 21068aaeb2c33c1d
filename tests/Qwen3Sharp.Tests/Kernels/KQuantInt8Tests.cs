using System.Runtime.InteropServices;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Kernels.Reference;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Tests.Kernels;

/// <summary>
/// The integer-activation K-quant kernels (QuantMatMul.KQuantsInt8.cs): against a float64 reference of the same integer
/// math (codes read element by element, activations quantized by <see cref="QuantScalar.QuantizeActivationQ8"/>), and
/// against the float64 product on the dequantized weights within the bound the activation rounding allows.
/// </summary>
public sealed unsafe class KQuantInt8Tests
{
    private static readonly int[] TokenCounts = [1, 2, 3, 4, 5, 9, 31];

    // one super-block, several, Qwen3-1.7B's widths; odd row counts (not multiples of the 16-row chunk or of 4)
    private static readonly (int Rows, int Cols)[] Shapes = [(1, 256), (3, 512), (17, 768), (37, 256), (19, 2048), (5, 6144)];

    public static TheoryData<DType, string> Cases()
    {
        var data = new TheoryData<DType, string>();
        foreach (DType d in new[] { DType.Q4_K, DType.Q5_K, DType.Q6_K })
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
            // mixed magnitudes, a zero block now and then, values on a rounding tie, a block at full scale
            x[i] = (i / 32 % 7) switch
            {
                3 => 0,
                5 => (i % 32 == 0 ? 127 : (i % 9) - 4.5f) * 0.25f,
                6 => i % 2 == 0 ? 2f : -2f,
                _ => (float)(rng.NextDouble() * 2 - 1) * (i % 5 == 0 ? 8 : 1),
            };
        }

        return x;
    }

    /// <summary>Element <paramref name="j"/> (0..255) of a super-block as its integer code (Q6_K: code − 32).</summary>
    private static int Code(byte* block, DType dtype, int j)
    {
        if (dtype == DType.Q6_K)
        {
            int n = j / 128, part = j % 128 / 32, l = j % 32;
            byte ql = block[64 * n + 32 * (part & 1) + l];
            int low = part < 2 ? ql & 0xF : ql >> 4;
            int high = (block[128 + 32 * n + l] >> (2 * part)) & 3;
            return (low | (high << 4)) - 32;
        }

        int sub = j / 32, k = j % 32;
        byte b = block[(dtype == DType.Q5_K ? 48 : 16) + 32 * (sub / 2) + k];
        int q = sub % 2 == 0 ? b & 0xF : b >> 4;
        return dtype == DType.Q5_K ? q | (((block[16 + k] >> sub) & 1) << 4) : q;
    }

    private static double Half(byte* p) => (double)BitConverter.UInt16BitsToHalf(*(ushort*)p);

    /// <summary>Σ_blocks d_x·(Σ scale·Σ code·x_q − dmin·m·Σ x_q) in double; <paramref name="magnitude"/> (optional) gets Σ |terms|.</summary>
    internal static void Reference(float* x, int tokenCount, in WeightView w, double* destination, double* magnitude)
    {
        int cols = w.ColCount, blocks = cols / 32;
        var codes = new sbyte[cols];
        var scales = new float[blocks];
        var sums = new int[blocks];
        fixed (sbyte* pc = codes)
        fixed (float* ps = scales)
        fixed (int* pu = sums)
        {
            for (int t = 0; t < tokenCount; t++)
            {
                QuantScalar.QuantizeActivationQ8(x + (long)t * cols, cols, pc, ps, pu);
                for (int r = 0; r < w.RowCount; r++)
                {
                    double s = 0, m = 0;
                    for (int b = 0; b < blocks; b++)
                    {
                        byte* block = w.Row(r) + (long)(b / 8) * w.DType.BlockBytes();
                        int j0 = b % 8 * 32;
                        double term, offset = 0;
                        if (w.DType == DType.Q6_K)
                        {
                            long dot = 0;
                            for (int j = j0; j < j0 + 32; j++)
                            {
                                dot += ((sbyte*)(block + 192))[j / 16] * Code(block, w.DType, j) * pc[b * 32 + j - j0];
                            }

                            term = Half(block + 208) * ps[b] * dot;
                        }
                        else
                        {
                            (int sc, int mn) = QuantScalar.ScaleMin(block + 4, b % 8);
                            long dot = 0;
                            for (int j = j0; j < j0 + 32; j++)
                            {
                                dot += Code(block, w.DType, j) * pc[b * 32 + j - j0];
                            }

                            term = Half(block) * sc * ps[b] * dot;
                            offset = Half(block + 2) * mn * ps[b] * pu[b];
                        }

                        s += term - offset;
                        m += Math.Abs(term) + Math.Abs(offset);
                    }

                    destination[(long)t * w.RowCount + r] = s;
                    if (magnitude != null)
                    {
                        magnitude[(long)t * w.RowCount + r] = m;
                    }
                }
            }
        }
    }

    internal static byte* Quantized(DType dtype, int rows, int cols, int seed)
    {
        long bytes = rows * dtype.RowBytes(cols);
        byte* data = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        QuantMatMulTests.FillKBlocks(new Random(seed), dtype, data, bytes / dtype.BlockBytes());
        return data;
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
                        Reference(px, tokens, w, pe, pm);
                    }

                    foreach (bool accumulate in new[] { false, true })
                    {
                        var y = new float[tokens * rows];
                        Array.Fill(y, accumulate ? 0.5f : float.NaN);
                        QuantMatMul.Run(isa, pool, x, tokens, w, y, accumulate, QuantDecodeKernel.Int8);
                        for (int i = 0; i < y.Length; i++)
                        {
                            // the block dots are exact integers; only the float32 factors and sums round
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
    [InlineData(DType.Q4_K)]
    [InlineData(DType.Q5_K)]
    [InlineData(DType.Q6_K)]
    public void Int8Path_StaysWithinTheActivationRoundingOfTheFloatPath(DType dtype)
    {
        const int rows = 37, cols = 2048, tokens = 3;
        byte* data = Quantized(dtype, rows, cols, 11);
        try
        {
            Int8MatMulTests.AssertWithinActivationRounding(new WeightView(data, dtype, rows, cols), tokens, Activations(new Random(5), tokens * cols));
        }
        finally
        {
            NativeMemory.AlignedFree(data);
        }
    }

    [Theory]
    [InlineData(DType.Q4_K, true)]
    [InlineData(DType.Q5_K, true)]
    [InlineData(DType.Q6_K, true)]
    [InlineData(DType.Q8_0, true)]
    [InlineData(DType.BF16, false)]
    public void HasInt8Kernel_CoversTheKQuants(DType dtype, bool expected) => Assert.Equal(expected, QuantMatMul.HasInt8Kernel(dtype));
}
