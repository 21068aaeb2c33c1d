using System.Runtime.InteropServices;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Loading;

namespace Qwen3Sharp.Cache;

/// <summary>
/// Per-layer keys and values as the model's attention reads them, in blocks of positions (a dense store is one block
/// of its whole size): block b holds, per kv head h, its positions' head vectors one after the other, so element i of
/// head h at position p (block b = p / blockSize, j = p % blockSize) is element
/// <c>((b * KvHeadCount + h) * blockSize + j) * headDim + i</c> of <see cref="DType"/> (vLLM's head-major blocks: a
/// head's block is one contiguous run, which decode attention streams 17–24% faster than rows of every head).
/// </summary>
public interface IKvStore
{
    /// <summary>How keys and values are stored.</summary>
    KvCacheDType DType { get; }

    /// <summary>KV heads per position: the blocks are head-major (see the interface).</summary>
    int KvHeadCount { get; }

    /// <summary>Keys of <paramref name="layer"/> as stored: [blocks, kvHeadCount, blockSize, headDim] elements of <see cref="DType"/>.</summary>
    Span<byte> KeyBytes(int layer);

    /// <summary>Values of <paramref name="layer"/> as stored: [blocks, kvHeadCount, blockSize, headDim] elements of <see cref="DType"/>.</summary>
    Span<byte> ValueBytes(int layer);
}

/// <summary>
/// One sequence's view of a KV store: position p is slot <c>p % BlockSize</c> of block <c>Table[p / BlockSize]</c>
/// (head-major within the block, see <see cref="IKvStore"/>). A dense <see cref="KvCache"/> is one block of its whole size.
/// </summary>
public readonly struct KvCacheView(IKvStore store, int[] table, int blockSize, int kvDim)
{
    public IKvStore Store { get; } = store;

    /// <summary>Block ids in position order: [blocks].</summary>
    public int[] Table { get; } = table;

    public int BlockSize { get; } = blockSize;

    /// <summary>
    /// Stores k and v [tokenCount, kvDim] (float32) at positions startPosition.. of <paramref name="layer"/>, converted
    /// to the store's <see cref="IKvStore.DType"/> (round to nearest even for bf16 and f16).
    /// </summary>
    public void Write(int layer, int startPosition, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int tokenCount)
        => WriteTokens(Store.DType, Store.KvHeadCount, kvDim, BlockSize, Table, startPosition, k, v, Store.KeyBytes(layer), Store.ValueBytes(layer), 0, tokenCount);

    /// <summary>
    /// <see cref="Write(int, int, ReadOnlySpan{float}, ReadOnlySpan{float}, int)"/> with the tokens split across
    /// <paramref name="pool"/> when they hold at least <see cref="PooledElementwise.MinElements"/> elements (a prefill;
    /// each token's slots are its own, and each is converted by the same code: the same bytes).
    /// </summary>
    public unsafe void Write(WorkerPool pool, int layer, int startPosition, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int tokenCount)
    {
        int items = PooledElementwise.Items(pool, 2L * tokenCount * kvDim, tokenCount);
        if (items <= 1 || k.Length < (long)tokenCount * kvDim || v.Length < (long)tokenCount * kvDim || startPosition < 0)
        {
            Write(layer, startPosition, k, v, tokenCount);   // inline, or its clear error
            return;
        }

        Span<byte> keys = Store.KeyBytes(layer), values = Store.ValueBytes(layer);
        fixed (float* pk = k, pv = v)
        fixed (byte* keyBytes = keys, valueBytes = values)
        fixed (int* table = Table)
        {
            var job = new WriteJob
            {
                DType = Store.DType, Heads = Store.KvHeadCount, KvDim = kvDim, BlockSize = BlockSize, Table = table, TableLength = Table.Length,
                StartPosition = startPosition, K = pk, V = pv, Keys = keyBytes, Values = valueBytes, KeyBytes = keys.Length, ValueBytes = values.Length,
                Tokens = tokenCount, PerItem = (tokenCount + items - 1) / items,
            };
            pool.Run(ref job, items);
        }
    }

    private unsafe struct WriteJob : IPoolJob
    {
        public KvCacheDType DType;
        public int Heads, KvDim, BlockSize, TableLength, StartPosition, KeyBytes, ValueBytes, Tokens, PerItem;
        public int* Table;
        public float* K, V;
        public byte* Keys, Values;

        public readonly void Execute(int index, int worker)
        {
            int from = index * PerItem, to = Math.Min(Tokens, from + PerItem);
            if (from < to)
            {
                WriteTokens(DType, Heads, KvDim, BlockSize, new ReadOnlySpan<int>(Table, TableLength), StartPosition,
                    new ReadOnlySpan<float>(K, Tokens * KvDim), new ReadOnlySpan<float>(V, Tokens * KvDim),
                    new Span<byte>(Keys, KeyBytes), new Span<byte>(Values, ValueBytes), from, to);
            }
        }
    }

    /// <summary>Tokens [<paramref name="from"/>, <paramref name="to"/>) of a write: each head's vector converted into its slot.</summary>
    private static void WriteTokens(KvCacheDType dtype, int heads, int kvDim, int blockSize, ReadOnlySpan<int> table, int startPosition,
        ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<byte> keys, Span<byte> values, int from, int to)
    {
        int headDim = kvDim / heads;
        long headBytes = dtype.Bytes(headDim);
        for (int t = from; t < to; t++)
        {
            int p = startPosition + t;
            long slot = (long)table[p / blockSize] * heads * blockSize + p % blockSize;   // head 0's slot; head h's is h * blockSize further
            for (int h = 0; h < heads; h++)
            {
                int at = (int)((slot + (long)h * blockSize) * headBytes);
                KvConvert.FromSingle(k.Slice(t * kvDim + h * headDim, headDim), dtype, keys.Slice(at, (int)headBytes));
                KvConvert.FromSingle(v.Slice(t * kvDim + h * headDim, headDim), dtype, values.Slice(at, (int)headBytes));
            }
        }
    }
}

