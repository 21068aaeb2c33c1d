using System.Security.Cryptography;

namespace Qwen3Sharp.Sampling;

/// <summary>
/// One request's token sampler: a llama.cpp-style chain over a candidate buffer allocated once, in this order:
/// logit bias -> repetition / frequency / presence penalties -> (greedy when temperature is 0) -> temperature
/// -> top-k -> softmax -> top-p -> min-p -> draw. The filters run in HF's and vLLM's order (temperature,
/// top-k, top-p, min-p); top-p and min-p renormalize implicitly (the draw is proportional to what is left).
/// </summary>
/// <remarks>
/// <see cref="Sample(ReadOnlySpan{float})"/> allocates nothing and leaves the logits untouched (raw logits stay
/// available for logprobs). Penalty counts are kept incrementally: call <see cref="Accept"/> with every token
/// that joins the output, sampled or forced. The same seed, logits and accepted tokens give the same tokens on
/// every machine: the PRNG is <see cref="SeededRandom"/>, not <see cref="Random"/>.
/// </remarks>
public sealed class Sampler
{
    /// <summary>Up to this k, top-k is one scan keeping a sorted list; above it, quickselect over all candidates.</summary>
    internal const int SmallTopK = 64;

    /// <summary>Temperatures below this are greedy (vLLM's epsilon): dividing by them would only overflow.</summary>
    public const float GreedyTemperature = 1e-5f;

    private readonly float[] _work;            // [vocabSize] logits after bias and penalties
    private readonly float[] _values;          // [vocabSize] candidate logits, then probabilities
    private readonly int[] _ids;               // [vocabSize] candidate token ids
    private readonly int[] _biasIds;           // [biasCount]
    private readonly float[] _biasValues;      // [biasCount]
    private readonly bool _penalize;
    private readonly int[] _outputCounts;      // [vocabSize] times each token was generated (empty if no penalty)
    private readonly bool[] _seen;             // [vocabSize] in prompt (repetition penalty only) or generated
    private readonly int[] _seenIds;           // [vocabSize] the tokens with _seen set, first _seenCount used
    private int _seenCount;
    private int _candidateCount;
    private SeededRandom _random;

    /// <param name="promptTokens">The prompt, for the repetition penalty (HF and vLLM apply it to prompt and output).</param>
    public Sampler(int vocabSize, SamplingParams parameters, ReadOnlySpan<int> promptTokens = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocabSize);
        ArgumentNullException.ThrowIfNull(parameters);
        parameters.Validate(vocabSize);
        VocabSize = vocabSize;
        Parameters = parameters;
        _work = new float[vocabSize];
        _values = new float[vocabSize];
        _ids = new int[vocabSize];

        int biasCount = parameters.LogitBias?.Count ?? 0;
        _biasIds = new int[biasCount];
        _biasValues = new float[biasCount];
        if (parameters.LogitBias is not null)
        {
            int b = 0;
            foreach ((int id, float bias) in parameters.LogitBias.OrderBy(kv => kv.Key))
            {
                _biasIds[b] = id;
                _biasValues[b++] = bias;
            }
        }

        _penalize = parameters.PresencePenalty != 0 || parameters.FrequencyPenalty != 0 || parameters.RepetitionPenalty != 1;
        _outputCounts = _penalize ? new int[vocabSize] : [];
        _seen = _penalize ? new bool[vocabSize] : [];
        _seenIds = _penalize ? new int[vocabSize] : [];
        if (_penalize && parameters.RepetitionPenalty != 1)
        {
            foreach (int token in promptTokens)
            {
                MarkSeen(token);
            }
        }

        if (parameters.Seed is { } seed)
        {
            Seed = seed;
        }
        else
        {
            Span<byte> bytes = stackalloc byte[8];
            RandomNumberGenerator.Fill(bytes);
            Seed = BitConverter.ToUInt64(bytes);
        }

