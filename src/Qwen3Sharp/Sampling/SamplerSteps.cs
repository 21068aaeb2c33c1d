namespace Qwen3Sharp.Sampling;

/// <summary>
/// The transforms of the sampler chain over a candidate set (<c>values[i]</c> belongs to token <c>ids[i]</c>),
/// each working in place on the first <c>count</c> entries and returning the new count. No allocations.
/// </summary>
internal static class SamplerSteps
{
    /// <summary>Moves the <paramref name="k"/> largest values (and their ids) to the front, in no particular order (nth_element).</summary>
    public static int TopK(Span<float> values, Span<int> ids, int count, int k)
    {
        if (k <= 0 || k >= count)
        {
            return count;
        }

        int target = k - 1;
        int lo = 0;
        int hi = count - 1;
        while (lo < hi)
        {
            float a = values[lo], b = values[lo + ((hi - lo) >> 1)], c = values[hi];
            float pivot = MathF.Max(MathF.Min(a, b), MathF.Min(MathF.Max(a, b), c));   // median of three
            int i = lo, j = hi;
            while (i <= j)
            {
                while (values[i] > pivot)
                {
                    i++;
                }

                while (values[j] < pivot)
                {
                    j--;
                }

                if (i <= j)
                {
                    (values[i], values[j]) = (values[j], values[i]);
                    (ids[i], ids[j]) = (ids[j], ids[i]);
                    i++;
                    j--;
                }
            }

            // [lo, j] >= pivot, (j, i) == pivot, [i, hi] <= pivot
            if (target <= j)
            {
                hi = j;
            }
            else if (target >= i)
            {
                lo = i;
            }
            else
            {
                break;
            }
        }

        return k;
    }

    /// <summary>
    /// Small-k top-k straight from the logits: one pass keeping the k largest finite values sorted, most likely
    /// first (lower id first on ties), in <paramref name="values"/>/<paramref name="ids"/>. Most elements cost one
    /// comparison, so this beats building the full candidate set and selecting when k is small.
    /// Returns the count kept (less than k when fewer logits are above -inf).
    /// </summary>
    public static int TopKScan(ReadOnlySpan<float> logits, int k, Span<float> values, Span<int> ids)
    {
        int filled = 0;
        float threshold = float.NegativeInfinity;       // the k-th value once k are held
        for (int i = 0; i < logits.Length; i++)
        {
            float v = logits[i];
            if (!(v > threshold))                        // also skips NaN and -inf
            {
                continue;
            }

            int j = filled < k ? filled++ : k - 1;
            while (j > 0 && values[j - 1] < v)
            {
                values[j] = values[j - 1];
                ids[j] = ids[j - 1];
                j--;
            }

            values[j] = v;
            ids[j] = i;
            if (filled == k)
            {
                threshold = values[k - 1];
            }
        }

        return filled;
    }

    public static void Scale(Span<float> values, int count, float factor)
    {
        for (int i = 0; i < count; i++)
        {
            values[i] *= factor;
        }
    }

    /// <summary>values := softmax(values) over the first <paramref name="count"/> entries (max-subtracted, double sum).</summary>
    public static void Softmax(Span<float> values, int count)
    {
        float max = float.NegativeInfinity;
        for (int i = 0; i < count; i++)
        {
            max = MathF.Max(max, values[i]);
        }

        if (float.IsPositiveInfinity(max))
        {
            // A +inf logit (e.g. forced by bias) takes all the mass, shared among its peers.
            int infinite = 0;
            for (int i = 0; i < count; i++)
            {
                infinite += float.IsPositiveInfinity(values[i]) ? 1 : 0;
            }

            for (int i = 0; i < count; i++)
            {
                values[i] = float.IsPositiveInfinity(values[i]) ? 1f / infinite : 0f;
            }

            return;
        }

        double sum = 0;
        for (int i = 0; i < count; i++)
        {
            float e = MathF.Exp(values[i] - max);
            values[i] = e;
            sum += e;
        }

        float inv = (float)(1.0 / sum);
        for (int i = 0; i < count; i++)
        {
            values[i] *= inv;
        }
    }

    /// <summary>Sorts by probability, most likely first (ties keep a deterministic order). Allocation free.</summary>
    public static void SortDescending(Span<float> probs, Span<int> ids, int count)
    {
        Span<float> p = probs[..count];
        for (int i = 0; i < p.Length; i++)
        {
            p[i] = -p[i];
        }

        p.Sort(ids[..count]);
        for (int i = 0; i < p.Length; i++)
        {
            p[i] = -p[i];
        }
    }

    /// <summary>
    /// Top-p over normalized probabilities: keeps the most likely tokens until their cumulative probability
    /// reaches <paramref name="topP"/> (at least one). Sorts the survivors, most likely first. Before sorting,
    /// drops tokens below (1 - topP) / (count - 1) (llama2.c): such a token can never be inside the nucleus,
    /// since all tokens above it would have to hold less than topP together.
    /// </summary>
    public static int TopP(Span<float> probs, Span<int> ids, int count, float topP, bool sorted = false)
    {
        if (topP >= 1f || count <= 1)
        {
            return count;
        }

        int n = count;
        if (!sorted && count > 64)
        {
            float cutoff = (1f - topP) / (count - 1);
            n = 0;
            for (int i = 0; i < count; i++)
            {
                if (probs[i] >= cutoff)
                {
                    probs[n] = probs[i];
                    ids[n] = ids[i];
                    n++;
                }
            }
        }

        if (!sorted)
        {
            SortDescending(probs, ids, n);
        }

        double cumulative = 0;
        for (int i = 0; i < n; i++)
        {
            cumulative += probs[i];
            if (cumulative >= topP)
            {
                return i + 1;
            }
        }

        return n;
    }

    /// <summary>Keeps tokens with probability >= minP * max probability, preserving their order.</summary>
    public static int MinP(Span<float> probs, Span<int> ids, int count, float minP)
    {
        if (minP <= 0f || count <= 1)
        {
            return count;
        }

        float max = 0f;
        for (int i = 0; i < count; i++)
        {
            max = MathF.Max(max, probs[i]);
        }

        float threshold = minP * max;
        int n = 0;
        for (int i = 0; i < count; i++)
        {
            if (probs[i] >= threshold)
            {
                probs[n] = probs[i];
                ids[n] = ids[i];
                n++;
            }
        }

        return n;
    }

    /// <summary>Index of the largest value, the lowest index on ties; NaN never wins; -1 if none is above -inf.</summary>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = -1;
        float bestValue = float.NegativeInfinity;
        for (int i = 0; i < values.Length; i++)
        {
            if (values[i] > bestValue)
            {
                bestValue = values[i];
                best = i;
            }
        }

        return best;
    }

    /// <summary>Draws an index in [0, count) proportionally to the (not necessarily normalized) weights.</summary>
    public static int Draw(ReadOnlySpan<float> weights, int count, double uniform)
    {
        double total = 0;
        for (int i = 0; i < count; i++)
        {
            total += weights[i];
        }

        double r = uniform * total;
        double cumulative = 0;
        for (int i = 0; i < count; i++)
        {
            cumulative += weights[i];
            if (r < cumulative)
            {
                return i;
            }
        }

        // Rounding left r at the very top: the last token with any weight.
        for (int i = count - 1; i > 0; i--)
        {
            if (weights[i] > 0)
            {
                return i;
            }
        }

        return 0;
    }
}
