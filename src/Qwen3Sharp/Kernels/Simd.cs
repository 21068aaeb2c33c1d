using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Qwen3Sharp.Kernels;

/// <summary>
/// The operations every kernel is written against, once, for a vector type <typeparamref name="TV"/>
/// of <see cref="Count"/> float lanes. Implemented for Vector512, Vector256, Vector128 and plain float
/// (the scalar fallback), so one generic kernel body serves every ISA and the tests can run each
/// instantiation on any machine (Vector512 is emulated in software where it is not accelerated).
/// </summary>
/// <remarks>
/// BF16 pairs: a vector of <see cref="Count"/> uint lanes loaded from 2·Count bf16 values holds element 2j in
/// the low half and 2j+1 in the high half of lane j. <c>lane &lt;&lt; 16</c> is element 2j as float32 and
/// <c>lane &amp; 0xFFFF0000</c> is element 2j+1: two cheap bit operations and no shuffle. The activation is
/// permuted to match once per call (<see cref="MatMul"/>).
/// </remarks>
internal unsafe interface ISimd<TV> where TV : struct
{
    /// <summary>2^112: rescales a half's exponent bits shifted into float position.</summary>
    public const float TwoPow112 = 5.192296858534828e33f;

    /// <summary>Float lanes per vector.</summary>
    static abstract int Count { get; }

    /// <summary>True where a 4-token × 4-row register tile fits the register file (32 registers).</summary>
    static abstract bool WideTile { get; }

    static abstract TV Zero { get; }
    static abstract TV Broadcast(float value);
    static abstract TV Load(float* source);
    static abstract void Store(TV value, float* destination);
    static abstract TV Add(TV a, TV b);
    static abstract TV Subtract(TV a, TV b);
    static abstract TV Multiply(TV a, TV b);
    static abstract TV Divide(TV a, TV b);
    static abstract TV Max(TV a, TV b);
    static abstract TV Min(TV a, TV b);

    /// <summary>a · b + c, fused where the hardware has FMA.</summary>
    static abstract TV MultiplyAdd(TV a, TV b, TV c);

    static abstract float Sum(TV value);

    /// <summary>The horizontal sums of four vectors to destination[0..3] (one add tree for all four: <c>vhaddps</c> where there is AVX).</summary>
    static abstract void Sum4(TV a, TV b, TV c, TV d, float* destination);

    static abstract float MaxAcross(TV value);

    /// <summary>2^n · p for integer-valued n in [-126, 127] (exponent arithmetic on the bits).</summary>
    static abstract TV ScaleByPowerOfTwo(TV p, TV n);
    static abstract TV Round(TV value);

    /// <summary>2·Count bf16 values at <paramref name="source"/> as (even elements, odd elements).</summary>
    static abstract void LoadBf16Pair(ushort* source, out TV even, out TV odd);

    /// <summary>2·Count bf16 values to float32 in natural order.</summary>
    /// <remarks>See also <see cref="SimdMath.Prefetch"/> for streaming kernels.</remarks>
    static abstract void Bf16ToSingle(ushort* source, float* destination);

    /// <summary>2·Count IEEE half values to float32 in natural order.</summary>
    static abstract void F16ToSingle(ushort* source, float* destination);

    /// <summary>Count bf16 values at <paramref name="source"/> as float32 in natural order (widen, shift; no rounding).</summary>
    static abstract TV LoadBf16(ushort* source);

    /// <summary>
    /// Count finite IEEE half values at <paramref name="source"/> as float32 in natural order (exact for every finite
    /// half, subnormals included: sign to bit 31, exponent and mantissa shifted into place, exponent rebased by ×2^112 —
    /// 4 operations where <see cref="F16ToSingle"/> also keeps inf/NaN). ±inf reads as ±65536 and NaN as a finite value:
    /// for the KV cache, whose f16 stores saturate at ±65504 (<see cref="KvConvert"/>).
    /// </summary>
    static abstract TV LoadF16(ushort* source);

