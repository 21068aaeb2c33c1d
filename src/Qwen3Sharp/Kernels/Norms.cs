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

        if (x.Length % n != 0 || destination.Length < x.Length)
        {
            throw new ArgumentException(
                $"x has {x.Length} elements, not a multiple of the weight's {n}, or destination ({destination.Length}) is shorter.");
        }

        fixed (float* px = x, pw = weight, py = destination)
        {
            if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
            {
                Rows<Vector512<float>, Simd512>(px, pw, n, x.Length / n, eps, py);
            }
            else if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
            {
                Rows<Vector256<float>, Simd256>(px, pw, n, x.Length / n, eps, py);
            }
            else if (Vector128.IsHardwareAccelerated && n >= Vector128<float>.Count)
            {
                Rows<Vector128<float>, Simd128>(px, pw, n, x.Length / n, eps, py);
            }
            else
            {
                Rows<float, SimdScalar>(px, pw, n, x.Length / n, eps, py);
            }
        }
    }

    /// <summary>Qwen3's q/k norm: RMSNorm of every head_dim slice of x [tokens, heads * headDim] in place.</summary>
    public static void ApplyPerHead(Span<float> x, ReadOnlySpan<float> weight, float eps) => Apply(x, weight, eps, x);

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
