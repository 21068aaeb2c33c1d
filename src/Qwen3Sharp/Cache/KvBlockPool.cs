using System.Runtime.InteropServices;
using Qwen3Sharp.Loading;

namespace Qwen3Sharp.Cache;

/// <summary>Per-layer keys and values as the model's attention reads them: rows of KvHeadCount × HeadDim floats.</summary>
public interface IKvStore
{
    /// <summary>Keys of <paramref name="layer"/>: [rows, kvHeadCount * headDim].</summary>
    Span<float> Keys(int layer);

    /// <summary>Values of <paramref name="layer"/>: [rows, kvHeadCount * headDim].</summary>
    Span<float> Values(int layer);
}

/// <summary>
/// One sequence's view of a KV store: position p is row <c>Table[p / BlockSize] * BlockSize + p % BlockSize</c>.
/// A dense <see cref="KvCache"/> is one block of its whole size.
/// </summary>
public readonly struct KvCacheView(IKvStore store, int[] table, int blockSize, int kvDim)
{
    public IKvStore Store { get; } = store;

    /// <summary>Block ids in position order: [blocks].</summary>
    public int[] Table { get; } = table;

    public int BlockSize { get; } = blockSize;

    /// <summary>Stores k and v [tokenCount, kvDim] at positions startPosition.. of <paramref name="layer"/>.</summary>
    public void Write(int layer, int startPosition, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int tokenCount)
    {
        Span<float> keys = Store.Keys(layer), values = Store.Values(layer);
        int p = startPosition, end = startPosition + tokenCount, src = 0;
        while (p < end)
        {
            int inBlock = p % BlockSize;
            int n = Math.Min(BlockSize - inBlock, end - p);
            long row = (long)Table[p / BlockSize] * BlockSize + inBlock;
            k.Slice(src * kvDim, n * kvDim).CopyTo(keys.Slice((int)(row * kvDim), n * kvDim));
            v.Slice(src * kvDim, n * kvDim).CopyTo(values.Slice((int)(row * kvDim), n * kvDim));
            p += n;
            src += n;
        }
    }
}

/// <summary>
/// The paged KV memory of every sequence (vLLM's block pool): per layer, keys and values
/// <c>[BlockCount * BlockSize, KvHeadCount * HeadDim]</c> float32 in native memory, handed out a block of
/// <see cref="BlockSize"/> positions at a time. Single-threaded (the engine loop) except the counters, which any
/// thread may read.
/// </summary>
public sealed unsafe class KvBlockPool : IKvStore, IDisposable
{
    /// <summary>Positions per block.</summary>
    public const int DefaultBlockSize = 16;

    private readonly float*[] _keys;     // per layer: [BlockCount * BlockSize, KvDim]
    private readonly float*[] _values;   // per layer: [BlockCount * BlockSize, KvDim]
    private readonly int[] _free;        // stack of free block ids
    private int _freeCount;
    private bool _disposed;

    public KvBlockPool(int layerCount, int kvHeadCount, int headDim, int blockCount, int blockSize = DefaultBlockSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(layerCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        LayerCount = layerCount;
        KvDim = kvHeadCount * headDim;
        BlockSize = blockSize;
        BlockCount = blockCount;
        if ((long)blockCount * blockSize * KvDim > Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(blockCount), $"{blockCount} blocks of {blockSize} positions × {KvDim} floats exceed one span per layer");
        }

        _keys = new float*[layerCount];
        _values = new float*[layerCount];
        nuint bytes = (nuint)((long)blockCount * blockSize * KvDim * sizeof(float));
        try
        {
            for (int l = 0; l < layerCount; l++)
            {
                _keys[l] = (float*)NativeMemory.AlignedAlloc(bytes, 64);
                _values[l] = (float*)NativeMemory.AlignedAlloc(bytes, 64);
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
    }

    /// <summary>A pool shaped for <paramref name="config"/> with <paramref name="blockCount"/> blocks.</summary>
    public static KvBlockPool Create(Qwen3Config config, int blockCount, int blockSize = DefaultBlockSize)
        => new(config.NumHiddenLayers, config.NumKeyValueHeads, config.HeadDim, blockCount, blockSize);

    /// <summary>Bytes one block takes over all layers, keys and values.</summary>
    public static long BytesPerBlock(Qwen3Config config, int blockSize = DefaultBlockSize)
        => (long)config.NumHiddenLayers * 2 * blockSize * config.NumKeyValueHeads * config.HeadDim * sizeof(float);

    public int LayerCount { get; }

    public int KvDim { get; }

    public int BlockSize { get; }

    public int BlockCount { get; }

    /// <summary>Blocks not held by any sequence (read from any thread).</summary>
    public int FreeBlockCount => Volatile.Read(ref _freeCount);

    public int UsedBlockCount => BlockCount - FreeBlockCount;

    public Span<float> Keys(int layer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new Span<float>(_keys[layer], BlockCount * BlockSize * KvDim);
    }

    public Span<float> Values(int layer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new Span<float>(_values[layer], BlockCount * BlockSize * KvDim);
    }

    /// <summary>Appends blocks to <paramref name="table"/> until it covers <paramref name="positions"/>; false (and nothing taken) when too few are free.</summary>
    public bool TryGrow(BlockTable table, int positions)
    {
        int needed = (positions + BlockSize - 1) / BlockSize - table.Count;
        if (needed <= 0)
        {
            return true;
        }

        if (needed > _freeCount || table.Count + needed > table.Capacity)
        {
            return false;
        }

        for (int i = 0; i < needed; i++)
        {
            table.Add(_free[--_freeCount]);
        }

        Volatile.Write(ref _freeCount, _freeCount);
        return true;
    }

    /// <summary>Gives every block of <paramref name="table"/> back and empties it.</summary>
    public void Release(BlockTable table)
    {
        for (int i = table.Count - 1; i >= 0; i--)
        {
            _free[_freeCount++] = table.Blocks[i];
        }

        Volatile.Write(ref _freeCount, _freeCount);
        table.Clear();
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
