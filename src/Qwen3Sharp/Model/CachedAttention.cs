namespace Qwen3Sharp.Model;

/// <summary>
/// Causal grouped-query attention of new tokens against the cache, with the score buffer supplied by the caller
/// so that decoding allocates nothing. Same contract as <c>Kernels.Attention.Causal</c>, whose current body
/// allocates its score buffer per call; once that kernel takes (or pools) its buffer, the model can call it instead.
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
                    ReadOnlySpan<float> k = keys.Slice(p * kvStride + kvOffset, headDim);
                    float dot = 0;
                    for (int i = 0; i < headDim; i++)
                    {
                        dot += qh[i] * k[i];
                    }

                    float v = dot * scale;
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
                    float w = s[p] * inv;
                    ReadOnlySpan<float> v = values.Slice(p * kvStride + kvOffset, headDim);
                    for (int i = 0; i < headDim; i++)
                    {
                        outH[i] += w * v[i];
                    }
                }
            }
        }
    }
}
