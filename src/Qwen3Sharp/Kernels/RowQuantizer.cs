using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Qwen3Sharp.Kernels.Reference;

namespace Qwen3Sharp.Kernels;

/// <summary>
/// float32 rows into Q8_0 and Q4_0 blocks with llama.cpp's reference rounding (quantize_row_q8_0_ref /
/// quantize_row_q4_0_ref), bit for bit what the scalar twins <see cref="QuantScalar.QuantizeRowQ8_0"/> and
/// <see cref="QuantScalar.QuantizeRowQ4_0"/> write, a 32-element block in four 256-bit vectors: <c>--quantize</c>'s load
/// pass. Every step is the twin's IEEE operation on each element (no fused multiply-add), half-away-from-zero rounding is
/// truncation plus a step where the exact fraction reaches 0.5, and a block holding a NaN or an infinity, or whose scale's
/// inverse overflows (subnormal weights), goes through the twin (whose saturating conversions decide what those become).
/// </summary>
internal static unsafe class RowQuantizer
{
    private const int BlockSize = QuantScalar.BlockSize;

    /// <summary>Q8_0 blocks of <paramref name="x"/>[<paramref name="colCount"/>] (a multiple of 32) into <paramref name="destination"/>.</summary>
    public static void Q8_0(float* x, int colCount, byte* destination)
    {
        if (!Vector256.IsHardwareAccelerated)
        {
            QuantScalar.QuantizeRowQ8_0(x, colCount, destination);
            return;
        }

        for (int b = 0; b < colCount / BlockSize; b++)
        {
            float* v = x + b * BlockSize;
            byte* block = destination + b * 34;
            Load(v, out Vector256<float> v0, out Vector256<float> v1, out Vector256<float> v2, out Vector256<float> v3);
            float d = Finite(v0, v1, v2, v3, out float amax) ? amax / 127f : float.NaN;
            float id = d != 0 ? 1f / d : 0f;
            if (!float.IsFinite(id))   // a NaN or infinity in the block, or a subnormal d whose inverse overflows
            {
                QuantScalar.QuantizeRowQ8_0(v, BlockSize, block);
                continue;
            }

            *(ushort*)block = BitConverter.HalfToUInt16Bits((Half)d);
            var scale = Vector256.Create(id);
            Vector256<short> low = Vector256.Narrow(RoundAway(v0 * scale), RoundAway(v1 * scale));
            Vector256<short> high = Vector256.Narrow(RoundAway(v2 * scale), RoundAway(v3 * scale));
            Vector256.Narrow(low, high).Store((sbyte*)(block + 2));
        }
    }