    /// <summary>Count int8 values at <paramref name="source"/> as float32 (<c>vpmovsxbd</c> + <c>vcvtdq2ps</c> where there is SSE4.1/AVX2/AVX-512).</summary>
    static abstract TV LoadInt8(sbyte* source);
}

internal unsafe struct Simd512 : ISimd<Vector512<float>>
{
    public static int Count => Vector512<float>.Count;
    public static bool WideTile => true;
    public static Vector512<float> Zero => Vector512<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Broadcast(float value) => Vector512.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load(float* source) => Vector512.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector512<float> value, float* destination) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Subtract(Vector512<float> a, Vector512<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Multiply(Vector512<float> a, Vector512<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Divide(Vector512<float> a, Vector512<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Max(Vector512<float> a, Vector512<float> b) => Vector512.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Min(Vector512<float> a, Vector512<float> b) => Vector512.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> MultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.MultiplyAddEstimate(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector512<float> value) => Vector512.Sum(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Sum4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d, float* destination)
        => Simd256.Sum4(a.GetLower() + a.GetUpper(), b.GetLower() + b.GetUpper(), c.GetLower() + c.GetUpper(), d.GetLower() + d.GetUpper(), destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaxAcross(Vector512<float> value)
    {
        Vector256<float> m = Vector256.Max(value.GetLower(), value.GetUpper());
        return Simd256.MaxAcross(m);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> ScaleByPowerOfTwo(Vector512<float> p, Vector512<float> n)
        => (p.AsInt32() + (Vector512.ConvertToInt32(n) << 23)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Round(Vector512<float> value) => Vector512.Round(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadBf16Pair(ushort* source, out Vector512<float> even, out Vector512<float> odd)
    {
        Vector512<uint> v = Vector512.Load((uint*)source);
        even = (v << 16).AsSingle();
        odd = (v & Vector512.Create(0xFFFF0000u)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Bf16ToSingle(ushort* source, float* destination)
    {
        Vector512<ushort> v = Vector512.Load(source);
        (Vector512.WidenLower(v) << 16).AsSingle().Store(destination);
        (Vector512.WidenUpper(v) << 16).AsSingle().Store(destination + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void F16ToSingle(ushort* source, float* destination)
    {
        Vector512<ushort> v = Vector512.Load(source);
        HalfBits(Vector512.WidenLower(v)).Store(destination);
        HalfBits(Vector512.WidenUpper(v)).Store(destination + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> LoadBf16(ushort* source)
        => (Vector512.WidenLower(Vector256.Load(source).ToVector512Unsafe()) << 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> LoadInt8(sbyte* source)
        => Avx512F.IsSupported ? Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(source)))
            : Vector512.Create(Simd256.LoadInt8(source), Simd256.LoadInt8(source + 8));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> LoadF16(ushort* source)
        => FiniteHalfBits(Vector512.WidenLower(Vector256.Load((short*)source).ToVector512Unsafe()));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> FiniteHalfBits(Vector512<int> h)   // h sign-extended: bits 31..29 and 28 hold the sign after << 13
        => ((h << 13) & Vector512.Create(unchecked((int)0x8FFFE000))).AsSingle() * Vector512.Create(ISimd<float>.TwoPow112);

    /// <summary>Half bits (zero-extended) to float: shift into place, rescale the exponent by 2^112
    /// (exact for normals and subnormals), keep inf/NaN, restore the sign.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> HalfBits(Vector512<uint> h)
    {
        Vector512<uint> magnitude = h & Vector512.Create(0x7FFFu);
        Vector512<uint> sign = (h & Vector512.Create(0x8000u)) << 16;
        Vector512<uint> shifted = magnitude << 13;
        Vector512<uint> finite = (shifted.AsSingle() * Vector512.Create(ISimd<float>.TwoPow112)).AsUInt32();
        Vector512<uint> special = shifted | Vector512.Create(0x7F800000u);
        Vector512<uint> isSpecial = Vector512.GreaterThanOrEqual(magnitude, Vector512.Create(0x7C00u));
        return (Vector512.ConditionalSelect(isSpecial, special, finite) | sign).AsSingle();
    }
}

internal unsafe struct Simd256 : ISimd<Vector256<float>>
{
    public static int Count => Vector256<float>.Count;
    public static bool WideTile => false;
    public static Vector256<float> Zero => Vector256<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Broadcast(float value) => Vector256.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Load(float* source) => Vector256.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector256<float> value, float* destination) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Subtract(Vector256<float> a, Vector256<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Multiply(Vector256<float> a, Vector256<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Divide(Vector256<float> a, Vector256<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Vector256.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Min(Vector256<float> a, Vector256<float> b) => Vector256.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.MultiplyAddEstimate(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector256<float> value) => Vector256.Sum(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Sum4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d, float* destination)
    {
        if (Avx.IsSupported)
        {
            // [a01 a23 b01 b23 | a45 a67 b45 b67], then [a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7]: the halves' sum is the four sums
            Vector256<float> s = Avx.HorizontalAdd(Avx.HorizontalAdd(a, b), Avx.HorizontalAdd(c, d));
            (s.GetLower() + s.GetUpper()).Store(destination);
            return;
        }

        Simd128.Sum4(a.GetLower() + a.GetUpper(), b.GetLower() + b.GetUpper(), c.GetLower() + c.GetUpper(), d.GetLower() + d.GetUpper(), destination);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaxAcross(Vector256<float> value)
        => Simd128.MaxAcross(Vector128.Max(value.GetLower(), value.GetUpper()));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ScaleByPowerOfTwo(Vector256<float> p, Vector256<float> n)
        => (p.AsInt32() + (Vector256.ConvertToInt32(n) << 23)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Round(Vector256<float> value) => Vector256.Round(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadBf16Pair(ushort* source, out Vector256<float> even, out Vector256<float> odd)
    {
        Vector256<uint> v = Vector256.Load((uint*)source);
        even = (v << 16).AsSingle();
        odd = (v & Vector256.Create(0xFFFF0000u)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Bf16ToSingle(ushort* source, float* destination)
    {
        Vector256<ushort> v = Vector256.Load(source);
        (Vector256.WidenLower(v) << 16).AsSingle().Store(destination);
        (Vector256.WidenUpper(v) << 16).AsSingle().Store(destination + 8);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void F16ToSingle(ushort* source, float* destination)
    {
        Vector256<ushort> v = Vector256.Load(source);
        HalfBits(Vector256.WidenLower(v)).Store(destination);
        HalfBits(Vector256.WidenUpper(v)).Store(destination + 8);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> LoadBf16(ushort* source)
        => (Vector256.WidenLower(Vector128.Load(source).ToVector256Unsafe()) << 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> LoadInt8(sbyte* source)
        => Avx2.IsSupported ? Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(source))
            : Vector256.Create(Simd128.LoadInt8(source), Simd128.LoadInt8(source + 4));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> LoadF16(ushort* source)
        => FiniteHalfBits(Vector256.WidenLower(Vector128.Load((short*)source).ToVector256Unsafe()));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> FiniteHalfBits(Vector256<int> h)   // h sign-extended: bits 31..29 and 28 hold the sign after << 13
        => ((h << 13) & Vector256.Create(unchecked((int)0x8FFFE000))).AsSingle() * Vector256.Create(ISimd<float>.TwoPow112);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> HalfBits(Vector256<uint> h)
    {
        Vector256<uint> magnitude = h & Vector256.Create(0x7FFFu);
        Vector256<uint> sign = (h & Vector256.Create(0x8000u)) << 16;
        Vector256<uint> shifted = magnitude << 13;
        Vector256<uint> finite = (shifted.AsSingle() * Vector256.Create(ISimd<float>.TwoPow112)).AsUInt32();
        Vector256<uint> special = shifted | Vector256.Create(0x7F800000u);
        Vector256<uint> isSpecial = Vector256.GreaterThanOrEqual(magnitude, Vector256.Create(0x7C00u));
        return (Vector256.ConditionalSelect(isSpecial, special, finite) | sign).AsSingle();
    }
}

internal unsafe struct Simd128 : ISimd<Vector128<float>>
{
    public static int Count => Vector128<float>.Count;
    public static bool WideTile => false;
    public static Vector128<float> Zero => Vector128<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Broadcast(float value) => Vector128.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Load(float* source) => Vector128.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector128<float> value, float* destination) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Subtract(Vector128<float> a, Vector128<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Multiply(Vector128<float> a, Vector128<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Divide(Vector128<float> a, Vector128<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Max(Vector128<float> a, Vector128<float> b) => Vector128.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Min(Vector128<float> a, Vector128<float> b) => Vector128.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> MultiplyAdd(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.MultiplyAddEstimate(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector128<float> value) => Vector128.Sum(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Sum4(Vector128<float> a, Vector128<float> b, Vector128<float> c, Vector128<float> d, float* destination)
    {
        if (Sse3.IsSupported)
        {
            Sse3.HorizontalAdd(Sse3.HorizontalAdd(a, b), Sse3.HorizontalAdd(c, d)).Store(destination);
            return;
        }

        destination[0] = Vector128.Sum(a);
        destination[1] = Vector128.Sum(b);
        destination[2] = Vector128.Sum(c);
        destination[3] = Vector128.Sum(d);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaxAcross(Vector128<float> value)
        => MathF.Max(MathF.Max(value.GetElement(0), value.GetElement(1)), MathF.Max(value.GetElement(2), value.GetElement(3)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> ScaleByPowerOfTwo(Vector128<float> p, Vector128<float> n)
        => (p.AsInt32() + (Vector128.ConvertToInt32(n) << 23)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Round(Vector128<float> value) => Vector128.Round(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadBf16Pair(ushort* source, out Vector128<float> even, out Vector128<float> odd)
    {
        Vector128<uint> v = Vector128.Load((uint*)source);
        even = (v << 16).AsSingle();
        odd = (v & Vector128.Create(0xFFFF0000u)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Bf16ToSingle(ushort* source, float* destination)
    {
        Vector128<ushort> v = Vector128.Load(source);
        (Vector128.WidenLower(v) << 16).AsSingle().Store(destination);
        (Vector128.WidenUpper(v) << 16).AsSingle().Store(destination + 4);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void F16ToSingle(ushort* source, float* destination)
    {
        Vector128<ushort> v = Vector128.Load(source);
        HalfBits(Vector128.WidenLower(v)).Store(destination);
        HalfBits(Vector128.WidenUpper(v)).Store(destination + 4);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> LoadBf16(ushort* source)
        => (Vector128.WidenLower(Vector128.CreateScalarUnsafe(*(ulong*)source).AsUInt16()) << 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> LoadInt8(sbyte* source)
        => Sse41.IsSupported ? Sse2.ConvertToVector128Single(Sse41.ConvertToVector128Int32(source))
            : Vector128.Create((float)source[0], source[1], source[2], source[3]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> LoadF16(ushort* source)
        => FiniteHalfBits(Vector128.WidenLower(Vector128.CreateScalarUnsafe(*(ulong*)source).AsInt16()));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> FiniteHalfBits(Vector128<int> h)   // h sign-extended: bits 31..29 and 28 hold the sign after << 13
        => ((h << 13) & Vector128.Create(unchecked((int)0x8FFFE000))).AsSingle() * Vector128.Create(ISimd<float>.TwoPow112);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> HalfBits(Vector128<uint> h)
    {
        Vector128<uint> magnitude = h & Vector128.Create(0x7FFFu);
        Vector128<uint> sign = (h & Vector128.Create(0x8000u)) << 16;
        Vector128<uint> shifted = magnitude << 13;
        Vector128<uint> finite = (shifted.AsSingle() * Vector128.Create(ISimd<float>.TwoPow112)).AsUInt32();
        Vector128<uint> special = shifted | Vector128.Create(0x7F800000u);
        Vector128<uint> isSpecial = Vector128.GreaterThanOrEqual(magnitude, Vector128.Create(0x7C00u));
        return (Vector128.ConditionalSelect(isSpecial, special, finite) | sign).AsSingle();
    }
}

/// <summary>The scalar fallback: one lane, plain float arithmetic.</summary>
internal unsafe struct SimdScalar : ISimd<float>
{
    public static int Count => 1;
    public static bool WideTile => false;
    public static float Zero => 0f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Broadcast(float value) => value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Load(float* source) => *source;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float value, float* destination) => *destination = value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Add(float a, float b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Subtract(float a, float b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Multiply(float a, float b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Divide(float a, float b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Max(float a, float b) => MathF.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Min(float a, float b) => MathF.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MultiplyAdd(float a, float b, float c) => a * b + c;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(float value) => value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Sum4(float a, float b, float c, float d, float* destination)
    {
        destination[0] = a;
        destination[1] = b;
        destination[2] = c;
        destination[3] = d;
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MaxAcross(float value) => value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ScaleByPowerOfTwo(float p, float n)
        => BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(p) + ((int)n << 23));

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Round(float value) => MathF.Round(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadBf16Pair(ushort* source, out float even, out float odd)
    {
        uint v = *(uint*)source;
        even = BitConverter.UInt32BitsToSingle(v << 16);
        odd = BitConverter.UInt32BitsToSingle(v & 0xFFFF0000u);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Bf16ToSingle(ushort* source, float* destination)
    {
        destination[0] = BitConverter.UInt32BitsToSingle((uint)source[0] << 16);
        destination[1] = BitConverter.UInt32BitsToSingle((uint)source[1] << 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void F16ToSingle(ushort* source, float* destination)
    {
        destination[0] = (float)BitConverter.UInt16BitsToHalf(source[0]);
        destination[1] = (float)BitConverter.UInt16BitsToHalf(source[1]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float LoadBf16(ushort* source) => BitConverter.UInt32BitsToSingle((uint)*source << 16);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float LoadInt8(sbyte* source) => *source;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float LoadF16(ushort* source)
        => BitConverter.Int32BitsToSingle(((int)((uint)*source << 16) >> 3) & unchecked((int)0x8FFFE000)) * ISimd<float>.TwoPow112;
}

/// <summary>Vectorised float32 maths shared by the elementwise kernels.</summary>
internal static unsafe class SimdMath
{
    /// <summary>
    /// An 8 × 8 transpose of 32-bit lanes (AVX2): vector j of the 8 stored one after the other at <paramref name="destination"/>
    /// holds lane j of <paramref name="r0"/> … <paramref name="r7"/>, in that order. The load-time repacks into 8-row groups
    /// use it (BF16 column pairs, Q8_0 code dwords).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Transpose8x8(Vector256<uint> r0, Vector256<uint> r1, Vector256<uint> r2, Vector256<uint> r3,
        Vector256<uint> r4, Vector256<uint> r5, Vector256<uint> r6, Vector256<uint> r7, uint* destination)
    {
        // pairs of rows interleaved by dword, then by qword: u0 holds rows 0-3 of lanes 0 (low half) and 4 (high half), …
        Vector256<ulong> t0 = Avx2.UnpackLow(r0, r1).AsUInt64(), t1 = Avx2.UnpackHigh(r0, r1).AsUInt64();
        Vector256<ulong> t2 = Avx2.UnpackLow(r2, r3).AsUInt64(), t3 = Avx2.UnpackHigh(r2, r3).AsUInt64();
        Vector256<ulong> t4 = Avx2.UnpackLow(r4, r5).AsUInt64(), t5 = Avx2.UnpackHigh(r4, r5).AsUInt64();
        Vector256<ulong> t6 = Avx2.UnpackLow(r6, r7).AsUInt64(), t7 = Avx2.UnpackHigh(r6, r7).AsUInt64();
        Vector256<uint> u0 = Avx2.UnpackLow(t0, t2).AsUInt32(), u1 = Avx2.UnpackHigh(t0, t2).AsUInt32();
        Vector256<uint> u2 = Avx2.UnpackLow(t1, t3).AsUInt32(), u3 = Avx2.UnpackHigh(t1, t3).AsUInt32();
        Vector256<uint> u4 = Avx2.UnpackLow(t4, t6).AsUInt32(), u5 = Avx2.UnpackHigh(t4, t6).AsUInt32();
        Vector256<uint> u6 = Avx2.UnpackLow(t5, t7).AsUInt32(), u7 = Avx2.UnpackHigh(t5, t7).AsUInt32();
        Avx.Store(destination, Avx2.Permute2x128(u0, u4, 0x20));
        Avx.Store(destination + 8, Avx2.Permute2x128(u1, u5, 0x20));
        Avx.Store(destination + 16, Avx2.Permute2x128(u2, u6, 0x20));
        Avx.Store(destination + 24, Avx2.Permute2x128(u3, u7, 0x20));
        Avx.Store(destination + 32, Avx2.Permute2x128(u0, u4, 0x31));
        Avx.Store(destination + 40, Avx2.Permute2x128(u1, u5, 0x31));
        Avx.Store(destination + 48, Avx2.Permute2x128(u2, u6, 0x31));
        Avx.Store(destination + 56, Avx2.Permute2x128(u3, u7, 0x31));
    }

    /// <summary>A hint to bring the cache line at <paramref name="address"/> into all cache levels (x86 only; a no-op elsewhere).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Prefetch(void* address)
    {
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported)
        {
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(address);
        }
    }

    /// <summary>
    /// e^x with a degree-6 polynomial on [-ln2/2, ln2/2] after range reduction (Cephes expf; about 1 ulp).
    /// Inputs below -87.3 flush to 0 and above 88.7 saturate to +inf-adjacent values; NaN propagates.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Exp<TV, TS>(TV x) where TV : struct where TS : ISimd<TV>
    {
        x = TS.Min(TS.Max(x, TS.Broadcast(-87.33654f)), TS.Broadcast(88.72283f));
        TV n = TS.Round(TS.Multiply(x, TS.Broadcast(1.44269504088896341f)));
        // r = x - n ln2, ln2 split into a high part exact in float and a low correction.
        TV r = TS.MultiplyAdd(n, TS.Broadcast(-0.693359375f), x);
        r = TS.MultiplyAdd(n, TS.Broadcast(2.12194440e-4f), r);
        TV p = TS.Broadcast(1.9875691500e-4f);
        p = TS.MultiplyAdd(p, r, TS.Broadcast(1.3981999507e-3f));
        p = TS.MultiplyAdd(p, r, TS.Broadcast(8.3334519073e-3f));
        p = TS.MultiplyAdd(p, r, TS.Broadcast(4.1665795894e-2f));
        p = TS.MultiplyAdd(p, r, TS.Broadcast(1.6666665459e-1f));
        p = TS.MultiplyAdd(p, r, TS.Broadcast(5.0000001201e-1f));
        TV r2 = TS.Multiply(r, r);
        p = TS.MultiplyAdd(p, r2, TS.Add(r, TS.Broadcast(1f)));
        // n in [-126, 128]: scale in two steps so 2^128 does not overflow the exponent field.
        TV half = TS.Round(TS.Multiply(n, TS.Broadcast(0.5f)));
        return TS.ScaleByPowerOfTwo(TS.ScaleByPowerOfTwo(p, half), TS.Subtract(n, half));
    }
}
