namespace Qwen3Sharp.Engine;

/// <summary>
/// The model as the engine loop drives it: sequences with their own KV state, advanced by forward passes.
/// The engine calls it from its one loop thread only.
/// </summary>
public interface IModelRunner : IDisposable
{
    int VocabSize { get; }

    /// <summary>Most tokens (prompt and generated) one sequence can hold.</summary>
    int ContextSize { get; }

    /// <summary>Most sequences whose KV state can be held at once.</summary>
    int MaxSequences { get; }

    /// <summary>KV state for a new sequence, or null when none is free (the request waits).</summary>
    ISequenceState? TryAllocateSequence();

    /// <summary>
    /// Appends <paramref name="tokenIds"/> at position <see cref="ISequenceState.Length"/> and writes the logits
    /// after the last of them into <paramref name="logits"/> [VocabSize].
    /// </summary>
    void Forward(ISequenceState sequence, ReadOnlySpan<int> tokenIds, Span<float> logits);

    /// <summary>
    /// Makes room in <paramref name="sequence"/>'s KV memory for <paramref name="tokenCount"/> more tokens
    /// (KvCacheManager.AllocateSlots); false when too little is free: the scheduler waits or preempts.
    /// </summary>
    bool TryReserve(ISequenceState sequence, int tokenCount) => true;

    /// <summary>
    /// Automatic prefix caching: gives the new, empty <paramref name="sequence"/> the cached KV of the leading full
    /// blocks of <paramref name="tokens"/> (never its last token, which must be computed for logits) and returns how many
    /// tokens that covers (0 without a prefix cache); the sequence's <see cref="ISequenceState.Length"/> is then that.
    /// </summary>
    int AcquireCachedPrefix(ISequenceState sequence, ReadOnlySpan<int> tokens) => 0;

    /// <summary>Positions per KV block of the prefix cache (0 without one).</summary>
    int KvBlockSize => 0;

    /// <summary>KV blocks in all (0 when the runner does not page its memory).</summary>
    int KvBlockCount => 0;

    /// <summary>KV blocks held by sequences now (any thread may read it).</summary>
    int UsedKvBlockCount => 0;

    /// <summary>
    /// One forward pass over every entry (one engine step): entry i runs
    /// <paramref name="tokenIds"/>[TokenOffset, TokenOffset + TokenCount) appended to its sequence. The logits after the
    /// last token of each entry with <see cref="RunnerEntry.ComputeLogits"/> go, in entry order, to rows of
    /// <paramref name="logits"/> [rows + 1, VocabSize] (the last row is scratch). The default runs the entries one by one.
    /// </summary>
    void ForwardBatch(ReadOnlySpan<int> tokenIds, ReadOnlySpan<RunnerEntry> entries, Span<float> logits)
    {
        Span<float> spare = logits[^VocabSize..];
        int row = 0;
        foreach (RunnerEntry e in entries)
        {
            Span<float> destination = e.ComputeLogits ? logits.Slice(row++ * VocabSize, VocabSize) : spare;
            Forward(e.Sequence, tokenIds.Slice(e.TokenOffset, e.TokenCount), destination);
        }
    }
}

/// <summary>One sequence's part of an engine step.</summary>
public readonly record struct RunnerEntry(ISequenceState Sequence, int TokenOffset, int TokenCount, bool ComputeLogits);

/// <summary>The KV state of one sequence; disposing it gives its memory back to the runner.</summary>
public interface ISequenceState : IDisposable
{
    /// <summary>Tokens whose keys and values are held.</summary>
    int Length { get; }
}

/// <summary>Picks the next token from logits; one per request, told about every token that joins the output.</summary>
public interface ITokenSampler
{
    /// <summary>Chooses a token, leaving <paramref name="logits"/> as they are (logprobs are computed from them afterwards).</summary>
    int Sample(Span<float> logits);

    /// <summary>Records a token of the output (sampled or forced) for penalties.</summary>
    void Accept(int tokenId);
}

/// <summary>Turns generated token ids into text as they come, never splitting a UTF-8 character.</summary>
public interface ITextDecoder
{
    /// <summary>Text completed by this token (may be empty).</summary>
    string Append(int tokenId);

    /// <summary>Whatever is held back at the end (an incomplete character becomes U+FFFD).</summary>
    string Flush();
}