/// <summary>Hash of a full block: its parent's key and its token ids (swappable in tests to force collisions).</summary>
internal delegate ulong BlockHasher(ulong parentKey, ReadOnlySpan<int> tokens);

/// <summary>
/// The paged KV memory of every sequence (vLLM's block pool): per layer, keys and values
/// <c>[BlockCount, KvHeadCount, BlockSize, HeadDim]</c> (head-major blocks, <see cref="IKvStore"/>) elements of <see cref="DType"/> (float32, bf16, f16 or q8_0) in
/// native memory, handed out a block of
/// <see cref="BlockSize"/> positions at a time. Single-threaded (the engine loop) except the counters, which any
/// thread may read.
/// <para>
/// Automatic prefix caching: a full block can be registered under a key, a 64-bit hash of (parent block's key, the
/// block's token ids). Blocks are reference counted; a registered block whose count drops to 0 stays cached in an
/// LRU list and is evicted (least recently used first) only when a block is needed and none is free. A lookup
/// accepts a block only when its stored token ids and its parent (block id and allocation generation) equal the
/// query's, so a hash collision can only cause a miss, never wrong keys and values.
/// </para>
/// </summary>
public sealed unsafe class KvBlockPool : IKvStore, IDisposable
{
    /// <summary>Positions per block.</summary>
    public const int DefaultBlockSize = 16;

    /// <summary>Key of the (empty) parent of a sequence's first block.</summary>
    public const ulong RootKey = 0x9E3779B97F4A7C15UL;

    private readonly byte*[] _keys;      // per layer: [BlockCount, KvHeadCount, BlockSize, HeadDim] elements of DType
    private readonly byte*[] _values;    // per layer: [BlockCount, KvHeadCount, BlockSize, HeadDim] elements of DType
    private readonly int[] _free;        // stack of free, uncached block ids
    private int _freeCount;
    private bool _disposed;

    // Prefix cache.
    private readonly BlockHasher _hasher;
    private readonly int[] _refCount;          // [BlockCount]
    private readonly long[] _generation;       // [BlockCount]: bumped each time the block is handed out again
    private readonly bool[] _registered;       // [BlockCount]: in _cached under _blockKey
    private readonly ulong[] _blockKey;        // [BlockCount]
    private readonly int[] _parentBlock;       // [BlockCount]: -1 for a first block
    private readonly long[] _parentGeneration; // [BlockCount]
    private readonly int[] _blockTokens;       // [BlockCount * BlockSize]: token ids of registered blocks
    private readonly Dictionary<ulong, int> _cached;
    private readonly int[] _lruPrev, _lruNext; // intrusive LRU list of cached blocks with no reference
    private int _lruHead = -1, _lruTail = -1, _evictableCount;

    public KvBlockPool(int layerCount, int kvHeadCount, int headDim, int blockCount, int blockSize = DefaultBlockSize,
        KvCacheDType dtype = KvCacheDType.F32)
        : this(layerCount, kvHeadCount, headDim, blockCount, blockSize, dtype, null)
    {
    }

