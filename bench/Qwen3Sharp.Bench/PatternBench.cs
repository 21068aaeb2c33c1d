using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Qwen3Sharp.Kernels;

namespace Qwen3Sharp.Bench;

/// <summary>
/// Which read pattern streams fastest from DRAM on all pool threads: items of I bytes claimed from the pool, each
/// split into S equal parts read side by side, C bytes (a multiple of 64) of each part per step, over a fresh 1 GiB
/// buffer, interleaved rounds (`quick 2 pattern`; PATTERNS=I/S/C,... overrides the list). Two optional fields more,
/// I/S/C/W/H: W <c>vpmaddubsw</c> per 32 bytes read (compute between the loads, as a kernel has), and a hole of H bytes
/// left unread at the end of each part (GB/s count the bytes read).
/// </summary>
/// <remarks>
/// Zen 3, 2 threads, 2026-12-07 (medians of 7 rounds, two runs): four parts of 64 KiB (256 KiB items) 40.1–41.4 GB/s,
/// of 128 KiB 44.5, eight parts 40.6–43.6, one stream 29.9–30.5, and four parts of 17 KiB (four Q8_0x8 groups of a
/// 2048-column matrix side by side) 33.7–35.6: streams shorter than ~64 KiB lose a part of the four-stream gain. The
/// decode kernels' pair of adjacent groups was one 34 KiB stream per pass (29.7 here); their four-stream walk
/// (QuantMatMul.FourStreamDecode, quarters of ≥ 64 KiB) reads 1.18× as fast (<c>x8read</c>, see README).
/// Zen 5, 1 thread, 2026-12-07 (session 15): 9 KiB items read whole 33.1 GB/s, with their last KiB left unread 10.9
/// (the layout of Q4_0x8 and Q8_0x8 groups until then: codes, then a run of scales read 8 KiB ahead); one stream of
/// 256 KiB items 34.2, four 28.7; two threads: one stream 55.9, four of 64 KiB 41.3.
/// </remarks>
internal static unsafe class PatternBench
{
    public static void Run(WorkerPool pool)
    {
        const long bytes = 1L << 30;
        byte* buffer = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 1 << 21);
        float* sinks = (float*)NativeMemory.AllocZeroed(64, 64);
        MemoryBandwidth.Fill(pool, buffer, bytes);   // every page written, so reads hit DRAM
        (int I, int S, int C, int W, int H)[] patterns = (Environment.GetEnvironmentVariable("PATTERNS") ??
            "262144/4/256,131072/4/256,524288/4/256,69632/4/256,262144/4/64,262144/4/1024,1048576/1/256,34816/2/256,262144/8/256,278528/8/256")
            .Split(',').Select(p => p.Split('/').Select(int.Parse).ToArray()).Select(a => (a[0], a[1], a[2], a.Length > 3 ? a[3] : 0, a.Length > 4 ? a[4] : 0)).ToArray();
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
                var job = new PatternJob { Buffer = buffer, Sinks = sinks, Item = patterns[k].I, Streams = patterns[k].S, Step = patterns[k].C, Work = patterns[k].W, Hole = patterns[k].H };
                long items = bytes / patterns[k].I;
                long st = Stopwatch.GetTimestamp();
                pool.Run(ref job, (int)items);
                double gbs = items * (patterns[k].I - patterns[k].H) / Stopwatch.GetElapsedTime(st).TotalSeconds / 1e9;
                if (round > 0)
                {
                    results[k].Add(gbs);
                }
            }
        }

        for (int k = 0; k < patterns.Length; k++)
        {
            var r = results[k].Order().ToArray();
            Console.WriteLine($"item {patterns[k].I,8} streams {patterns[k].S} step {patterns[k].C,4} work {patterns[k].W} hole {patterns[k].H}: median {r[r.Length / 2]:F1} GB/s, best {r[^1]:F1}");
        }

        NativeMemory.AlignedFree(buffer);
        NativeMemory.Free(sinks);
    }

    private struct PatternJob : IPoolJob
    {
        public byte* Buffer;
        public float* Sinks;
        public int Item, Streams, Step, Work, Hole;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Execute(int index, int worker)
        {
            byte* p = Buffer + (long)index * Item;
            int part = Item / Streams;
            Vector256<int> a = default, b = default;
            Vector256<short> c0 = default, c1 = default;
            Vector256<sbyte> ones = Vector256.Create((sbyte)1);
            for (int off = 0; off < part - Hole; off += Step)
            {
                for (int s = 0; s < Streams; s++)
                {
                    byte* q = p + (long)s * part + off;
                    for (int c = 0; c < Step; c += 64)
                    {
                        Vector256<byte> u = Vector256.Load(q + c), v = Vector256.Load(q + c + 32);
                        a += u.AsInt32();
                        b += v.AsInt32();
                        for (int w = 0; w < Work; w++)
                        {
                            c0 += System.Runtime.Intrinsics.X86.Avx2.MultiplyAddAdjacent(u, ones);
                            c1 += System.Runtime.Intrinsics.X86.Avx2.MultiplyAddAdjacent(v, ones);
                        }
                    }
                }
            }

            Sinks[worker * 16] += Vector256.Sum(a + b) + Vector256.Sum(c0 + c1);
        }
    }
}
