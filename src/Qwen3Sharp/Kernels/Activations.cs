using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Qwen3Sharp.Kernels;

public static unsafe class SwiGlu
{
    /// <summary>destination = silu(gate) * up, elementwise; destination may alias gate.</summary>
    public static void SiluMul(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> destination)
    {
        CheckShapes(gate.Length, up.Length, destination.Length);

        fixed (float* g = gate, u = up, d = destination)
        {
            Elementwise.Binary<SiluMulOperator>(g, u, gate.Length, d);
        }
    }

    /// <summary>
    /// <see cref="SiluMul(ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float})"/> split across <paramref name="pool"/> in
    /// pieces of whole 64-element lines when there are at least <see cref="PooledElementwise.MinElements"/> elements: every
    /// element takes the vector or scalar path that the one-thread call gives it (the vector width chosen for the whole
    /// length, the scalar tail at its end), so the bits are the same.
    /// </summary>
    public static void SiluMul(WorkerPool pool, ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> destination)
    {
        int n = gate.Length;
        int items = PooledElementwise.Items(pool, n, (n + 63) / 64);
        if (items <= 1)
        {
            SiluMul(gate, up, destination);
            return;
        }

        CheckShapes(n, up.Length, destination.Length);

        fixed (float* g = gate, u = up, d = destination)
        {
            var job = new SiluMulJob { Gate = g, Up = u, Destination = d, N = n, PerItem = ((n + items - 1) / items + 63) & ~63 };
            pool.Run(ref job, items);
        }
    }

    private static void CheckShapes(int gate, int up, int destination)
    {
        if (up < gate || destination < gate)
        {
            throw new ArgumentException($"gate has {gate} elements but up has {up} and destination {destination}.");
        }
    }

    private struct SiluMulJob : IPoolJob
    {
        public float* Gate, Up, Destination;
        public int N, PerItem;   // PerItem: a multiple of 64, so every piece but the last is whole vectors of any width

        public readonly void Execute(int index, int worker)
        {
            int from = index * PerItem;
            if (from < N)
            {
                Elementwise.BinaryPart<SiluMulOperator>(Gate, Up, N, from, Math.Min(N, from + PerItem), Destination);
            }
        }
    }

    /// <summary>silu(g) · u = g / (1 + e^-g) · u.</summary>
    internal readonly struct SiluMulOperator : IBinaryOperator
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Invoke(float g, float u) => g / (1f + MathF.Exp(-g)) * u;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Invoke<TV, TS>(TV g, TV u) where TV : unmanaged where TS : ISimd<TV>
            => TS.Multiply(TS.Divide(g, TS.Add(TS.Broadcast(1f), SimdMath.Exp<TV, TS>(TS.Subtract(TS.Zero, g)))), u);
    }
}

public static unsafe class Softmax
{
    /// <summary>In-place numerically stable softmax.</summary>
    public static void Apply(Span<float> x)
    {
        fixed (float* p = x)
        {
            int n = x.Length;
            if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
            {
                InPlace<Vector512<float>, Simd512>(p, n);
            }
            else if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
            {
                InPlace<Vector256<float>, Simd256>(p, n);
            }
            else if (Vector128.IsHardwareAccelerated && n >= Vector128<float>.Count)
            {
                InPlace<Vector128<float>, Simd128>(p, n);
            }
            else
            {
                InPlace<float, SimdScalar>(p, n);
            }
        }
    }

    internal static void InPlace<TV, TS>(float* x, int n) where TV : unmanaged where TS : ISimd<TV>
    {
        if (n == 0)
        {
            return;
        }

        float total = Exponentiate<TV, TS>(x, n, out _);
        int lanes = TS.Count;
        int main = n - n % lanes;
        float inv = 1f / total;
        TV vinv = TS.Broadcast(inv);
        for (int i = 0; i < main; i += lanes)
        {
            TS.Store(TS.Multiply(TS.Load(x + i), vinv), x + i);
        }

        for (int i = main; i < n; i++)
        {
            x[i] *= inv;
        }
    }

