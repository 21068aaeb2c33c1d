using Qwen3Sharp.Cache;
using Qwen3Sharp.Model;

namespace Qwen3Sharp.Engine;

/// <summary>
/// <see cref="Qwen3Model"/> as the engine drives it: every sequence's KV lives in one <see cref="KvBlockPool"/> of
/// 16-position blocks (the KV cache manager), a block table per sequence; a step is one batched forward pass.
/// Block tables are reused after a sequence ends, so steady state allocates nothing.
/// </summary>
public sealed class Qwen3ModelRunner : IModelRunner
{
    private readonly Qwen3Model _model;
    private readonly KvBlockPool _blocks;
    private readonly Stack<Sequence> _free = new();
    private readonly int _kvDim;
    private BatchSequence[] _batch = [];
    private int _live;

    /// <param name="model">The model; the runner disposes it.</param>
    /// <param name="maxSequences">Most sequences held at once.</param>
    /// <param name="kvBlockCount">Blocks in the pool; a sequence can use up to min(context, blocks × 16) positions.</param>
    public Qwen3ModelRunner(Qwen3Model model, int maxSequences, int kvBlockCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSequences, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(kvBlockCount, 1);
        _model = model;
        MaxSequences = maxSequences;
        _blocks = KvBlockPool.Create(model.Config, kvBlockCount);
        _kvDim = model.Config.NumKeyValueHeads * model.Config.HeadDim;
        ContextSize = (int)Math.Min(model.ContextSize, (long)kvBlockCount * _blocks.BlockSize);
    }

    /// <summary>
    /// Blocks that <paramref name="bytes"/> of KV memory hold for <paramref name="model"/> (at least one), no more than
    /// <paramref name="maxSequences"/> full contexts need and one span per layer can address.
    /// </summary>
    public static int BlocksFor(Qwen3Model model, long bytes, int maxSequences)
    {
        int blockSize = KvBlockPool.DefaultBlockSize;
        long perContext = (model.ContextSize + blockSize - 1) / blockSize;
        long addressable = Array.MaxLength / ((long)blockSize * model.Config.NumKeyValueHeads * model.Config.HeadDim);
        long blocks = Math.Min(bytes / KvBlockPool.BytesPerBlock(model.Config), Math.Min(perContext * maxSequences, addressable));
        return (int)Math.Max(1, blocks);
    }

    public int VocabSize => _model.VocabSize;

    public int ContextSize { get; }

    public int MaxSequences { get; }

    public int KvBlockCount => _blocks.BlockCount;

    public int UsedKvBlockCount => _blocks.UsedBlockCount;

    public int KvBlockSize => _blocks.BlockSize;

    public ISequenceState? TryAllocateSequence()
    {
        if (_live >= MaxSequences)
        {
            return null;
        }

        _live++;
        if (!_free.TryPop(out Sequence? s))
        {
            s = new Sequence(this, new BlockTable((ContextSize + _blocks.BlockSize - 1) / _blocks.BlockSize));
        }

        s.Live = true;
        return s;
    }

    public bool TryReserve(ISequenceState sequence, int tokenCount)
    {
        var s = (Sequence)sequence;
        return s.Length + tokenCount <= ContextSize && _blocks.TryGrow(s.Table, s.Length + tokenCount);
    }

    public void Forward(ISequenceState sequence, ReadOnlySpan<int> tokenIds, Span<float> logits)
    {
        var s = (Sequence)sequence;
        for (int offset = 0; offset < tokenIds.Length; offset += _model.MaxBatchTokens)
        {
            int n = Math.Min(_model.MaxBatchTokens, tokenIds.Length - offset);
            if (!TryReserve(s, n))
            {
                throw new InvalidOperationException("The KV cache has too few free blocks for this sequence.");
            }

            EnsureBatch(1);
            bool last = offset + n == tokenIds.Length;
            _batch[0] = new BatchSequence(0, n, s.Length, View(s), last);
            _model.Forward(new ForwardBatch(tokenIds.Slice(offset, n), _batch.AsSpan(0, 1)), last ? logits : default);
            s.Length += n;
        }
    }

    public void ForwardBatch(ReadOnlySpan<int> tokenIds, ReadOnlySpan<RunnerEntry> entries, Span<float> logits)
    {
        EnsureBatch(entries.Length);
        for (int i = 0; i < entries.Length; i++)
        {
            RunnerEntry e = entries[i];
            var s = (Sequence)e.Sequence;
            if (!TryReserve(s, e.TokenCount))
            {
                throw new InvalidOperationException("The KV cache has too few free blocks for this sequence.");
            }

            _batch[i] = new BatchSequence(e.TokenOffset, e.TokenCount, s.Length, View(s), e.ComputeLogits);
        }

        _model.Forward(new ForwardBatch(tokenIds, _batch.AsSpan(0, entries.Length)), logits);
        foreach (RunnerEntry e in entries)
        {
            ((Sequence)e.Sequence).Length += e.TokenCount;
        }
    }

    private KvCacheView View(Sequence s) => new(_blocks, s.Table.Blocks, _blocks.BlockSize, _kvDim);

    private void EnsureBatch(int count)
    {
        if (_batch.Length < count)
        {
            _batch = new BatchSequence[Math.Max(count, MaxSequences)];
        }
    }

    public void Dispose()
    {
        _blocks.Dispose();
        _model.Dispose();
    }

    private void Release(Sequence s)
    {
        _blocks.Release(s.Table);
        s.Length = 0;
        _live--;
        _free.Push(s);
    }

    private sealed class Sequence(Qwen3ModelRunner owner, BlockTable table) : ISequenceState
    {
        public BlockTable Table { get; } = table;

        public bool Live { get; set; }

        public int Length { get; set; }

        public void Dispose()
        {
            if (Live)
            {
                Live = false;
                owner.Release(this);
            }
        }
    }
}
