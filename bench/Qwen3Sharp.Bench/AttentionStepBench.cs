using System.Diagnostics;
using System.Runtime.InteropServices;
using Qwen3Sharp.Cache;
using Qwen3Sharp.Kernels;

namespace Qwen3Sharp.Bench;

/// <summary>
/// The attention of one engine step, Qwen3-1.7B-shaped (16 query heads over 8 kv heads of 128, f16 cache, 16-position
/// blocks), one pool dispatch per layer for the whole step, unsplit (as batch-invariant callers run it) and as the engine
/// runs it by default (decodes deeper than <see cref="Attention.MinPartPositions"/> positions split by positions,
/// <see cref="Attention.Parts"/>), interleaved in rounds in this process so the neighbours' load hits both alike; best of
/// the rounds each. Four layers of their own stores, so the step reads its KV from DRAM. Environment:
/// KVSTEP_DTYPE (bf16, f32, q8_0), KVSTEP_LAYERS (1 with a small case: cache-resident), KVSTEP_CASE (a name's part),
/// KVSTEP_BLOCK (positions per block), KVSTEP_SEQUENTIAL=1 (consecutive blocks), KVSTEP_HUGE=1 (madvise huge pages).
/// </summary>
internal static unsafe partial class AttentionStepBench
{
    private const int Heads = 16, KvHeads = 8, HeadDim = 128, KvDim = KvHeads * HeadDim;

