using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Qwen3Sharp.Kernels.Reference;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Kernels;

/// <summary>
/// The K-quants (Q4_K, Q5_K, Q6_K; layouts in <see cref="DType"/>): super-blocks of 256 elements, taken as four chunks
/// of 64 whose codes are unpacked in registers and scaled by their sub-block scale (and shifted by the sub-block min)
/// with one FMA, then FMA'd with the float32 activations of up to four tokens.
/// </summary>
public static unsafe partial class QuantMatMul
{
    internal const int KBlockSize = 256;

    /// <summary>
    /// One K-quant format: a super-block's sixteen float32 scale factors, decoded once (<see cref="Scales"/>), then the
    /// 64 weights of each chunk <c>c</c> (elements 64c..64c+63) as float32.
    /// </summary>
    internal interface IKFormat
    {
        static abstract int BlockBytes { get; }

        /// <summary>Q4_K/Q5_K: d·sc of sub-blocks 0..7, then −dmin·m of sub-blocks 0..7; Q6_K: d·scale of the 16 groups of 16.</summary>
        static abstract void Scales(byte* block, float* destination);

        /// <summary>w0 = elements 64c + 0..15, w1 = 16..31, w2 = 32..47, w3 = 48..63.</summary>
        static abstract void Chunk512(byte* block, float* scales, int c, out Vector512<float> w0, out Vector512<float> w1,
            out Vector512<float> w2, out Vector512<float> w3);

        /// <summary>w0 = elements 64c + 0..7, w1 = 8..15, ..., w7 = 56..63.</summary>
        static abstract void Chunk256(byte* block, float* scales, int c, out Vector256<float> w0, out Vector256<float> w1, out Vector256<float> w2,
            out Vector256<float> w3, out Vector256<float> w4, out Vector256<float> w5, out Vector256<float> w6, out Vector256<float> w7);
    }

