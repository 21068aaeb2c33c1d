using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Qwen3Sharp.Cache;

namespace Qwen3Sharp.Kernels;

/// <summary>
/// How the attention kernel reads one stored KV element type into float32 registers: element <c>i</c> of a head's
/// stored row at <c>head</c>, <see cref="ISimd{TV}.Count"/> of them at a time (never across a Q8_0 block: i is a multiple
/// of the vector width, which divides 32), or one for the tails. <see cref="Bytes"/> is a head's (or row's) size.
/// </summary>
internal unsafe interface IKvElement
{
    static abstract long Bytes(int elements);

    static abstract TV Load<TV, TS>(byte* head, int i) where TV : struct where TS : ISimd<TV>;

    static abstract float LoadScalar(byte* head, int i);
}

internal unsafe struct KvF32 : IKvElement
{
    public static long Bytes(int elements) => (long)elements * sizeof(float);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Load<TV, TS>(byte* head, int i) where TV : struct where TS : ISimd<TV> => TS.Load((float*)head + i);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float LoadScalar(byte* head, int i) => ((float*)head)[i];
}

internal unsafe struct KvBf16 : IKvElement
{
    public static long Bytes(int elements) => (long)elements * sizeof(ushort);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Load<TV, TS>(byte* head, int i) where TV : struct where TS : ISimd<TV> => TS.LoadBf16((ushort*)head + i);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float LoadScalar(byte* head, int i) => BitConverter.UInt32BitsToSingle((uint)((ushort*)head)[i] << 16);
}

internal unsafe struct KvF16 : IKvElement
{
    public static long Bytes(int elements) => (long)elements * sizeof(ushort);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Load<TV, TS>(byte* head, int i) where TV : struct where TS : ISimd<TV> => TS.LoadF16((ushort*)head + i);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float LoadScalar(byte* head, int i) => SimdScalar.LoadF16((ushort*)head + i);
}

/// <summary>
/// Q8_0 blocks of 32 (an f16 scale, then 32 int8 codes): codes widened and converted, times the block's scale read
/// through the fp16 table (<see cref="QuantMatMul.HalfTable"/>: two instructions).
/// </summary>
internal unsafe struct KvQ8 : IKvElement
{
    public static long Bytes(int elements) => (long)elements / KvCacheDTypes.Q8BlockSize * KvCacheDTypes.Q8BlockBytes;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Load<TV, TS>(byte* head, int i) where TV : struct where TS : ISimd<TV>
    {
        byte* block = head + (i >> 5) * KvCacheDTypes.Q8BlockBytes;
        return TS.Multiply(TS.LoadInt8((sbyte*)block + 2 + (i & 31)), TS.Broadcast(QuantMatMul.HalfTable.Values[*(ushort*)block]));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float LoadScalar(byte* head, int i)
    {
        byte* block = head + (i >> 5) * KvCacheDTypes.Q8BlockBytes;
        return ((sbyte*)block)[2 + (i & 31)] * QuantMatMul.HalfTable.Values[*(ushort*)block];
    }
}

/// <summary>Float32 keys and values to and from the KV cache's storage types.</summary>
public static class KvConvert
{
    /// <summary>
    /// Stores <paramref name="source"/> as <paramref name="dtype"/> into <paramref name="destination"/>
    /// [dtype.Bytes(source.Length)]: float32 copied, bf16 and f16 rounded to nearest even (NaN stays NaN); f16
    /// saturates: a magnitude that would round past 65504 (±inf included) is stored as ±65504, so the attention
    /// kernel's 4-operation f16 read never meets an infinity. Q8_0: per block of 32, d = amax/127 stored as f16 and codes
    /// round-to-nearest-even of x/d (llama.cpp's AVX2 quantize_row_q8_0); source.Length must be a multiple of 32.
    /// </summary>
    public static void FromSingle(ReadOnlySpan<float> source, KvCacheDType dtype, Span<byte> destination)
    {
        long bytes = dtype.Bytes(source.Length);
        if (destination.Length < bytes)
        {
            throw new ArgumentException($"{source.Length} {dtype.Name()} elements need {bytes} bytes; got {destination.Length}.", nameof(destination));
        }

        switch (dtype)
        {
            case KvCacheDType.F32:
                source.CopyTo(MemoryMarshal.Cast<byte, float>(destination));
                break;
            case KvCacheDType.BF16:
                ToBf16(source, MemoryMarshal.Cast<byte, ushort>(destination));
                break;
            case KvCacheDType.Q8_0:
                ToQ8(source, destination);
                break;
            default:
                ToF16(source, MemoryMarshal.Cast<byte, ushort>(destination));
                break;
        }
    }

