using System.Numerics;

namespace Qwen3Sharp.Model;

/// <summary>
/// Causal grouped-query attention of new tokens against the cache, with the score buffer supplied by the caller
/// so that decoding allocates nothing. Same contract as <c>Kernels.Attention.Causal</c> and checked against its
/// scalar twin; the scalar body of that kernel allocates its score buffer per call, so the model uses this one until
/// the kernel is allocation-free in steady state (then the call in Qwen3Model.RunLayers is a one-line swap).
/// </summary>
internal static class CachedAttention
{
    /// <param name="q">[tokenCount, headCount * headDim]</param>
    /// <param name="keys">[≥ startPosition + tokenCount, kvHeadCount * headDim]</param>
    /// <param name="values">[≥ startPosition + tokenCount, kvHeadCount * headDim]</param>
    /// <param name="scores">[≥ startPosition + tokenCount]</param>
    /// <param name="destination">[tokenCount, headCount * headDim]</param>
    public static void Causal(ReadOnlySpan<float> q, int tokenCount, int startPosition,
        ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int headCount, int kvHeadCount, int headDim,
        float scale, Span<float> scores, Span<float> destination)
    {
        int group = headCount / kvHeadCount;
        int kvStride = kvHeadCount * headDim;
        for (int t = 0; t < tokenCount; t++)
        {
            int visible = startPosition + t + 1;
            Span<float> s = scores[..visible];
            for (int h = 0; h < headCount; h++)
            {
                ReadOnlySpan<float> qh = q.Slice((t * headCount + h) * headDim, headDim);
                int kvOffset = h / group * headDim;
                float max = float.NegativeInfinity;
                for (int p = 0; p < visible; p++)
                {
                    float v = Dot(qh, keys.Slice(p * kvStride + kvOffset, headDim)) * scale;
                    s[p] = v;
                    max = MathF.Max(max, v);
                }

                float sum = 0;
                for (int p = 0; p < visible; p++)
                {
                    float e = MathF.Exp(s[p] - max);
                    s[p] = e;
                    sum += e;
                }

                float inv = 1f / sum;
                Span<float> outH = destination.Slice((t * headCount + h) * headDim, headDim);
                outH.Clear();
                for (int p = 0; p < visible; p++)
                {
                    AddScaled(values.Slice(p * kvStride + kvOffset, headDim), s[p] * inv, outH);
                }
            }
        }
    }

    private static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        int i = 0;
        float sum = 0;
        if (Vector.IsHardwareAccelerated && a.Length >= Vector<float>.Count)
        {
            Vector<float> acc = Vector<float>.Zero;
            for (; i <= a.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                acc += new Vector<float>(a[i..]) * new Vector<float>(b[i..]);
            }

            sum = Vector.Sum(acc);
        }

        for (; i < a.Length; i++)
        {
            sum += a[i] * b[i];
        }

        return sum;
    }

    /// <summary>destination += weight * x</summary>
    private static void AddScaled(ReadOnlySpan<float> x, float weight, Span<float> destination)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<float>.Count)
        {
            var w = new Vector<float>(weight);
            for (; i <= x.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                (new Vector<float>(destination[i..]) + w * new Vector<float>(x[i..])).CopyTo(destination[i..]);
            }
        }

        for (; i < x.Length; i++)
        {
            destination[i] += weight * x[i];
        }
    }
}