    internal KvBlockPool(int layerCount, int kvHeadCount, int headDim, int blockCount, int blockSize, KvCacheDType dtype, BlockHasher? hasher)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(layerCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        LayerCount = layerCount;
        KvHeadCount = kvHeadCount;
        KvDim = kvHeadCount * headDim;
        BlockSize = blockSize;
        BlockCount = blockCount;
        DType = dtype;
        if (dtype.Unsupported(headDim) is { } why)
        {
            throw new NotSupportedException(why);
        }

        RowBytes = (int)dtype.Bytes(KvDim);
        if ((long)blockCount * blockSize * RowBytes > MaxLayerBytes)
        {
            throw new ArgumentOutOfRangeException(nameof(blockCount),
                $"{blockCount} blocks of {blockSize} positions × {KvDim} {dtype.Name()} elements exceed one span ({MaxLayerBytes} bytes) per layer");
        }

        _keys = new byte*[layerCount];
        _values = new byte*[layerCount];
        nuint bytes = (nuint)LayerBytes;
        try
        {
            for (int l = 0; l < layerCount; l++)
            {
                _keys[l] = (byte*)NativeMemory.AlignedAlloc(bytes, 64);
                _values[l] = (byte*)NativeMemory.AlignedAlloc(bytes, 64);
            }
        }
        catch
        {
            Free();
            throw;
        }

        _free = new int[blockCount];
        for (int i = 0; i < blockCount; i++)
        {
            _free[i] = blockCount - 1 - i;   // block 0 comes out first
        }

        _freeCount = blockCount;
        _hasher = hasher ?? HashBlock;
        _refCount = new int[blockCount];
        _generation = new long[blockCount];
        _registered = new bool[blockCount];
        _blockKey = new ulong[blockCount];
        _parentBlock = new int[blockCount];
        _parentGeneration = new long[blockCount];
        _blockTokens = new int[(long)blockCount * blockSize];
        _cached = new Dictionary<ulong, int>(blockCount);
        _lruPrev = new int[blockCount];
        _lruNext = new int[blockCount];
    }

    /// <summary>Most bytes of one layer's keys (or values): one span addresses them.</summary>
    public const long MaxLayerBytes = int.MaxValue;

    /// <summary>A pool shaped for <paramref name="config"/> with <paramref name="blockCount"/> blocks of <paramref name="dtype"/>.</summary>
    public static KvBlockPool Create(Qwen3Config config, int blockCount, KvCacheDType dtype, int blockSize = DefaultBlockSize)
        => new(config.NumHiddenLayers, config.NumKeyValueHeads, config.HeadDim, blockCount, blockSize, dtype);

    /// <summary>Bytes one block takes over all layers, keys and values, stored as <paramref name="dtype"/>.</summary>
    public static long BytesPerBlock(Qwen3Config config, KvCacheDType dtype, int blockSize = DefaultBlockSize)
        => BytesPerToken(config, dtype) * blockSize;

    /// <summary>KV bytes one token takes over all layers, keys and values: layers × 2 × the bytes of kvHeads × headDim elements.</summary>
    public static long BytesPerToken(Qwen3Config config, KvCacheDType dtype)
        => config.NumHiddenLayers * 2 * dtype.Bytes((long)config.NumKeyValueHeads * config.HeadDim);

    /// <summary>How keys and values are stored.</summary>
    public KvCacheDType DType { get; }

    /// <summary>Bytes of one position's keys (or values) in one layer: KvDim elements of <see cref="DType"/>.</summary>
    public int RowBytes { get; }

    /// <summary>Bytes of one layer's keys (values take as much again).</summary>
    public long LayerBytes => (long)BlockCount * BlockSize * RowBytes;

    /// <summary>Bytes of the whole pool: layers × 2 × <see cref="LayerBytes"/>.</summary>
    public long TotalBytes => LayerBytes * 2 * LayerCount;

    public int LayerCount { get; }

    public int KvDim { get; }

    public int KvHeadCount { get; }

    public int BlockSize { get; }

    public int BlockCount { get; }

    /// <summary>Blocks not held by any sequence: free ones and cached ones nobody references (read from any thread).</summary>
    public int FreeBlockCount => Volatile.Read(ref _freeCount) + Volatile.Read(ref _evictableCount);

    public int UsedBlockCount => BlockCount - FreeBlockCount;

    /// <summary>Registered (prefix-cached) blocks, referenced or not.</summary>
    public int CachedBlockCount => _cached.Count;

