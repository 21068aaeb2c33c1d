using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Kernels.Reference;

/// <summary>
/// Plain loops, one per kernel: the oracle the SIMD kernels are tested against.
/// Written for clarity, accumulating in float32 like the production kernels (double where noted).
/// </summary>
public static class ScalarKernels
{
    public static void MatMul(ReadOnlySpan<float> x, int tokenCount, in WeightView w, Span<float> destination, bool accumulate)
    {
        int n = w.ColCount, m = w.RowCount;
        for (int t = 0; t < tokenCount; t++)
        {
            ReadOnlySpan<float> xt = x.Slice(t * n, n);
            for (int r = 0; r < m; r++)
            {
                float sum = 0;
                for (int c = 0; c < n; c++)
                {
                    sum += w[r, c] * xt[c];
                }

                ref float y = ref destination[t * m + r];
                y = accumulate ? y + sum : sum;
            }
        }
    }

    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> destination)
    {
        int n = weight.Length;
        for (int row = 0; row < x.Length / n; row++)
        {
            ReadOnlySpan<float> xr = x.Slice(row * n, n);
            Span<float> yr = destination.Slice(row * n, n);
            float sumSquares = 0;
            for (int i = 0; i < n; i++)
            {
                sumSquares += xr[i] * xr[i];
            }

            float inv = 1f / MathF.Sqrt(sumSquares / n + eps);
            for (int i = 0; i < n; i++)
            {
                yr[i] = weight[i] * (xr[i] * inv);
            }
        }
    }

    public static void SiluMul(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> destination)
    {
        for (int i = 0; i < gate.Length; i++)
        {
            float g = gate[i];
            destination[i] = g / (1f + MathF.Exp(-g)) * up[i];
        }
    }

    public static void Softmax(Span<float> x)
    {
        float max = float.NegativeInfinity;
        foreach (float v in x)
        {
            max = MathF.Max(max, v);
        }

        float sum = 0;
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = MathF.Exp(x[i] - max);
            sum += x[i];
        }

        for (int i = 0; i < x.Length; i++)
        {
            x[i] /= sum;
        }
    }

    public static void Gather(in WeightView table, ReadOnlySpan<int> tokenIds, Span<float> destination)
    {
        int n = table.ColCount;
        for (int t = 0; t < tokenIds.Length; t++)
        {
            for (int c = 0; c < n; c++)
            {
                destination[t * n + c] = table[tokenIds[t], c];
            }
        }
    }

    public static void Rope(Span<float> x, int headCount, int headDim, ReadOnlySpan<int> positions,
        ReadOnlySpan<float> inverseFrequencies, float attentionScaling)
    {
        int half = headDim / 2;
        for (int t = 0; t < positions.Length; t++)
        {
            for (int h = 0; h < headCount; h++)
            {
                Span<float> head = x.Slice((t * headCount + h) * headDim, headDim);
                for (int i = 0; i < half; i++)
                {
                    float angle = positions[t] * inverseFrequencies[i];   // float32, as transformers computes it
                    float cos = (float)Math.Cos(angle) * attentionScaling;
                    float sin = (float)Math.Sin(angle) * attentionScaling;
                    float a = head[i], b = head[i + half];
                    head[i] = a * cos - b * sin;
                    head[i + half] = b * cos + a * sin;
                }
            }
        }
    }

    public static void CausalAttention(ReadOnlySpan<float> q, int tokenCount, int startPosition,
        ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int headCount, int kvHeadCount, int headDim,
        float scale, Span<float> destination)
    {
        int group = headCount / kvHeadCount;
        int kvStride = kvHeadCount * headDim;
        float[] scores = new float[startPosition + tokenCount];
        for (int t = 0; t < tokenCount; t++)
        {
            int visible = startPosition + t + 1;
            for (int h = 0; h < headCount; h++)
            {
                ReadOnlySpan<float> qh = q.Slice((t * headCount + h) * headDim, headDim);
                int kvh = h / group;
                for (int p = 0; p < visible; p++)
                {
                    ReadOnlySpan<float> k = keys.Slice(p * kvStride + kvh * headDim, headDim);
                    float dot = 0;
                    for (int i = 0; i < headDim; i++)
                    {
                        dot += qh[i] * k[i];
                    }

                    scores[p] = dot * scale;
                }

                Softmax(scores.AsSpan(0, visible));
                Span<float> outH = destination.Slice((t * headCount + h) * headDim, headDim);
                outH.Clear();
                for (int p = 0; p < visible; p++)
                {
                    ReadOnlySpan<float> v = values.Slice(p * kvStride + kvh * headDim, headDim);
                    for (int i = 0; i < headDim; i++)
                    {
                        outH[i] += scores[p] * v[i];
                    }
                }
            }
        }
    }
}
