using System.Runtime.InteropServices;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Kernels.Reference;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Tests.Kernels;

/// <summary>MLX affine products against the float64 scalar twin on the dequantized weights, on every ISA the machine has.</summary>
public sealed unsafe class AffineMatMulTests
{
    private static readonly int[] TokenCounts = [1, 2, 3, 4, 5, 9];

    // Odd row counts (not multiples of the 16-row chunk), one group of 128, a few, Qwen3-1.7B's width.
    private static readonly (int Rows, int Cols)[] Shapes = [(1, 128), (3, 256), (17, 384), (37, 640), (19, 2048)];

    public static TheoryData<int, int, DType, string> Cases()
    {
        var data = new TheoryData<int, int, DType, string>();
        foreach (string isa in new[] { nameof(QuantMatMul.Isa.Scalar), nameof(QuantMatMul.Isa.Avx2), nameof(QuantMatMul.Isa.Avx512) })
        {
            foreach (int bits in new[] { 4, 8 })
            {
                foreach (int gs in new[] { 32, 64, 128 })
                {
                    data.Add(bits, gs, DType.BF16, isa);
                }

                data.Add(bits, 64, DType.F16, isa);
                data.Add(bits, 32, DType.F32, isa);
            }
        }

        return data;
    }

    private static bool Supported(QuantMatMul.Isa isa) => isa switch
    {
        QuantMatMul.Isa.Avx512 => QuantMatMul.Best == QuantMatMul.Isa.Avx512,
        QuantMatMul.Isa.Avx2 => QuantMatMul.Best != QuantMatMul.Isa.Scalar,
        _ => true,
    };

    /// <summary>Random weights through MLX's quantizer (one matrix, native memory); scales of both signs.</summary>
    internal sealed class AffineMatrix : IDisposable
    {
        private readonly byte* _codes, _scales, _biases;

        public AffineMatrix(int bits, int groupSize, DType groupDType, int rows, int cols, int seed)
        {
            var rng = new Random(seed);
            int groups = cols / groupSize;
            _codes = (byte*)NativeMemory.AlignedAlloc((nuint)((long)rows * cols * bits / 8), 64);
            _scales = (byte*)NativeMemory.AlignedAlloc((nuint)(rows * groups * 4), 64);
            _biases = (byte*)NativeMemory.AlignedAlloc((nuint)(rows * groups * 4), 64);
            var f = new float[cols];
            var s = new ushort[groups];
            var b = new ushort[groups];
            fixed (float* pf = f)
            fixed (ushort* ps = s, pb = b)
            {
                for (int r = 0; r < rows; r++)
                {
                    float shift = (float)(rng.NextDouble() - 0.5) * (r % 4 == 1 ? 1f : 0f);   // some groups far from zero
                    for (int c = 0; c < cols; c++)
                    {
                        f[c] = shift + (float)(rng.NextDouble() * 2 - 1) * (r % 3 == 0 ? 0.01f : 1f);
                    }

                    QuantScalar.QuantizeRowAffine(pf, cols, bits, groupSize, _codes + (long)r * cols * bits / 8, ps, pb);
                    for (int g = 0; g < groups; g++)
                    {
                        long i = (long)r * groups + g;
                        float scale = BitConverter.Int32BitsToSingle(s[g] << 16), bias = BitConverter.Int32BitsToSingle(b[g] << 16);
                        switch (groupDType)
                        {
                            case DType.BF16: ((ushort*)_scales)[i] = s[g]; ((ushort*)_biases)[i] = b[g]; break;
                            case DType.F16: ((Half*)_scales)[i] = (Half)scale; ((Half*)_biases)[i] = (Half)bias; break;
                            default: ((float*)_scales)[i] = scale; ((float*)_biases)[i] = bias; break;
                        }
                    }
                }
            }

            View = new WeightView(_codes, bits, groupSize, _scales, _biases, groupDType, rows, cols);
        }

        public WeightView View { get; }

        public void Dispose()
        {
            NativeMemory.AlignedFree(_codes);
            NativeMemory.AlignedFree(_scales);
            NativeMemory.AlignedFree(_biases);
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void Matches_the_float64_reference_on_dequantized_weights(int bits, int groupSize, DType groupDType, string isaName)
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
            using var m = new AffineMatrix(bits, groupSize, groupDType, rows, cols, rows * 31 + cols);
            foreach (int tokens in TokenCounts)
            {
                var x = new float[tokens * cols];
                for (int i = 0; i < x.Length; i++)
                {
                    x[i] = (float)(rng.NextDouble() * 2 - 1);
                }

                var expected = new double[tokens * rows];
                fixed (float* px = x)
                fixed (double* pe = expected)
                {
                    QuantScalar.MatMul(px, tokens, m.View, pe);
                }

                foreach (bool accumulate in new[] { false, true })
                {
                    var y = new float[tokens * rows];
                    Array.Fill(y, accumulate ? 0.5f : float.NaN);
                    AffineMatMul.Run(isa, pool, x, tokens, m.View, y, accumulate);
                    for (int i = 0; i < y.Length; i++)
                    {
                        double want = expected[i] + (accumulate ? 0.5 : 0);
                        double tolerance = 2e-5 * Math.Sqrt(cols) * (bits == 8 ? 16 : 1) + 1e-5;   // |codes| up to 255 vs 15
                        Assert.True(Math.Abs(y[i] - want) <= tolerance,
                            $"{bits}-bit g{groupSize} {groupDType} {isa} {rows}x{cols} tokens {tokens} acc {accumulate} [{i}]: {y[i]} vs {want}");
                    }
                }
            }
        }
    }

