namespace Qwen3Sharp.Sampling;

public readonly record struct TokenLogprob(int TokenId, float Logprob);

/// <summary>
/// Log-probabilities for the logprobs / top_logprobs response fields. They are the log-softmax of the raw
/// model logits (before bias, penalties, temperature and truncation), vLLM's default (<c>raw_logprobs</c>):
/// they describe the model, not the sampling settings.
/// </summary>
public static class LogprobCalculator
{
    public const int MaxTopCount = 20;

    /// <summary>
    /// Returns the log-probability of <paramref name="chosenTokenId"/> and fills <paramref name="topDestination"/>
    /// (up to <see cref="MaxTopCount"/> entries, at most the vocabulary) with the most likely tokens, most likely
    /// first, lower id first on ties. One pass for log-sum-exp, one for a partial selection: no sort, no allocation.
    /// </summary>
    public static float Compute(ReadOnlySpan<float> logits, int chosenTokenId, Span<TokenLogprob> topDestination)
    {
        if ((uint)chosenTokenId >= (uint)logits.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(chosenTokenId), chosenTokenId, $"Token id is outside the vocabulary [0, {logits.Length}).");
        }

        if (topDestination.Length > MaxTopCount || topDestination.Length > logits.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(topDestination), topDestination.Length, $"At most {MaxTopCount} alternatives, and no more than the vocabulary.");
        }

        float logSumExp = LogSumExp(logits);
        int topCount = topDestination.Length;
        int filled = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            float v = logits[i];
            if (filled < topCount)
            {
                topDestination[filled++] = new TokenLogprob(i, v);
            }
            else if (topCount > 0 && v > topDestination[topCount - 1].Logprob)
            {
                topDestination[topCount - 1] = new TokenLogprob(i, v);
            }
            else
            {
                continue;
            }

            // Bubble the new entry up; strict '>' keeps the lower id first on ties.
            for (int k = filled - 1; k > 0 && topDestination[k].Logprob > topDestination[k - 1].Logprob; k--)
            {
                (topDestination[k], topDestination[k - 1]) = (topDestination[k - 1], topDestination[k]);
            }
        }

        for (int k = 0; k < topCount; k++)
        {
            topDestination[k] = topDestination[k] with { Logprob = topDestination[k].Logprob - logSumExp };
        }

        return logits[chosenTokenId] - logSumExp;
    }

    /// <summary>log(sum(exp(x))), max-subtracted, summed in double.</summary>
    public static float LogSumExp(ReadOnlySpan<float> logits)
    {
        float max = float.NegativeInfinity;
        foreach (float v in logits)
        {
            max = MathF.Max(max, v);
        }

        if (float.IsInfinity(max))
        {
            return max;
        }

        double sum = 0;
        foreach (float v in logits)
        {
            sum += MathF.Exp(v - max);
        }

        return max + (float)Math.Log(sum);
    }
}
