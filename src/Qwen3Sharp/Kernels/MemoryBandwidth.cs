using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.InteropServices;

namespace Qwen3Sharp.Kernels;

/// <summary>Measured memory read bandwidth: the bound a decode matvec is judged against.</summary>
public static unsafe class MemoryBandwidth
{
    internal const int ChunkBytes = 1 << 20;

    /// <summary>
    /// Read bandwidth in GB/s (10^9 bytes per second): the best of six vectorised sums over a fresh native buffer
    /// of <paramref name="bytes"/> on all pool threads (after one untimed pass that faults the pages in), the passes
    /// alternately one sequential stream per 1 MiB chunk and four interleaved streams (its quarters, read side by side,
    /// as the 8-row group kernels read four groups): on the Zen 3 machine the four streams read up to ~20% faster, and
    /// a bound below what a kernel reaches would overstate that kernel's share of it. A caller that measures again and
    /// again keeps a <see cref="Probe"/> instead: faulting in a fresh gigabyte cost more than the six passes.
    /// </summary>
    public static double Measure(WorkerPool pool, long bytes = 1L << 30)
    {
        using var probe = new Probe(pool, bytes);
        return probe.Measure();
    }

    /// <summary>
    /// One native buffer, written once so its pages are resident (reads hit DRAM, not the zero page), then read as often
    /// as <see cref="Measure"/> is called: the same passes as <see cref="MemoryBandwidth.Measure"/> without allocating and
    /// faulting in the buffer each time (on one Zen 5 VM that took ~1.7 s of system time per GiB, where six passes over it
    /// take ~0.1 s). The buffer is far larger than any cache, so every pass still reads DRAM.
    /// </summary>
    public sealed class Probe : IDisposable
    {
        private readonly WorkerPool _pool;
        private readonly long _bytes;
        private byte* _buffer;
        private float* _sinks;

        /// <summary>Allocates <paramref name="bytes"/> (rounded down to whole 1 MiB chunks, at least one) and writes every page.</summary>
        public Probe(WorkerPool pool, long bytes = 1L << 30)
        {
            ArgumentNullException.ThrowIfNull(pool);
            ArgumentOutOfRangeException.ThrowIfLessThan(bytes, (long)ChunkBytes);
            _pool = pool;
            _bytes = bytes / ChunkBytes * ChunkBytes;
            _buffer = (byte*)NativeMemory.AlignedAlloc((nuint)_bytes, 64);
            _sinks = (float*)NativeMemory.AllocZeroed((nuint)pool.ThreadCount * 16, sizeof(float));
            Fill(pool, _buffer, _bytes);
        }

        /// <summary>Bytes read per pass.</summary>
        public long Bytes => _bytes;

        /// <summary>Read bandwidth in GB/s: the best of six passes, alternately one stream per chunk and four interleaved streams.</summary>
        public double Measure()
        {
            ObjectDisposedException.ThrowIf(_buffer == null, this);
            double best = double.MaxValue;
            for (int rep = 0; rep < 6; rep++)
            {
                long start = Stopwatch.GetTimestamp();
                ReadPass(_pool, _buffer, _bytes, _sinks, fourStreams: rep % 2 == 1);
                best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
            }

            return _bytes / best / 1e9;
        }

        public void Dispose()
        {
            if (_buffer != null)
            {
                NativeMemory.AlignedFree(_buffer);
                NativeMemory.Free(_sinks);
                _buffer = null;
                _sinks = null;
            }
        }
    }

    /// <summary>Writes every page of <paramref name="buffer"/> (a multiple of 1 MiB) so later reads hit DRAM, not the zero page.</summary>
    internal static void Fill(WorkerPool pool, byte* buffer, long bytes)
    {
        var job = new SumJob { Buffer = buffer, Fill = true };
        pool.Run(ref job, (int)(bytes / ChunkBytes));
    }

    /// <summary>One vectorised read of <paramref name="buffer"/> on all pool threads; sums land in
    /// <paramref name="sinks"/> [ThreadCount * 16].</summary>
    internal static void ReadPass(WorkerPool pool, byte* buffer, long bytes, float* sinks, bool fourStreams = false)
    {
        var job = new SumJob { Buffer = buffer, Sinks = sinks, FourStreams = fourStreams };
        pool.Run(ref job, (int)(bytes / ChunkBytes));
    }

    private struct SumJob : IPoolJob
    {
        public byte* Buffer;
        public float* Sinks;   // [threads, 16]: keeps the sums observable
        public bool Fill, FourStreams;

        public readonly void Execute(int index, int worker)
        {
            float* p = (float*)(Buffer + (long)index * ChunkBytes);
            int n = ChunkBytes / sizeof(float);
            if (Fill)
            {
                new Span<float>(p, n).Fill(1f);
                return;
            }

            float s;
            if (Vector512.IsHardwareAccelerated)
            {
                s = Sum<Vector512<float>, Simd512>(p, n);
            }
            else if (Vector256.IsHardwareAccelerated)
            {
                s = FourStreams ? Sum4(p, n) : Sum<Vector256<float>, Simd256>(p, n);
            }
            else if (Vector128.IsHardwareAccelerated)
            {
                s = Sum<Vector128<float>, Simd128>(p, n);
            }
            else
            {
                s = Sum<float, SimdScalar>(p, n);
            }

            Sinks[worker * 16] += s;
        }
    }

    /// <summary>The chunk's four quarters read side by side, one vector of each per step.</summary>
    /// <remarks>Optimized from its first call, as <see cref="Sum{TV, TS}"/>.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Sum4(float* p, int n)
    {
        int q = n / 4;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int i = 0; i < q; i += 8)
        {
            a0 += Vector256.Load(p + i);
            a1 += Vector256.Load(p + q + i);
            a2 += Vector256.Load(p + 2 * q + i);
            a3 += Vector256.Load(p + 3 * q + i);
        }

        return Vector256.Sum(a0 + a1 + (a2 + a3));
    }

    /// <remarks>
    /// Optimized from its first call: at tier 0 the loop runs well under the memory's speed (Measure's first call in a
    /// process read 24.3 GB/s where later passes over the same kind of buffer read 39.4, Zen 3), and
    /// <see cref="Measure"/>'s six passes can all come before the tiered JIT replaces it.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Sum<TV, TS>(float* p, int n) where TV : unmanaged where TS : ISimd<TV>
    {
        int lanes = TS.Count;
        TV a0 = TS.Zero, a1 = TS.Zero, a2 = TS.Zero, a3 = TS.Zero;
        for (int i = 0; i < n; i += 4 * lanes)
        {
            a0 = TS.Add(a0, TS.Load(p + i));
            a1 = TS.Add(a1, TS.Load(p + i + lanes));
            a2 = TS.Add(a2, TS.Load(p + i + 2 * lanes));
            a3 = TS.Add(a3, TS.Load(p + i + 3 * lanes));
        }

        return TS.Sum(TS.Add(TS.Add(a0, a1), TS.Add(a2, a3)));
    }
}
