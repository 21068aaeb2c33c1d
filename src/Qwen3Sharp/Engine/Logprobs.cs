namespace Qwen3Sharp.Engine;

/// <summary>
/// Log-probabilities under the model's own distribution (log-softmax of the raw logits, before penalties,
/// temperature and truncation), as vLLM reports them by default.
/// </summary>
internal static class Logprobs
{
    public static TokenLogprobs Compute(ReadOnlySpan<float> logits, int chosen, int topCount)
    {
        float max = float.NegativeInfinity;
        foreach (float v in logits)
        {
            max = MathF.Max(max, v);
        }

        double sum = 0;
        foreach (float v in logits)
        {
            sum += Math.Exp(v - max);
        }

        float logSumExp = max + (float)Math.Log(sum);
        topCount = Math.Clamp(topCount, 0, Math.Min(20, logits.Length));
        var top = new (int, float)[topCount];
        int filled = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            float v = logits[i];
            if (filled < topCount)
            {
                top[filled++] = (i, v);
                for (int k = filled - 1; k > 0 && top[k].Item2 > top[k - 1].Item2; k--)
                {
                    (top[k], top[k - 1]) = (top[k - 1], top[k]);
                }
            }
            else if (topCount > 0 && v > top[topCount - 1].Item2)
            {
                top[topCount - 1] = (i, v);
                for (int k = topCount - 1; k > 0 && top[k].Item2 > top[k - 1].Item2; k--)
                {
                    (top[k], top[k - 1]) = (top[k - 1], top[k]);
                }
            }
        }

        for (int k = 0; k < topCount; k++)
        {
            top[k].Item2 -= logSumExp;
        }

        return new TokenLogprobs(chosen, logits[chosen] - logSumExp, top);
    }
}
