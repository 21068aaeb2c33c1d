using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Qwen3Sharp.Cache;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Kernels.Reference;

namespace Qwen3Sharp.Tests.Kernels;

/// <summary>
/// The 16-bit and Q8_0 KV caches: float32 → bf16/f16/q8_0 stores against their scalar twins, and paged attention over
/// stored keys and values against the float32 path over the same (rounded) values, under every ISA, on ragged lengths.
/// </summary>
public sealed class KvDTypeTests
{
    public static TheoryData<string, KvCacheDType> IsasAndDTypes()
    {
        var data = new TheoryData<string, KvCacheDType>();
        foreach (string isa in Isa.All)
        {
            data.Add(isa, KvCacheDType.BF16);
            data.Add(isa, KvCacheDType.F16);
            data.Add(isa, KvCacheDType.Q8_0);
        }

        return data;
    }

    /// <summary>Values that exercise rounding: ties, subnormals, overflow, signed zeros, infinities and NaN.</summary>
    private static float[] Specials()
    {
        var list = new List<float>
        {
            0f, -0f, 1f, -1f, 65504f, 65519.99f, 65520f, -65520f, 1e10f, -1e10f, 6.1035156e-5f, 6.0975552e-5f, 5.9604645e-8f,
            2.9802322e-8f, 2.9802326e-8f, 1e-9f, -1e-9f, 1.0009765625f, 1.00048828125f, 1.00146484375f, 3.4028235e38f,
            float.Epsilon, -float.Epsilon, 1.1754944e-38f, float.PositiveInfinity, float.NegativeInfinity, float.NaN,
            BitConverter.UInt32BitsToSingle(0x3F808000u), BitConverter.UInt32BitsToSingle(0x3F818000u),   // bf16 ties: to even, both ways
            BitConverter.UInt32BitsToSingle(0x3F808001u), BitConverter.UInt32BitsToSingle(0x7F7FFFFFu),
            BitConverter.UInt32BitsToSingle(0x7FC00001u), BitConverter.UInt32BitsToSingle(0xFF800001u),  // NaNs with payloads
        };
        var rng = new Random(21);
        for (int i = 0; i < 400; i++)
        {
            list.Add(BitConverter.UInt32BitsToSingle((uint)rng.NextInt64(0, 1L << 32)));   // any bit pattern
            list.Add((float)(rng.NextDouble() * 2 - 1) * MathF.Pow(2, rng.Next(-30, 20)));
        }

        return [.. list];
    }

    [Fact]
    public void FromSingle_Bf16_MatchesScalarRoundToNearestEven()
    {
        float[] x = Specials();
        for (int n = 0; n <= x.Length; n += n < 70 ? 1 : 97)
        {
            var actual = new byte[n * 2];
            KvConvert.FromSingle(x.AsSpan(0, n), KvCacheDType.BF16, actual);
            ReadOnlySpan<ushort> bits = MemoryMarshal.Cast<byte, ushort>(actual);
            for (int i = 0; i < n; i++)
            {
                ushort expected = KvConvert.Bf16(x[i]);
                Assert.True(expected == bits[i], $"n={n} [{i}] {x[i]:G9} (0x{BitConverter.SingleToUInt32Bits(x[i]):X8}): 0x{bits[i]:X4}, scalar 0x{expected:X4}");
            }
        }

        // The scalar twin itself: ties go to even, NaN stays NaN.
        Assert.Equal(0x3F80, KvConvert.Bf16(BitConverter.UInt32BitsToSingle(0x3F808000u)));
        Assert.Equal(0x3F82, KvConvert.Bf16(BitConverter.UInt32BitsToSingle(0x3F818000u)));
        Assert.Equal(0x3F81, KvConvert.Bf16(BitConverter.UInt32BitsToSingle(0x3F808001u)));
        Assert.True(float.IsNaN(BitConverter.UInt32BitsToSingle((uint)KvConvert.Bf16(BitConverter.UInt32BitsToSingle(0x7F800001u)) << 16)));
    }

