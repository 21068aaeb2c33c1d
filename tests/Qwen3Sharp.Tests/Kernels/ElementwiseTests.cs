using System.Runtime.Intrinsics;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Kernels.Reference;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Tests.Kernels;

public sealed unsafe class ElementwiseTests
{
    private static readonly int[] LengthList =
        [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 100, 127, 128, 129, 191, 255, 256, 257, 1023, 2048, 6144];

    public static TheoryData<string, int> IsaLengths()
    {
        var data = new TheoryData<string, int>();
        foreach (string isa in Isa.All)
        {
            foreach (int n in LengthList)
            {
                data.Add(isa, n);
            }
        }

        return data;
    }

    [Theory, MemberData(nameof(IsaLengths))]
    public void RmsNorm_ThreeRows_MatchesScalar(string isa, int n)
    {
        if (n == 0)
        {
            return;
        }

        var rng = new Random(n);
        float[] x = KernelAssert.Random(rng, 3 * n, 4f);
        float[] w = KernelAssert.Random(rng, n);
        float[] expected = new float[3 * n], actual = new float[3 * n];
        ScalarKernels.RmsNorm(x, w, 1e-6f, expected);
        fixed (float* px = x, pw = w, py = actual)
        {
            switch (isa)
            {
                case Isa.Dispatch: RmsNorm.Apply(x, w, 1e-6f, actual); break;
                case "V512": RmsNorm.Rows<Vector512<float>, Simd512>(px, pw, n, 3, 1e-6f, py); break;
                case "V256": RmsNorm.Rows<Vector256<float>, Simd256>(px, pw, n, 3, 1e-6f, py); break;
                case "V128": RmsNorm.Rows<Vector128<float>, Simd128>(px, pw, n, 3, 1e-6f, py); break;
                default: RmsNorm.Rows<float, SimdScalar>(px, pw, n, 3, 1e-6f, py); break;
            }
        }

        KernelAssert.Close(expected, actual, atol: 1e-6f, rtol: 2e-6f, $"RmsNorm {isa} n={n}");
    }

    [Theory]
    [InlineData(128, 16)]
    [InlineData(64, 3)]
    [InlineData(37, 2)]
    public void RmsNormPerHead_InPlace_MatchesScalar(int headDim, int heads)
    {
        var rng = new Random(headDim);
        float[] x = KernelAssert.Random(rng, 2 * heads * headDim, 3f);
        float[] w = KernelAssert.Random(rng, headDim);
        float[] expected = new float[x.Length];
        ScalarKernels.RmsNorm(x, w, 1e-6f, expected);
        RmsNorm.ApplyPerHead(x, w, 1e-6f);
        KernelAssert.Close(expected, x, atol: 1e-6f, rtol: 2e-6f, $"RmsNormPerHead headDim={headDim}");
    }

    [Theory, MemberData(nameof(IsaLengths))]
    public void SiluMul_AliasedDestination_MatchesScalar(string isa, int n)
    {
        var rng = new Random(n);
        float[] gate = KernelAssert.Random(rng, n, 12f);
        float[] up = KernelAssert.Random(rng, n, 2f);
        float[] expected = new float[n];
        ScalarKernels.SiluMul(gate, up, expected);
        fixed (float* g = gate, u = up)
        {
            switch (isa)
            {
                case Isa.Dispatch: SwiGlu.SiluMul(gate, up, gate); break;
                case "V512": Elementwise.Binary<SwiGlu.SiluMulOperator, Vector512<float>, Simd512>(g, u, n, g); break;
                case "V256": Elementwise.Binary<SwiGlu.SiluMulOperator, Vector256<float>, Simd256>(g, u, n, g); break;
                case "V128": Elementwise.Binary<SwiGlu.SiluMulOperator, Vector128<float>, Simd128>(g, u, n, g); break;
                default: Elementwise.Binary<SwiGlu.SiluMulOperator, float, SimdScalar>(g, u, n, g); break;
            }
        }

        KernelAssert.Close(expected, gate, atol: 1e-6f, rtol: 2e-6f, $"SiluMul {isa} n={n}");
    }

