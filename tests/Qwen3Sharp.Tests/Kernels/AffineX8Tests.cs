using System.Runtime.InteropServices;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Tests.Kernels;

/// <summary>
/// MLX affine matrices in 8-row groups (<see cref="DType.Affine8x8"/>, <see cref="DType.Affine4x8"/>): the repack keeps
/// every element, the AVX2 kernels equal their scalar twin bit for bit and the exact product of the int8-rounded
/// activations, and every token of a batch or a prefill tile has the bits of its own one-token product.
/// </summary>
public sealed unsafe class AffineX8Tests
{
    private static readonly int[] TokenCounts = [1, 2, 3, 5, 9];

    // Rows: one short group, a full one, odd counts; columns: one group of 128, a few, Qwen3-1.7B's width.
    private static readonly (int Rows, int Cols)[] Shapes = [(1, 128), (8, 256), (17, 384), (37, 640), (13, 2048)];

    public static TheoryData<int, int> Cases() => new() { { 8, 32 }, { 8, 64 }, { 8, 128 }, { 4, 32 }, { 4, 64 }, { 4, 128 } };

    /// <summary>The matrix repacked whole (every group) into a native buffer.</summary>
    private static WeightView Repack(in WeightView w, out byte* buffer)
    {
        long bytes = QuantMatMul.RepackedBytesAffineX8(w.Bits, w.GroupSize, w.RowCount, w.ColCount);
        buffer = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        NativeMemory.Fill(buffer, (nuint)bytes, 0xCD);    // every byte must be written
        QuantMatMul.RepackAffineX8(w, 0, w.RowCount, buffer);
        Assert.Equal(bytes, new WeightView(buffer, QuantMatMul.AffineGroupLayoutOf(w)!.Value, w.GroupSize, w.SourceBits, w.RowCount, w.ColCount).DataBytes);
        return new WeightView(buffer, QuantMatMul.AffineGroupLayoutOf(w)!.Value, w.GroupSize, w.SourceBits, w.RowCount, w.ColCount);
    }

