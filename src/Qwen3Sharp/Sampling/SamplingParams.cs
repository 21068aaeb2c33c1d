namespace Qwen3Sharp.Sampling;

/// <summary>
/// One request's sampling settings (OpenAI names plus vLLM's extras). The defaults here are the neutral
/// values (OpenAI's temperature 1, every filter and penalty off); <see cref="SamplingDefaults"/> gives Qwen's.
/// </summary>
public sealed record SamplingParams
{
    /// <summary>0 (or below <see cref="Sampler.GreedyTemperature"/>) = greedy: arg-max after bias and penalties.</summary>
    public float Temperature { get; init; } = 1f;

    /// <summary>Keep the K most likely tokens; 0 or -1 = off. Exactly K are kept (ties at the edge broken arbitrarily but deterministically, as llama.cpp).</summary>
    public int TopK { get; init; }

    /// <summary>Keep the smallest most-likely set whose probability reaches TopP; 1 = off.</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Drop tokens whose probability is below MinP times the most likely one's; 0 = off.</summary>
    public float MinP { get; init; }

    /// <summary>OpenAI: subtracted once from the logit of every token already generated in this completion.</summary>
    public float PresencePenalty { get; init; }

    /// <summary>OpenAI: subtracted from a token's logit once per time it was generated in this completion.</summary>
    public float FrequencyPenalty { get; init; }

    /// <summary>
    /// HF / llama.cpp: positive logits are divided by it, negative ones multiplied, for every token seen in the
    /// prompt (the prompt tokens passed to <see cref="Sampler"/>) or generated so far, as HF and vLLM do; 1 = off.
    /// </summary>
    public float RepetitionPenalty { get; init; } = 1f;

    /// <summary>OpenAI logit_bias: token id -> value added to its logit (±100 bans or forces in practice).</summary>
    public IReadOnlyDictionary<int, float>? LogitBias { get; init; }

    /// <summary>PRNG seed; null = a random one (see <see cref="Sampler.Seed"/> for the one used).</summary>
    public ulong? Seed { get; init; }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the OpenAI field when a value is out of range.</summary>
    public void Validate(int vocabSize)
    {
        if (!float.IsFinite(Temperature) || Temperature < 0)
        {
            throw new ArgumentOutOfRangeException("temperature", Temperature, "temperature must be a finite number >= 0.");
        }

        if (TopK < -1)
        {
            throw new ArgumentOutOfRangeException("top_k", TopK, "top_k must be -1 or 0 (off) or a positive count.");
        }

        if (!(TopP > 0 && TopP <= 1))
        {
            throw new ArgumentOutOfRangeException("top_p", TopP, "top_p must be in (0, 1].");
        }

        if (!(MinP >= 0 && MinP <= 1))
        {
            throw new ArgumentOutOfRangeException("min_p", MinP, "min_p must be in [0, 1].");
        }

        if (!(PresencePenalty >= -2 && PresencePenalty <= 2))
        {
            throw new ArgumentOutOfRangeException("presence_penalty", PresencePenalty, "presence_penalty must be in [-2, 2].");
        }

        if (!(FrequencyPenalty >= -2 && FrequencyPenalty <= 2))
        {
            throw new ArgumentOutOfRangeException("frequency_penalty", FrequencyPenalty, "frequency_penalty must be in [-2, 2].");
        }

        if (!(RepetitionPenalty > 0) || !float.IsFinite(RepetitionPenalty))
        {
            throw new ArgumentOutOfRangeException("repetition_penalty", RepetitionPenalty, "repetition_penalty must be a finite number > 0.");
        }

        if (LogitBias is not null)
        {
            foreach ((int id, float bias) in LogitBias)
            {
                if ((uint)id >= (uint)vocabSize)
                {
                    throw new ArgumentOutOfRangeException("logit_bias", id, $"logit_bias token id {id} is outside the vocabulary [0, {vocabSize}).");
                }

                if (!(bias >= -100 && bias <= 100))
                {
                    throw new ArgumentOutOfRangeException("logit_bias", bias, $"logit_bias value {bias} for token {id} must be in [-100, 100].");
                }
            }
        }
    }
}