    /// <summary>Q4_0 blocks of <paramref name="x"/>[<paramref name="colCount"/>] (a multiple of 32) into <paramref name="destination"/>.</summary>
    public static void Q4_0(float* x, int colCount, byte* destination)
    {
        if (!Vector256.IsHardwareAccelerated)
        {
            QuantScalar.QuantizeRowQ4_0(x, colCount, destination);
            return;
        }

        for (int b = 0; b < colCount / BlockSize; b++)
        {
            float* v = x + b * BlockSize;
            byte* block = destination + b * 18;
            Load(v, out Vector256<float> v0, out Vector256<float> v1, out Vector256<float> v2, out Vector256<float> v3);
            if (!Finite(v0, v1, v2, v3, out float amax))
            {
                QuantScalar.QuantizeRowQ4_0(v, BlockSize, block);
                continue;
            }

            // the twin keeps the first element of largest magnitude, signed (and +0 when every element is ±0)
            float max = 0;
            if (amax != 0)
            {
                var a = Vector256.Create(amax);
                uint at = Vector256.Equals(Vector256.Abs(v0), a).ExtractMostSignificantBits()
                    | Vector256.Equals(Vector256.Abs(v1), a).ExtractMostSignificantBits() << 8
                    | Vector256.Equals(Vector256.Abs(v2), a).ExtractMostSignificantBits() << 16
                    | Vector256.Equals(Vector256.Abs(v3), a).ExtractMostSignificantBits() << 24;
                max = v[System.Numerics.BitOperations.TrailingZeroCount(at)];
            }

            float d = max / -8f;
            float id = d != 0 ? 1f / d : 0f;
            if (!float.IsFinite(id))   // a subnormal d whose inverse overflows
            {
                QuantScalar.QuantizeRowQ4_0(v, BlockSize, block);
                continue;
            }

            *(ushort*)block = BitConverter.HalfToUInt16Bits((Half)d);
            var scale = Vector256.Create(id);
            var half = Vector256.Create(8.5f);
            var fifteen = Vector256.Create(15);
            // (sbyte)(x·id + 8.5), min 15: x·id + 8.5 lies in [0.5, 16.5] for a finite block, where the conversion truncates
            Vector256<int> q0 = Vector256.Min(Vector256.ConvertToInt32(Vector256.Truncate(v0 * scale + half)), fifteen);
            Vector256<int> q1 = Vector256.Min(Vector256.ConvertToInt32(Vector256.Truncate(v1 * scale + half)), fifteen);
            Vector256<int> q2 = Vector256.Min(Vector256.ConvertToInt32(Vector256.Truncate(v2 * scale + half)), fifteen);
            Vector256<int> q3 = Vector256.Min(Vector256.ConvertToInt32(Vector256.Truncate(v3 * scale + half)), fifteen);
            Vector256<int> packed0 = q0 | (q2 << 4), packed1 = q1 | (q3 << 4);   // element j with element j + 16
            Vector256<short> packed = Vector256.Narrow(packed0, packed1);
            Vector128<byte> bytes = Vector128.Narrow(packed.GetLower().AsUInt16(), packed.GetUpper().AsUInt16());
            bytes.Store(block + 2);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Load(float* v, out Vector256<float> v0, out Vector256<float> v1, out Vector256<float> v2, out Vector256<float> v3)
    {
        v0 = Vector256.Load(v);
        v1 = Vector256.Load(v + 8);
        v2 = Vector256.Load(v + 16);
        v3 = Vector256.Load(v + 24);
    }

    /// <summary>Whether the block's 32 elements are all finite, and their largest magnitude (exact: max is order-free).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Finite(Vector256<float> v0, Vector256<float> v1, Vector256<float> v2, Vector256<float> v3, out float amax)
    {
        Vector256<float> m = Vector256.Max(Vector256.Max(Vector256.Abs(v0), Vector256.Abs(v1)), Vector256.Max(Vector256.Abs(v2), Vector256.Abs(v3)));
        var infinity = Vector256.Create(float.PositiveInfinity);
        // a NaN compares false, an infinity equal: both fail "below infinity" in some lane
        bool finite = Vector256.LessThanAll(Vector256.Abs(v0), infinity) && Vector256.LessThanAll(Vector256.Abs(v1), infinity)
            && Vector256.LessThanAll(Vector256.Abs(v2), infinity) && Vector256.LessThanAll(Vector256.Abs(v3), infinity);
        amax = finite ? MaxAcross(m) : 0;
        return finite;
    }

    private static float MaxAcross(Vector256<float> m)
    {
        Vector128<float> h = Vector128.Max(m.GetLower(), m.GetUpper());
        h = Vector128.Max(h, Vector128.Shuffle(h, Vector128.Create(2, 3, 0, 1)));
        h = Vector128.Max(h, Vector128.Shuffle(h, Vector128.Create(1, 0, 3, 2)));
        return h.ToScalar();
    }

    /// <summary>round(t) half away from zero, as int32: truncate, then one step away from zero where |t − trunc(t)| ≥ 0.5 (exact for |t| &lt; 2^23).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> RoundAway(Vector256<float> t)
    {
        Vector256<float> whole = Vector256.Truncate(t);
        Vector256<float> step = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(Vector256.Abs(t - whole), Vector256.Create(0.5f)),
            Vector256.CopySign(Vector256<float>.One, t), Vector256<float>.Zero);
        return Vector256.ConvertToInt32(whole + step);
    }
}