    [Fact]
    public void FromSingle_F16_MatchesHalfCastSaturatedAt65504()
    {
        float[] x = Specials();
        for (int n = 0; n <= x.Length; n += n < 70 ? 1 : 97)
        {
            var actual = new byte[n * 2];
            KvConvert.FromSingle(x.AsSpan(0, n), KvCacheDType.F16, actual);
            ReadOnlySpan<ushort> bits = MemoryMarshal.Cast<byte, ushort>(actual);
            for (int i = 0; i < n; i++)
            {
                ushort expected = KvConvert.F16(x[i]);
                bool bothNaN = Half.IsNaN(BitConverter.UInt16BitsToHalf(expected)) && Half.IsNaN(BitConverter.UInt16BitsToHalf(bits[i]));
                Assert.True(bothNaN || expected == bits[i], $"n={n} [{i}] {x[i]:G9}: 0x{bits[i]:X4}, scalar 0x{expected:X4}");
            }
        }

        // The scalar twin: (Half)'s rounding, then ±inf saturated to ±65504.
        foreach (float v in x)
        {
            Half cast = (Half)v;
            ushort twin = KvConvert.F16(v);
            if (Half.IsNaN(cast))
            {
                Assert.True(Half.IsNaN(BitConverter.UInt16BitsToHalf(twin)));
            }
            else
            {
                Assert.Equal(Half.IsInfinity(cast) ? (Half.IsNegative(cast) ? -Half.MaxValue : Half.MaxValue) : cast, BitConverter.UInt16BitsToHalf(twin));
            }
        }
    }

    [Fact]
    public void LoadF16_EveryFiniteHalf_IsExactUnderEveryIsa()
    {
        // The attention kernel's f16 read (4 operations, no inf/NaN handling) against .NET's Half → float for all 63,488
        // finite halves, each vector width.
        var halves = new ushort[1 << 16];
        var expected = new List<float>();
        int n = 0;
        for (int bits = 0; bits < 1 << 16; bits++)
        {
            Half h = BitConverter.UInt16BitsToHalf((ushort)bits);
            if (Half.IsFinite(h))
            {
                halves[n++] = (ushort)bits;
                expected.Add((float)h);
            }
        }

        Assert.Equal(63_488, n);
        AssertLoads<System.Runtime.Intrinsics.Vector512<float>, Simd512>(halves, expected, n, 16, (v, i) => v[i]);
        AssertLoads<System.Runtime.Intrinsics.Vector256<float>, Simd256>(halves, expected, n, 8, (v, i) => v[i]);
        AssertLoads<System.Runtime.Intrinsics.Vector128<float>, Simd128>(halves, expected, n, 4, (v, i) => v[i]);
        AssertLoads<float, SimdScalar>(halves, expected, n, 1, (v, _) => v);
    }

    private static unsafe void AssertLoads<TV, TS>(ushort[] halves, List<float> expected, int n, int lanes, Func<TV, int, float> lane)
        where TV : unmanaged where TS : ISimd<TV>
    {
        fixed (ushort* p = halves)
        {
            for (int i = 0; i + lanes <= n; i += lanes)
            {
                TV v = TS.LoadF16(p + i);
                for (int j = 0; j < lanes; j++)
                {
                    float got = lane(v, j);
                    Assert.True(BitConverter.SingleToInt32Bits(got) == BitConverter.SingleToInt32Bits(expected[i + j]),
                        $"{typeof(TS).Name} half 0x{halves[i + j]:X4}: {got:G9}, expected {expected[i + j]:G9}");
                }
            }
        }
    }

    [Theory]
    [InlineData(KvCacheDType.F32)]
    [InlineData(KvCacheDType.BF16)]
    [InlineData(KvCacheDType.F16)]
    [InlineData(KvCacheDType.Q8_0)]
    public void ToSingle_AfterFromSingle_IsTheRoundedValue(KvCacheDType dtype)
    {
        float[] x = KernelAssert.Random(new Random(3), dtype == KvCacheDType.Q8_0 ? 96 : 77, 50f);
        x[40] = 0;
        if (dtype == KvCacheDType.Q8_0)
        {
            x.AsSpan(64, 32).Clear();   // a block of zeros: scale 0
        }
        var stored = new byte[dtype.Bytes(x.Length)];
        KvConvert.FromSingle(x, dtype, stored);
        var back = new float[x.Length];
        KvConvert.ToSingle(stored, dtype, back);
        for (int i = 0; i < x.Length; i++)
        {
            float expected = dtype switch
            {
                KvCacheDType.F32 => x[i],
                KvCacheDType.BF16 => BitConverter.UInt32BitsToSingle((uint)KvConvert.Bf16(x[i]) << 16),
                KvCacheDType.Q8_0 => Q8Reference(x.AsSpan(i / 32 * 32, 32), i % 32),
                _ => (float)BitConverter.UInt16BitsToHalf(KvConvert.F16(x[i])),
            };
            Assert.Equal(expected, back[i]);
        }

        Assert.Throws<ArgumentException>(() => KvConvert.FromSingle(x, dtype, new byte[stored.Length - 1]));
    }