    [Theory, MemberData(nameof(IsaLengths))]
    public void Softmax_WideRange_MatchesScalar(string isa, int n)
    {
        var rng = new Random(n);
        float[] x = KernelAssert.Random(rng, n, 30f);
        float[] expected = (float[])x.Clone();
        ScalarKernels.Softmax(expected);
        fixed (float* p = x)
        {
            switch (isa)
            {
                case Isa.Dispatch: Softmax.Apply(x); break;
                case "V512": Softmax.InPlace<Vector512<float>, Simd512>(p, n); break;
                case "V256": Softmax.InPlace<Vector256<float>, Simd256>(p, n); break;
                case "V128": Softmax.InPlace<Vector128<float>, Simd128>(p, n); break;
                default: Softmax.InPlace<float, SimdScalar>(p, n); break;
            }
        }

        KernelAssert.Close(expected, x, atol: 1e-7f, rtol: 4e-6f, $"Softmax {isa} n={n}");
    }

    [Fact]
    public void Exp_AcrossTheFloatRange_WithinFourUlps()
    {
        for (float v = -87f; v < 88.5f; v += 0.0137f)
        {
            float expected = MathF.Exp(v);
            float got = SimdMath.Exp<Vector256<float>, Simd256>(Vector256.Create(v)).GetElement(0);
            float got512 = SimdMath.Exp<Vector512<float>, Simd512>(Vector512.Create(v)).GetElement(3);
            float ulp = MathF.BitIncrement(expected) - expected;
            Assert.True(MathF.Abs(got - expected) <= 4 * ulp, $"exp({v}) = {got}, expected {expected}");
            Assert.Equal(got, got512);
        }

        Assert.Equal(0f, SimdMath.Exp<Vector128<float>, Simd128>(Vector128.Create(-200f)).GetElement(0), 1e-37f);
    }

    public static TheoryData<string, int> IsaHeadDims()
    {
        var data = new TheoryData<string, int>();
        foreach (string isa in Isa.All)
        {
            foreach (int d in new[] { 2, 6, 8, 16, 34, 64, 128, 256, 512 })
            {
                data.Add(isa, d);
            }
        }

        return data;
    }

    [Theory, MemberData(nameof(IsaHeadDims))]
    public void Rope_ManyPositions_MatchesScalar(string isa, int headDim)
    {
        var rng = new Random(headDim);
        const int heads = 3;
        int[] positions = [0, 1, 7, 513, 40000];
        float[] invFreq = new float[headDim / 2];
        for (int i = 0; i < invFreq.Length; i++)
        {
            invFreq[i] = 1f / MathF.Pow(1_000_000f, 2f * i / headDim);
        }

        float[] x = KernelAssert.Random(rng, positions.Length * heads * headDim);
        float[] expected = (float[])x.Clone();
        ScalarKernels.Rope(expected, heads, headDim, positions, invFreq, 1.25f);
        float[] table = new float[positions.Length * headDim];
        Rope.FillTable(positions, invFreq, headDim, 1.25f, table);
        float[] applied = (float[])x.Clone();
        Rope.Apply(applied, heads, headDim, positions, invFreq, 1.25f);
        fixed (float* px = x, cs = table)
        {
            switch (isa)
            {
                case Isa.Dispatch: Rope.Rotate(x, heads, headDim, table); break;
                case "V512": Rope.Rotate<Vector512<float>, Simd512>(px, heads, headDim, positions.Length, cs); break;
                case "V256": Rope.Rotate<Vector256<float>, Simd256>(px, heads, headDim, positions.Length, cs); break;
                case "V128": Rope.Rotate<Vector128<float>, Simd128>(px, heads, headDim, positions.Length, cs); break;
                default: Rope.Rotate<float, SimdScalar>(px, heads, headDim, positions.Length, cs); break;
            }
        }

        KernelAssert.Close(expected, x, atol: 1e-6f, rtol: 1e-6f, $"Rope {isa} headDim={headDim}");
        if (isa == Isa.Dispatch)
        {
            Assert.Equal(applied, x);   // Apply (a token at a time) and one table for all tokens: the same bits
        }
    }