    /// <summary>float32 → Q8_0 blocks of 32 (see <see cref="FromSingle"/>); a block of zeros (or NaN) gets scale 0 and codes 0.</summary>
    internal static void ToQ8(ReadOnlySpan<float> source, Span<byte> destination)
    {
        const int Block = KvCacheDTypes.Q8BlockSize;
        for (int b = 0; b < source.Length / Block; b++)
        {
            ReadOnlySpan<float> x = source.Slice(b * Block, Block);
            Span<byte> block = destination.Slice(b * KvCacheDTypes.Q8BlockBytes, KvCacheDTypes.Q8BlockBytes);
            float amax = 0;
            foreach (float e in x)
            {
                amax = MathF.Max(amax, MathF.Abs(e));
            }

            float d = amax / 127;
            float id = d > 0 ? 1 / d : 0;
            MemoryMarshal.Write(block, F16(d));
            for (int i = 0; i < Block; i++)
            {
                block[2 + i] = (byte)(sbyte)Math.Clamp(MathF.Round(x[i] * id), -127, 127);
            }
        }
    }

    /// <summary>Reads <paramref name="destination"/>.Length elements of <paramref name="dtype"/> from <paramref name="source"/> as float32 (exact; Q8_0: code × the f16 scale).</summary>
    public static void ToSingle(ReadOnlySpan<byte> source, KvCacheDType dtype, Span<float> destination)
    {
        long bytes = dtype.Bytes(destination.Length);
        if (source.Length < bytes)
        {
            throw new ArgumentException($"{destination.Length} {dtype.Name()} elements need {bytes} bytes; got {source.Length}.", nameof(source));
        }

        switch (dtype)
        {
            case KvCacheDType.F32:
                MemoryMarshal.Cast<byte, float>(source)[..destination.Length].CopyTo(destination);
                break;
            case KvCacheDType.BF16:
                ReadOnlySpan<ushort> bits = MemoryMarshal.Cast<byte, ushort>(source);
                for (int i = 0; i < destination.Length; i++)
                {
                    destination[i] = BitConverter.UInt32BitsToSingle((uint)bits[i] << 16);
                }

                break;
            case KvCacheDType.Q8_0:
                for (int i = 0; i < destination.Length; i++)
                {
                    ReadOnlySpan<byte> block = source.Slice(i / KvCacheDTypes.Q8BlockSize * KvCacheDTypes.Q8BlockBytes);
                    destination[i] = (sbyte)block[2 + i % KvCacheDTypes.Q8BlockSize] * (float)BitConverter.UInt16BitsToHalf(MemoryMarshal.Read<ushort>(block));
                }

                break;
            default:
                ReadOnlySpan<ushort> halves = MemoryMarshal.Cast<byte, ushort>(source);
                for (int i = 0; i < destination.Length; i++)
                {
                    destination[i] = (float)BitConverter.UInt16BitsToHalf(halves[i]);
                }

                break;
        }
    }

    /// <summary>float32 → bf16, round to nearest even; NaN stays a (quiet) NaN.</summary>
    internal static void ToBf16(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && source.Length >= 2 * Vector<uint>.Count)
        {
            ReadOnlySpan<uint> bits = MemoryMarshal.Cast<float, uint>(source);
            var one = new Vector<uint>(1);
            var bias = new Vector<uint>(0x7FFF);
            var absMask = new Vector<uint>(0x7FFFFFFF);
            var infinity = new Vector<uint>(0x7F800000);
            var quiet = new Vector<uint>(0x0040);
            int step = 2 * Vector<uint>.Count;
            for (; i + step <= source.Length; i += step)
            {
                Vector<uint> a = Round(new Vector<uint>(bits[i..]));
                Vector<uint> b = Round(new Vector<uint>(bits[(i + Vector<uint>.Count)..]));
                Vector.Narrow(a, b).CopyTo(destination[i..]);
            }

            Vector<uint> Round(Vector<uint> x)
            {
                Vector<uint> rounded = (x + bias + ((x >> 16) & one)) >> 16;
                Vector<uint> nan = Vector.GreaterThan(x & absMask, infinity);
                return Vector.ConditionalSelect(nan, (x >> 16) | quiet, rounded);
            }
        }