    /// <summary>
    /// fp16 to float32 without a call (<c>(float)Half</c> is one, and a call in the super-block loop makes the JIT keep
    /// the vector accumulators in memory, which halved the kernels' speed): the 15 bits moved into a float32's place
    /// and multiplied by 2^112, exact for normals and subnormals; exponent 31 (inf, NaN) maps to float32's 255.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float HalfToSingle(ushort h)
    {
        uint bits = (uint)(h & 0x7FFF) << 13;
        bits |= (h & 0x7C00) == 0x7C00 ? 0x7F800000u : 0;
        float magnitude = BitConverter.UInt32BitsToSingle(bits) * 5.192296858534828e33f;   // 2^112
        return BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(magnitude) | ((uint)(h & 0x8000) << 16));
    }

    /// <summary>Q4_K / Q5_K: the eight sub-blocks' scales d·sc and negated mins −dmin·m (get_scale_min_k4's unpacking).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScalesMins(byte* block, float* destination)
    {
        float d = HalfToSingle(*(ushort*)block), dmin = HalfToSingle(*(ushort*)(block + 2));
        byte* q = block + 4;
        for (int j = 0; j < 4; j++)
        {
            destination[j] = d * (q[j] & 63);
            destination[8 + j] = -(dmin * (q[j + 4] & 63));
            destination[4 + j] = d * ((q[j + 8] & 0xF) | ((q[j] >> 6) << 4));
            destination[12 + j] = -(dmin * ((q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4)));
        }
    }

    internal struct Q4K : IKFormat
    {
        public static int BlockBytes => 144;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Scales(byte* block, float* destination) => ScalesMins(block, destination);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Chunk512(byte* block, float* scales, int c, out Vector512<float> w0, out Vector512<float> w1,
            out Vector512<float> w2, out Vector512<float> w3)
        {
            float s0 = scales[2 * c], s1 = scales[2 * c + 1], n0 = scales[8 + 2 * c], n1 = scales[9 + 2 * c];
            byte* qs = block + 16 + 32 * c;
            Vector512<int> a = Avx512F.ConvertToVector512Int32(Vector128.Load(qs));        // bytes 0..15, zero-extended
            Vector512<int> b = Avx512F.ConvertToVector512Int32(Vector128.Load(qs + 16));   // bytes 16..31
            Vector512<int> mask = Vector512.Create(0xF);
            Vector512<float> vs0 = Vector512.Create(s0), vn0 = Vector512.Create(n0), vs1 = Vector512.Create(s1), vn1 = Vector512.Create(n1);
            w0 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(a & mask), vs0, vn0);
            w1 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(b & mask), vs0, vn0);
            w2 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Vector512.ShiftRightLogical(a, 4)), vs1, vn1);
            w3 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Vector512.ShiftRightLogical(b, 4)), vs1, vn1);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Chunk256(byte* block, float* scales, int c, out Vector256<float> w0, out Vector256<float> w1, out Vector256<float> w2,
            out Vector256<float> w3, out Vector256<float> w4, out Vector256<float> w5, out Vector256<float> w6, out Vector256<float> w7)
        {
            float s0 = scales[2 * c], s1 = scales[2 * c + 1], n0 = scales[8 + 2 * c], n1 = scales[9 + 2 * c];
            byte* qs = block + 16 + 32 * c;
            Vector256<int> a = Avx2.ConvertToVector256Int32(qs), b = Avx2.ConvertToVector256Int32(qs + 8);
            Vector256<int> e = Avx2.ConvertToVector256Int32(qs + 16), f = Avx2.ConvertToVector256Int32(qs + 24);
            Vector256<int> mask = Vector256.Create(0xF);
            Vector256<float> vs0 = Vector256.Create(s0), vn0 = Vector256.Create(n0), vs1 = Vector256.Create(s1), vn1 = Vector256.Create(n1);
            w0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(a & mask), vs0, vn0);
            w1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(b & mask), vs0, vn0);
            w2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(e & mask), vs0, vn0);
            w3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(f & mask), vs0, vn0);
            w4 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Vector256.ShiftRightLogical(a, 4)), vs1, vn1);
            w5 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Vector256.ShiftRightLogical(b, 4)), vs1, vn1);
            w6 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Vector256.ShiftRightLogical(e, 4)), vs1, vn1);
            w7 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Vector256.ShiftRightLogical(f, 4)), vs1, vn1);
        }
    }

    internal struct Q5K : IKFormat
    {
        public static int BlockBytes => 176;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Scales(byte* block, float* destination) => ScalesMins(block, destination);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Chunk512(byte* block, float* scales, int c, out Vector512<float> w0, out Vector512<float> w1,
            out Vector512<float> w2, out Vector512<float> w3)
        {
            float s0 = scales[2 * c], s1 = scales[2 * c + 1], n0 = scales[8 + 2 * c], n1 = scales[9 + 2 * c];
            byte* qs = block + 48 + 32 * c;
            Vector512<int> a = Avx512F.ConvertToVector512Int32(Vector128.Load(qs));
            Vector512<int> b = Avx512F.ConvertToVector512Int32(Vector128.Load(qs + 16));
            // qh[l] bit 2c is the fifth bit of element 64c + l, bit 2c + 1 that of element 64c + 32 + l: move both to bit 4
            Vector512<int> ha = Vector512.ShiftRightLogical(Avx512F.ConvertToVector512Int32(Vector128.Load(block + 16)), 2 * c);
            Vector512<int> hb = Vector512.ShiftRightLogical(Avx512F.ConvertToVector512Int32(Vector128.Load(block + 32)), 2 * c);
            Vector512<int> mask = Vector512.Create(0xF), bit = Vector512.Create(0x10);
            Vector512<float> vs0 = Vector512.Create(s0), vn0 = Vector512.Create(n0), vs1 = Vector512.Create(s1), vn1 = Vector512.Create(n1);
            w0 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single((a & mask) | (Vector512.ShiftLeft(ha, 4) & bit)), vs0, vn0);
            w1 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single((b & mask) | (Vector512.ShiftLeft(hb, 4) & bit)), vs0, vn0);
            w2 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Vector512.ShiftRightLogical(a, 4) | (Vector512.ShiftLeft(ha, 3) & bit)), vs1, vn1);
            w3 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Vector512.ShiftRightLogical(b, 4) | (Vector512.ShiftLeft(hb, 3) & bit)), vs1, vn1);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Chunk256(byte* block, float* scales, int c, out Vector256<float> w0, out Vector256<float> w1, out Vector256<float> w2,
            out Vector256<float> w3, out Vector256<float> w4, out Vector256<float> w5, out Vector256<float> w6, out Vector256<float> w7)
        {
            float s0 = scales[2 * c], s1 = scales[2 * c + 1], n0 = scales[8 + 2 * c], n1 = scales[9 + 2 * c];
            byte* qs = block + 48 + 32 * c;
            byte* qh = block + 16;
            Vector256<float> vs0 = Vector256.Create(s0), vn0 = Vector256.Create(n0), vs1 = Vector256.Create(s1), vn1 = Vector256.Create(n1);
            w0 = Low(qs, qh, c, vs0, vn0);
            w1 = Low(qs + 8, qh + 8, c, vs0, vn0);
            w2 = Low(qs + 16, qh + 16, c, vs0, vn0);
            w3 = Low(qs + 24, qh + 24, c, vs0, vn0);
            w4 = High(qs, qh, c, vs1, vn1);
            w5 = High(qs + 8, qh + 8, c, vs1, vn1);
            w6 = High(qs + 16, qh + 16, c, vs1, vn1);
            w7 = High(qs + 24, qh + 24, c, vs1, vn1);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector256<float> Low(byte* qs, byte* qh, int c, Vector256<float> s, Vector256<float> n)
        {
            Vector256<int> h = Vector256.ShiftLeft(Vector256.ShiftRightLogical(Avx2.ConvertToVector256Int32(qh), 2 * c), 4) & Vector256.Create(0x10);
            return Fma.MultiplyAdd(Avx.ConvertToVector256Single((Avx2.ConvertToVector256Int32(qs) & Vector256.Create(0xF)) | h), s, n);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector256<float> High(byte* qs, byte* qh, int c, Vector256<float> s, Vector256<float> n)
        {
            Vector256<int> h = Vector256.ShiftLeft(Vector256.ShiftRightLogical(Avx2.ConvertToVector256Int32(qh), 2 * c), 3) & Vector256.Create(0x10);
            return Fma.MultiplyAdd(Avx.ConvertToVector256Single(Vector256.ShiftRightLogical(Avx2.ConvertToVector256Int32(qs), 4) | h), s, n);
        }
    }

    internal struct Q6K : IKFormat
    {
        public static int BlockBytes => 210;

        // Chunk c is half n = c / 2 of the super-block (ql bytes 64n.., qh bytes 32n..), part p = c % 2: p = 0 takes the
        // low nibbles of ql and qh bits 0-1 (elements 0..31) and 2-3 (32..63); p = 1 the high nibbles and bits 4-5, 6-7.
        // Every 16 elements have their own int8 scale: element e uses scales[e / 16].

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Scales(byte* block, float* destination)
        {
            float d = HalfToSingle(*(ushort*)(block + 208));
            sbyte* sc = (sbyte*)(block + 192);
            for (int j = 0; j < 16; j++)
            {
                destination[j] = d * sc[j];
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Chunk512(byte* block, float* scales, int c, out Vector512<float> w0, out Vector512<float> w1,
            out Vector512<float> w2, out Vector512<float> w3)
        {
            int n = c >> 1, p = c & 1;
            byte* ql = block + 64 * n;
            byte* qh = block + 128 + 32 * n;
            float* sc = scales + 4 * c;
            Vector512<int> ha = Avx512F.ConvertToVector512Int32(Vector128.Load(qh));
            Vector512<int> hb = Avx512F.ConvertToVector512Int32(Vector128.Load(qh + 16));
            int lowShift = 4 * p, highShift = 4 * p;   // part 2p: qh bits 4p, 4p+1; part 2p + 1: bits 4p + 2, 4p + 3
            w0 = Six512(ql, ha, lowShift, highShift, sc[0]);
            w1 = Six512(ql + 16, hb, lowShift, highShift, sc[1]);
            w2 = Six512(ql + 32, ha, lowShift, highShift + 2, sc[2]);
            w3 = Six512(ql + 48, hb, lowShift, highShift + 2, sc[3]);
        }

        /// <summary>16 elements: 4 bits of ql at <paramref name="lowShift"/>, 2 bits of qh at <paramref name="highShift"/>; (q − 32)·scale.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector512<float> Six512(byte* ql, Vector512<int> qh, int lowShift, int highShift, float scale)
        {
            Vector512<int> low = Vector512.ShiftRightLogical(Avx512F.ConvertToVector512Int32(Vector128.Load(ql)), lowShift) & Vector512.Create(0xF);
            Vector512<int> high = Vector512.ShiftLeft(Vector512.ShiftRightLogical(qh, highShift) & Vector512.Create(3), 4);
            return Avx512F.ConvertToVector512Single((low | high) - Vector512.Create(32)) * Vector512.Create(scale);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Chunk256(byte* block, float* scales, int c, out Vector256<float> w0, out Vector256<float> w1, out Vector256<float> w2,
            out Vector256<float> w3, out Vector256<float> w4, out Vector256<float> w5, out Vector256<float> w6, out Vector256<float> w7)
        {
            int n = c >> 1, p = c & 1;
            byte* ql = block + 64 * n;
            byte* qh = block + 128 + 32 * n;
            float* sc = scales + 4 * c;
            int shift = 4 * p;
            Vector256<float> s0 = Vector256.Create(sc[0]), s1 = Vector256.Create(sc[1]);
            Vector256<float> s2 = Vector256.Create(sc[2]), s3 = Vector256.Create(sc[3]);
            w0 = Six256(ql, qh, shift, shift, s0);
            w1 = Six256(ql + 8, qh + 8, shift, shift, s0);
            w2 = Six256(ql + 16, qh + 16, shift, shift, s1);
            w3 = Six256(ql + 24, qh + 24, shift, shift, s1);
            w4 = Six256(ql + 32, qh, shift, shift + 2, s2);
            w5 = Six256(ql + 40, qh + 8, shift, shift + 2, s2);
            w6 = Six256(ql + 48, qh + 16, shift, shift + 2, s3);
            w7 = Six256(ql + 56, qh + 24, shift, shift + 2, s3);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector256<float> Six256(byte* ql, byte* qh, int lowShift, int highShift, Vector256<float> s)
        {
            Vector256<int> low = Vector256.ShiftRightLogical(Avx2.ConvertToVector256Int32(ql), lowShift) & Vector256.Create(0xF);
            Vector256<int> high = Vector256.ShiftLeft(Vector256.ShiftRightLogical(Avx2.ConvertToVector256Int32(qh), highShift) & Vector256.Create(3), 4);
            return Avx.ConvertToVector256Single((low | high) - Vector256.Create(32)) * s;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float DotK1_512<TK>(byte* row, float* x, int cols) where TK : IKFormat
    {
        Vector512<float> a = Vector512<float>.Zero, b = Vector512<float>.Zero;
        float* scales = stackalloc float[16];
        for (int k = 0; k < cols; k += KBlockSize, row += TK.BlockBytes)
        {
            TK.Scales(row, scales);
            for (int c = 0; c < 4; c++)
            {
                TK.Chunk512(row, scales, c, out Vector512<float> w0, out Vector512<float> w1, out Vector512<float> w2, out Vector512<float> w3);
                float* xc = x + k + 64 * c;
                a = Avx512F.FusedMultiplyAdd(w0, Vector512.Load(xc), a);
                b = Avx512F.FusedMultiplyAdd(w1, Vector512.Load(xc + 16), b);
                a = Avx512F.FusedMultiplyAdd(w2, Vector512.Load(xc + 32), a);
                b = Avx512F.FusedMultiplyAdd(w3, Vector512.Load(xc + 48), b);
            }
        }

        return Vector512.Sum(a + b);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotK4_512<TK>(byte* row, float* x, int cols, float* y, int ys, bool accumulate) where TK : IKFormat
    {
        Vector512<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
        float* x1 = x + cols, x2 = x + 2L * cols, x3 = x + 3L * cols;
        float* scales = stackalloc float[16];
        for (int k = 0; k < cols; k += KBlockSize, row += TK.BlockBytes)
        {
            TK.Scales(row, scales);
            for (int c = 0; c < 4; c++)
            {
                TK.Chunk512(row, scales, c, out Vector512<float> w0, out Vector512<float> w1, out Vector512<float> w2, out Vector512<float> w3);
                int o = k + 64 * c;
                a0 = Avx512F.FusedMultiplyAdd(w0, Vector512.Load(x + o), a0);
                b0 = Avx512F.FusedMultiplyAdd(w1, Vector512.Load(x + o + 16), b0);
                a1 = Avx512F.FusedMultiplyAdd(w0, Vector512.Load(x1 + o), a1);
                b1 = Avx512F.FusedMultiplyAdd(w1, Vector512.Load(x1 + o + 16), b1);
                a2 = Avx512F.FusedMultiplyAdd(w0, Vector512.Load(x2 + o), a2);
                b2 = Avx512F.FusedMultiplyAdd(w1, Vector512.Load(x2 + o + 16), b2);
                a3 = Avx512F.FusedMultiplyAdd(w0, Vector512.Load(x3 + o), a3);
                b3 = Avx512F.FusedMultiplyAdd(w1, Vector512.Load(x3 + o + 16), b3);
                a0 = Avx512F.FusedMultiplyAdd(w2, Vector512.Load(x + o + 32), a0);
                b0 = Avx512F.FusedMultiplyAdd(w3, Vector512.Load(x + o + 48), b0);
                a1 = Avx512F.FusedMultiplyAdd(w2, Vector512.Load(x1 + o + 32), a1);
                b1 = Avx512F.FusedMultiplyAdd(w3, Vector512.Load(x1 + o + 48), b1);
                a2 = Avx512F.FusedMultiplyAdd(w2, Vector512.Load(x2 + o + 32), a2);
                b2 = Avx512F.FusedMultiplyAdd(w3, Vector512.Load(x2 + o + 48), b2);
                a3 = Avx512F.FusedMultiplyAdd(w2, Vector512.Load(x3 + o + 32), a3);
                b3 = Avx512F.FusedMultiplyAdd(w3, Vector512.Load(x3 + o + 48), b3);
            }
        }

        Store(y, Vector512.Sum(a0 + b0), accumulate);
        Store(y + ys, Vector512.Sum(a1 + b1), accumulate);
        Store(y + 2L * ys, Vector512.Sum(a2 + b2), accumulate);
        Store(y + 3L * ys, Vector512.Sum(a3 + b3), accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float DotK1_256<TK>(byte* row, float* x, int cols) where TK : IKFormat
    {
        Vector256<float> a = Vector256<float>.Zero, b = Vector256<float>.Zero;
        float* scales = stackalloc float[16];
        for (int k = 0; k < cols; k += KBlockSize, row += TK.BlockBytes)
        {
            TK.Scales(row, scales);
            for (int c = 0; c < 4; c++)
            {
                TK.Chunk256(row, scales, c, out Vector256<float> w0, out Vector256<float> w1, out Vector256<float> w2, out Vector256<float> w3,
                    out Vector256<float> w4, out Vector256<float> w5, out Vector256<float> w6, out Vector256<float> w7);
                float* xc = x + k + 64 * c;
                a = Fma.MultiplyAdd(w0, Vector256.Load(xc), a);
                b = Fma.MultiplyAdd(w1, Vector256.Load(xc + 8), b);
                a = Fma.MultiplyAdd(w2, Vector256.Load(xc + 16), a);
                b = Fma.MultiplyAdd(w3, Vector256.Load(xc + 24), b);
                a = Fma.MultiplyAdd(w4, Vector256.Load(xc + 32), a);
                b = Fma.MultiplyAdd(w5, Vector256.Load(xc + 40), b);
                a = Fma.MultiplyAdd(w6, Vector256.Load(xc + 48), a);
                b = Fma.MultiplyAdd(w7, Vector256.Load(xc + 56), b);
            }
        }

        return Vector256.Sum(a + b);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotK4_256<TK>(byte* row, float* x, int cols, float* y, int ys, bool accumulate) where TK : IKFormat
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        float* scales = stackalloc float[16];
        for (int k = 0; k < cols; k += KBlockSize, row += TK.BlockBytes)
        {
            TK.Scales(row, scales);
            for (int c = 0; c < 4; c++)
            {
                TK.Chunk256(row, scales, c, out Vector256<float> w0, out Vector256<float> w1, out Vector256<float> w2, out Vector256<float> w3,
                    out Vector256<float> w4, out Vector256<float> w5, out Vector256<float> w6, out Vector256<float> w7);
                float* xc = x + k + 64 * c;
                a0 = Dot8(w0, w1, w2, w3, w4, w5, w6, w7, xc, a0);
                a1 = Dot8(w0, w1, w2, w3, w4, w5, w6, w7, xc + cols, a1);
                a2 = Dot8(w0, w1, w2, w3, w4, w5, w6, w7, xc + 2L * cols, a2);
                a3 = Dot8(w0, w1, w2, w3, w4, w5, w6, w7, xc + 3L * cols, a3);
            }
        }

        Store(y, Vector256.Sum(a0), accumulate);
        Store(y + ys, Vector256.Sum(a1), accumulate);
        Store(y + 2L * ys, Vector256.Sum(a2), accumulate);
        Store(y + 3L * ys, Vector256.Sum(a3), accumulate);
    }

    /// <summary>acc + Σ w_i · x[8i..8i+7] over the 64 elements of one chunk.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Dot8(Vector256<float> w0, Vector256<float> w1, Vector256<float> w2, Vector256<float> w3,
        Vector256<float> w4, Vector256<float> w5, Vector256<float> w6, Vector256<float> w7, float* x, Vector256<float> acc)
    {
        Vector256<float> p = Fma.MultiplyAdd(w0, Vector256.Load(x), Fma.MultiplyAdd(w1, Vector256.Load(x + 8), w2 * Vector256.Load(x + 16)));
        Vector256<float> q = Fma.MultiplyAdd(w3, Vector256.Load(x + 24), Fma.MultiplyAdd(w4, Vector256.Load(x + 32), w5 * Vector256.Load(x + 40)));
        return acc + p + Fma.MultiplyAdd(w6, Vector256.Load(x + 48), Fma.MultiplyAdd(w7, Vector256.Load(x + 56), q));
    }

    /// <summary>The scalar path: each super-block dequantized (as ggml does) into a stack buffer, then dotted.</summary>
    private static float DotScalarK(byte* row, DType format, float* x, int cols)
    {
        float* w = stackalloc float[KBlockSize];
        float total = 0;
        int blockBytes = format.BlockBytes();
        for (int k = 0; k < cols; k += KBlockSize, row += blockBytes)
        {
            DequantizeSuperBlock(row, format, w);
            float s = 0;
            for (int j = 0; j < KBlockSize; j++)
            {
                s += w[j] * x[k + j];
            }

            total += s;
        }

        return total;
    }

    /// <summary>
    /// One super-block to 256 floats, computed as ggml's dequantize_row_q4_K / q5_K / q6_K (and gguf-py) do:
    /// (d·sc)·q − (dmin·m) and (d·scale)·(q − 32) in float32, so the values are theirs bit for bit.
    /// </summary>
    internal static void DequantizeSuperBlock(byte* block, DType format, float* destination)
    {
        if (format == DType.Q6_K)
        {
            float d = Scale(block + 208);
            sbyte* scales = (sbyte*)(block + 192);
            for (int n = 0; n < 2; n++)
            {
                byte* ql = block + 64 * n, qh = block + 128 + 32 * n;
                sbyte* sc = scales + 8 * n;
                float* y = destination + 128 * n;
                for (int l = 0; l < 32; l++)
                {
                    int s = l / 16;
                    y[l] = d * sc[s] * (((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32);
                    y[l + 32] = d * sc[s + 2] * (((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                    y[l + 64] = d * sc[s + 4] * (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                    y[l + 96] = d * sc[s + 6] * (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
                }
            }

            return;
        }

        float dd = Scale(block), dmin = Scale(block + 2);
        bool five = format == DType.Q5_K;
        byte* qs = block + (five ? 48 : 16);
        byte* hi = block + 16;
        for (int c = 0; c < 4; c++)
        {
            (int sc0, int m0) = QuantScalar.ScaleMin(block + 4, 2 * c);
            (int sc1, int m1) = QuantScalar.ScaleMin(block + 4, 2 * c + 1);
            float d1 = dd * sc0, min1 = dmin * m0, d2 = dd * sc1, min2 = dmin * m1;
            float* y = destination + 64 * c;
            for (int l = 0; l < 32; l++)
            {
                int h1 = five ? ((hi[l] >> (2 * c)) & 1) << 4 : 0, h2 = five ? ((hi[l] >> (2 * c + 1)) & 1) << 4 : 0;
                y[l] = d1 * ((qs[32 * c + l] & 0xF) | h1) - min1;
                y[l + 32] = d2 * ((qs[32 * c + l] >> 4) | h2) - min2;
            }
        }
    }
}
