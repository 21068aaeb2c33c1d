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