        for (; i < source.Length; i++)
        {
            destination[i] = Bf16(source[i]);
        }
    }

    /// <summary>One float32 → bf16 bits, round to nearest even (the scalar twin of <see cref="ToBf16"/>).</summary>
    internal static ushort Bf16(float value)
    {
        uint x = BitConverter.SingleToUInt32Bits(value);
        if ((x & 0x7FFFFFFF) > 0x7F800000)
        {
            return (ushort)((x >> 16) | 0x0040);
        }

        return (ushort)((x + 0x7FFF + ((x >> 16) & 1)) >> 16);
    }

    /// <summary>
    /// float32 → IEEE half, round to nearest even (F. Giesen's float_to_half_fast3_rtne) saturating at ±65504 (±inf
    /// included), NaN → quiet NaN, below 2^-14 through a float add that rounds into the subnormal range. The scalar twin
    /// is <see cref="F16"/> (<see cref="Half"/>'s cast, clamped).
    /// </summary>
    internal static void ToF16(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && source.Length >= 2 * Vector<uint>.Count)
        {
            ReadOnlySpan<uint> bits = MemoryMarshal.Cast<float, uint>(source);
            var signMask = new Vector<uint>(0x80000000u);
            var f16Max = new Vector<uint>((127u + 16) << 23);          // 65536: rounds to inf from here up
            var f32Infinity = new Vector<uint>(255u << 23);
            var normalMin = new Vector<uint>(113u << 23);              // 2^-14, the smallest normal half
            var denormMagic = new Vector<uint>(((127u - 15) + (23 - 10) + 1) << 23);
            var rebias = new Vector<uint>(unchecked((uint)((15 - 127) << 23) + 0xFFF));
            var one = new Vector<uint>(1);
            int step = 2 * Vector<uint>.Count;
            for (; i + step <= source.Length; i += step)
            {
                Vector<uint> a = Convert(new Vector<uint>(bits[i..]));
                Vector<uint> b = Convert(new Vector<uint>(bits[(i + Vector<uint>.Count)..]));
                Vector.Narrow(a, b).CopyTo(destination[i..]);
            }

            Vector<uint> Convert(Vector<uint> x)
            {
                Vector<uint> sign = x & signMask;
                Vector<uint> f = x ^ sign;
                Vector<uint> special = Vector.ConditionalSelect(Vector.GreaterThan(f, f32Infinity), new Vector<uint>(0x7E00), new Vector<uint>(0x7BFF));
                Vector<uint> subnormal = (f.As<uint, float>() + denormMagic.As<uint, float>()).As<float, uint>() - denormMagic;
                Vector<uint> normal = Vector.Min((f + rebias + ((f >> 13) & one)) >> 13, new Vector<uint>(0x7BFF));   // [65520, 65536) rounds up to inf: saturate
                Vector<uint> h = Vector.ConditionalSelect(Vector.GreaterThanOrEqual(f, f16Max), special,
                    Vector.ConditionalSelect(Vector.LessThan(f, normalMin), subnormal, normal));
                return h | (sign >> 16);
            }
        }

        for (; i < source.Length; i++)
        {
            destination[i] = F16(source[i]);
        }
    }

    /// <summary>One float32 → f16 bits, round to nearest even, saturating at ±65504 (the scalar twin of <see cref="ToF16"/>).</summary>
    internal static ushort F16(float value)
    {
        ushort h = BitConverter.HalfToUInt16Bits((Half)value);
        return (h & 0x7FFF) == 0x7C00 ? (ushort)(h & 0x8000 | 0x7BFF) : h;
    }
}