    public static void Run(WorkerPool pool)
    {
        // KVSTEP_LAYERS=1 with a small case keeps the KV cache-resident (the kernel's compute alone); KVSTEP_CASE=TEXT runs
        // the cases whose name contains TEXT
        int layerCount = int.TryParse(Environment.GetEnvironmentVariable("KVSTEP_LAYERS"), out int layers) ? layers : 4;
        string only = Environment.GetEnvironmentVariable("KVSTEP_CASE") ?? "";
        int blockSize = int.TryParse(Environment.GetEnvironmentVariable("KVSTEP_BLOCK"), out int block) ? block : 16;   // positions per block
        // (name, sequences as (start position, tokens))
        var steps = new (string Name, (int Start, int T)[] Seqs)[]
        {
            ("16 decodes at 88", Enumerable.Repeat((88, 1), 16).ToArray()),
            ("2 decodes at 120", Enumerable.Repeat((120, 1), 2).ToArray()),
            ("2 decodes at 1000", Enumerable.Repeat((1000, 1), 2).ToArray()),
            ("16 decodes at 500", Enumerable.Repeat((500, 1), 16).ToArray()),
            ("16 decodes at 1000", Enumerable.Repeat((1000, 1), 16).ToArray()),
            ("16 decodes at 2000", Enumerable.Repeat((2000, 1), 16).ToArray()),
            ("4 decodes at 2000", Enumerable.Repeat((2000, 1), 4).ToArray()),
            ("1 decode at 4000", [(4000, 1)]),
            ("chunk 512 at 1536", [(1536, 512)]),
            ("1 decode at 8000 + 15 at 100", [(100, 1), (100, 1), (100, 1), (100, 1), (100, 1), (100, 1), (100, 1), (8000, 1),
                (100, 1), (100, 1), (100, 1), (100, 1), (100, 1), (100, 1), (100, 1), (100, 1)]),
            ("15 decodes at 100 + chunk 256 at 0", [.. Enumerable.Repeat((100, 1), 15), (0, 256)]),
        };
        // KVSTEP_DTYPE=bf16|f32|q8_0: the cache in that type instead of f16
        KvCacheDType dtype = KvCacheDTypes.TryParse(Environment.GetEnvironmentVariable("KVSTEP_DTYPE"), out KvCacheDType parsed) ? parsed : KvCacheDType.F16;
        Console.WriteLine($"attention step, {layerCount} layers, {dtype.Name()} KV, {pool.ThreadCount} threads; load {File.ReadAllText("/proc/loadavg").Trim()}");
        foreach (var (name, seqs) in steps.Where(s => s.Name.Contains(only, StringComparison.Ordinal)))
        {
            var rng = new Random(3);
            int[] blocksOf = seqs.Select(s => (s.Start + s.T + blockSize - 1) / blockSize).ToArray();
            int blocks = blocksOf.Sum();
            int rowBytes = (int)dtype.Bytes(KvDim);
            var keys = new byte[layerCount][];
            var values = new byte[layerCount][];
            for (int l = 0; l < layerCount; l++)
            {
                keys[l] = new byte[(long)blocks * blockSize * rowBytes];
                values[l] = new byte[keys[l].Length];
                var kf = new float[KvDim];
                for (long r = 0; r < (long)blocks * blockSize; r++)   // values in range for every type
                {
                    for (int i = 0; i < KvDim; i++)
                    {
                        kf[i] = (float)(rng.NextDouble() * 2 - 1);
                    }

                    KvConvert.FromSingle(kf, dtype, keys[l].AsSpan((int)(r * rowBytes), rowBytes));
                    for (int i = 0; i < KvDim; i++)
                    {
                        kf[i] = (float)(rng.NextDouble() * 2 - 1);
                    }

                    KvConvert.FromSingle(kf, dtype, values[l].AsSpan((int)(r * rowBytes), rowBytes));
                }
            }

            // Each layer's keys and values in native memory as in the engine's pool (2 MiB-aligned here); KVSTEP_HUGE=1
            // asks for transparent huge pages (madvise), the default is the engine's plain pages
            bool huge = Environment.GetEnvironmentVariable("KVSTEP_HUGE") == "1";
            var kPtr = new nint[layerCount];
            var vPtr = new nint[layerCount];
            int kvLength = keys[0].Length;
            for (int l = 0; l < layerCount; l++)
            {
                kPtr[l] = Native(keys[l], huge);
                vPtr[l] = Native(values[l], huge);
            }

            ReadOnlySpan<byte> K(int l) => new((void*)kPtr[l], kvLength);
            ReadOnlySpan<byte> V(int l) => new((void*)vPtr[l], kvLength);

            // Shuffled blocks: a long-running server's fragmented pool; KVSTEP_SEQUENTIAL=1 gives each sequence consecutive
            // blocks, as a fresh pool does.
            int[] tables = Environment.GetEnvironmentVariable("KVSTEP_SEQUENTIAL") == "1"
                ? Enumerable.Range(0, blocks).ToArray()
                : Enumerable.Range(0, blocks).OrderBy(_ => rng.Next()).ToArray();
            int tokens = seqs.Sum(s => s.T);
            var step = new AttentionSequence[seqs.Length];
            for (int i = 0, row = 0, at = 0; i < seqs.Length; row += seqs[i].T, at += blocksOf[i], i++)
            {
                step[i] = new AttentionSequence(row, seqs[i].T, seqs[i].Start, at, blocksOf[i]);
            }

            float[] q = new float[tokens * Heads * HeadDim], output = new float[q.Length];
            for (int i = 0; i < q.Length; i++)
            {
                q[i] = (float)(rng.NextDouble() * 2 - 1);
            }

            void Unsplit()
            {
                for (int l = 0; l < layerCount; l++)
                {
                    Attention.Causal(pool, q, step, K(l), V(l), dtype, tables, blockSize, Heads, KvHeads, HeadDim, 0.088f, output, batchInvariant: true);
                }
            }

            void OneDispatch()
            {
                for (int l = 0; l < layerCount; l++)
                {
                    Attention.Causal(pool, q, step, K(l), V(l), dtype, tables, blockSize, Heads, KvHeads, HeadDim, 0.088f, output);
                }
            }

            Unsplit();
            OneDispatch();
            double a = double.MaxValue, b = double.MaxValue;
            var total = Stopwatch.StartNew();
            for (int round = 0; round < 5 || total.Elapsed.TotalSeconds < 3; round++)
            {
                long t0 = Stopwatch.GetTimestamp();
                Unsplit();
                long t1 = Stopwatch.GetTimestamp();
                OneDispatch();
                long t2 = Stopwatch.GetTimestamp();
                a = Math.Min(a, Stopwatch.GetElapsedTime(t0, t1).TotalSeconds);
                b = Math.Min(b, Stopwatch.GetElapsedTime(t1, t2).TotalSeconds);
            }

            for (int l = 0; l < layerCount; l++)
            {
                NativeMemory.AlignedFree((void*)kPtr[l]);
                NativeMemory.AlignedFree((void*)vPtr[l]);
            }

            double kvBytes = seqs.Sum(s => (double)(s.Start + s.T) * 2 * rowBytes);   // each sequence's keys and values, read once
            Console.WriteLine($"{name,-36} unsplit {a / layerCount * 1e6,8:F1} µs/layer   split decodes {b / layerCount * 1e6,8:F1} µs/layer   ({a / b:F2}x)" +
                (seqs.All(s => s.T == 1) ? $"   the KV once at {kvBytes / (b / layerCount) / 1e9:F1} GB/s" : ""));
        }
    }

    private static nint Native(byte[] data, bool hugePages)
    {
        const long Huge = 2L << 20;
        long bytes = (data.Length + Huge - 1) & ~(Huge - 1);
        byte* p = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, (nuint)Huge);
        if (hugePages)
        {
            _ = Madvise(p, (nuint)bytes, 14);   // MADV_HUGEPAGE
        }

        data.CopyTo(new Span<byte>(p, data.Length));
        return (nint)p;
    }

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(void* address, nuint length, int advice);
}
