using Qwen3Sharp.Cache;
using Qwen3Sharp.Model;

namespace Qwen3Sharp.Engine;

/// <summary>
/// <see cref="Qwen3Model"/> as the engine drives it: every sequence's KV lives in one <see cref="KvBlockPool"/> of
/// 16-position blocks (the KV cache manager), a block table per sequence; a step is one batched forward pass.
/// Block tables are reused after a sequence ends, so steady state allocates nothing. Full blocks are registered in
/// the pool's prefix cache as they fill (prefill or decode); a new sequence starts after its prompt's cached blocks.
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
    /// <param name="kvDType">How the pool stores keys and values (attention computes in float32 either way).</param>
    public Qwen3ModelRunner(Qwen3Model model, int maxSequences, int kvBlockCount, KvCacheDType kvDType = KvCacheDTypes.Default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSequences, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(kvBlockCount, 1);
        _model = model;
        MaxSequences = maxSequences;
        _blocks = KvBlockPool.Create(model.Config, kvBlockCount, kvDType);
        _kvDim = model.Config.NumKeyValueHeads * model.Config.HeadDim;
        ContextSize = (int)Math.Min(model.ContextSize, (long)kvBlockCount * _blocks.BlockSize);
    }

    /// <summary>
    /// Blocks that <paramref name="bytes"/> of KV memory hold for <paramref name="model"/> with keys and values stored
    /// as <paramref name="dtype"/> (at least one; a 16-bit dtype holds twice float32's), no more than
    /// <paramref name="maxSequences"/> full contexts need and one span per layer can address.
    /// </summary>
    public static int BlocksFor(Qwen3Model model, long bytes, int maxSequences, KvCacheDType dtype = KvCacheDTypes.Default)
    {
        int blockSize = KvBlockPool.DefaultBlockSize;
        long perContext = (model.ContextSize + blockSize - 1) / blockSize;
        long addressable = KvBlockPool.MaxLayerBytes / (blockSize * dtype.Bytes((long)model.Config.NumKeyValueHeads * model.Config.HeadDim));
        long blocks = Math.Min(bytes / KvBlockPool.BytesPerBlock(model.Config, dtype), Math.Min(perContext * maxSequences, addressable));
        return (int)Math.Max(1, blocks);
    }

    public int VocabSize => _model.VocabSize;

    public int ContextSize { get; }

    public int MaxSequences { get; }

    public int KvBlockCount => _blocks.BlockCount;

    public int UsedKvBlockCount => _blocks.UsedBlockCount;

    public int KvBlockSize => _blocks.BlockSize;

    /// <summary>How the pool stores keys and values.</summary>
    public KvCacheDType KvDType => _blocks.DType;

    /// <summary>Bytes of the whole KV pool.</summary>
    public long KvCacheBytes => _blocks.TotalBytes;

    /// <summary>Drops every prefix-cache entry no live sequence holds (see <see cref="KvBlockPool.ResetPrefixCache"/>); engine loop thread only.</summary>
    public int ResetPrefixCache() => _blocks.ResetPrefixCache();

    public ISequenceState? TryAllocateSequence()
    {
        if (_live >= MaxSequences)
        {
            return null;
        }

        _live++;
        if (!_free.TryPop(out Sequence? s))
        {
            int capacity = (ContextSize + _blocks.BlockSize - 1) / _blocks.BlockSize;
            s = new Sequence(this, new BlockTable(capacity), new int[capacity * _blocks.BlockSize]);
        }

        s.Live = true;
        return s;
    }

    public int AcquireCachedPrefix(ISequenceState sequence, ReadOnlySpan<int> tokens)
    {
        var s = (Sequence)sequence;
        if (s.Length != 0)
        {
            throw new InvalidOperationException("A cached prefix can only start a new sequence.");
        }

        // Never the last token: at least one must be computed to give the logits of the next.
        int blocks = _blocks.AcquireCachedPrefix(s.Table, tokens[..^1], out ulong lastKey);
        int cached = blocks * _blocks.BlockSize;
        tokens[..cached].CopyTo(s.Tokens);
        s.Length = cached;
        s.RegisteredBlocks = blocks;
        s.LastKey = lastKey;
        return cached;
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
            Advance(s, tokenIds.Slice(offset, n));
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
            Advance((Sequence)e.Sequence, tokenIds.Slice(e.TokenOffset, e.TokenCount));
        }
    }

    /// <summary>Records the computed tokens and registers every block they filled in the prefix cache.</summary>
    private void Advance(Sequence s, ReadOnlySpan<int> tokenIds)
    {
        tokenIds.CopyTo(s.Tokens.AsSpan(s.Length));
        s.Length += tokenIds.Length;
        int size = _blocks.BlockSize;
        for (int b = s.RegisteredBlocks; b < s.Length / size; b++)
        {
            ReadOnlySpan<int> blockTokens = s.Tokens.AsSpan(b * size, size);
            ulong key = _blocks.KeyOf(s.LastKey, blockTokens);
            _blocks.Register(s.Table, b, blockTokens, key);
            s.LastKey = key;
            s.RegisteredBlocks = b + 1;
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
        s.RegisteredBlocks = 0;
        s.LastKey = KvBlockPool.RootKey;
        _live--;
        _free.Push(s);
    }

    private sealed class Sequence(Qwen3ModelRunner owner, BlockTable table, int[] tokens) : ISequenceState
    {
        public BlockTable Table { get; } = table;

        /// <summary>[Table.Capacity * BlockSize]: the computed tokens, for the prefix-cache keys of full blocks.</summary>
        public int[] Tokens { get; } = tokens;

        /// <summary>Leading full blocks already registered in (or taken from) the prefix cache.</summary>
        public int RegisteredBlocks { get; set; }

        /// <summary>Prefix-cache key of block RegisteredBlocks - 1 (RootKey when none).</summary>
        public ulong LastKey { get; set; } = KvBlockPool.RootKey;

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
