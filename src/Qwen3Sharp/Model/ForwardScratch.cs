using System.Runtime.InteropServices;
using Qwen3Sharp.Loading;

namespace Qwen3Sharp.Model;

/// <summary>
/// The activations of one forward chunk of up to <see cref="MaxTokenCount"/> tokens: one 64-byte-aligned native block
/// carved into views (llm.c style), allocated once and freed in <see cref="Dispose"/>. Each accessor returns the
/// first <c>tokenCount</c> rows.
/// </summary>
public sealed unsafe class ForwardScratch : IDisposable
{
    private readonly int _hidden, _qDim, _kvDim, _intermediate, _headDim;
    private byte* _block;
    private readonly float* _hiddenPtr, _normedPtr, _q, _k, _v, _attnOut, _gate, _up, _rope;
    private readonly int* _positions;

    public ForwardScratch(Qwen3Config config, int maxTokenCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokenCount, 1);
        MaxTokenCount = maxTokenCount;
        _hidden = config.HiddenSize;
        _qDim = config.NumAttentionHeads * config.HeadDim;
        _kvDim = config.NumKeyValueHeads * config.HeadDim;
        _intermediate = config.IntermediateSize;
        _headDim = config.HeadDim;

        long t = maxTokenCount;
        long[] floatCounts =
        [
            t * _hidden,        // Hidden   [T, hidden]
            t * _hidden,        // Normed   [T, hidden]
            t * _qDim,          // Q        [T, heads * headDim]
            t * _kvDim,         // K        [T, kvHeads * headDim]
            t * _kvDim,         // V        [T, kvHeads * headDim]
            t * _qDim,          // AttnOut  [T, heads * headDim]
            t * _intermediate,  // Gate     [T, intermediate]
            t * _intermediate,  // Up       [T, intermediate]
            t,                  // Positions [T] (int)
            t * _headDim,       // Rope     [T, headDim]: each token's cos, then sin (Rope.FillTable)
        ];
        long total = 0;
        var offsets = new long[floatCounts.Length];
        for (int i = 0; i < floatCounts.Length; i++)
        {
            offsets[i] = total;
            total += (floatCounts[i] * sizeof(float) + 63) / 64 * 64;
        }

        ByteCount = total;
        _block = (byte*)NativeMemory.AlignedAlloc((nuint)total, 64);
        NativeMemory.Clear(_block, (nuint)total);
        _hiddenPtr = (float*)(_block + offsets[0]);
        _normedPtr = (float*)(_block + offsets[1]);
        _q = (float*)(_block + offsets[2]);
        _k = (float*)(_block + offsets[3]);
        _v = (float*)(_block + offsets[4]);
        _attnOut = (float*)(_block + offsets[5]);
        _gate = (float*)(_block + offsets[6]);
        _up = (float*)(_block + offsets[7]);
        _positions = (int*)(_block + offsets[8]);
        _rope = (float*)(_block + offsets[9]);
    }

    public int MaxTokenCount { get; }

    public long ByteCount { get; }

    public Span<float> Hidden(int tokenCount) => View(_hiddenPtr, tokenCount, _hidden);     // [T, hidden]

    public Span<float> Normed(int tokenCount) => View(_normedPtr, tokenCount, _hidden);     // [T, hidden]

    public Span<float> Q(int tokenCount) => View(_q, tokenCount, _qDim);                    // [T, heads * headDim]

    public Span<float> K(int tokenCount) => View(_k, tokenCount, _kvDim);                   // [T, kvHeads * headDim]

    public Span<float> V(int tokenCount) => View(_v, tokenCount, _kvDim);                   // [T, kvHeads * headDim]

    public Span<float> AttnOut(int tokenCount) => View(_attnOut, tokenCount, _qDim);        // [T, heads * headDim]

    public Span<float> Gate(int tokenCount) => View(_gate, tokenCount, _intermediate);      // [T, intermediate]

    public Span<float> Up(int tokenCount) => View(_up, tokenCount, _intermediate);          // [T, intermediate]

    public Span<float> RopeTable(int tokenCount) => View(_rope, tokenCount, _headDim);      // [T, headDim]

    public Span<int> Positions(int tokenCount)                                             // [T]
    {
        Check(tokenCount);
        return new Span<int>(_positions, tokenCount);
    }

    private Span<float> View(float* p, int tokenCount, int width)
    {
        Check(tokenCount);
        return new Span<float>(p, tokenCount * width);
    }

    private void Check(int tokenCount)
    {
        ObjectDisposedException.ThrowIf(_block == null, this);
        if ((uint)tokenCount > (uint)MaxTokenCount)
        {
            throw new ArgumentOutOfRangeException(nameof(tokenCount), $"{tokenCount} exceeds the scratch's {MaxTokenCount} tokens");
        }
    }

    public void Dispose()
    {
        if (_block != null)
        {
            NativeMemory.AlignedFree(_block);
            _block = null;
        }
    }
}
