using System.Runtime.InteropServices;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Tests.Kernels;

/// <summary>Comparison with llm.c-style diagnostics: the worst element, its index and both values.</summary>
internal static class KernelAssert
{
    public static void Close(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, float atol, float rtol, string context)
    {
        Assert.True(expected.Length == actual.Length, $"{context}: length {actual.Length}, expected {expected.Length}");
        int worst = -1;
        float worstDelta = 0, worstExcess = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            float delta = MathF.Abs(expected[i] - actual[i]);
            bool bothNaN = float.IsNaN(expected[i]) && float.IsNaN(actual[i]);
            if (bothNaN || expected[i] == actual[i])
            {
                continue;
            }

            float excess = float.IsNaN(delta) ? float.PositiveInfinity : delta - (atol + rtol * MathF.Abs(expected[i]));
            if (worst < 0 || excess > worstExcess)
            {
                worst = i;
                worstExcess = excess;
                worstDelta = delta;
            }
        }

        if (worst >= 0 && worstExcess > 0)
        {
            Assert.Fail($"{context}: max |Δ| {worstDelta:G6} at index {worst} (expected {expected[worst]:G9}, got {actual[worst]:G9}); " +
                $"tolerance {atol:G3} + {rtol:G3}·|expected|; first values expected [{First(expected)}] got [{First(actual)}]");
        }
    }

    private static string First(ReadOnlySpan<float> v)
    {
        var parts = new List<string>();
        for (int i = 0; i < Math.Min(5, v.Length); i++)
        {
            parts.Add(v[i].ToString("G6"));
        }

        return string.Join(", ", parts);
    }

    public static float[] Random(Random rng, int n, float scale = 1f)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++)
        {
            a[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        }

        return a;
    }
}

/// <summary>A weight matrix in native memory, filled with random values representable in its dtype.</summary>
internal sealed unsafe class TestWeights : IDisposable
{
    private readonly byte* _data;

    public TestWeights(Random rng, DType dtype, int rows, int cols, float scale = 1f)
    {
        long count = (long)rows * cols;
        _data = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(1, count * dtype.ByteSize()), 64);
        for (long i = 0; i < count; i++)
        {
            float v = (float)(rng.NextDouble() * 2 - 1) * scale;
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

/// <summary>The instruction sets every kernel test runs under: the public dispatch plus each width forced.</summary>
public static class Isa
{
    public const string Dispatch = "Dispatch";
    public static readonly string[] All = [Dispatch, "V512", "V256", "V128", "Scalar"];
}

/// <summary>The KV stores' head-major blocks (<see cref="Qwen3Sharp.Cache.IKvStore"/>), for tests that lay out keys and values by hand.</summary>
public static class KvLayout
{
    /// <summary>Where head h of position p starts, in heads (times the head's bytes for a byte offset).</summary>
    public static long Slot(int[] table, int p, int blockSize, int kvHeads, int h)
        => ((long)table[p / blockSize] * kvHeads + h) * blockSize + p % blockSize;

    /// <summary>Rows [positions, kvHeads * headDim] as one head-major block [kvHeads, positions, headDim].</summary>
    public static float[] HeadMajor(float[] rows, int positions, int kvHeads, int headDim)
    {
        var block = new float[rows.Length];
        for (int p = 0; p < positions; p++)
        {
            for (int h = 0; h < kvHeads; h++)
            {
                Array.Copy(rows, (p * kvHeads + h) * headDim, block, (h * positions + p) * headDim, headDim);
            }
        }

        return block;
    }
}