    /// <summary>Batches from <see cref="AffineMatMul.PanelTokens"/> on go through MatMul's prefill panels on dequantized rows.</summary>
    [Theory]
    [InlineData(4, 64)]
    [InlineData(8, 32)]
    [InlineData(4, 128)]
    public void Large_batches_through_the_prefill_panels_match_the_reference(int bits, int groupSize)
    {
        using var pool = new WorkerPool(2);
        var rng = new Random(13);
        foreach (var (rows, cols) in new[] { (53, 256), (7, 640) })
        {
            using var m = new AffineMatrix(bits, groupSize, DType.BF16, rows, cols, rows + cols);
            foreach (int tokens in new[] { AffineMatMul.PanelTokens, 45, 70 })
            {
                var x = new float[tokens * cols];
                for (int i = 0; i < x.Length; i++)
                {
                    x[i] = (float)(rng.NextDouble() * 2 - 1);
                }

                var expected = new double[tokens * rows];
                fixed (float* px = x)
                fixed (double* pe = expected)
                {
                    QuantScalar.MatMul(px, tokens, m.View, pe);
                }

                var y = new float[tokens * rows];
                MatMul.Multiply(pool, x, tokens, m.View, y);
                for (int i = 0; i < y.Length; i++)
                {
                    double tolerance = 2e-5 * Math.Sqrt(cols) * (bits == 8 ? 16 : 1) + 1e-5;
                    Assert.True(Math.Abs(y[i] - expected[i]) <= tolerance, $"{bits}-bit g{groupSize} {rows}x{cols} tokens {tokens} [{i}]: {y[i]} vs {expected[i]}");
                }
            }
        }
    }

    [Fact]
    public void MatMul_dispatches_affine_weights_and_the_embedding_dequantizes_rows()
    {
        using var pool = new WorkerPool(2);
        using var m = new AffineMatrix(4, 64, DType.BF16, 21, 192, 3);
        var x = new float[3 * 192];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = MathF.Sin(i * 0.37f);
        }

        var viaMatMul = new float[3 * 21];
        var direct = new float[3 * 21];
        MatMul.Multiply(pool, x, 3, m.View, viaMatMul);
        AffineMatMul.Run(pool, x, 3, m.View, direct, accumulate: false);
        Assert.Equal(direct, viaMatMul);

        var rows = new float[2 * 192];
        Embedding.Gather(m.View, [20, 0], rows);
        for (int c = 0; c < 192; c++)
        {
            Assert.Equal(m.View[20, c], rows[c]);
            Assert.Equal(m.View[0, c], rows[192 + c]);
        }
    }

    [Fact]
    public void The_quantizer_negates_about_half_the_scales_and_3_bit_codes_unpack_near_the_weights()
    {
        const int cols = 4096;
        var rng = new Random(11);
        var x = new float[cols];
        for (int i = 0; i < cols; i++)
        {
            x[i] = (float)(rng.NextDouble() * 2 - 1) * 0.05f;
        }

        var codes = new byte[cols * 3 / 8];
        var s = new ushort[cols / 32];
        var b = new ushort[cols / 32];
        fixed (float* px = x)
        fixed (byte* pc = codes)
        fixed (ushort* ps = s, pb = b)
        {
            QuantScalar.QuantizeRowAffine(px, cols, 3, 32, pc, ps, pb);
            int negative = s.Count(v => (v & 0x8000) != 0);
            Assert.InRange(negative, s.Length / 4, s.Length * 3 / 4);
            for (int i = 0; i < cols; i++)
            {
                float scale = BitConverter.Int32BitsToSingle(s[i / 32] << 16), bias = BitConverter.Int32BitsToSingle(b[i / 32] << 16);
                int code = Qwen3Sharp.Loading.ModelWeights.PackedCode(pc, 3, i);
                Assert.InRange(code, 0, 7);
                Assert.True(Math.Abs(scale * code + bias - x[i]) <= Math.Abs(scale) * 1.5 + 1e-3 * Math.Abs(bias), $"element {i}");
            }
        }
    }
}