    /// <summary>References to <paramref name="block"/> (sequences holding it).</summary>
    public int RefCount(int block) => _refCount[block];

    public Span<byte> KeyBytes(int layer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new Span<byte>(_keys[layer], (int)LayerBytes);
    }

    public Span<byte> ValueBytes(int layer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new Span<byte>(_values[layer], (int)LayerBytes);
    }

    /// <summary>
    /// Copies every layer's keys and values of <paramref name="source"/> block's first <paramref name="positions"/>
    /// positions to <paramref name="destination"/> block (copy on write of a shared, partly filled block), in the stored
    /// dtype: each kv head's run of those positions.
    /// </summary>
    public void CopyBlock(int source, int destination, int positions)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if ((uint)source >= (uint)BlockCount || (uint)destination >= (uint)BlockCount)
        {
            throw new ArgumentOutOfRangeException(source < 0 || source >= BlockCount ? nameof(source) : nameof(destination),
                $"blocks are 0..{BlockCount - 1}; got {source} → {destination}");
        }

        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)positions, (uint)BlockSize, nameof(positions));
        long blockBytes = (long)BlockSize * RowBytes, runBytes = blockBytes / KvHeadCount;   // head-major: a run per kv head
        nuint bytes = (nuint)((long)positions * (RowBytes / KvHeadCount));
        for (int l = 0; l < LayerCount; l++)
        {
            for (int h = 0; h < KvHeadCount; h++)
            {
                long at = h * runBytes;
                NativeMemory.Copy(_keys[l] + source * blockBytes + at, _keys[l] + destination * blockBytes + at, bytes);
                NativeMemory.Copy(_values[l] + source * blockBytes + at, _values[l] + destination * blockBytes + at, bytes);
            }
        }
    }

    /// <summary>Appends blocks to <paramref name="table"/> until it covers <paramref name="positions"/>; false (and nothing taken) when too few are free.</summary>
    public bool TryGrow(BlockTable table, int positions)
    {
        int needed = (positions + BlockSize - 1) / BlockSize - table.Count;
        if (needed <= 0)
        {
            return true;
        }

        if (needed > _freeCount + _evictableCount || table.Count + needed > table.Capacity)
        {
            return false;
        }

        for (int i = 0; i < needed; i++)
        {
            table.Add(TakeBlock());
        }

        Volatile.Write(ref _freeCount, _freeCount);
        return true;
    }

    /// <summary>A free block, else the least recently used cached block with no reference (evicted from the cache).</summary>
    private int TakeBlock()
    {
        int block;
        if (_freeCount > 0)
        {
            block = _free[--_freeCount];
        }
        else
        {
            block = _lruHead;
            LruRemove(block);
            _cached.Remove(_blockKey[block]);
            _registered[block] = false;
        }

        _refCount[block] = 1;
        _generation[block]++;
        return block;
    }

    /// <summary>Drops the table's reference to each of its blocks and empties it; unreferenced cached blocks stay cached.</summary>
    public void Release(BlockTable table)
    {
        for (int i = table.Count - 1; i >= 0; i--)
        {
            int block = table.Blocks[i];
            if (--_refCount[block] > 0)
            {
                continue;
            }

            if (_registered[block])
            {
                LruAppend(block);   // the table's tail goes in first, so it is evicted before the prefix it extends
            }
            else
            {
                _free[_freeCount++] = block;
            }
        }

        Volatile.Write(ref _freeCount, _freeCount);
        table.Clear();
    }

    /// <summary>
    /// Empties the prefix cache (vLLM's reset_prefix_cache): every cached block no table references goes back to the
    /// free list, unregistered; blocks still referenced stay registered. Returns how many blocks were dropped.
    /// </summary>
    public int ResetPrefixCache()
    {
        int dropped = 0;
        while (_lruHead >= 0)
        {
            int block = _lruHead;
            LruRemove(block);
            _cached.Remove(_blockKey[block]);
            _registered[block] = false;
            _free[_freeCount++] = block;
            dropped++;
        }

        Volatile.Write(ref _freeCount, _freeCount);
        return dropped;
    }

    /// <summary>The hash of a full block under <paramref name="parentKey"/> (the pool's hasher).</summary>
    public ulong KeyOf(ulong parentKey, ReadOnlySpan<int> tokens) => _hasher(parentKey, tokens);

    /// <summary>
    /// Takes references to the cached blocks that hold <paramref name="tokens"/>' leading full blocks, appending them
    /// to the empty <paramref name="table"/>, and returns how many blocks hit (the lookup stops at the first miss).
    /// <paramref name="lastKey"/> is the key of the last hit block (<see cref="RootKey"/> when none).
    /// </summary>
    public int AcquireCachedPrefix(BlockTable table, ReadOnlySpan<int> tokens, out ulong lastKey)
    {
        if (table.Count != 0)
        {
            throw new InvalidOperationException("A cached prefix can only start an empty block table.");
        }

        lastKey = RootKey;
        int parent = -1;
        long parentGeneration = 0;
        int full = Math.Min(tokens.Length / BlockSize, table.Capacity);
        for (int b = 0; b < full; b++)
        {
            ReadOnlySpan<int> blockTokens = tokens.Slice(b * BlockSize, BlockSize);
            ulong key = _hasher(lastKey, blockTokens);
            if (!_cached.TryGetValue(key, out int block)
                || _parentBlock[block] != parent
                || _parentGeneration[block] != parentGeneration
                || !_blockTokens.AsSpan(block * BlockSize, BlockSize).SequenceEqual(blockTokens))
            {
                return b;
            }

            if (_refCount[block]++ == 0)
            {
                LruRemove(block);
            }

            table.Add(block);
            lastKey = key;
            parent = block;
            parentGeneration = _generation[block];
        }

        Volatile.Write(ref _freeCount, _freeCount);
        return full;
    }

    /// <summary>
    /// Registers the full block at index <paramref name="index"/> of <paramref name="table"/> holding
    /// <paramref name="tokens"/> under <paramref name="key"/> (from <see cref="KeyOf"/> with the previous block's key).
    /// A key already cached keeps its block (the same content computed twice, or a collision): this one is not cached.
    /// </summary>
    public void Register(BlockTable table, int index, ReadOnlySpan<int> tokens, ulong key)
    {
        int block = table.Blocks[index];
        if (_registered[block] || _cached.ContainsKey(key))
        {
            return;
        }

        int parent = index == 0 ? -1 : table.Blocks[index - 1];
        _cached.Add(key, block);
        _registered[block] = true;
        _blockKey[block] = key;
        _parentBlock[block] = parent;
        _parentGeneration[block] = parent < 0 ? 0 : _generation[parent];
        tokens.CopyTo(_blockTokens.AsSpan(block * BlockSize, BlockSize));
    }

    /// <summary>FNV-1a over the parent key and the token ids, finished with a 64-bit avalanche (splitmix64).</summary>
    internal static ulong HashBlock(ulong parentKey, ReadOnlySpan<int> tokens)
    {
        ulong h = 0xCBF29CE484222325UL ^ parentKey;
        h *= 0x100000001B3UL;
        foreach (int t in tokens)
        {
            h = (h ^ (uint)t) * 0x100000001B3UL;
            h ^= h >> 29;
        }

        h ^= (ulong)tokens.Length;
        h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9UL;
        h = (h ^ (h >> 27)) * 0x94D049BB133111EBUL;
        return h ^ (h >> 31);
    }

    private void LruAppend(int block)
    {
        _lruPrev[block] = _lruTail;
        _lruNext[block] = -1;
        if (_lruTail >= 0)
        {
            _lruNext[_lruTail] = block;
        }
        else
        {
            _lruHead = block;
        }

        _lruTail = block;
        Volatile.Write(ref _evictableCount, _evictableCount + 1);
    }

    private void LruRemove(int block)
    {
        int prev = _lruPrev[block], next = _lruNext[block];
        if (prev >= 0)
        {
            _lruNext[prev] = next;
        }
        else
        {
            _lruHead = next;
        }

        if (next >= 0)
        {
            _lruPrev[next] = prev;
        }
        else
        {
            _lruTail = prev;
        }

        Volatile.Write(ref _evictableCount, _evictableCount - 1);
    }

    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            Free();
        }
    }

    private void Free()
    {
        for (int l = 0; l < _keys.Length; l++)
        {
            NativeMemory.AlignedFree(_keys[l]);
            NativeMemory.AlignedFree(_values[l]);
            _keys[l] = null;
            _values[l] = null;
        }
    }
}

/// <summary>The blocks of one sequence, in position order (preallocated to the most the sequence may hold).</summary>
public sealed class BlockTable(int capacity)
{
    /// <summary>[Capacity]; the first <see cref="Count"/> are the sequence's blocks.</summary>
    public int[] Blocks { get; } = new int[capacity];

    public int Count { get; private set; }

    public int Capacity => Blocks.Length;

    internal void Add(int block) => Blocks[Count++] = block;

    internal void Clear() => Count = 0;
}
