using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Qwen3Sharp.Kernels;

/// <summary>
/// AVX-VNNI forms of the 8-row group kernels: <see cref="Tensors.DType.Q8_0x8"/>, <see cref="Tensors.DType.Q4_0x8"/>,
/// <see cref="Tensors.DType.Q4_Kx8"/>, <see cref="Tensors.DType.Q5_Kx8"/> and <see cref="Tensors.DType.Q6_Kx8"/> (decode walks and prefill token tiles; Q6_K's
/// 16-element groups each a <c>vpdpbusd</c> chain in int32, less 32·Σx, times its scale), and the MLX affine groups
/// (<see cref="Tensors.DType.Affine8x8"/>, <see cref="Tensors.DType.Affine4x8"/>: the Q8_0 and Q4_0 block dots; their
/// token tiles in QuantMatMul.AffineX8.cs).
/// <c>vpdpbusd</c> (256-bit, <c>AvxVnni</c>: Zen 5, Intel since Alder Lake; Zen 4 has only the EVEX form, which .NET 10
/// exposes only under AVX10) multiplies unsigned by signed bytes and adds each lane's four products into int32 in one
/// instruction, where AVX2 needs <c>vpabsb</c>, <c>vpsignb</c>, <c>vpmaddubsw</c>, <c>vpmaddwd</c> and an add. Signed
/// codes are made unsigned by flipping their sign bit (w + 128, one <c>vpxor</c>), and 128 · Σx (the activation block's
/// code sum, which the quantizer already writes) comes off once per block: 2 vector operations per code vector instead
/// of 5–6. Nibbles are unsigned already: one <c>vpdpbusd</c> per nibble vector replaces <c>vpmaddubsw</c> and its int16
/// add, and the block's <c>vpmaddwd</c> widening goes.
/// </summary>
/// <remarks>
/// The block dots are exact in int32 either way, so every kernel here gives the bits of its AVX2 form and of the scalar
/// twins; which one runs changes no result. On a Zen 5 the AVX2 Q8_0 forms read at 0.59 of a plain read of the same
/// bytes (compute bound at 80 GB/s); the README's Zen 5 block has what these reach.
/// </remarks>
public static unsafe partial class QuantMatMul
{
    /// <summary>
    /// True where the kernels above take their AVX-VNNI forms: where the CPU has AVX-VNNI, unless turned off (the bench
    /// A/B, and the tests that compare the two forms).
    /// </summary>
    internal static bool UseVnni = AvxVnni.IsSupported;

    /// <summary>True where products with <paramref name="format"/> (an 8-row group layout) take the AVX-VNNI kernels on this CPU.</summary>
    public static bool UsesVnni(Tensors.DType format) => UseVnni && format is Tensors.DType.Q8_0x8 or Tensors.DType.Q4_0x8 or Tensors.DType.Q4_Kx8
        or Tensors.DType.Q5_Kx8 or Tensors.DType.Q6_Kx8 or Tensors.DType.Affine8x8 or Tensors.DType.Affine4x8;

    /// <summary>The sign bit of every byte: XOR with it turns a signed code w into the unsigned byte w + 128.</summary>
    private static Vector256<sbyte> SignBits => Vector256.Create(unchecked((sbyte)0x80));