    [Theory]
    [InlineData(2048, 40, 1)]      // a prefill's hidden rows, 2 threads
    [InlineData(100, 701, 2)]      // a width with a scalar tail, more rows than items
    [InlineData(128, 600, 3)]      // per-head rows
    [InlineData(2048, 8, 2)]       // under the threshold: inline
    public void Pooled_NormRopeSwiGlu_EqualTheOneThreadStepsBitForBit(int width, int rows, int extraThreads)
    {
        using var pool = new WorkerPool(1 + extraThreads);
        var rng = new Random(width + rows);
        float[] x = KernelAssert.Random(rng, width * rows), weight = KernelAssert.Random(rng, width);
        float[] alone = new float[x.Length], pooled = new float[x.Length];
        RmsNorm.Apply(x, weight, 1e-6f, alone);
        RmsNorm.Apply(pool, x, weight, 1e-6f, pooled);
        Assert.Equal(alone, pooled);
        float[] inPlace = (float[])x.Clone();
        RmsNorm.ApplyPerHead(pool, inPlace, weight, 1e-6f);
        Assert.Equal(alone, inPlace);

        // SwiGLU over the flat array, and its odd lengths (a scalar tail only at the very end)
        foreach (int n in new[] { x.Length, x.Length - 13, x.Length - 64 })
        {
            float[] gate = KernelAssert.Random(rng, n), up = KernelAssert.Random(rng, n);
            float[] one = new float[n], many = (float[])gate.Clone();
            SwiGlu.SiluMul(gate, up, one);
            SwiGlu.SiluMul(pool, many, up, many);   // in place, as the model calls it
            Assert.Equal(one, many);
        }

        // RoPE: rows as tokens of width/headDim heads
        const int headDim = 4;
        if (width % headDim == 0)
        {
            int[] positions = Enumerable.Range(0, rows).Select(i => 3 * i + 1).ToArray();
            float[] invFreq = [1f, 0.01f];
            float[] table = new float[rows * headDim];
            Rope.FillTable(positions, invFreq, headDim, 1f, table);
            float[] a = (float[])x.Clone(), b = (float[])x.Clone();
            Rope.Rotate(a, width / headDim, headDim, table);
            Rope.Rotate(pool, b, width / headDim, headDim, table);
            Assert.Equal(a, b);
        }
    }

    [Fact]
    public void BinaryPart_RefusesAPieceOffWholeVectors()
    {
        float[] a = new float[100], b = new float[100], d = new float[100];
        fixed (float* pa = a, pb = b, pd = d)
        {
            float* x = pa, y = pb, z = pd;
            Assert.Throws<ArgumentException>(() => Elementwise.BinaryPart<SwiGlu.SiluMulOperator>(x, y, 100, 3, 67, z));
            Assert.Throws<ArgumentException>(() => Elementwise.BinaryPart<SwiGlu.SiluMulOperator>(x, y, 100, 0, 63, z));
            Elementwise.BinaryPart<SwiGlu.SiluMulOperator>(x, y, 100, 64, 100, z);   // the last piece may end anywhere
        }
    }

    [Fact]
    public void Rope_TableAndRotate_RefuseShortBuffers()
    {
        int[] positions = [0, 1];
        Assert.Throws<ArgumentException>(() => Rope.FillTable(positions, new float[8], 16, 1f, new float[16 * 2 - 1]));
        Assert.Throws<ArgumentException>(() => Rope.FillTable(positions, new float[7], 16, 1f, new float[16 * 2]));
        Assert.Throws<ArgumentException>(() => Rope.Rotate(new float[2 * 3 * 16], 3, 16, new float[16]));
        Assert.Throws<ArgumentException>(() => Rope.Rotate(new float[2 * 3 * 16 + 1], 3, 16, new float[2 * 16]));
    }