    /// <summary>
    /// x[i] = exp(x[i] − max) in place, where <paramref name="max"/> is the largest x[i]; returns the sum of the new x (in
    /// vector lanes, then the tail): a softmax before its division, which <see cref="InPlace"/> completes and a split
    /// attention (one part of the positions at a time, parts merged by their maxima and sums) keeps.
    /// </summary>
    internal static float Exponentiate<TV, TS>(float* x, int n, out float max) where TV : unmanaged where TS : ISimd<TV>
    {
        int lanes = TS.Count;
        int main = n - n % lanes;
        float top = float.NegativeInfinity;
        if (main > 0)
        {
            TV m = TS.Load(x);
            for (int i = lanes; i < main; i += lanes)
            {
                m = TS.Max(m, TS.Load(x + i));
            }

            top = TS.MaxAcross(m);
        }

        for (int i = main; i < n; i++)
        {
            top = MathF.Max(top, x[i]);
        }

        TV vmax = TS.Broadcast(top);
        TV sum = TS.Zero;
        for (int i = 0; i < main; i += lanes)
        {
            TV e = SimdMath.Exp<TV, TS>(TS.Subtract(TS.Load(x + i), vmax));
            TS.Store(e, x + i);
            sum = TS.Add(sum, e);
        }

        float total = TS.Sum(sum);
        for (int i = main; i < n; i++)
        {
            x[i] = MathF.Exp(x[i] - top);
            total += x[i];
        }

        max = top;
        return total;
    }
}

/// <summary>An elementwise binary operation, scalar and vector (TensorPrimitives' operator pattern).</summary>
internal interface IBinaryOperator
{
    static abstract float Invoke(float a, float b);
    static abstract TV Invoke<TV, TS>(TV a, TV b) where TV : unmanaged where TS : ISimd<TV>;
}

/// <summary>The one driver for elementwise operators: the widest accelerated vector, then a scalar tail.</summary>
internal static unsafe class Elementwise
{
    public static void Binary<TOp>(float* a, float* b, int n, float* destination) where TOp : IBinaryOperator
    {
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            Binary<TOp, Vector512<float>, Simd512>(a, b, n, destination);
        }
        else if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
        {
            Binary<TOp, Vector256<float>, Simd256>(a, b, n, destination);
        }
        else if (Vector128.IsHardwareAccelerated && n >= Vector128<float>.Count)
        {
            Binary<TOp, Vector128<float>, Simd128>(a, b, n, destination);
        }
        else
        {
            Binary<TOp, float, SimdScalar>(a, b, n, destination);
        }
    }

    /// <summary>
    /// Elements [<paramref name="from"/>, <paramref name="to"/>) of <see cref="Binary{TOp}"/> over <paramref name="n"/>
    /// elements, each on the path the whole call gives it (<paramref name="from"/> a multiple of 64: whole vectors of any width).
    /// </summary>
    public static void BinaryPart<TOp>(float* a, float* b, int n, int from, int to, float* destination) where TOp : IBinaryOperator
    {
        // the width the whole length chose; the piece's own tail is scalar only where the whole call's is (to == n)
        int count = to - from;
        if (from % 64 != 0 || (to != n && count % 64 != 0) || count < 0 || to > n)
        {
            throw new ArgumentException($"a piece [{from}, {to}) of {n} elements must start and, unless it ends the array, end on whole 64-element lines");
        }

        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            Part<TOp, Vector512<float>, Simd512>(a, b, n, from, count, destination);
        }
        else if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
        {
            Part<TOp, Vector256<float>, Simd256>(a, b, n, from, count, destination);
        }
        else if (Vector128.IsHardwareAccelerated && n >= Vector128<float>.Count)
        {
            Part<TOp, Vector128<float>, Simd128>(a, b, n, from, count, destination);
        }
        else
        {
            Binary<TOp, float, SimdScalar>(a + from, b + from, count, destination + from);
        }

        static void Part<TOp2, TV, TS>(float* a, float* b, int n, int from, int count, float* destination)
            where TOp2 : IBinaryOperator where TV : unmanaged where TS : ISimd<TV>
            => Binary<TOp2, TV, TS>(a + from, b + from, count, destination + from);   // from: whole vectors of any width
    }

    /// <summary>destination may alias a or b exactly (each element is read before it is written).</summary>
    internal static void Binary<TOp, TV, TS>(float* a, float* b, int n, float* destination)
        where TOp : IBinaryOperator where TV : unmanaged where TS : ISimd<TV>
    {
        int lanes = TS.Count;
        int main = n - n % lanes;
        for (int i = 0; i < main; i += lanes)
        {
            TS.Store(TOp.Invoke<TV, TS>(TS.Load(a + i), TS.Load(b + i)), destination + i);
        }

        for (int i = main; i < n; i++)
        {
            destination[i] = TOp.Invoke(a[i], b[i]);
        }
    }
}
