using System.Runtime.InteropServices;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Bench;

/// <summary>A random weight matrix in native 64-byte aligned memory for the kernel benchmarks.</summary>
internal sealed unsafe class BenchWeights : IDisposable
{
    private readonly byte* _data;

    public BenchWeights(DType dtype, int rows, int cols, int seed = 1)
    {
        long count = (long)rows * cols;
        _data = (byte*)NativeMemory.AlignedAlloc((nuint)(count * dtype.ByteSize()), 64);
        var rng = new Random(seed);
        for (long i = 0; i < count; i++)
        {
            float v = (float)(rng.NextDouble() * 0.2 - 0.1);
            switch (dtype)
            {
                case DType.F32: ((float*)_data)[i] = v; break;
                case DType.F16: ((Half*)_data)[i] = (Half)v; break;
                default: ((ushort*)_data)[i] = (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16); break;
            }
        }

        View = new WeightView(_data, dtype, rows, cols);
    }

    public WeightView View { get; }

    public void Dispose() => NativeMemory.AlignedFree(_data);
}

/// <summary>A random matrix in a GGML block format: random code bytes, finite fp16 scales (weights of order 0.1).</summary>
internal sealed unsafe class BenchBlockWeights : IDisposable
{
    private readonly byte* _data;

    public BenchBlockWeights(DType dtype, int rows, int cols, int seed = 1)
    {
        long bytes = rows * dtype.RowBytes(cols);
        _data = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        var rng = new Random(seed);
        rng.NextBytes(new Span<byte>(_data, checked((int)bytes)));
        for (long b = 0; b < bytes / dtype.BlockBytes(); b++)
        {
            byte* block = _data + b * dtype.BlockBytes();
            switch (dtype)
            {
                case DType.Q6_K:
                    *(Half*)(block + 208) = (Half)(0.1f / (64 * 32));
                    break;
                case DType.Q4_K or DType.Q5_K:
                    *(Half*)block = (Half)(0.1f / (32 * 16));
                    *(Half*)(block + 2) = (Half)(0.1f / (32 * 16));
                    break;
                default:
                    *(Half*)block = (Half)(0.1f / 16);
                    break;
            }
        }

        View = new WeightView(_data, dtype, rows, cols);
    }

    public WeightView View { get; }

    public void Dispose() => NativeMemory.AlignedFree(_data);
}
