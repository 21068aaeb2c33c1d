namespace Qwen3Sharp.Engine;

public enum FinishReason
{
    /// <summary>An end-of-turn token or a stop string.</summary>
    Stop,

    /// <summary>max_tokens reached, or the context is full.</summary>
    Length,

    /// <summary>The caller cancelled.</summary>
    Cancelled,
}

/// <summary>One event of a generation's output stream: tokens as they come, then exactly one <see cref="GenerationFinished"/>.</summary>
public abstract class GenerationEvent
{
}

/// <summary>A token was generated.</summary>
public sealed class TokenGenerated : GenerationEvent
{
    public required int TokenId { get; init; }

    /// <summary>Text released by this token: complete UTF-8 characters not held back by a possible stop string. May be empty.</summary>
    public required string TextDelta { get; init; }

    /// <summary>Reasoning token count so far (tokens generated inside &lt;think&gt;), when a thinking budget is tracked.</summary>
    public int ReasoningTokenCount { get; init; }

    /// <summary>True when the engine forced this token (thinking budget), rather than sampling it.</summary>
    public bool Forced { get; init; }

    /// <summary>Log-probability of this token and the best alternatives, when requested.</summary>
    public TokenLogprobs? Logprobs { get; init; }
}

/// <summary>Log-probabilities of a chosen token under the model's distribution, with the most likely alternatives.</summary>
public sealed record TokenLogprobs(int TokenId, float Logprob, IReadOnlyList<Sampling.TokenLogprob> Top);

/// <summary>The last event of every generation.</summary>
public sealed class GenerationFinished : GenerationEvent
{
    public required FinishReason Reason { get; init; }

    /// <summary>Text released at the end (held-back bytes or text that turned out not to be a stop string).</summary>
    public required string TextDelta { get; init; }

    /// <summary>The stop string that ended generation, if one did.</summary>
    public string? StopString { get; init; }

    /// <summary>The stop token that ended generation, if one did.</summary>
    public int? StopTokenId { get; init; }

    public required GenerationUsage Usage { get; init; }
}

public sealed record GenerationUsage(int PromptTokens, int CompletionTokens, int ReasoningTokens)
{
    /// <summary>Prompt tokens whose keys and values came from the prefix cache (OpenAI's prompt_tokens_details.cached_tokens).</summary>
    public int CachedPromptTokenCount { get; init; }
}