    public static TheoryData<string, DType> IsaDTypes()
    {
        var data = new TheoryData<string, DType>();
        foreach (string isa in Isa.All)
        {
            foreach (DType d in new[] { DType.BF16, DType.F16, DType.F32 })
            {
                data.Add(isa, d);
            }
        }

        return data;
    }

    [Theory, MemberData(nameof(IsaDTypes))]
    public void Gather_OddWidths_EqualsScalarExactly(string isa, DType dtype)
    {
        var rng = new Random(3);
        foreach (int n in new[] { 1, 7, 33, 64, 100, 2048 })
        {
            using var table = new TestWeights(rng, dtype, 11, n);
            int[] ids = [10, 0, 3, 3];
            float[] expected = new float[ids.Length * n], actual = new float[ids.Length * n];
            ScalarKernels.Gather(table.View, ids, expected);
            fixed (float* pd = actual)
            fixed (int* pt = ids)
            {
                switch (isa)
                {
                    case Isa.Dispatch: Embedding.Gather(table.View, ids, actual); break;
                    case "V512": Embedding.Rows<Vector512<float>, Simd512>(table.View, pt, ids.Length, pd); break;
                    case "V256": Embedding.Rows<Vector256<float>, Simd256>(table.View, pt, ids.Length, pd); break;
                    case "V128": Embedding.Rows<Vector128<float>, Simd128>(table.View, pt, ids.Length, pd); break;
                    default: Embedding.Rows<float, SimdScalar>(table.View, pt, ids.Length, pd); break;
                }
            }

            KernelAssert.Close(expected, actual, atol: 0, rtol: 0, $"Gather {isa} {dtype} n={n}");
        }
    }

    [Fact]
    public void Gather_TokenOutsideTable_Throws()
    {
        using var table = new TestWeights(new Random(1), DType.BF16, 4, 8);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Embedding.Gather(table.View, [1, 4], new float[16]));
        Assert.Contains("Token id 4", e.Message);
    }

    [Fact]
    public void F16ToSingle_AllHalfBitPatterns_MatchesHalfConversion()
    {
        ushort[] bits = new ushort[65536];
        for (int i = 0; i < bits.Length; i++)
        {
            bits[i] = (ushort)i;
        }

        foreach (string isa in Isa.All)
        {
            float[] got = new float[65536];
            fixed (ushort* s = bits)
            fixed (float* d = got)
            {
                for (int i = 0; i < 65536; i += 32)
                {
                    switch (isa)
                    {
                        case "V512": Simd512.F16ToSingle(s + i, d + i); break;
                        case "V128":
                            for (int j = 0; j < 32; j += 8)
                            {
                                Simd128.F16ToSingle(s + i + j, d + i + j);
                            }

                            break;
                        case "Scalar":
                            for (int j = 0; j < 32; j += 2)
                            {
                                SimdScalar.F16ToSingle(s + i + j, d + i + j);
                            }

                            break;
                        default:
                            Simd256.F16ToSingle(s + i, d + i);
                            Simd256.F16ToSingle(s + i + 16, d + i + 16);
                            break;
                    }
                }
            }

            for (int i = 0; i < 65536; i++)
            {
                float expected = (float)BitConverter.UInt16BitsToHalf((ushort)i);
                bool same = float.IsNaN(expected) ? float.IsNaN(got[i]) : BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(got[i]);
                Assert.True(same, $"{isa}: half 0x{i:X4} gave {got[i]} (0x{BitConverter.SingleToUInt32Bits(got[i]):X8}), expected {expected}");
            }
        }
    }
}
