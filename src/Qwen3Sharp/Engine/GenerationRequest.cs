namespace Qwen3Sharp.Engine;

/// <summary>What to generate: a tokenized prompt and how to continue it. Immutable once submitted.</summary>
public sealed class GenerationRequest
{
    /// <summary>The prompt, already templated and tokenized.</summary>
    public required IReadOnlyList<int> PromptTokens { get; init; }

    /// <summary>Sampling settings; the engine creates one sampler per request from them.</summary>
    public Sampling.SamplingParams Sampling { get; init; } = new();

    /// <summary>Most tokens to generate (OpenAI max_tokens / max_completion_tokens); null = up to the context size.</summary>
    public int? MaxTokens { get; init; }

    /// <summary>Text that ends the generation; the stop text itself is not returned.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>Token ids that end the generation (end-of-turn and eos ids). Not returned as text.</summary>
    public IReadOnlyCollection<int> StopTokenIds { get; init; } = [];

    /// <summary>Decode special tokens (e.g. &lt;|im_end|&gt;) to text or drop them (Hugging Face's skip_special_tokens).</summary>
    public bool SkipSpecialTokens { get; init; } = true;

    /// <summary>Number of alternatives to report per token (OpenAI top_logprobs); null = no logprobs at all.</summary>
    public int? TopLogprobs { get; init; }

    /// <summary>The prompt ends inside an open &lt;think&gt; block (reasoning tokens are counted from the start).</summary>
    public bool StartsInsideReasoning { get; init; }

    /// <summary>Closes reasoning after this many reasoning tokens (Qwen's thinking budget); null = unlimited.</summary>
    public ThinkingBudget? ThinkingBudget { get; init; }

    /// <summary>
    /// Structured output: masks tokens that cannot continue a valid output. Stateful, so one per request (the engine
    /// hands it every accepted token through the request's sampler).
    /// </summary>
    public Structured.TokenConstraint? Constraint { get; init; }
}

/// <summary>
/// Qwen's documented way to cap reasoning: once <see cref="MaxTokens"/> reasoning tokens have been generated,
/// the engine forces <see cref="CloseTokens"/> (an early-stop sentence and <c>&lt;/think&gt;\n\n</c>) and the
/// model goes on with its answer.
/// </summary>
public sealed record ThinkingBudget(int MaxTokens, IReadOnlyList<int> CloseTokens);
