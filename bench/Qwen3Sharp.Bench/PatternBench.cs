using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Qwen3Sharp.Kernels;

namespace Qwen3Sharp.Bench;

/// <summary>
/// Which read pattern streams fastest from DRAM on all pool threads: items of I bytes claimed from the pool, each
/// split into S equal parts read side by side, C bytes (a multiple of 64) of each part per step, over a fresh 1 GiB
/// buffer, interleaved rounds (`quick 2 pattern`; PATTERNS=I/S/C,... overrides the list).
/// </summary>
/// <remarks>
/// Zen 3, 2 threads, 2026-12-07 (medians of 7 rounds, two runs): four parts of 64 KiB (256 KiB items) 40.1–41.4 GB/s,
/// of 128 KiB 44.5, eight parts 40.6–43.6, one stream 29.9–30.5, and four parts of 17 KiB (four Q8_0x8 groups of a
/// 2048-column matrix side by side) 33.7–35.6: streams shorter than ~64 KiB lose a part of the four-stream gain. The
/// decode kernels' pair of adjacent groups was one 34 KiB stream per pass (29.7 here); their four-stream walk
/// (QuantMatMul.FourStreamDecode, quarters of ≥ 64 KiB) reads 1.18× as fast (<c>x8read</c>, see README).
/// </remarks>
internal static unsafe class PatternBench
{
    public static void Run(WorkerPool pool)
    {
        const long bytes = 1L << 30;
        byte* buffer = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 1 << 21);
        float* sinks = (float*)NativeMemory.AllocZeroed(64, 64);
        MemoryBandwidth.Fill(pool, buffer, bytes);   // every page written, so reads hit DRAM
        (int I, int S, int C)[] patterns = (Environment.GetEnvironmentVariable("PATTERNS") ??
            "262144/4/256,131072/4/256,524288/4/256,69632/4/256,262144/4/64,262144/4/1024,1048576/1/256,34816/2/256,262144/8/256,278528/8/256")
            .Split(',').Select(p => p.Split('/').Select(int.Parse).ToArray()).Select(a => (a[0], a[1], a[2])).ToArray();
        if (patterns.Any(p => p.C % 64 != 0 || p.I % (p.S * p.C) != 0))
        {
            throw new ArgumentException("each step C must be a multiple of 64 and each item I a multiple of S × C");
        }

        var results = patterns.Select(_ => new List<double>()).ToArray();
        for (int round = 0; round < 8; round++)
        {
            for (int i = 0; i < patterns.Length; i++)
            {
                int k = round % 2 == 0 ? i : patterns.Length - 1 - i;
                var job = new PatternJob { Buffer = buffer, Sinks = sinks, Item = patterns[k].I, Streams = patterns[k].S, Step = patterns[k].C };
                long items = bytes / patterns[k].I;
                long st = Stopwatch.GetTimestamp();
                pool.Run(ref job, (int)items);
                double gbs = items * patterns[k].I / Stopwatch.GetElapsedTime(st).TotalSeconds / 1e9;
                if (round > 0)
                {
                    results[k].Add(gbs);
                }
            }
        }

        for (int k = 0; k < patterns.Length; k++)
        {
            var r = results[k].Order().ToArray();
            Console.WriteLine($"item {patterns[k].I,8} streams {patterns[k].S} step {patterns[k].C,4}: median {r[r.Length / 2]:F1} GB/s, best {r[^1]:F1}");
        }

        NativeMemory.AlignedFree(buffer);
        NativeMemory.Free(sinks);
    }

    private struct PatternJob : IPoolJob
    {
        public byte* Buffer;
        public float* Sinks;
        public int Item, Streams, Step;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Execute(int index, int worker)
        {
            byte* p = Buffer + (long)index * Item;
            int part = Item / Streams;
            Vector256<int> a = default, b = default;
            for (int off = 0; off < part; off += Step)
            {
                for (int s = 0; s < Streams; s++)
                {
                    byte* q = p + (long)s * part + off;
                    for (int c = 0; c < Step; c += 64)
                    {
                        a += Vector256.Load((int*)(q + c));
                        b += Vector256.Load((int*)(q + c + 32));
                    }
                }
            }

            Sinks[worker * 16] += Vector256.Sum(a + b);
        }
    }
}
