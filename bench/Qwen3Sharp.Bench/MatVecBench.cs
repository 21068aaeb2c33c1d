using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Bench;

/// <summary>
/// The decode matvec on Qwen3-1.7B shapes (BF16, rows × cols), two threads. Each invocation multiplies every
/// copy of the matrix in a set of at least 512 MB, so the weights stream from DRAM as in a real decode step
/// rather than from the 32 MB L3. ReadBandwidth is the same pool summing a 512 MB buffer: the bound.
/// </summary>
[Config(typeof(KernelBenchConfig))]
public unsafe class MatVecBench : IThroughputBench
{
    private const long SetBytes = 512L << 20;

    [Params("2048x2048", "6144x2048", "2048x6144", "151936x2048")]
    public string Shape { get; set; } = "2048x2048";

    /// <summary>Set by the throughput columns to tell the two benchmarks apart.</summary>
    public string Method { get; set; } = nameof(MatVec);

    private WorkerPool? _pool;
    private BenchWeights[] _weights = [];
    private float[] _x = [], _y = [];
    private byte* _buffer;
    private float* _sinks;

    private int Rows => int.Parse(Shape.Split('x')[0]);
    private int Cols => int.Parse(Shape.Split('x')[1]);
    private int Copies => (int)Math.Max(1, SetBytes / ((long)Rows * Cols * 2));

    public double BytesPerInvoke => Method == nameof(ReadBandwidth) ? SetBytes : (double)Rows * Cols * 2 * Copies;
    public double FlopsPerInvoke => Method == nameof(ReadBandwidth) ? 0 : 2.0 * Rows * Cols * Copies;

    [GlobalSetup]
    public void Setup()
    {
        _pool = new WorkerPool(2);
        _weights = new BenchWeights[Copies];
        for (int i = 0; i < _weights.Length; i++)
        {
            _weights[i] = new BenchWeights(DType.BF16, Rows, Cols, seed: i);
        }

        _x = new float[Cols];
        _y = new float[Rows];
        Array.Fill(_x, 0.01f);
        _buffer = (byte*)NativeMemory.AlignedAlloc((nuint)SetBytes, 64);
        _sinks = (float*)NativeMemory.AllocZeroed(64, 64);
        MemoryBandwidth.Fill(_pool, _buffer, SetBytes);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (BenchWeights w in _weights)
        {
            w.Dispose();
        }

        NativeMemory.AlignedFree(_buffer);
        NativeMemory.Free(_sinks);
        _pool?.Dispose();
    }

    [Benchmark]
    public void MatVec()
    {
        foreach (BenchWeights w in _weights)
        {
            MatMul.Multiply(_pool!, _x, 1, w.View, _y);
        }
    }

    [Benchmark]
    public void ReadBandwidth() => MemoryBandwidth.ReadPass(_pool!, _buffer, SetBytes, _sinks);
}

/// <summary>The prefill product: tokens × (rows × cols BF16), two threads, reported in GFLOP/s.</summary>
[Config(typeof(KernelBenchConfig))]
public class PrefillBench : IThroughputBench
{
    [Params(64, 512)]
    public int Tokens { get; set; } = 64;

    [Params("2048x2048", "6144x2048")]
    public string Shape { get; set; } = "2048x2048";

    private WorkerPool? _pool;
    private BenchWeights? _weights;
    private float[] _x = [], _y = [];

    private int Rows => int.Parse(Shape.Split('x')[0]);
    private int Cols => int.Parse(Shape.Split('x')[1]);

    public double BytesPerInvoke => 0;
    public double FlopsPerInvoke => 2.0 * Tokens * Rows * Cols;

    [GlobalSetup]
    public void Setup()
    {
        _pool = new WorkerPool(2);
        _weights = new BenchWeights(DType.BF16, Rows, Cols);
        _x = new float[Tokens * Cols];
        _y = new float[Tokens * Rows];
        for (int i = 0; i < _x.Length; i++)
        {
            _x[i] = (i % 97) * 0.001f;
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _weights?.Dispose();
        _pool?.Dispose();
    }

    [Benchmark]
    public void MatMulPrefill() => MatMul.Multiply(_pool!, _x, Tokens, _weights!.View, _y);
}
