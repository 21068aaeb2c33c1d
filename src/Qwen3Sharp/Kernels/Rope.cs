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
    /// <paramref name="attentionScaling"/> (1 except YaRN). The model's forward fills one <see cref="FillTable"/> per
    /// pass and <see cref="Rotate"/>s q and k of every layer with it; this computes the same table a token at a time.
    /// </summary>
    public static void Apply(Span<float> x, int headCount, int headDim, ReadOnlySpan<int> positions,
        ReadOnlySpan<float> inverseFrequencies, float attentionScaling)
    {
        CheckShapes(x.Length, headCount, headDim, positions.Length, inverseFrequencies.Length);
        float[]? rented = null;
        Span<float> table = headDim <= 256 ? stackalloc float[256] : (rented = ArrayPool<float>.Shared.Rent(headDim));
        try
        {
            int stride = headCount * headDim;
            for (int t = 0; t < positions.Length; t++)
            {
                FillTable(positions.Slice(t, 1), inverseFrequencies, headDim, attentionScaling, table[..headDim]);
                Rotate(x.Slice(t * stride, stride), headCount, headDim, table[..headDim]);
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

    /// <summary>
    /// The rotation of each token at <paramref name="positions"/>: <paramref name="table"/> [tokenCount, headDim] gets
    /// per token cos [headDim/2] then sin [headDim/2] of position · inverse frequency (the angle in float32, as
    /// transformers computes it; cos and sin in double, rounded), times <paramref name="attentionScaling"/>. It depends on
    /// the positions alone, so one table serves q and k of every layer (per layer and head it cost 64 cos and 64 sin
    /// per token: 2% of a 2,048-token prefill).
    /// </summary>
    public static void FillTable(ReadOnlySpan<int> positions, ReadOnlySpan<float> inverseFrequencies, int headDim, float attentionScaling,
        Span<float> table)
    {
        int half = headDim / 2;
        if (inverseFrequencies.Length < half || table.Length < (long)positions.Length * headDim)
        {
            throw new ArgumentException(
                $"Rope needs {half} inverse frequencies (got {inverseFrequencies.Length}) and a table of at least " +
                $"{(long)positions.Length * headDim} elements (got {table.Length}).");
        }

        for (int t = 0; t < positions.Length; t++)
        {
            Span<float> cos = table.Slice(t * headDim, half), sin = table.Slice(t * headDim + half, half);
            for (int i = 0; i < half; i++)
            {
                float angle = positions[t] * inverseFrequencies[i];   // float32, as transformers computes it
                cos[i] = (float)Math.Cos(angle) * attentionScaling;
                sin[i] = (float)Math.Sin(angle) * attentionScaling;
            }
        }
    }

    /// <summary>
    /// Rotates every head of x [tokenCount, headCount * headDim] in place by its token's row of <paramref name="table"/>
    /// (<see cref="FillTable"/>; tokenCount from x's length).
    /// </summary>
    public static void Rotate(Span<float> x, int headCount, int headDim, ReadOnlySpan<float> table)
    {
        int tokenCount = x.Length / (headCount * headDim);
        if (x.Length != tokenCount * headCount * headDim || table.Length < (long)tokenCount * headDim)
        {
            throw new ArgumentException(
                $"Rope.Rotate needs x of whole tokens of {headCount * headDim} elements (got {x.Length}) and a table of at least " +
                $"{(long)tokenCount * headDim} elements (got {table.Length}).");
        }

        int half = headDim / 2;
        fixed (float* px = x, cs = table)
        {
            if (Vector512.IsHardwareAccelerated && half >= Vector512<float>.Count)
            {
                Rotate<Vector512<float>, Simd512>(px, headCount, headDim, tokenCount, cs);
            }
            else if (Vector256.IsHardwareAccelerated && half >= Vector256<float>.Count)
            {
                Rotate<Vector256<float>, Simd256>(px, headCount, headDim, tokenCount, cs);
            }
            else if (Vector128.IsHardwareAccelerated && half >= Vector128<float>.Count)
            {
                Rotate<Vector128<float>, Simd128>(px, headCount, headDim, tokenCount, cs);
            }
            else
            {
                Rotate<float, SimdScalar>(px, headCount, headDim, tokenCount, cs);
            }
        }
    }

    /// <summary>
    /// <see cref="Rotate(Span{float}, int, int, ReadOnlySpan{float})"/> with the tokens split across <paramref name="pool"/>
    /// when x has at least <see cref="PooledElementwise.MinElements"/> elements (each token rotated by the same code: the same bits).
    /// </summary>
    public static void Rotate(WorkerPool pool, Span<float> x, int headCount, int headDim, ReadOnlySpan<float> table)
    {
        int stride = headCount * headDim;
        int tokenCount = stride == 0 ? 0 : x.Length / stride;
        int items = PooledElementwise.Items(pool, x.Length, tokenCount);
        if (items <= 1 || x.Length != tokenCount * stride || table.Length < (long)tokenCount * headDim)
        {
            Rotate(x, headCount, headDim, table);   // inline, or its clear error
            return;
        }

        fixed (float* px = x, cs = table)
        {
            var job = new RotateJob { X = px, Table = cs, HeadCount = headCount, HeadDim = headDim, Tokens = tokenCount, PerItem = (tokenCount + items - 1) / items };
            pool.Run(ref job, items);
        }
    }

    private struct RotateJob : IPoolJob
    {
        public float* X, Table;
        public int HeadCount, HeadDim, Tokens, PerItem;

        public readonly void Execute(int index, int worker)
        {
            int first = index * PerItem, count = Math.Min(PerItem, Tokens - first);
            if (count > 0)
            {
                int stride = HeadCount * HeadDim;
                Rotate(new Span<float>(X + (long)first * stride, count * stride), HeadCount, HeadDim,
                    new ReadOnlySpan<float>(Table + (long)first * HeadDim, count * HeadDim));
            }
        }
    }

    private static void CheckShapes(long xLength, int headCount, int headDim, int tokenCount, int inverseFrequencies)
    {
        int half = headDim / 2;
        if (inverseFrequencies < half || xLength < (long)tokenCount * headCount * headDim)
        {
            throw new ArgumentException(
                $"Rope needs {half} inverse frequencies (got {inverseFrequencies}) and x of at least " +
                $"{(long)tokenCount * headCount * headDim} elements (got {xLength}).");
        }
    }

    /// <summary><paramref name="table"/>: per token headDim floats, cos [half] then sin [half].</summary>
    internal static void Rotate<TV, TS>(float* x, int headCount, int headDim, int tokenCount, float* table)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int half = headDim / 2;
        int lanes = TS.Count;
        int main = half - half % lanes;
        for (int t = 0; t < tokenCount; t++)
        {
            float* cos = table + (long)t * headDim, sin = cos + half;
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