    [Theory, MemberData(nameof(Cases))]
    public void Repack_KeepsEveryElement_AndDequantizesToTheRowKernelsBits(int bits, int groupSize)
    {
        foreach (var (rows, cols) in Shapes)
        {
            using var m = new AffineMatMulTests.AffineMatrix(bits, groupSize, DType.BF16, rows, cols, rows * 7 + cols);
            WeightView x8 = Repack(m.View, out byte* buffer);
            try
            {
                var a = new float[cols];
                var b = new float[cols];
                for (int r = 0; r < rows; r++)
                {
                    fixed (float* pa = a, pb = b)
                    {
                        AffineMatMul.DequantizeRow(m.View, r, pa);
                        QuantMatMul.DequantizeRow(x8, r, pb);
                    }

                    Assert.Equal(a, b);
                    for (int c = 0; c < cols; c += 7)
                    {
                        Assert.Equal(m.View[r, c], x8[r, c]);
                    }
                }
            }
            finally
            {
                NativeMemory.AlignedFree(buffer);
            }
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void Repack_PutsEachAffineGroupsScalesAndBiasesInFrontOfItsCodes(int bits, int groupSize)
    {
        // Per 8-row group and affine group: the 8 rows' BF16 scales, their 8 biases, then the affine group's code blocks,
        // so a decode walk reads each 8-row group front to back (as Q4_0x8's and Q8_0x8's blocks, QuantMatMul.GroupScaleBytes)
        const int rows = 13, cols = 384;
        using var m = new AffineMatMulTests.AffineMatrix(bits, groupSize, DType.BF16, rows, cols, 5);
        WeightView x8 = Repack(m.View, out byte* buffer);
        try
        {
            int affineGroups = cols / groupSize;
            long affineBytes = 32 + (long)groupSize * bits;   // 8 rows × group size × bits / 8 code bytes, after 32 bytes of tables
            Assert.Equal(2 * affineGroups * affineBytes, x8.DataBytes);
            for (int g = 0; g < 2; g++)
            {
                for (int a = 0; a < affineGroups; a++)
                {
                    ushort* tables = (ushort*)(buffer + (g * affineGroups + a) * affineBytes);
                    for (int i = 0; i < 8; i++)
                    {
                        int r = 8 * g + i;
                        Assert.Equal(r < rows ? ((ushort*)m.View.Scales)[r * affineGroups + a] : (ushort)0, tables[i]);
                        Assert.Equal(r < rows ? ((ushort*)m.View.Biases)[r * affineGroups + a] : (ushort)0, tables[8 + i]);
                    }
                }
            }
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }

    [Fact]
    public void Only_bf16_tables_have_a_group_layout()
    {
        using var f16 = new AffineMatMulTests.AffineMatrix(8, 64, DType.F16, 3, 128, 1);
        using var f32 = new AffineMatMulTests.AffineMatrix(4, 32, DType.F32, 3, 128, 2);
        using var bf16 = new AffineMatMulTests.AffineMatrix(4, 32, DType.BF16, 3, 128, 3);
        Assert.Null(QuantMatMul.AffineGroupLayoutOf(f16.View));
        Assert.Null(QuantMatMul.AffineGroupLayoutOf(f32.View));
        Assert.Equal(DType.Affine4x8, QuantMatMul.AffineGroupLayoutOf(bf16.View));
    }

    [Theory, MemberData(nameof(Cases))]
    public void Kernel_Avx2AndScalarTwin_AgreeBitForBit_AndEqualTheExactProductOfTheRoundedActivations(int bits, int groupSize)
    {
        using var pool = new WorkerPool(2);
        var rng = new Random(bits * 1000 + groupSize);
        foreach (var (rows, cols) in Shapes)
        {
            using var m = new AffineMatMulTests.AffineMatrix(bits, groupSize, DType.BF16, rows, cols, rows * 31 + cols);
            WeightView x8 = Repack(m.View, out byte* buffer);
            try
            {
                foreach (int tokens in TokenCounts)
                {
                    float[] x = Int8MatMulTests.Activations(rng, tokens * cols);
                    (double[] expected, double[] magnitude) = Reference(x, tokens, m.View);
                    foreach (bool accumulate in new[] { false, true })
                    {
                        float start = accumulate ? 0.5f : float.NaN;
                        float[] scalar = Run(QuantMatMul.Isa.Scalar, pool, x, tokens, x8, start, accumulate);
                        for (int i = 0; i < scalar.Length; i++)
                        {
                            double want = expected[i] + (accumulate ? 0.5 : 0);
                            double tolerance = 1e-6 * magnitude[i] + 1e-6;
                            Assert.True(Math.Abs(scalar[i] - want) <= tolerance,
                                $"{bits}-bit g{groupSize} {rows}x{cols} tokens {tokens} acc {accumulate} [{i}]: {scalar[i]} vs {want} (tol {tolerance:G3})");
                        }

                        if (QuantMatMul.Best != QuantMatMul.Isa.Scalar)
                        {
                            Assert.Equal(scalar, Run(QuantMatMul.Isa.Avx2, pool, x, tokens, x8, start, accumulate));   // bit for bit
                        }
                    }

                    // every token of a batch has the bits it has alone
                    float[] batch = Run(QuantMatMul.Best, pool, x, tokens, x8, 0, accumulate: false);
                    for (int t = 0; t < tokens; t++)
                    {
                        float[] alone = Run(QuantMatMul.Best, pool, x.AsSpan(t * cols, cols).ToArray(), 1, x8, 0, accumulate: false);
                        Assert.Equal(alone, batch.AsSpan(t * rows, rows).ToArray());
                    }
                }
            }
            finally
            {
                NativeMemory.AlignedFree(buffer);
            }
        }
    }

    [Theory]
    [InlineData(8, 64)]
    [InlineData(8, 32)]
    [InlineData(4, 64)]
    [InlineData(4, 128)]
    public void Decode_TwoGroupsPerPass_MatchesTheScalarTwinAndBatchesBitForBit(int bits, int groupSize)
    {
        // One token takes two groups per pass (DotGroupPairAffineX8_256) within a work item: 26 groups, the last one 5
        // rows, make items of 3 (a pair and a single) and a last item of a pair whose second group is short.
        const int rows = 8 * 25 + 5, cols = 256;
        using var pool = new WorkerPool(2);
        using var m = new AffineMatMulTests.AffineMatrix(bits, groupSize, DType.BF16, rows, cols, 99);
        WeightView x8 = Repack(m.View, out byte* buffer);
        try
        {
            float[] x = Int8MatMulTests.Activations(new Random(17), 3 * cols);
            float[] one = x.AsSpan(0, cols).ToArray();
            foreach (bool accumulate in new[] { false, true })
            {
                float start = accumulate ? 0.5f : float.NaN;
                // QuantMatMul.Best is AVX2 where it is supported (the pair path); under DOTNET_EnableAVX2=0 the scalar twin
                Assert.Equal(Run(QuantMatMul.Isa.Scalar, pool, one, 1, x8, start, accumulate), Run(QuantMatMul.Best, pool, one, 1, x8, start, accumulate));
                float[] batch = Run(QuantMatMul.Best, pool, x, 3, x8, start, accumulate);   // the multi-token kernel
                Assert.Equal(Run(QuantMatMul.Best, pool, one, 1, x8, start, accumulate), batch.AsSpan(0, rows).ToArray());
            }
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }

    [VnniTheory]
    [InlineData(8, 64)]
    [InlineData(4, 32)]
    public void AvxVnniForms_GiveTheBitsOfTheAvx2Forms_InEveryWalkAndTheTokenTiles(int bits, int groupSize)
    {
        // QuantMatMul.Vnni.cs's AffineCodes8Vnni / AffineCodes4Vnni: one group, two per pass, four streams (FourStreamBytes
        // shortened to quarters of 2 groups), and the token tiles, written and accumulated. The 5-7-bit sources (stored as code − centre in the
        // 8-bit layout, centre ≠ 128) run through MlxTests' tiny-b-6bit model, which caught a bias of centre·Σx here.
        const int rows = 8 * 33 + 5, cols = 256;
        using var pool = new WorkerPool(2);
        using var m = new AffineMatMulTests.AffineMatrix(bits, groupSize, DType.BF16, rows, cols, 45);
        WeightView x8 = Repack(m.View, out byte* buffer);
        long savedStream = QuantMatMul.FourStreamBytes;
        bool savedVnni = QuantMatMul.UseVnni;
        try
        {
            float[] x = Int8MatMulTests.Activations(new Random(47), 40 * cols);
            QuantMatMul.FourStreamBytes = 2 * QuantMatMul.GroupRows * x8.RowBytes;
            foreach ((bool fourStreams, bool pairs) in new[] { (true, true), (false, true), (false, false) })
            {
                QuantMatMul.FourStreamDecode = fourStreams;
                QuantMatMul.TwoGroupsPerPass = pairs;
                foreach (int tokens in new[] { 1, 3, 40 })   // decode walks, then the token tiles (31 + 9)
                {
                    float[] xt = x.AsSpan(0, tokens * cols).ToArray();
                    foreach (bool accumulate in new[] { false, true })
                    {
                        float start = accumulate ? 0.5f : float.NaN;
                        QuantMatMul.UseVnni = false;
                        float[] avx2 = Run(QuantMatMul.Isa.Avx2, pool, xt, tokens, x8, start, accumulate);
                        QuantMatMul.UseVnni = true;
                        Assert.Equal(avx2, Run(QuantMatMul.Isa.Avx2, pool, xt, tokens, x8, start, accumulate));
                    }
                }
            }
        }
        finally
        {
            QuantMatMul.UseVnni = savedVnni;
            QuantMatMul.FourStreamDecode = true;
            QuantMatMul.TwoGroupsPerPass = true;
            QuantMatMul.FourStreamBytes = savedStream;
            NativeMemory.AlignedFree(buffer);
        }
    }

    [Theory]
    [InlineData(8, 64, 8 * 23 + 5, 1)]   // items of 4 groups (one per quarter), the matrix's short last group in a full item
    [InlineData(8, 32, 8 * 33 + 5, 2)]   // items of 8 groups and a short last item of 2 groups (the pair walk)
    [InlineData(4, 64, 8 * 31 + 5, 2)]
    [InlineData(4, 128, 8 * 25 + 5, 1)]
    public void Decode_FourStreams_MatchesTheScalarTwinAndThePairWalkBitForBit(int bits, int groupSize, int rows, int quarterGroups)
    {
        // QuantMatMul.FourStreamDecode: each item's quarters side by side (DotGroupQuadAffineX8_256); FourStreamBytes is
        // shortened so that 256 columns reach every case of the walk.
        const int cols = 256;
        using var pool = new WorkerPool(2);
        using var m = new AffineMatMulTests.AffineMatrix(bits, groupSize, DType.BF16, rows, cols, 41);
        WeightView x8 = Repack(m.View, out byte* buffer);
        try
        {
            Q4x8MatMulTests.AssertFourStreamsMatchScalarAndPairWalk(pool, x8, Int8MatMulTests.Activations(new Random(rows + bits), cols), quarterGroups);
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }

    [Theory]
    [InlineData(8)]
    [InlineData(4)]
    public void Kernel_AtTheCodeLimits_IsExact(int bits)
    {
        // Every code at its extremes (0 and 255 or 15: centred −128 and 127, −8 and 7) against activations at ±127:
        // the int16 pairs stay below 2^15 and the block dots are exact.
        const int rows = 16, cols = 256, groupSize = 64;
        using var m = new AffineMatMulTests.AffineMatrix(bits, groupSize, DType.BF16, rows, cols, 5);
        int max = (1 << bits) - 1;
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < cols; c++)
            {
                int code = (r + c / 3) % 2 == 0 ? 0 : max;
                byte* row = m.View.Data + (long)r * cols * bits / 8;
                if (bits == 8)
                {
                    row[c] = (byte)code;
                }
                else
                {
                    row[c / 2] = (byte)((row[c / 2] & (c % 2 == 0 ? 0xF0 : 0x0F)) | (code << (c % 2 * 4)));
                }
            }
        }

        WeightView x8 = Repack(m.View, out byte* buffer);
        try
        {
            using var pool = new WorkerPool(2);
            var x = new float[2 * cols];
            for (int i = 0; i < x.Length; i++)
            {
                x[i] = (i / 5 % 2 == 0 ? 1f : -1f) * (i % 32 == 0 ? 1f : 1f - i % 3 * 1e-3f);   // blocks of ±1: codes ±127
            }

            (double[] expected, double[] magnitude) = Reference(x, 2, m.View);
            float[] scalar = Run(QuantMatMul.Isa.Scalar, pool, x, 2, x8, 0, accumulate: false);
            for (int i = 0; i < scalar.Length; i++)
            {
                Assert.True(Math.Abs(scalar[i] - expected[i]) <= 1e-6 * magnitude[i] + 1e-6, $"[{i}]: {scalar[i]} vs {expected[i]}");
            }

            Assert.Equal(scalar, Run(QuantMatMul.Best, pool, x, 2, x8, 0, accumulate: false));
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }

    [Theory]
    [InlineData(8)]
    [InlineData(4)]
    public void Prefill_Int8TokenTiles_GiveEachTokenItsDecodeBits(int bits)
    {
        // 71 tokens through MatMul (the prefill entry): 31 + 31 + 9 token tiles where AVX2 runs (4-bit on AVX-512: the
        // token-pair tiles, 32 + 32 + 7, the last token beside zeros), each token's row the bits of its own one-token
        // product; without AVX2 the float panels on the dequantized rows.
        const int rows = 8 * 9 + 3, cols = 256;
        using var pool = new WorkerPool(2);
        using var m = new AffineMatMulTests.AffineMatrix(bits, 64, DType.BF16, rows, cols, 9);
        WeightView w = Repack(m.View, out byte* buffer);
        try
        {
            const int tokens = 71;
            float[] x = Int8MatMulTests.Activations(new Random(70), tokens * cols);
            var prefill = new float[tokens * rows];
            MatMul.Multiply(pool, x, tokens, w, prefill, PrefillKernel.Managed, QuantDecodeKernel.Int8);
            var exact = new double[tokens * rows];
            fixed (float* px = x)
            fixed (double* pe = exact)
            {
                Qwen3Sharp.Kernels.Reference.QuantScalar.MatMul(px, tokens, m.View, pe);
            }

            for (int t = 0; t < tokens; t++)
            {
                var alone = new float[rows];
                MatMul.Multiply(pool, x.AsSpan(t * cols, cols), 1, w, alone, PrefillKernel.Managed, QuantDecodeKernel.Int8);
                float[] row = prefill.AsSpan(t * rows, rows).ToArray();
                if (MatMul.PrefillsInt8(w.DType))
                {
                    Assert.Equal(alone, row);
                }
                else
                {
                    for (int i = 0; i < rows; i++)
                    {
                        Assert.True(Math.Abs(row[i] - exact[t * rows + i]) <= 1e-4 * (1 + Math.Abs(exact[t * rows + i])), $"token {t} row {i}");
                    }
                }
            }
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }

    /// <summary>
    /// Σ over affine groups of s·Σ_b d_b·Σ (q − centre)·xq + (bias + centre·s)·Σx in float64, with the activations rounded
    /// as the kernel rounds them (QuantizeQ8Scalar: the AVX2 quantizer's bits), and Σ|terms| for the tolerance.
    /// </summary>
    private static (double[] Expected, double[] Magnitude) Reference(float[] x, int tokens, in WeightView w)
    {
        int rows = w.RowCount, cols = w.ColCount, blocks = cols / 32, centre = QuantMatMul.AffineCentre(w.SourceBits);
        var expected = new double[tokens * rows];
        var magnitude = new double[tokens * rows];
        var codes = new sbyte[cols];
        var scales = new float[blocks];
        var sums = new int[blocks];
        for (int t = 0; t < tokens; t++)
        {
            fixed (float* px = &x[t * cols])
            fixed (sbyte* pc = codes)
            fixed (float* ps = scales)
            fixed (int* pu = sums)
            {
                QuantMatMul.QuantizeQ8Scalar(px, blocks, pc, ps, pu);
            }

            for (int r = 0; r < rows; r++)
            {
                double s = 0, mag = 0;
                for (int g = 0; g < cols / w.GroupSize; g++)
                {
                    (float scale, float bias) = w.GroupParams(r, g);
                    double xsum = 0, dot = 0;
                    for (int c = g * w.GroupSize; c < (g + 1) * w.GroupSize; c++)
                    {
                        byte* row = w.Row(r);
                        int q = w.Bits == 8 ? row[c] : (row[c / 2] >> (c % 2 * 4)) & 0xF;   // the code as MLX stores it
                        double term = (double)scale * (q - centre) * scales[c / 32] * codes[c];
                        dot += term;
                        mag += Math.Abs(term);
                        xsum += x[t * cols + c];
                    }

                    double shift = (double)bias + (double)centre * scale;
                    s += dot + shift * xsum;
                    mag += Math.Abs(shift * xsum);
                }

                expected[t * rows + r] = s;
                magnitude[t * rows + r] = mag;
            }
        }

        return (expected, magnitude);
    }

    private static float[] Run(QuantMatMul.Isa isa, WorkerPool pool, float[] x, int tokens, in WeightView w, float start, bool accumulate)
    {
        var y = new float[tokens * w.RowCount];
        Array.Fill(y, start);
        QuantMatMul.Run(isa, pool, x, tokens, w, y, accumulate, QuantDecodeKernel.Int8);
        return y;
    }
}
