using System.Runtime.InteropServices;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Kernels.Reference;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Tests.Kernels;

/// <summary>Q8_0 / Q4_0 products against the float64 scalar twin on the dequantized weights, on every ISA the machine has.</summary>
public sealed unsafe class QuantMatMulTests
{
    private static readonly int[] TokenCounts = [1, 2, 3, 4, 5, 9];

    // Odd row counts (not multiples of the 16-row chunk), one block, a few blocks, Qwen3-1.7B's width.
    private static readonly (int Rows, int Cols)[] Shapes = [(1, 32), (3, 64), (17, 96), (37, 160), (19, 2048)];

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

    /// <summary>Random weights quantized with llama.cpp's reference rounding (one matrix, native memory).</summary>
    private sealed class QuantMatrix : IDisposable
    {
        public QuantMatrix(DType dtype, int rows, int cols, int seed)
        {
            var rng = new Random(seed);
            long rowBytes = dtype.RowBytes(cols);
            Data = (byte*)NativeMemory.AlignedAlloc((nuint)(rows * rowBytes), 64);
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
                        QuantScalar.QuantizeRowQ8_0(pf, cols, Data + r * rowBytes);
                    }
                    else
                    {
                        QuantScalar.QuantizeRowQ4_0(pf, cols, Data + r * rowBytes);
                    }
                }
            }

            View = new WeightView(Data, dtype, rows, cols);
        }

        public byte* Data { get; }

        public WeightView View { get; }

        public void Dispose() => NativeMemory.AlignedFree(Data);
    }

    [Theory, MemberData(nameof(Cases))]
    public void Matches_the_float64_reference_on_dequantized_weights(DType dtype, string isaName)
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
            using var m = new QuantMatrix(dtype, rows, cols, rows * 31 + cols);
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
                    QuantMatMul.Run(isa, pool, x, tokens, m.View, y, accumulate);
                    for (int i = 0; i < y.Length; i++)
                    {
                        double want = expected[i] + (accumulate ? 0.5 : 0);
                        double scale = 1e-5 * Math.Sqrt(cols) + 1e-6;
                        Assert.True(Math.Abs(y[i] - want) <= scale,
                            $"{dtype} {isa} {rows}x{cols} tokens {tokens} acc {accumulate} [{i}]: {y[i]} vs {want}");
                    }
                }
            }
        }
    }

    [Theory]
    [InlineData(DType.Q8_0)]
    [InlineData(DType.Q4_0)]
    public void MatMul_entry_point_and_embedding_gather_handle_block_formats(DType dtype)
    {
        using var pool = new WorkerPool(2);
        using var m = new QuantMatrix(dtype, 21, 128, 3);
        var x = new float[3 * 128];
        new Random(1).NextSingle();
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = MathF.Sin(i * 0.37f);
        }

        var y = new float[3 * 21];
        MatMul.Multiply(pool, x, 3, m.View, y);
        var expected = new double[3 * 21];
        fixed (float* px = x)
        fixed (double* pe = expected)
        {
            QuantScalar.MatMul(px, 3, m.View, pe);
        }

        for (int i = 0; i < y.Length; i++)
        {
            Assert.Equal(expected[i], y[i], 1e-4);
        }

        var rows = new float[2 * 128];
        Embedding.Gather(m.View, [20, 0], rows);
        for (int c = 0; c < 128; c++)
        {
            Assert.Equal(m.View[20, c], rows[c]);
            Assert.Equal(m.View[0, c], rows[128 + c]);
        }
    }

    [Fact]
    public void Quantizers_follow_llama_cpp_rounding_on_a_known_block()
    {
        // Block 0..31 / 31 · 2 − 1 → Q8_0: d = 1/127, codes round(x·127) half away from zero.
        var v = new float[32];
        for (int j = 0; j < 32; j++)
        {
            v[j] = j / 31f * 2 - 1;
        }

        byte* q8 = stackalloc byte[34];
        byte* q4 = stackalloc byte[18];
        fixed (float* pv = v)
        {
            QuantScalar.QuantizeRowQ8_0(pv, 32, q8);
            QuantScalar.QuantizeRowQ4_0(pv, 32, q4);
        }

        Assert.Equal((Half)(1f / 127f), BitConverter.UInt16BitsToHalf(*(ushort*)q8));
        Assert.Equal(-127, ((sbyte*)(q8 + 2))[0]);
        Assert.Equal(127, ((sbyte*)(q8 + 2))[31]);
        // Q4_0: the largest magnitude is +1 (last element, after −1 at j = 0 ties: the first strictly greater wins → −1),
        // so d = −1 / −8 = 0.125 and code(−1) = min(15, trunc(−1 / 0.125 + 8.5)) = 0.
        Assert.Equal((Half)0.125f, BitConverter.UInt16BitsToHalf(*(ushort*)q4));
        Assert.Equal(0, q4[2] & 0xF);
        Assert.Equal(15, q4[2 + 15] >> 4);   // element 31 = +1 → trunc(8 + 8.5) = 16 → clamped to 15
    }
}
