using System.Runtime.Intrinsics;

namespace Qwen3Sharp.Kernels;

public static unsafe class RmsNorm
{
    /// <summary>Row-wise RMSNorm: x [rows, weight.Length] -> destination, same shape.</summary>
    public static void Apply(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> destination)
    {
        int n = weight.Length;
        if (n == 0)
        {
            return;
        }

        CheckShapes(x.Length, n, destination.Length);

        fixed (float* px = x, pw = weight, py = destination)
        {
            Rows(px, pw, n, x.Length / n, eps, py);
        }
    }

    /// <summary>
    /// <see cref="Apply(ReadOnlySpan{float}, ReadOnlySpan{float}, float, Span{float})"/> with the rows split across
    /// <paramref name="pool"/> when there are at least <see cref="PooledElementwise.MinElements"/> elements (a prefill; a
    /// decode step's few rows stay on the calling thread). Each row is normalised by the same code either way: the same bits.
    /// </summary>
    public static void Apply(WorkerPool pool, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> destination)
    {
        int n = weight.Length;
        int rows = n == 0 ? 0 : x.Length / n;
        int items = PooledElementwise.Items(pool, x.Length, rows);
        if (items <= 1)
        {
            Apply(x, weight, eps, destination);
            return;
        }

        CheckShapes(x.Length, n, destination.Length);

        fixed (float* px = x, pw = weight, py = destination)
        {
            var job = new RowsJob { X = px, Weight = pw, N = n, Rows = rows, Eps = eps, Destination = py, RowsPerItem = (rows + items - 1) / items };
            pool.Run(ref job, items);
        }
    }

    private static void CheckShapes(int xLength, int n, int destinationLength)
    {
        if (xLength % n != 0 || destinationLength < xLength)
        {
            throw new ArgumentException(
                $"x has {xLength} elements, not a multiple of the weight's {n}, or destination ({destinationLength}) is shorter.");
        }
    }

    /// <summary>Qwen3's q/k norm: RMSNorm of every head_dim slice of x [tokens, heads * headDim] in place.</summary>
    public static void ApplyPerHead(Span<float> x, ReadOnlySpan<float> weight, float eps) => Apply(x, weight, eps, x);

    /// <summary><see cref="ApplyPerHead(Span{float}, ReadOnlySpan{float}, float)"/> across <paramref name="pool"/> (as the pooled <c>Apply</c>).</summary>
    public static void ApplyPerHead(WorkerPool pool, Span<float> x, ReadOnlySpan<float> weight, float eps) => Apply(pool, x, weight, eps, x);

    private struct RowsJob : IPoolJob
    {
        public float* X, Weight, Destination;
        public int N, Rows, RowsPerItem;
        public float Eps;

        public readonly void Execute(int index, int worker)
        {
            int first = index * RowsPerItem, count = Math.Min(RowsPerItem, Rows - first);
            if (count > 0)
            {
                RmsNorm.Rows(X + (long)first * N, Weight, N, count, Eps, Destination + (long)first * N);
            }
        }
    }

    /// <summary>Every row of x [rowCount, n] through the widest vector that n fills.</summary>
    private static void Rows(float* px, float* pw, int n, int rowCount, float eps, float* py)
    {
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            Rows<Vector512<float>, Simd512>(px, pw, n, rowCount, eps, py);
        }
        else if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
        {
            Rows<Vector256<float>, Simd256>(px, pw, n, rowCount, eps, py);
        }
        else if (Vector128.IsHardwareAccelerated && n >= Vector128<float>.Count)
        {
            Rows<Vector128<float>, Simd128>(px, pw, n, rowCount, eps, py);
        }
        else
        {
            Rows<float, SimdScalar>(px, pw, n, rowCount, eps, py);
        }
    }

    /// <summary>Every row of x [rowCount, n] normalised into destination (may alias x).</summary>
    internal static void Rows<TV, TS>(float* x, float* weight, int n, int rowCount, float eps, float* destination)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int lanes = TS.Count;
        int main = n - n % lanes;
        for (int row = 0; row < rowCount; row++)
        {
            float* xr = x + (long)row * n;
            float* yr = destination + (long)row * n;
            TV a = TS.Zero, b = TS.Zero;
            int i = 0;
            for (; i + 2 * lanes <= main; i += 2 * lanes)
            {
                TV u = TS.Load(xr + i), v = TS.Load(xr + i + lanes);
                a = TS.MultiplyAdd(u, u, a);
                b = TS.MultiplyAdd(v, v, b);
            }

            for (; i < main; i += lanes)
            {
                TV u = TS.Load(xr + i);
                a = TS.MultiplyAdd(u, u, a);
            }

            float sumSquares = TS.Sum(TS.Add(a, b));
            for (i = main; i < n; i++)
            {
                sumSquares += xr[i] * xr[i];
            }

            float inv = 1f / MathF.Sqrt(sumSquares / n + eps);
            TV vinv = TS.Broadcast(inv);
            for (i = 0; i < main; i += lanes)
            {
                TS.Store(TS.Multiply(TS.Load(weight + i), TS.Multiply(TS.Load(xr + i), vinv)), yr + i);
            }

            for (i = main; i < n; i++)
            {
                yr[i] = weight[i] * (xr[i] * inv);
            }
        }
    }
}
