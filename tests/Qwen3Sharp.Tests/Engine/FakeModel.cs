using Qwen3Sharp.Engine;

namespace Qwen3Sharp.Tests.Engine;

/// <summary>
/// A model whose next token is always (last token + 1) mod vocab, with a clear margin; it records every
/// forward call so tests can check what the engine computed.
/// </summary>
internal sealed class FakeRunner(int vocabSize = 16, int contextSize = 64, int maxSequences = 2, int kvBlocks = 0) : IModelRunner
{
    /// <summary>Positions per KV block when <c>kvBlocks</c> &gt; 0 (then TryReserve accounts blocks as the paged runner does).</summary>
    public const int BlockSize = 16;

    public int UsedBlocks;

    public int KvBlockCount => kvBlocks;

    public int UsedKvBlockCount => Volatile.Read(ref UsedBlocks);

    public bool TryReserve(ISequenceState sequence, int tokenCount)
    {
        var s = (Sequence)sequence;
        Assert.False(s.Disposed, "reserve on a freed sequence");
        if (kvBlocks == 0)
        {
            return true;
        }

        int needed = (s.Length + tokenCount + BlockSize - 1) / BlockSize - s.Blocks;
        if (needed <= 0)
        {
            return true;
        }

        if (UsedBlocks + needed > kvBlocks)
        {
            return false;
        }

        s.Blocks += needed;
        Interlocked.Add(ref UsedBlocks, needed);
        return true;
    }

    public int VocabSize { get; } = vocabSize;

    public int ContextSize { get; } = contextSize;

    public int MaxSequences { get; } = maxSequences;

    public int LiveSequences;

    public readonly List<(int Sequence, int TokenCount)> Calls = [];

    /// <summary>Set to block forward passes (e.g. to fill the queue).</summary>
    public ManualResetEventSlim Gate { get; } = new(initialState: true);

    /// <summary>Time each forward pass takes (zero: as fast as the engine calls it).</summary>
    public TimeSpan ForwardDelay { get; init; }

    private int _nextSequence;

    /// <summary>Allocations still to fail with an exception (a runner bug or resource failure inside the scheduler's step).</summary>
    public int FailingAllocations;

    public ISequenceState? TryAllocateSequence()
    {
        if (Interlocked.Decrement(ref FailingAllocations) >= 0)
        {
            throw new InvalidOperationException("allocation failed");
        }

        Interlocked.Exchange(ref FailingAllocations, 0);
        if (Interlocked.Increment(ref LiveSequences) > MaxSequences)
        {
            Interlocked.Decrement(ref LiveSequences);
            return null;
        }

        return new Sequence(this, Interlocked.Increment(ref _nextSequence));
    }

    public void Forward(ISequenceState sequence, ReadOnlySpan<int> tokenIds, Span<float> logits)
    {
        Gate.Wait();
        if (ForwardDelay > TimeSpan.Zero)
        {
            Thread.Sleep(ForwardDelay);
        }

        var s = (Sequence)sequence;
        Assert.False(s.Disposed, "forward on a freed sequence");
        lock (Calls)
        {
            Calls.Add((s.Number, tokenIds.Length));
        }

        s.Tokens.AddRange(tokenIds.ToArray());
        Assert.True(s.Tokens.Count <= ContextSize, "sequence outgrew the context");
        Assert.True(kvBlocks == 0 || s.Tokens.Count <= s.Blocks * BlockSize, "forward beyond the reserved blocks");
        logits.Fill(0);
        logits[(tokenIds[^1] + 1) % VocabSize] = 5;
    }

    public void Dispose()
    {
    }

    internal sealed class Sequence(FakeRunner owner, int number) : ISequenceState
    {
        public readonly List<int> Tokens = [];

        public int Number { get; } = number;

        public bool Disposed { get; private set; }

        public int Blocks;

        public int Length => Tokens.Count;

        public void Dispose()
        {
            Assert.False(Disposed, "sequence freed twice");
            Disposed = true;
            Interlocked.Add(ref owner.UsedBlocks, -Blocks);
            Blocks = 0;
            Interlocked.Decrement(ref owner.LiveSequences);
        }
    }
}

/// <summary>Greedy: the arg-max token; remembers what it was told.</summary>
internal sealed class ArgMaxSampler : ITokenSampler
{
    public readonly List<int> Accepted = [];

    public int Sample(Span<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[best])
            {
                best = i;
            }
        }

        return best;
    }

    public void Accept(int tokenId) => Accepted.Add(tokenId);
}

/// <summary>Token t decodes to the letter 'a' + t.</summary>
internal sealed class LetterDecoder : ITextDecoder
{
    public string Append(int tokenId) => ((char)('a' + tokenId)).ToString();

    public string Flush() => "";
}