    /// <summary>llama.cpp's Q8_0 of one block, element i: d = amax/127 (stored as f16), code = round-half-even(x/d).</summary>
    private static float Q8Reference(ReadOnlySpan<float> block, int i)
    {
        double amax = 0;
        foreach (float e in block)
        {
            amax = Math.Max(amax, Math.Abs(e));
        }

        float d = (float)(amax / 127);
        float code = d == 0 ? 0 : MathF.Round(block[i] * (1 / d), MidpointRounding.ToEven);
        return code * (float)(Half)d;
    }

    [Fact]
    public void FromSingle_Q8_0_IsAnExactBlockLayout()
    {
        // One block: f16 scale amax/127 little-endian, then 32 codes; the largest element codes as ±127.
        float[] x = [.. Enumerable.Range(0, 32).Select(i => (i - 10) * 0.25f)];   // -2.5 .. 5.25
        var stored = new byte[34];
        KvConvert.FromSingle(x, KvCacheDType.Q8_0, stored);
        Assert.Equal(BitConverter.HalfToUInt16Bits((Half)(5.25f / 127)), BitConverter.ToUInt16(stored, 0));
        Assert.Equal(127, (sbyte)stored[2 + 31]);
        Assert.Equal(0, (sbyte)stored[2 + 10]);
        Assert.Equal((sbyte)MathF.Round(-2.5f / (5.25f / 127)), (sbyte)stored[2]);
        Assert.Throws<ArgumentException>(() => KvConvert.FromSingle(x.AsSpan(0, 31), KvCacheDType.Q8_0, stored));
    }

    [Theory, MemberData(nameof(IsasAndDTypes))]
    public void CausalPaged_16BitRaggedScattered_EqualsFloat32PathOnRoundedValues(string isa, KvCacheDType dtype)
    {
        // Sequences of ragged lengths in one pool of shuffled 16-position blocks, keys and values stored as dtype. The
        // 16-bit kernel must give exactly what the float32 kernel of the same ISA gives over the values rounded to dtype
        // (the widening is exact and the arithmetic is the same), and agree with the scalar reference.
        using var pool = new WorkerPool(2);
        var rng = new Random(17);
        const int BlockSize = 16;
        (int H, int Kv, int D, int Start, int T)[] seqs =
            [(16, 8, 128, 0, 1), (16, 8, 128, 15, 1), (16, 8, 128, 16, 1), (16, 8, 128, 33, 5), (16, 8, 128, 0, 40), (4, 2, 40, 100, 1),
             (2, 1, 33, 7, 17), (3, 3, 7, 250, 3), (8, 2, 64, 300, 2), (6, 2, 32, 70, 3), (10, 2, 64, 45, 1)];
        foreach (var (h, kv, d, start, t) in seqs)
        {
            if (dtype.Unsupported(d) is not null)
            {
                continue;   // q8_0 blocks of 32 need head_dim 32, 64, 128...
            }

            int context = start + t, kvDim = kv * d, rowBytes = (int)dtype.Bytes(kvDim);
            int blocks = (context + BlockSize - 1) / BlockSize + 3;
            int[] table = Enumerable.Range(0, blocks).OrderBy(_ => rng.Next()).Take((context + BlockSize - 1) / BlockSize).ToArray();
            float[] q = KernelAssert.Random(rng, t * h * d, 2f);
            float[] k = KernelAssert.Random(rng, context * kvDim, 2f);
            float[] v = KernelAssert.Random(rng, context * kvDim);
            // Paged stores: 16-bit, and float32 holding the same rounded values.
            var k16 = new byte[blocks * BlockSize * rowBytes];
            var v16 = new byte[k16.Length];
            var k32 = new float[blocks * BlockSize * kvDim];
            var v32 = new float[k32.Length];
            var kDense = new float[context * kvDim];
            var vDense = new float[context * kvDim];
            int headBytes = rowBytes / kv;
            for (int p = 0; p < context; p++)
            {
                for (int kvh = 0; kvh < kv; kvh++)   // head-major blocks: each head's run of positions
                {
                    int slot = (int)KvLayout.Slot(table, p, BlockSize, kv, kvh), src = p * kvDim + kvh * d;
                    KvConvert.FromSingle(k.AsSpan(src, d), dtype, k16.AsSpan(slot * headBytes, headBytes));
                    KvConvert.FromSingle(v.AsSpan(src, d), dtype, v16.AsSpan(slot * headBytes, headBytes));
                    KvConvert.ToSingle(k16.AsSpan(slot * headBytes, headBytes), dtype, k32.AsSpan(slot * d, d));
                    KvConvert.ToSingle(v16.AsSpan(slot * headBytes, headBytes), dtype, v32.AsSpan(slot * d, d));
                    k32.AsSpan(slot * d, d).CopyTo(kDense.AsSpan(src));
                    v32.AsSpan(slot * d, d).CopyTo(vDense.AsSpan(src));
                }
            }

            float scale = 1f / MathF.Sqrt(d);
            float[] reference = new float[t * h * d], f32 = new float[t * h * d], actual = new float[t * h * d];
            ScalarKernels.CausalAttention(q, t, start, kDense, vDense, h, kv, d, scale, reference);
            Run(isa, dtype, pool, q, t, start, k16, v16, k32, v32, table, BlockSize, h, kv, d, scale, actual, f32);
            string context_ = $"{dtype} paged attention {isa} heads={h}/{kv} headDim={d} start={start} tokens={t}";
            KernelAssert.Close(f32, actual, atol: 0, rtol: 0, context_ + " vs float32 path");
            KernelAssert.Close(reference, actual, atol: 2e-6f, rtol: 1e-5f, context_ + " vs scalar reference");
        }
    }

