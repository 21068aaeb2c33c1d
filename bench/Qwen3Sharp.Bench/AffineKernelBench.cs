using System.Diagnostics;
using System.Runtime.InteropServices;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Bench;

/// <summary>
/// <c>quick N affine</c>: BF16 against MLX affine 8- and 4-bit (group 64) on Qwen3-1.7B's matrix shapes, matvec
/// (weights rotating through 512 MB so every call streams from DRAM) and a 128-token product, interleaved, with
/// rates per process CPU-second (meaningful when the machine is shared) beside the wall-clock ones.
/// </summary>
internal static unsafe class AffineKernelBench
{
    private sealed class Matrix : IDisposable
    {
        private readonly byte* _data, _scales, _biases;

        public Matrix(int bits, int rows, int cols, int seed)
        {
            var rng = new Random(seed);
            long bytes = bits == 16 ? (long)rows * cols * 2 : (long)rows * cols * bits / 8;
            _data = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
            rng.NextBytes(new Span<byte>(_data, (int)Math.Min(bytes, int.MaxValue)));
            if (bits == 16)
            {
                for (long i = 0; i < (long)rows * cols; i++)
                {
                    ((ushort*)_data)[i] = (ushort)(BitConverter.SingleToUInt32Bits((float)(rng.NextDouble() * 0.2 - 0.1)) >> 16);
                }

                View = new WeightView(_data, DType.BF16, rows, cols);
                return;
            }

            long groups = (long)rows * cols / 64;
            _scales = (byte*)NativeMemory.AlignedAlloc((nuint)(groups * 2), 64);
            _biases = (byte*)NativeMemory.AlignedAlloc((nuint)(groups * 2), 64);
            for (long g = 0; g < groups; g++)
            {
                ((ushort*)_scales)[g] = (ushort)(BitConverter.SingleToUInt32Bits((float)(rng.NextDouble() - 0.5) * 0.01f) >> 16);
                ((ushort*)_biases)[g] = (ushort)(BitConverter.SingleToUInt32Bits((float)(rng.NextDouble() - 0.5) * 0.2f) >> 16);
            }

            View = new WeightView(_data, bits, 64, _scales, _biases, DType.BF16, rows, cols);
        }

        public WeightView View { get; }

        public void Dispose()
        {
            NativeMemory.AlignedFree(_data);
            NativeMemory.AlignedFree(_scales);
            NativeMemory.AlignedFree(_biases);
        }
    }

    public static void Run(WorkerPool pool, int threads)
    {
        var process = Process.GetCurrentProcess();
        (double Wall, double Cpu) Time(Action a)
        {
            a();
            double bestWall = double.MaxValue, bestCpu = double.MaxValue;
            for (int i = 0; i < 5; i++)
            {
                process.Refresh();
                TimeSpan c0 = process.TotalProcessorTime;
                long t0 = Stopwatch.GetTimestamp();
                a();
                double wall = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                process.Refresh();
                bestWall = Math.Min(bestWall, wall);
                bestCpu = Math.Min(bestCpu, (process.TotalProcessorTime - c0).TotalSeconds);
            }

            return (bestWall, bestCpu);
        }

        foreach ((int rows, int cols) in new[] { (6144, 2048), (2048, 6144) })
        {
            foreach (int bits in new[] { 16, 8, 4 })
            {
                long bytes = bits == 16 ? (long)rows * cols * 2 : (long)rows * cols * bits / 8 + (long)rows * cols / 64 * 4;
                int copies = (int)Math.Max(1, (512L << 20) / bytes);
                var ms = Enumerable.Range(0, copies).Select(i => new Matrix(bits, rows, cols, i)).ToArray();
                float[] x = new float[128 * cols], y = new float[128 * rows];
                Array.Fill(x, 0.01f);
                (double wall, double cpu) = Time(() =>
                {
                    foreach (Matrix m in ms)
                    {
                        MatMul.Multiply(pool, x.AsSpan(0, cols), 1, m.View, y);
                    }
                });
                string name = bits == 16 ? "bf16    " : $"affine{bits,-2}";
                Console.WriteLine($"matvec  {name} {rows,5}x{cols}: {wall / copies * 1e6,8:F1} µs  {bytes * copies / wall / 1e9,5:F1} GB/s  " +
                    $"(per CPU-second {bytes * copies / cpu / 1e9 * threads,5:F1} GB/s, {(double)rows * cols * copies / cpu / 1e9 * threads,5:F1} G weights/s)");
                (wall, cpu) = Time(() => MatMul.Multiply(pool, x, 128, ms[0].View, y));
                double flops = 2.0 * rows * cols * 128;
                Console.WriteLine($"prefill {name} {rows,5}x{cols}: {wall * 1e3,8:F1} ms  {flops / wall / 1e9,5:F1} GFLOP/s (per CPU-second {flops / cpu / 1e9 * threads,5:F1})");
                foreach (Matrix m in ms)
                {
                    m.Dispose();
                }
            }
        }
    }
}
