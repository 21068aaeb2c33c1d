using System.Buffers;
using System.Runtime.Intrinsics;

namespace Qwen3Sharp.Kernels;

/// <summary>
/// Rotary position embedding, rotate-half form (Hugging Face's <c>apply_rotary_pos_emb</c>):
/// dimension i pairs with i + headDim/2.
/// </summary>
public static unsafe class Rope
{
    /// <summary>
    /// Rotates every head of x [tokenCount, headCount * headDim] in place; token t is at positions[t].
    /// <paramref name="inverseFrequencies"/> has headDim/2 entries; cos and sin are multiplied by
    /// <paramref name="attentionScaling"/> (1 except YaRN).
    /// </summary>
    public static void Apply(Span<float> x, int headCount, int headDim, ReadOnlySpan<int> positions,
        ReadOnlySpan<float> inverseFrequencies, float attentionScaling)
    {
        int half = headDim / 2;
        if (inverseFrequencies.Length < half || x.Length < (long)positions.Length * headCount * headDim)
        {
            throw new ArgumentException(
                $"Rope needs {half} inverse frequencies (got {inverseFrequencies.Length}) and x of at least " +
                $"{(long)positions.Length * headCount * headDim} elements (got {x.Length}).");
        }

        float[]? rented = null;
        Span<float> table = headDim <= 256 ? stackalloc float[256] : (rented = ArrayPool<float>.Shared.Rent(headDim));
        try
        {
            fixed (float* px = x, pf = inverseFrequencies, cs = table)
            fixed (int* pp = positions)
            {
                if (Vector512.IsHardwareAccelerated && half >= Vector512<float>.Count)
                {
                    Rotate<Vector512<float>, Simd512>(px, headCount, headDim, pp, positions.Length, pf, attentionScaling, cs);
                }
                else if (Vector256.IsHardwareAccelerated && half >= Vector256<float>.Count)
                {
                    Rotate<Vector256<float>, Simd256>(px, headCount, headDim, pp, positions.Length, pf, attentionScaling, cs);
                }
                else if (Vector128.IsHardwareAccelerated && half >= Vector128<float>.Count)
                {
                    Rotate<Vector128<float>, Simd128>(px, headCount, headDim, pp, positions.Length, pf, attentionScaling, cs);
                }
                else
                {
                    Rotate<float, SimdScalar>(px, headCount, headDim, pp, positions.Length, pf, attentionScaling, cs);
                }
            }
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<float>.Shared.Return(rented);
            }
        }
    }

    /// <summary><paramref name="table"/> holds headDim floats: cos [half] then sin [half], refilled per token.</summary>
    internal static void Rotate<TV, TS>(float* x, int headCount, int headDim, int* positions, int tokenCount,
        float* inverseFrequencies, float attentionScaling, float* table)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int half = headDim / 2;
        int lanes = TS.Count;
        int main = half - half % lanes;
        float* cos = table, sin = table + half;
        for (int t = 0; t < tokenCount; t++)
        {
            for (int i = 0; i < half; i++)
            {
                float angle = positions[t] * inverseFrequencies[i];   // float32, as transformers computes it
                cos[i] = (float)Math.Cos(angle) * attentionScaling;
                sin[i] = (float)Math.Sin(angle) * attentionScaling;
            }

            for (int h = 0; h < headCount; h++)
            {
                float* head = x + ((long)t * headCount + h) * headDim;
                for (int i = 0; i < main; i += lanes)
                {
                    TV a = TS.Load(head + i), b = TS.Load(head + half + i);
                    TV c = TS.Load(cos + i), s = TS.Load(sin + i);
                    TS.Store(TS.Subtract(TS.Multiply(a, c), TS.Multiply(b, s)), head + i);
                    TS.Store(TS.Add(TS.Multiply(b, c), TS.Multiply(a, s)), head + half + i);
                }

                for (int i = main; i < half; i++)
                {
                    float a = head[i], b = head[i + half];
                    head[i] = a * cos[i] - b * sin[i];
                    head[i + half] = b * cos[i] + a * sin[i];
                }
            }
        }
    }
}