        _random = new SeededRandom(Seed);
    }

    public int VocabSize { get; }

    public SamplingParams Parameters { get; }

    /// <summary>The PRNG seed in use (the request's, or the random one picked when it set none).</summary>
    public ulong Seed { get; }

    /// <summary>Tokens passed to <see cref="Accept"/> so far.</summary>
    public int AcceptedCount { get; private set; }

    /// <summary>Chooses the next token. <paramref name="logits"/> [vocabSize] is not modified.</summary>
    /// <exception cref="InvalidOperationException">Every logit is -inf or NaN after bias and penalties.</exception>
    public int Sample(ReadOnlySpan<float> logits)
    {
        ApplyBiasAndPenalties(logits);
        SamplingParams p = Parameters;
        if (p.Temperature < GreedyTemperature)
        {
            int best = SamplerSteps.ArgMax(_work);
            if (best < 0)
            {
                ThrowNoCandidate();
            }

            _ids[0] = best;
            _values[0] = 1f;
            _candidateCount = 1;
            return best;
        }

        int n;
        bool sorted = false;
        if (p.TopK > 0 && p.TopK <= SmallTopK && p.TopK < VocabSize)
        {
            n = SamplerSteps.TopKScan(_work, p.TopK, _values, _ids);
            sorted = true;
        }
        else
        {
            n = 0;
            for (int i = 0; i < _work.Length; i++)
            {
                float v = _work[i];
                if (v > float.NegativeInfinity)        // false for NaN too
                {
                    _values[n] = v;
                    _ids[n] = i;
                    n++;
                }
            }

            n = SamplerSteps.TopK(_values, _ids, n, p.TopK);
        }

        if (n == 0)
        {
            ThrowNoCandidate();
        }

        if (p.Temperature != 1f)
        {
            SamplerSteps.Scale(_values, n, 1f / p.Temperature);
        }

        SamplerSteps.Softmax(_values, n);
        n = SamplerSteps.TopP(_values, _ids, n, p.TopP, sorted);
        n = SamplerSteps.MinP(_values, _ids, n, p.MinP);
        _candidateCount = n;
        return _ids[SamplerSteps.Draw(_values, n, _random.NextDouble())];
    }

    /// <summary>Same as <see cref="Sample(ReadOnlySpan{float})"/> (the logits are not modified); matches the engine's sampler shape.</summary>
    public int Sample(Span<float> logits) => Sample((ReadOnlySpan<float>)logits);

    /// <summary>Records a token that joined the output (sampled or forced), for the penalties.</summary>
    public void Accept(int tokenId)
    {
        if ((uint)tokenId >= (uint)VocabSize)
        {
            throw new ArgumentOutOfRangeException(nameof(tokenId), tokenId, $"Token id is outside the vocabulary [0, {VocabSize}).");
        }

        AcceptedCount++;
        if (_penalize)
        {
            MarkSeen(tokenId);
            _outputCounts[tokenId]++;
        }
    }

    /// <summary>Token ids of the final candidate set of the last <see cref="Sample(ReadOnlySpan{float})"/> (tests, diagnostics).</summary>
    internal ReadOnlySpan<int> LastCandidateIds => _ids.AsSpan(0, _candidateCount);

    /// <summary>Unnormalized probabilities matching <see cref="LastCandidateIds"/>.</summary>
    internal ReadOnlySpan<float> LastCandidateWeights => _values.AsSpan(0, _candidateCount);

    /// <summary>Logits after bias and penalties from the last sample or <see cref="ApplyBiasAndPenalties"/>.</summary>
    internal ReadOnlySpan<float> ProcessedLogits => _work;

    internal void ApplyBiasAndPenalties(ReadOnlySpan<float> logits)
    {
        if (logits.Length != VocabSize)
        {
            throw new ArgumentException($"Expected {VocabSize} logits, got {logits.Length}.", nameof(logits));
        }

        logits.CopyTo(_work);
        for (int b = 0; b < _biasIds.Length; b++)
        {
            _work[_biasIds[b]] += _biasValues[b];
        }

        if (!_penalize)
        {
            return;
        }

        float repetition = Parameters.RepetitionPenalty;
        float presence = Parameters.PresencePenalty;
        float frequency = Parameters.FrequencyPenalty;
        for (int k = 0; k < _seenCount; k++)
        {
            int id = _seenIds[k];
            float v = _work[id];
            if (repetition != 1f)
            {
                v = v > 0 ? v / repetition : v * repetition;
            }

            int count = _outputCounts[id];
            if (count > 0)
            {
                v -= count * frequency + presence;
            }

            _work[id] = v;
        }
    }

    private void MarkSeen(int token)
    {
        if ((uint)token >= (uint)VocabSize)
        {
            throw new ArgumentOutOfRangeException(nameof(token), token, $"Token id is outside the vocabulary [0, {VocabSize}).");
        }

        if (!_seen[token])
        {
            _seen[token] = true;
            _seenIds[_seenCount++] = token;
        }
    }

    private static void ThrowNoCandidate() =>
        throw new InvalidOperationException("No token can be sampled: every logit is -inf or NaN after logit bias and penalties.");
}
