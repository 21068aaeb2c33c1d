namespace Qwen3Sharp.Engine;

public sealed record EngineOptions
{
    /// <summary>Requests that may wait for a free sequence before new ones are refused.</summary>
    public int MaxQueuedRequests { get; init; } = 64;

    /// <summary>Most tokens computed in one engine step (the prefill chunk size).</summary>
    public int StepTokenBudget { get; init; } = 512;

    /// <summary>New requests' prompts get a step of their own while others decode (<see cref="Scheduling.Scheduler.PrefillFirst"/>); false: mixed steps.</summary>
    public bool PrefillFirst { get; init; } = true;

    /// <summary>&lt;think&gt; and &lt;/think&gt; token ids, for counting reasoning tokens; null when the vocabulary has none.</summary>
    public int? ThinkStartTokenId { get; init; }

    public int? ThinkEndTokenId { get; init; }
}