    /// <summary>A Q8_0x8 block's 8 code vectors at <paramref name="w"/> made unsigned (+128), once for every token of a tile.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SignFlipped(sbyte* w, out Vector256<byte> u0, out Vector256<byte> u1, out Vector256<byte> u2, out Vector256<byte> u3,
        out Vector256<byte> u4, out Vector256<byte> u5, out Vector256<byte> u6, out Vector256<byte> u7)
    {
        Vector256<sbyte> signBits = SignBits;
        u0 = (Vector256.Load(w) ^ signBits).AsByte();
        u1 = (Vector256.Load(w + 32) ^ signBits).AsByte();
        u2 = (Vector256.Load(w + 64) ^ signBits).AsByte();
        u3 = (Vector256.Load(w + 96) ^ signBits).AsByte();
        u4 = (Vector256.Load(w + 128) ^ signBits).AsByte();
        u5 = (Vector256.Load(w + 160) ^ signBits).AsByte();
        u6 = (Vector256.Load(w + 192) ^ signBits).AsByte();
        u7 = (Vector256.Load(w + 224) ^ signBits).AsByte();
    }

    /// <summary>acc + per lane Σ of 4 products (w + 128) · x for code vector <paramref name="w"/> against the activation dword <paramref name="x"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q8Vnni(Vector256<int> acc, sbyte* w, Vector256<sbyte> x, Vector256<sbyte> signBits)
        => AvxVnni.MultiplyWideningAndAdd(acc, (Vector256.Load(w) ^ signBits).AsByte(), x);

    /// <summary>
    /// One block of one group: the exact integer dot of each row (lane) with the 8 activation dwords at <paramref name="x"/>,
    /// in two chains of four, less <paramref name="bias"/> (128 · the block's activation code sum).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q8VnniBlock(byte* codes, int* x, int bias, Vector256<sbyte> signBits)
    {
        sbyte* w = (sbyte*)codes;
        Vector256<int> a = Q8Vnni(Vector256<int>.Zero, w, Vector256.Create(x[0]).AsSByte(), signBits);
        Vector256<int> b = Q8Vnni(Vector256<int>.Zero, w + 32, Vector256.Create(x[1]).AsSByte(), signBits);
        a = Q8Vnni(a, w + 64, Vector256.Create(x[2]).AsSByte(), signBits);
        b = Q8Vnni(b, w + 96, Vector256.Create(x[3]).AsSByte(), signBits);
        a = Q8Vnni(a, w + 128, Vector256.Create(x[4]).AsSByte(), signBits);
        b = Q8Vnni(b, w + 160, Vector256.Create(x[5]).AsSByte(), signBits);
        a = Q8Vnni(a, w + 192, Vector256.Create(x[6]).AsSByte(), signBits);
        b = Q8Vnni(b, w + 224, Vector256.Create(x[7]).AsSByte(), signBits);
        return (a + b) - Vector256.Create(bias);
    }

    /// <summary>The AVX-VNNI form of <see cref="DotGroupQ8_0x8_256"/> (same bits); <paramref name="xsum"/>: the blocks' activation code sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static Vector256<float> DotGroupQ8_0x8Vnni(byte* group, int blocks, sbyte* x, float* xs, int* xsum)
    {
        short* d = (short*)group;
        group += GroupScaleBytes;
        Vector256<sbyte> signBits = SignBits;
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        Vector256<float> acc = Vector256<float>.Zero;
        for (int k = 0; k < blocks; k++, group += Q8BlockBytes, d += Q8BlockBytes / 2, x += BlockSize)
        {
            PrefetchQ8Block(group + PrefetchBytes);
            Vector256<int> dot = Q8VnniBlock(group, (int*)x, xsum[k] << 7, signBits);
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dot), WidenHalves(d, halfMask, halfScale) * Vector256.Create(xs[k]), acc);
        }

        return acc;
    }

    /// <summary>The AVX-VNNI form of <see cref="DotGroupPairQ8_0x8_256"/> (same bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupPairQ8_0x8Vnni(byte* ga, byte* gb, int blocks, sbyte* x, float* xs, int* xsum, out Vector256<float> ra, out Vector256<float> rb)
    {
        short* da = (short*)ga, db = (short*)gb;
        ga += GroupScaleBytes;
        gb += GroupScaleBytes;
        Vector256<sbyte> signBits = SignBits;
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        Vector256<float> acca = Vector256<float>.Zero, accb = Vector256<float>.Zero;
        for (int k = 0; k < blocks; k++, ga += Q8BlockBytes, gb += Q8BlockBytes, da += Q8BlockBytes / 2, db += Q8BlockBytes / 2, x += BlockSize)
        {
            PrefetchQ8Block(ga + PrefetchBytes);
            PrefetchQ8Block(gb + PrefetchBytes);
            int* xi = (int*)x;
            Vector256<int> sa = Vector256<int>.Zero, sb = Vector256<int>.Zero;
            Q8VnniTwice(ga, gb, xi, 0, signBits, ref sa, ref sb);
            Q8VnniTwice(ga, gb, xi, 1, signBits, ref sa, ref sb);
            Q8VnniTwice(ga, gb, xi, 2, signBits, ref sa, ref sb);
            Q8VnniTwice(ga, gb, xi, 3, signBits, ref sa, ref sb);
            Q8VnniTwice(ga, gb, xi, 4, signBits, ref sa, ref sb);
            Q8VnniTwice(ga, gb, xi, 5, signBits, ref sa, ref sb);
            Q8VnniTwice(ga, gb, xi, 6, signBits, ref sa, ref sb);
            Q8VnniTwice(ga, gb, xi, 7, signBits, ref sa, ref sb);
            Vector256<int> bias = Vector256.Create(xsum[k] << 7);
            Vector256<float> xsk = Vector256.Create(xs[k]);
            acca = Fma.MultiplyAdd(Avx.ConvertToVector256Single(sa - bias), WidenHalves(da, halfMask, halfScale) * xsk, acca);
            accb = Fma.MultiplyAdd(Avx.ConvertToVector256Single(sb - bias), WidenHalves(db, halfMask, halfScale) * xsk, accb);
        }

        ra = acca;
        rb = accb;
    }

    /// <summary>Code vector <paramref name="v"/> of a block of two groups against activation dword <paramref name="v"/>, broadcast once for both.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q8VnniTwice(byte* ga, byte* gb, int* x, int v, Vector256<sbyte> signBits, ref Vector256<int> sa, ref Vector256<int> sb)
    {
        Vector256<sbyte> xv = Vector256.Create(x[v]).AsSByte();
        sa = Q8Vnni(sa, (sbyte*)ga + 32 * v, xv, signBits);
        sb = Q8Vnni(sb, (sbyte*)gb + 32 * v, xv, signBits);
    }

    /// <summary>The AVX-VNNI form of <see cref="DotGroupQuadQ8_0x8_256"/> (same bits; no software prefetch, as there).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupQuadQ8_0x8Vnni(byte* g0, long stride, int blocks, sbyte* x, float* xs, int* xsum, Vector256<float>* result)
    {
        short* d0 = (short*)g0;
        long ds = stride / sizeof(short);
        g0 += GroupScaleBytes;
        byte* g1 = g0 + stride, g2 = g1 + stride, g3 = g2 + stride;
        Vector256<sbyte> signBits = SignBits;
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        Vector256<float> a0 = Vector256<float>.Zero, a1 = Vector256<float>.Zero, a2 = Vector256<float>.Zero, a3 = Vector256<float>.Zero;
        for (int k = 0; k < blocks; k++, g0 += Q8BlockBytes, g1 += Q8BlockBytes, g2 += Q8BlockBytes, g3 += Q8BlockBytes,
            d0 += Q8BlockBytes / 2, x += BlockSize)
        {
            int* xi = (int*)x;
            Vector256<int> s0 = Vector256<int>.Zero, s1 = Vector256<int>.Zero, s2 = Vector256<int>.Zero, s3 = Vector256<int>.Zero;
            // written out: as a loop the JIT kept it rolled, with index arithmetic around every step
            Q8VnniFour(g0, g1, g2, g3, xi, 0, signBits, ref s0, ref s1, ref s2, ref s3);
            Q8VnniFour(g0, g1, g2, g3, xi, 1, signBits, ref s0, ref s1, ref s2, ref s3);
            Q8VnniFour(g0, g1, g2, g3, xi, 2, signBits, ref s0, ref s1, ref s2, ref s3);
            Q8VnniFour(g0, g1, g2, g3, xi, 3, signBits, ref s0, ref s1, ref s2, ref s3);
            Q8VnniFour(g0, g1, g2, g3, xi, 4, signBits, ref s0, ref s1, ref s2, ref s3);
            Q8VnniFour(g0, g1, g2, g3, xi, 5, signBits, ref s0, ref s1, ref s2, ref s3);
            Q8VnniFour(g0, g1, g2, g3, xi, 6, signBits, ref s0, ref s1, ref s2, ref s3);
            Q8VnniFour(g0, g1, g2, g3, xi, 7, signBits, ref s0, ref s1, ref s2, ref s3);
            Vector256<int> bias = Vector256.Create(xsum[k] << 7);
            Vector256<float> xsk = Vector256.Create(xs[k]);
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s0 - bias), WidenHalves(d0, halfMask, halfScale) * xsk, a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s1 - bias), WidenHalves(d0 + ds, halfMask, halfScale) * xsk, a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s2 - bias), WidenHalves(d0 + 2 * ds, halfMask, halfScale) * xsk, a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s3 - bias), WidenHalves(d0 + 3 * ds, halfMask, halfScale) * xsk, a3);
        }

        result[0] = a0;
        result[1] = a1;
        result[2] = a2;
        result[3] = a3;
    }

    /// <summary>Code vector <paramref name="v"/> of a block of four groups against activation dword <paramref name="v"/>, broadcast once for all four.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q8VnniFour(byte* g0, byte* g1, byte* g2, byte* g3, int* x, int v, Vector256<sbyte> signBits,
        ref Vector256<int> s0, ref Vector256<int> s1, ref Vector256<int> s2, ref Vector256<int> s3)
    {
        Vector256<sbyte> xv = Vector256.Create(x[v]).AsSByte();
        s0 = Q8Vnni(s0, (sbyte*)g0 + 32 * v, xv, signBits);
        s1 = Q8Vnni(s1, (sbyte*)g1 + 32 * v, xv, signBits);
        s2 = Q8Vnni(s2, (sbyte*)g2 + 32 * v, xv, signBits);
        s3 = Q8Vnni(s3, (sbyte*)g3 + 32 * v, xv, signBits);
    }

    /// <summary>
    /// The AVX-VNNI form of <see cref="DotGroupQ8_0x8N_256"/> (same bits per token): each block's 8 code vectors made
    /// unsigned once and kept in registers, then per token 8 <c>vpdpbusd</c> in two chains.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupQ8_0x8NVnni(byte* group, int blocks, sbyte* x, float* xs, int* xsum, int cols, int tokenCount, Vector256<float>* acc)
    {
        short* d = (short*)group;
        group += GroupScaleBytes;
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        for (int t = 0; t < tokenCount; t++)
        {
            acc[t] = Vector256<float>.Zero;
        }

        for (int k = 0; k < blocks; k++, group += Q8BlockBytes, d += Q8BlockBytes / 2)
        {
            PrefetchQ8Block(group + PrefetchBytes);
            Vector256<float> dw = WidenHalves(d, halfMask, halfScale);
            SignFlipped((sbyte*)group, out var u0, out var u1, out var u2, out var u3, out var u4, out var u5, out var u6, out var u7);
            for (int t = 0; t < tokenCount; t++)
            {
                long o = (long)t * blocks + k;
                int* xt = (int*)(x + (long)t * cols + (long)k * BlockSize);
                Vector256<int> dot = CodesVnni(u0, u1, u2, u3, u4, u5, u6, u7, xt) - Vector256.Create(xsum[o] << 7);
                acc[t] = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dot), dw * Vector256.Create(xs[o]), acc[t]);
            }
        }
    }

    /// <summary>
    /// Σ over one Q4_0x8 block's 4 code vectors (low nibbles against dword 2v, high against 2v + 1) of <c>vpdpbusd</c>, in
    /// two chains: each row's exact Σ nibble · x (the AVX2 form sums <c>vpmaddubsw</c> pairs in int16, then widens).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q4VnniBlock(byte* codes, int* x, Vector256<byte> m)
    {
        Vector256<int> a = Vector256<int>.Zero, b = Vector256<int>.Zero;
        Q4VnniVector(codes, x, 0, m, ref a, ref b);
        Q4VnniVector(codes, x, 1, m, ref a, ref b);
        Q4VnniVector(codes, x, 2, m, ref a, ref b);
        Q4VnniVector(codes, x, 3, m, ref a, ref b);
        return a + b;
    }

    /// <summary>Code vector <paramref name="v"/> of a Q4_0x8 block: low nibbles into <paramref name="a"/>, high into <paramref name="b"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q4VnniVector(byte* codes, int* x, int v, Vector256<byte> m, ref Vector256<int> a, ref Vector256<int> b)
    {
        Vector256<byte> w = Vector256.Load(codes + 32 * v);
        a = AvxVnni.MultiplyWideningAndAdd(a, w & m, Vector256.Create(x[2 * v]).AsSByte());
        b = AvxVnni.MultiplyWideningAndAdd(b, Avx2.ShiftRightLogical(w.AsUInt16(), 4).AsByte() & m, Vector256.Create(x[2 * v + 1]).AsSByte());
    }

    /// <summary>The AVX-VNNI form of <see cref="DotGroupQ4_0x8_256"/> (same bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static Vector256<float> DotGroupQ4_0x8Vnni(byte* group, int blocks, sbyte* x, float* xs, int* xsum)
    {
        short* d = (short*)group;
        group += GroupScaleBytes;
        Vector256<byte> m = Vector256.Create((byte)0x0F);
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        Vector256<float> acc = Vector256<float>.Zero;
        for (int k = 0; k < blocks; k++, group += Q4BlockBytes, d += Q4BlockBytes / 2, x += BlockSize)
        {
            SimdMath.Prefetch(group + PrefetchBytes);
            SimdMath.Prefetch(group + PrefetchBytes + 64);
            Vector256<int> dot = Q4VnniBlock(group, (int*)x, m) - Vector256.Create(xsum[k] << 3);
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dot), WidenHalves(d, halfMask, halfScale) * Vector256.Create(xs[k]), acc);
        }

        return acc;
    }

    /// <summary>The AVX-VNNI form of <see cref="DotGroupPairQ4_0x8_256"/> (same bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupPairQ4_0x8Vnni(byte* ga, byte* gb, int blocks, sbyte* x, float* xs, int* xsum,
        out Vector256<float> ra, out Vector256<float> rb)
    {
        short* da = (short*)ga, db = (short*)gb;
        ga += GroupScaleBytes;
        gb += GroupScaleBytes;
        Vector256<byte> m = Vector256.Create((byte)0x0F);
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        Vector256<float> acca = Vector256<float>.Zero, accb = Vector256<float>.Zero;
        for (int k = 0; k < blocks; k++, ga += Q4BlockBytes, gb += Q4BlockBytes, da += Q4BlockBytes / 2, db += Q4BlockBytes / 2, x += BlockSize)
        {
            SimdMath.Prefetch(ga + PrefetchBytes);
            SimdMath.Prefetch(ga + PrefetchBytes + 64);
            SimdMath.Prefetch(gb + PrefetchBytes);
            SimdMath.Prefetch(gb + PrefetchBytes + 64);
            Vector256<int> offset = Vector256.Create(xsum[k] << 3);
            Vector256<float> xsk = Vector256.Create(xs[k]);
            Vector256<int> dota = Q4VnniBlock(ga, (int*)x, m) - offset;
            Vector256<int> dotb = Q4VnniBlock(gb, (int*)x, m) - offset;
            acca = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dota), WidenHalves(da, halfMask, halfScale) * xsk, acca);
            accb = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dotb), WidenHalves(db, halfMask, halfScale) * xsk, accb);
        }

        ra = acca;
        rb = accb;
    }

    /// <summary>The AVX-VNNI form of <see cref="DotGroupQuadQ4_0x8_256"/> (same bits; no software prefetch, as there).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupQuadQ4_0x8Vnni(byte* g0, long stride, int blocks, sbyte* x, float* xs, int* xsum, Vector256<float>* result)
    {
        short* d0 = (short*)g0;
        long ds = stride / sizeof(short);
        g0 += GroupScaleBytes;
        byte* g1 = g0 + stride, g2 = g1 + stride, g3 = g2 + stride;
        Vector256<byte> m = Vector256.Create((byte)0x0F);
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        Vector256<float> a0 = Vector256<float>.Zero, a1 = Vector256<float>.Zero, a2 = Vector256<float>.Zero, a3 = Vector256<float>.Zero;
        for (int k = 0; k < blocks; k++, g0 += Q4BlockBytes, g1 += Q4BlockBytes, g2 += Q4BlockBytes, g3 += Q4BlockBytes,
            d0 += Q4BlockBytes / 2, x += BlockSize)
        {
            int* xi = (int*)x;
            Vector256<int> offset = Vector256.Create(xsum[k] << 3);
            Vector256<float> xsk = Vector256.Create(xs[k]);
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Q4VnniBlock(g0, xi, m) - offset), WidenHalves(d0, halfMask, halfScale) * xsk, a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Q4VnniBlock(g1, xi, m) - offset), WidenHalves(d0 + ds, halfMask, halfScale) * xsk, a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Q4VnniBlock(g2, xi, m) - offset), WidenHalves(d0 + 2 * ds, halfMask, halfScale) * xsk, a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Q4VnniBlock(g3, xi, m) - offset), WidenHalves(d0 + 3 * ds, halfMask, halfScale) * xsk, a3);
        }

        result[0] = a0;
        result[1] = a1;
        result[2] = a2;
        result[3] = a3;
    }

    /// <summary>
    /// Σ of 8 unsigned code vectors (nibbles: l against dword 2v, h against 2v + 1; Q5_K: code vector c against dword c) times
    /// the 8 activation dwords at <paramref name="x"/>, in two chains.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> CodesVnni(Vector256<byte> l0, Vector256<byte> h0, Vector256<byte> l1, Vector256<byte> h1,
        Vector256<byte> l2, Vector256<byte> h2, Vector256<byte> l3, Vector256<byte> h3, int* x)
    {
        Vector256<int> a = AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, l0, Vector256.Create(x[0]).AsSByte());
        Vector256<int> b = AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, h0, Vector256.Create(x[1]).AsSByte());
        a = AvxVnni.MultiplyWideningAndAdd(a, l1, Vector256.Create(x[2]).AsSByte());
        b = AvxVnni.MultiplyWideningAndAdd(b, h1, Vector256.Create(x[3]).AsSByte());
        a = AvxVnni.MultiplyWideningAndAdd(a, l2, Vector256.Create(x[4]).AsSByte());
        b = AvxVnni.MultiplyWideningAndAdd(b, h2, Vector256.Create(x[5]).AsSByte());
        a = AvxVnni.MultiplyWideningAndAdd(a, l3, Vector256.Create(x[6]).AsSByte());
        b = AvxVnni.MultiplyWideningAndAdd(b, h3, Vector256.Create(x[7]).AsSByte());
        return a + b;
    }

    /// <summary>The AVX-VNNI <see cref="ICodeDot"/> (nibbles and 5-bit codes alike: <see cref="CodesVnni"/>), for the K-quant kernels' generic forms.</summary>
    internal readonly struct CodeDotVnni : ICodeDot
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Dot(Vector256<byte> c0, Vector256<byte> c1, Vector256<byte> c2, Vector256<byte> c3,
            Vector256<byte> c4, Vector256<byte> c5, Vector256<byte> c6, Vector256<byte> c7, int* x)
            => CodesVnni(c0, c1, c2, c3, c4, c5, c6, c7, x);
    }

    /// <summary>
    /// The AVX-VNNI form of AffineCodes8 (MLX 5–8-bit groups, stored as the signed code − centre in Q8_0x8's layout, whatever
    /// the centre): the sign flip makes them unsigned (+128), so 128 · Σx comes off. Same bits.
    /// </summary>
    private readonly struct AffineCodes8Vnni : IAffineCodes
    {
        public static int BlockBytes => Q8GroupBlockBytes;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> BlockDot(byte* codes, int* x, int xsum, int centre) => Q8VnniBlock(codes, x, xsum << 7, SignBits);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void BlockDotTwice(byte* ga, byte* gb, int* x, int xsum, int centre, out Vector256<int> da, out Vector256<int> db)
        {
            Vector256<sbyte> signBits = SignBits;
            Vector256<int> sa = Vector256<int>.Zero, sb = Vector256<int>.Zero;
            Q8VnniTwice(ga, gb, x, 0, signBits, ref sa, ref sb);
            Q8VnniTwice(ga, gb, x, 1, signBits, ref sa, ref sb);
            Q8VnniTwice(ga, gb, x, 2, signBits, ref sa, ref sb);
            Q8VnniTwice(ga, gb, x, 3, signBits, ref sa, ref sb);
            Q8VnniTwice(ga, gb, x, 4, signBits, ref sa, ref sb);
            Q8VnniTwice(ga, gb, x, 5, signBits, ref sa, ref sb);
            Q8VnniTwice(ga, gb, x, 6, signBits, ref sa, ref sb);
            Q8VnniTwice(ga, gb, x, 7, signBits, ref sa, ref sb);
            Vector256<int> bias = Vector256.Create(xsum << 7);
            da = sa - bias;
            db = sb - bias;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Prefetch(byte* codes) => PrefetchQ8Block(codes + PrefetchBytes);
    }

    /// <summary>The AVX-VNNI form of AffineCodes4 (MLX 2–4-bit groups in Q4_0x8's layout, unsigned nibbles less the centre): Q4_0's nibble dots. Same bits.</summary>
    private readonly struct AffineCodes4Vnni : IAffineCodes
    {
        public static int BlockBytes => GroupBlockBytes;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> BlockDot(byte* codes, int* x, int xsum, int centre)
            => Q4VnniBlock(codes, x, Vector256.Create((byte)0x0F)) - Vector256.Create(xsum * centre);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void BlockDotTwice(byte* ga, byte* gb, int* x, int xsum, int centre, out Vector256<int> da, out Vector256<int> db)
        {
            Vector256<byte> m = Vector256.Create((byte)0x0F);
            Vector256<int> offset = Vector256.Create(xsum * centre);
            da = Q4VnniBlock(ga, x, m) - offset;
            db = Q4VnniBlock(gb, x, m) - offset;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Prefetch(byte* codes)
        {
            SimdMath.Prefetch(codes + PrefetchBytes);
            SimdMath.Prefetch(codes + PrefetchBytes + 64);
        }
    }

    /// <summary>
    /// One Q6_K sub-block's Σ_g sc_g·Σ (q − 32)·x for the 8 rows, as <see cref="Q6GroupDot"/> computes it (same value):
    /// each 16-element group's Σ q·x by four <c>vpdpbusd</c> in int32, less its offset 32·Σx, times its scale (<c>vpmulld</c>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q6GroupDotVnni(Vector256<byte> u0, Vector256<byte> u1, Vector256<byte> u2, Vector256<byte> u3,
        Vector256<byte> u4, Vector256<byte> u5, Vector256<byte> u6, Vector256<byte> u7, int* x, int* offsets,
        Vector256<int> s0, Vector256<int> s1)
    {
        Vector256<int> p0 = AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, u0, Vector256.Create(x[0]).AsSByte());
        Vector256<int> p1 = AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, u4, Vector256.Create(x[4]).AsSByte());
        p0 = AvxVnni.MultiplyWideningAndAdd(p0, u1, Vector256.Create(x[1]).AsSByte());
        p1 = AvxVnni.MultiplyWideningAndAdd(p1, u5, Vector256.Create(x[5]).AsSByte());
        p0 = AvxVnni.MultiplyWideningAndAdd(p0, u2, Vector256.Create(x[2]).AsSByte());
        p1 = AvxVnni.MultiplyWideningAndAdd(p1, u6, Vector256.Create(x[6]).AsSByte());
        p0 = AvxVnni.MultiplyWideningAndAdd(p0, u3, Vector256.Create(x[3]).AsSByte());
        p1 = AvxVnni.MultiplyWideningAndAdd(p1, u7, Vector256.Create(x[7]).AsSByte());
        return (p0 - Vector256.Create(Q6Offset(offsets[0]))) * s0 + (p1 - Vector256.Create(Q6Offset(offsets[1]))) * s1;
    }

    /// <summary>A group's 32·Σx from its <see cref="PrepareQ6Offsets"/> word pair (32·Σ of the low pairs, 32·Σ of the high).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Q6Offset(int packed) => (short)packed + (packed >> 16);

    /// <summary>A sub-block's two groups' scales as int32, row i in lane i (<see cref="Q6Scales"/>'s bytes: g0 r0..3, g1 r0..3, g0 r4..7, g1 r4..7).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q6ScalesInt32(byte* scales, out Vector256<int> s0, out Vector256<int> s1)
    {
        Vector128<sbyte> b = Vector128.Load((sbyte*)scales);
        s0 = Avx2.ConvertToVector256Int32(Ssse3.Shuffle(b, Vector128.Create(0, 1, 2, 3, 8, 9, 10, 11, 0, 0, 0, 0, 0, 0, 0, 0)));
        s1 = Avx2.ConvertToVector256Int32(Ssse3.Shuffle(b, Vector128.Create(4, 5, 6, 7, 12, 13, 14, 15, 0, 0, 0, 0, 0, 0, 0, 0)));
    }

    /// <summary>The AVX-VNNI form of <see cref="DotGroupQ6_Kx8_256"/> (same bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static Vector256<float> DotGroupQ6_Kx8Vnni(byte* group, int superBlocks, sbyte* x, float* xs, int* offsets)
    {
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        Vector256<float> acc = Vector256<float>.Zero;
        for (int k = 0; k < superBlocks; k++, group += Q6GroupBytes)
        {
            Vector256<float> d = WidenHalves((short*)(group + Q6dOffset), halfMask, halfScale);
            PrefetchQ6Tail(group);
            for (int s = 0; s < 8; s++, x += BlockSize, xs++, offsets += 2)
            {
                PrefetchQ6SubBlock(group, s);
                byte* q = group + s * Q6SubBlockBytes;
                UnpackQ6(Vector256.Load(q), Vector256.Load(q + 32), Vector256.Load(q + 128), out var u0, out var u1, out var u2, out var u3);
                UnpackQ6(Vector256.Load(q + 64), Vector256.Load(q + 96), Vector256.Load(q + 160), out var u4, out var u5, out var u6, out var u7);
                Q6ScalesInt32(group + Q6ScalesOffset + 16 * s, out var s0, out var s1);
                Vector256<int> dot = Q6GroupDotVnni(u0, u1, u2, u3, u4, u5, u6, u7, (int*)x, offsets, s0, s1);
                acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dot), d * Vector256.Create(*xs), acc);
            }
        }

        return acc;
    }

    /// <summary>The AVX-VNNI form of <see cref="DotGroupPairQ6_Kx8_256"/> (same bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupPairQ6_Kx8Vnni(byte* ga, byte* gb, int superBlocks, sbyte* x, float* xs, int* offsets,
        out Vector256<float> ra, out Vector256<float> rb)
    {
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        Vector256<float> acca = Vector256<float>.Zero, accb = Vector256<float>.Zero;
        for (int k = 0; k < superBlocks; k++, ga += Q6GroupBytes, gb += Q6GroupBytes)
        {
            Vector256<float> da = WidenHalves((short*)(ga + Q6dOffset), halfMask, halfScale);
            Vector256<float> db = WidenHalves((short*)(gb + Q6dOffset), halfMask, halfScale);
            PrefetchQ6Tail(ga);
            PrefetchQ6Tail(gb);
            for (int s = 0; s < 8; s++, x += BlockSize, xs++, offsets += 2)
            {
                PrefetchQ6SubBlock(ga, s);
                PrefetchQ6SubBlock(gb, s);
                byte* qa = ga + s * Q6SubBlockBytes, qb = gb + s * Q6SubBlockBytes;
                Q6HalfPairVnni(qa, qa + 128, qb, qb + 128, (int*)x, Q6Offset(offsets[0]), out Vector256<int> a0, out Vector256<int> b0);
                Q6HalfPairVnni(qa + 64, qa + 160, qb + 64, qb + 160, (int*)x + 4, Q6Offset(offsets[1]), out Vector256<int> a1, out Vector256<int> b1);
                Q6ScalesInt32(ga + Q6ScalesOffset + 16 * s, out var sa0, out var sa1);
                Q6ScalesInt32(gb + Q6ScalesOffset + 16 * s, out var sb0, out var sb1);
                Vector256<float> xsk = Vector256.Create(*xs);
                acca = Fma.MultiplyAdd(Avx.ConvertToVector256Single(a0 * sa0 + a1 * sa1), da * xsk, acca);
                accb = Fma.MultiplyAdd(Avx.ConvertToVector256Single(b0 * sb0 + b1 * sb1), db * xsk, accb);
            }
        }

        ra = acca;
        rb = accb;
    }

    /// <summary>The AVX-VNNI form of <see cref="Q6HalfPair"/>: each group's Σ (q − 32)·x over the half in int32 (<paramref name="offset"/>: 32·Σx).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q6HalfPairVnni(byte* qa, byte* na, byte* qb, byte* nb, int* x, int offset, out Vector256<int> pa, out Vector256<int> pb)
    {
        UnpackQ6(Vector256.Load(qa), Vector256.Load(qa + 32), Vector256.Load(na), out var a0, out var a1, out var a2, out var a3);
        UnpackQ6(Vector256.Load(qb), Vector256.Load(qb + 32), Vector256.Load(nb), out var b0, out var b1, out var b2, out var b3);
        Vector256<sbyte> xv = Vector256.Create(x[0]).AsSByte();
        Vector256<int> sa = AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, a0, xv), sb = AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, b0, xv);
        xv = Vector256.Create(x[1]).AsSByte();
        sa = AvxVnni.MultiplyWideningAndAdd(sa, a1, xv);
        sb = AvxVnni.MultiplyWideningAndAdd(sb, b1, xv);
        xv = Vector256.Create(x[2]).AsSByte();
        sa = AvxVnni.MultiplyWideningAndAdd(sa, a2, xv);
        sb = AvxVnni.MultiplyWideningAndAdd(sb, b2, xv);
        xv = Vector256.Create(x[3]).AsSByte();
        sa = AvxVnni.MultiplyWideningAndAdd(sa, a3, xv);
        sb = AvxVnni.MultiplyWideningAndAdd(sb, b3, xv);
        Vector256<int> o = Vector256.Create(offset);
        pa = sa - o;
        pb = sb - o;
    }

    /// <summary>The AVX-VNNI form of <see cref="DotGroupQ6_Kx8N_256"/> (same bits per token).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupQ6_Kx8NVnni(byte* group, int superBlocks, sbyte* x, float* xs, int* offsets, int cols, int tokenCount,
        Vector256<float>* acc)
    {
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        int blocks = cols / BlockSize;
        for (int t = 0; t < tokenCount; t++)
        {
            acc[t] = Vector256<float>.Zero;
        }

        for (int k = 0; k < superBlocks; k++, group += Q6GroupBytes)
        {
            Vector256<float> d = WidenHalves((short*)(group + Q6dOffset), halfMask, halfScale);
            PrefetchQ6Tail(group);
            for (int s = 0; s < 8; s++)
            {
                PrefetchQ6SubBlock(group, s);
                byte* q = group + s * Q6SubBlockBytes;
                UnpackQ6(Vector256.Load(q), Vector256.Load(q + 32), Vector256.Load(q + 128), out var u0, out var u1, out var u2, out var u3);
                UnpackQ6(Vector256.Load(q + 64), Vector256.Load(q + 96), Vector256.Load(q + 160), out var u4, out var u5, out var u6, out var u7);
                Q6ScalesInt32(group + Q6ScalesOffset + 16 * s, out var s0, out var s1);
                int b = 8 * k + s;
                for (int t = 0; t < tokenCount; t++)
                {
                    int* xb = (int*)(x + (long)t * cols + (long)b * BlockSize);
                    Vector256<int> dot = Q6GroupDotVnni(u0, u1, u2, u3, u4, u5, u6, u7, xb, offsets + (long)t * 2 * blocks + 2 * b, s0, s1);
                    acc[t] = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dot), d * Vector256.Create(xs[(long)t * blocks + b]), acc[t]);
                }
            }
        }
    }

}
