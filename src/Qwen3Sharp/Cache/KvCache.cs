using System.Runtime.InteropServices;
using Qwen3Sharp.Loading;

namespace Qwen3Sharp.Cache;

/// <summary>
/// The key/value cache of one sequence: per layer, contiguous float32 keys and values
/// <c>[KvHeadCount, ContextSize, HeadDim]</c> (one head-major block of the whole context, <see cref="IKvStore"/>), in
/// native memory (pages are committed only when written). Head h of position p of layer l is row h * ContextSize + p
/// of <see cref="Keys"/>(l) and <see cref="Values"/>(l), HeadDim floats.
/// </summary>
/// <remarks>
/// The model touches the cache only through <see cref="Write"/> and the per-layer <see cref="Keys"/>/<see cref="Values"/>
/// views, so a paged (block) cache can replace this one by offering the same three operations per sequence.
/// </remarks>
public sealed unsafe class KvCache : IKvStore, IDisposable
{
    private readonly float*[] _keys;     // per layer: [KvHeadCount, ContextSize, HeadDim]
    private readonly float*[] _values;   // per layer: [KvHeadCount, ContextSize, HeadDim]
    private bool _disposed;

    public KvCache(int layerCount, int contextSize, int kvHeadCount, int headDim)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(layerCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(contextSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(kvHeadCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(headDim, 1);
        if ((long)contextSize * kvHeadCount * headDim * sizeof(float) > KvBlockPool.MaxLayerBytes)
        {
            throw new ArgumentOutOfRangeException(nameof(contextSize), $"{contextSize} positions × {kvHeadCount * headDim} floats per layer exceed one span");
        }

        LayerCount = layerCount;
        ContextSize = contextSize;
        KvHeadCount = kvHeadCount;
        HeadDim = headDim;
        _keys = new float*[layerCount];
        _values = new float*[layerCount];
        nuint bytes = (nuint)LayerBytes;
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
    }

    /// <summary>A cache shaped for <paramref name="config"/> holding <paramref name="contextSize"/> positions.</summary>
    public static KvCache Create(Qwen3Config config, int contextSize)
        => new(config.NumHiddenLayers, contextSize, config.NumKeyValueHeads, config.HeadDim);

    public int LayerCount { get; }

    /// <summary>Positions this cache can hold.</summary>
    public int ContextSize { get; }

    public int KvHeadCount { get; }

    public int HeadDim { get; }

    /// <summary>Floats per position per layer for keys (and again for values): KvHeadCount × HeadDim.</summary>
    public int KvDim => KvHeadCount * HeadDim;

    /// <summary>Bytes of one layer's keys (values take as much again).</summary>
    public long LayerBytes => (long)ContextSize * KvDim * sizeof(float);

    /// <summary>Bytes reserved in all (committed as positions are written).</summary>
    public long TotalBytes => LayerBytes * 2 * LayerCount;

    /// <summary>Always float32: the dense cache is the exact reference (the engine's paged pool takes other dtypes).</summary>
    public KvCacheDType DType => KvCacheDType.F32;

    public Span<byte> KeyBytes(int layer) => MemoryMarshal.AsBytes(Keys(layer));

    public Span<byte> ValueBytes(int layer) => MemoryMarshal.AsBytes(Values(layer));

    /// <summary>Keys of <paramref name="layer"/>: [KvHeadCount, ContextSize, HeadDim].</summary>
    public Span<float> Keys(int layer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new Span<float>(_keys[layer], ContextSize * KvDim);
    }

    /// <summary>Values of <paramref name="layer"/>: [KvHeadCount, ContextSize, HeadDim].</summary>
    public Span<float> Values(int layer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new Span<float>(_values[layer], ContextSize * KvDim);
    }

    /// <summary>Stores k and v [tokenCount, KvDim] at positions startPosition..startPosition + tokenCount - 1 (each head's part in its own run).</summary>
    public void Write(int layer, int startPosition, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int tokenCount)
    {
        if ((uint)startPosition > (uint)ContextSize || tokenCount > ContextSize - startPosition)
        {
            ThrowOutOfRange(startPosition, tokenCount);
        }

        Span<float> keys = Keys(layer), values = Values(layer);
        for (int t = 0; t < tokenCount; t++)
        {
            for (int h = 0; h < KvHeadCount; h++)
            {
                int at = (h * ContextSize + startPosition + t) * HeadDim;
                k.Slice(t * KvDim + h * HeadDim, HeadDim).CopyTo(keys.Slice(at, HeadDim));
                v.Slice(t * KvDim + h * HeadDim, HeadDim).CopyTo(values.Slice(at, HeadDim));
            }
        }
    }

    private void ThrowOutOfRange(int startPosition, int tokenCount)
        => throw new ArgumentOutOfRangeException(nameof(startPosition),
            $"positions {startPosition}..{startPosition + tokenCount - 1} do not fit a cache of {ContextSize} positions");

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