    private static void Run(string isa, KvCacheDType dtype, WorkerPool pool, float[] q, int t, int start, byte[] k16, byte[] v16,
        float[] k32, float[] v32, int[] table, int blockSize, int h, int kv, int d, float scale, float[] actual, float[] f32)
    {
        switch (isa)
        {
            case Isa.Dispatch:
                Attention.Causal(pool, q, t, start, k16, v16, dtype, table, blockSize, h, kv, d, scale, actual);
                Attention.Causal(pool, q, t, start, k32, v32, table, blockSize, h, kv, d, scale, f32);
                break;
            case "V512":
                Run<Vector512<float>, Simd512>(dtype, pool, q, t, start, k16, v16, table, blockSize, h, kv, d, scale, actual);
                Attention.Run<Vector512<float>, Simd512>(pool, q, t, start, k32, v32, table, blockSize, h, kv, d, scale, f32);
                break;
            case "V256":
                Run<Vector256<float>, Simd256>(dtype, pool, q, t, start, k16, v16, table, blockSize, h, kv, d, scale, actual);
                Attention.Run<Vector256<float>, Simd256>(pool, q, t, start, k32, v32, table, blockSize, h, kv, d, scale, f32);
                break;
            case "V128":
                Run<Vector128<float>, Simd128>(dtype, pool, q, t, start, k16, v16, table, blockSize, h, kv, d, scale, actual);
                Attention.Run<Vector128<float>, Simd128>(pool, q, t, start, k32, v32, table, blockSize, h, kv, d, scale, f32);
                break;
            default:
                Run<float, SimdScalar>(dtype, pool, q, t, start, k16, v16, table, blockSize, h, kv, d, scale, actual);
                Attention.Run<float, SimdScalar>(pool, q, t, start, k32, v32, table, blockSize, h, kv, d, scale, f32);
                break;
        }
    }

    private static void Run<TV, TS>(KvCacheDType dtype, WorkerPool pool, float[] q, int t, int start, byte[] k16, byte[] v16,
        int[] table, int blockSize, int h, int kv, int d, float scale, float[] actual)
        where TV : unmanaged where TS : ISimd<TV>
    {
        if (dtype == KvCacheDType.BF16)
        {
            Attention.Run<TV, TS, KvBf16>(pool, q, t, start, k16, v16, table, blockSize, h, kv, d, scale, actual);
        }
        else if (dtype == KvCacheDType.Q8_0)
        {
            Attention.Run<TV, TS, KvQ8>(pool, q, t, start, k16, v16, table, blockSize, h, kv, d, scale, actual);
        }
        else
        {
            Attention.Run<TV, TS, KvF16>(pool, q, t, start, k16, v16, table, blockSize, h, kv, d, scale, actual);
        }
    }

    [Fact]
    public void CausalPaged_16BitKeysShorterThanTable_Throws()
    {
        using var pool = new WorkerPool(1);
        // One block of 16 positions × 8 bf16 elements is 256 bytes; 255 do not hold it.
        Assert.Throws<ArgumentException>(() =>
            Attention.Causal(pool, new float[16], 1, 15, new byte[255], new byte[256], KvCacheDType.BF16, [0], 16, 2, 1, 8, 1f, new float[16]));
    }
}
