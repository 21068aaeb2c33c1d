using Qwen3Sharp.Engine;

namespace Qwen3Sharp.Tests.Engine;

/// <summary>
/// A model whose next token is always (last token + 1) mod vocab, with a clear margin; it records every
/// forward call so tests can check what the engine computed.
/// </summary>
internal sealed class FakeRunner(int vocabSize = 16, int contextSize = 64, int maxSequences = 2) : IModelRunner
{
    public int VocabSize { get; } = vocabSize;

    public int ContextSize { get; } = contextSize;

    public int MaxSequences { get; } = maxSequences;

    public int LiveSequences;

    public readonly List<(int Sequence, int TokenCount)> Calls = [];

    /// <summary>Set to block forward passes (e.g. to fill the queue).</summary>
    public ManualResetEventSlim Gate { get; } = new(initialState: true);

    private int _nextSequence;

    public ISequenceState? TryAllocateSequence()
    {
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
        var s = (Sequence)sequence;
        Assert.False(s.Disposed, "forward on a freed sequence");
        lock (Calls)
        {
            Calls.Add((s.Number, tokenIds.Length));
        }

        s.Tokens.AddRange(tokenIds.ToArray());
        Assert.True(s.Tokens.Count <= ContextSize, "sequence outgrew the context");
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

        public int Length => Tokens.Count;

        public void Dispose()
        {
            Assert.False(Disposed, "sequence freed twice");
            Disposed = true;
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
