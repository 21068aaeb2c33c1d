using System.Runtime.Intrinsics;
using Qwen3Sharp.Cache;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Kernels.Reference;

namespace Qwen3Sharp.Tests.Kernels;

public sealed class AttentionTests
{
    // (headCount, kvHeadCount, headDim, startPosition, tokenCount)
    private static readonly (int H, int Kv, int D, int Start, int T)[] Configs =
        [(2, 1, 8, 0, 1), (4, 2, 16, 3, 5), (16, 8, 128, 20, 3), (16, 8, 128, 0, 17), (3, 3, 7, 0, 4), (2, 1, 33, 10, 17), (8, 2, 64, 300, 1), (6, 2, 40, 5, 3), (16, 8, 128, 1000, 2)];

    public static TheoryData<string> Isas()
    {
        var data = new TheoryData<string>();
        foreach (string isa in Isa.All)
        {
            data.Add(isa);
        }

        return data;
    }

    [Theory, MemberData(nameof(Isas))]
    public void Causal_GroupedQueryConfigs_MatchesScalar(string isa)
    {
        using var pool = new WorkerPool(2);
        var rng = new Random(5);
        foreach (var (h, kv, d, start, t) in Configs)
        {
            int context = start + t;
            float[] q = KernelAssert.Random(rng, t * h * d, 2f);
            float[] k = KernelAssert.Random(rng, context * kv * d, 2f);
            float[] v = KernelAssert.Random(rng, context * kv * d);
            float scale = 1f / MathF.Sqrt(d);
            float[] expected = new float[t * h * d], actual = new float[t * h * d];
            ScalarKernels.CausalAttention(q, t, start, k, v, h, kv, d, scale, expected);
            k = KvLayout.HeadMajor(k, context, kv, d);    // the kernel's layout: one head-major block of the context
            v = KvLayout.HeadMajor(v, context, kv, d);
            switch (isa)
            {
                case Isa.Dispatch: Attention.Causal(pool, q, t, start, k, v, h, kv, d, scale, actual); break;
                case "V512": Attention.Run<Vector512<float>, Simd512>(pool, q, t, start, k, v, [0], context, h, kv, d, scale, actual); break;
                case "V256": Attention.Run<Vector256<float>, Simd256>(pool, q, t, start, k, v, [0], context, h, kv, d, scale, actual); break;
                case "V128": Attention.Run<Vector128<float>, Simd128>(pool, q, t, start, k, v, [0], context, h, kv, d, scale, actual); break;
                default: Attention.Run<float, SimdScalar>(pool, q, t, start, k, v, [0], context, h, kv, d, scale, actual); break;
            }

            KernelAssert.Close(expected, actual, atol: 2e-6f, rtol: 1e-5f, $"Attention {isa} heads={h}/{kv} headDim={d} start={start} tokens={t}");
        }
    }

    [Theory, MemberData(nameof(Isas))]
    public void CausalPaged_RaggedLengthsScatteredBlocks_MatchesDense(string isa)
    {
        // Several sequences of ragged lengths share one pool of 16-position blocks, handed out in a shuffled order;
        // each one's paged attention equals the scalar dense attention over its own contiguous keys and values.
        using var pool = new WorkerPool(2);
        var rng = new Random(11);
        const int BlockSize = 16, H = 16, Kv = 8, D = 128;
        (int Start, int T)[] seqs = [(0, 1), (15, 1), (16, 1), (33, 5), (0, 40), (100, 1), (250, 7), (256, 1), (600, 1), (1500, 1)];
        int totalBlocks = seqs.Sum(x => (x.Start + x.T + BlockSize - 1) / BlockSize) + 3;
        int[] order = Enumerable.Range(0, totalBlocks).OrderBy(_ => rng.Next()).ToArray();
        float[] poolK = new float[totalBlocks * BlockSize * Kv * D], poolV = new float[poolK.Length];
        int next = 0;
        foreach (var (start, t) in seqs)
        {
            int context = start + t;
            float[] q = KernelAssert.Random(rng, t * H * D, 2f);
            float[] k = KernelAssert.Random(rng, context * Kv * D, 2f);
            float[] v = KernelAssert.Random(rng, context * Kv * D);
            int[] table = new int[(context + BlockSize - 1) / BlockSize];
            for (int b = 0; b < table.Length; b++)
            {
                table[b] = order[next++];
            }

            for (int p = 0; p < context; p++)
            {
                for (int kvh = 0; kvh < Kv; kvh++)
                {
                    long slot = KvLayout.Slot(table, p, BlockSize, Kv, kvh);
                    Array.Copy(k, (p * Kv + kvh) * D, poolK, slot * D, D);
                    Array.Copy(v, (p * Kv + kvh) * D, poolV, slot * D, D);
                }
            }

            float scale = 1f / MathF.Sqrt(D);
            float[] expected = new float[t * H * D], actual = new float[t * H * D];
            ScalarKernels.CausalAttention(q, t, start, k, v, H, Kv, D, scale, expected);
            switch (isa)
            {
                case Isa.Dispatch: Attention.Causal(pool, q, t, start, poolK, poolV, table, BlockSize, H, Kv, D, scale, actual); break;
                case "V512": Attention.Run<Vector512<float>, Simd512>(pool, q, t, start, poolK, poolV, table, BlockSize, H, Kv, D, scale, actual); break;
                case "V256": Attention.Run<Vector256<float>, Simd256>(pool, q, t, start, poolK, poolV, table, BlockSize, H, Kv, D, scale, actual); break;
                case "V128": Attention.Run<Vector128<float>, Simd128>(pool, q, t, start, poolK, poolV, table, BlockSize, H, Kv, D, scale, actual); break;
                default: Attention.Run<float, SimdScalar>(pool, q, t, start, poolK, poolV, table, BlockSize, H, Kv, D, scale, actual); break;
            }

            KernelAssert.Close(expected, actual, atol: 2e-6f, rtol: 1e-5f, $"Paged attention {isa} start={start} tokens={t}");
        }
    }

    public static TheoryData<KvCacheDType, int> DTypesAndThreads()
    {
        var data = new TheoryData<KvCacheDType, int>();
        foreach (KvCacheDType dtype in new[] { KvCacheDType.F32, KvCacheDType.BF16, KvCacheDType.F16, KvCacheDType.Q8_0 })
        {
            data.Add(dtype, 2);
        }

        data.Add(KvCacheDType.BF16, 1);
        data.Add(KvCacheDType.BF16, 3);
        return data;
    }

    [Theory, MemberData(nameof(DTypesAndThreads))]
    public void CausalStep_RaggedSequencesInOneDispatch_EqualEachSequenceAloneBitForBit(KvCacheDType dtype, int threads)
    {
        // An engine step: decodes at several depths and prefill chunks, each over its own shuffled blocks of one store,
        // tables concatenated in another order than the rows. One dispatch gives every token exactly what a dispatch of
        // its sequence alone gives (the batch-invariance the engine's step relies on), by default (deep decodes split by
        // positions the same way alone and in the step) and batch invariant (nothing split).
        using var pool = new WorkerPool(threads);
        var rng = new Random(23);
        const int BlockSize = 16, H = 16, Kv = 8, D = 128, KvDim = Kv * D;
        (int Start, int T)[] seqs = [(0, 1), (700, 1), (15, 1), (0, 37), (100, 20), (2000, 1), (31, 1), (250, 7)];
        int[] blocksOf = seqs.Select(x => (x.Start + x.T + BlockSize - 1) / BlockSize).ToArray();
        int totalBlocks = blocksOf.Sum() + 5;
        int rowBytes = (int)dtype.Bytes(KvDim);
        byte[] keys = new byte[totalBlocks * BlockSize * rowBytes], values = new byte[keys.Length];
        KvConvert.FromSingle(KernelAssert.Random(rng, totalBlocks * BlockSize * KvDim, 2f), dtype, keys);
        KvConvert.FromSingle(KernelAssert.Random(rng, totalBlocks * BlockSize * KvDim), dtype, values);
        int[] shuffled = Enumerable.Range(0, totalBlocks).OrderBy(_ => rng.Next()).ToArray();
        int[][] tables = new int[seqs.Length][];
        for (int i = 0, next = 0; i < seqs.Length; i++)
        {
            tables[i] = shuffled.AsSpan(next, blocksOf[i]).ToArray();
            next += blocksOf[i];
        }

        int[] tableOrder = Enumerable.Range(0, seqs.Length).Reverse().ToArray();
        int[] blockTables = new int[blocksOf.Sum() + 3];
        int[] tableOffset = new int[seqs.Length];
        for (int j = 0, at = 3; j < seqs.Length; j++)
        {
            int i = tableOrder[j];
            tableOffset[i] = at;
            tables[i].CopyTo(blockTables, at);
            at += tables[i].Length;
        }

        int tokens = seqs.Sum(x => x.T);
        var step = new AttentionSequence[seqs.Length];
        for (int i = 0, row = 0; i < seqs.Length; row += seqs[i].T, i++)
        {
            step[i] = new AttentionSequence(row, seqs[i].T, seqs[i].Start, tableOffset[i], tables[i].Length);
        }

        float[] q = KernelAssert.Random(rng, tokens * H * D, 2f);
        float scale = 1f / MathF.Sqrt(D);
        foreach (bool invariant in new[] { true, false })
        {
            float[] batched = new float[q.Length], alone = new float[q.Length];
            Attention.Causal(pool, q, step, keys, values, dtype, blockTables, BlockSize, H, Kv, D, scale, batched, invariant);
            foreach (AttentionSequence s in step)
            {
                int n = s.TokenCount * H * D;
                Attention.Causal(pool, q.AsSpan(s.TokenOffset * H * D, n), s.TokenCount, s.StartPosition, keys, values, dtype,
                    blockTables.AsSpan(s.TableOffset, s.TableLength), BlockSize, H, Kv, D, scale, alone.AsSpan(s.TokenOffset * H * D, n), invariant);
            }

            KernelAssert.Close(alone, batched, atol: 0, rtol: 0,
                $"{dtype} step of {seqs.Length} sequences in one dispatch, {threads} threads, batch invariant {invariant}");
        }
    }

    public static TheoryData<string, KvCacheDType> IsasAndDTypes()
    {
        var data = new TheoryData<string, KvCacheDType>();
        foreach (string isa in Isa.All)
        {
            foreach (KvCacheDType dtype in new[] { KvCacheDType.F32, KvCacheDType.BF16, KvCacheDType.F16, KvCacheDType.Q8_0 })
            {
                data.Add(isa, dtype);
            }
        }

        return data;
    }

    [Theory, MemberData(nameof(IsasAndDTypes))]
    public void CausalPrefill_TiledTokens_EqualEachTokenAloneBitForBit(string isa, KvCacheDType dtype)
    {
        // A prefill's tokens share tiles (up to 64 query rows read each block of keys and values together); batch
        // invariant, each token's result must be what the token alone gives at its position, bit for bit: a decode of it
        // (deep ones too: not split by positions), or another split of the chunk. Group sizes 1, 2, 3 and 8 (short tiles,
        // rows of a tile from several tokens), starts inside and at the edge of a block, token counts across tile and
        // block edges, and a head size with a tail past the last vector.
        using var pool = new WorkerPool(2);
        var rng = new Random(31);
        (int H, int Kv, int D, int BlockSize, int Start, int T)[] configs =
            [(16, 8, 128, 16, 0, 37), (16, 8, 128, 16, 21, 19), (4, 4, 32, 8, 5, 23), (6, 2, 64, 16, 3, 17), (8, 1, 32, 16, 40, 9),
             (4, 2, 64, 5, 7, 13), (2, 1, 96, 16, 0, 70), (3, 1, 40, 4, 2, 11), (16, 8, 128, 16, 700, 5), (3, 1, 40, 5, 300, 3)];
        foreach (var (h, kv, d, blockSize, start, t) in configs)
        {
            if (dtype.Unsupported(d) is not null)
            {
                continue;
            }

            int context = start + t, blocks = (context + blockSize - 1) / blockSize + 2, kvDim = kv * d;
            int rowBytes = (int)dtype.Bytes(kvDim);
            byte[] keys = new byte[blocks * blockSize * rowBytes], values = new byte[keys.Length];
            KvConvert.FromSingle(KernelAssert.Random(rng, blocks * blockSize * kvDim, 2f), dtype, keys);
            KvConvert.FromSingle(KernelAssert.Random(rng, blocks * blockSize * kvDim), dtype, values);
            int[] table = Enumerable.Range(0, blocks).OrderBy(_ => rng.Next()).Take((context + blockSize - 1) / blockSize).ToArray();
            float[] q = KernelAssert.Random(rng, t * h * d, 2f);
            float scale = 1f / MathF.Sqrt(d);
            float[] tiled = new float[q.Length], alone = new float[q.Length];
            Run(isa, dtype, pool, q, t, start, keys, values, table, blockSize, h, kv, d, scale, tiled, batchInvariant: true);
            for (int i = 0; i < t; i++)
            {
                Run(isa, dtype, pool, q.AsSpan(i * h * d, h * d), 1, start + i, keys, values, table, blockSize, h, kv, d, scale,
                    alone.AsSpan(i * h * d, h * d), batchInvariant: true);
            }

            KernelAssert.Close(alone, tiled, atol: 0, rtol: 0, $"{isa} {dtype} heads={h}/{kv} headDim={d} block={blockSize} start={start} tokens={t}");
        }
    }

    [Theory, MemberData(nameof(IsasAndDTypes))]
    public void CausalStep_DecodesAsWholeBlockItems_EqualEachSequenceAloneBitForBit(string isa, KvCacheDType dtype)
    {
        // Enough one-token sequences of similar depth make each one pool item over all its kv heads (each block of its
        // cache read whole); a deep one among them is split by positions, and a prefill chunk keeps its tiles. Every token
        // must get what its sequence alone gives, bit for bit: group sizes 1, 2 and 3, head sizes with and without a
        // tail past the last register tile, blocks of 16 and of 5 positions, 1 and 2 threads.
        var rng = new Random(43);
        (int H, int Kv, int D, int BlockSize)[] configs = [(16, 8, 128, 16), (6, 2, 64, 16), (4, 4, 32, 5), (3, 1, 40, 16)];
        (int Start, int T)[][] steps =
        [
            [(40, 1), (50, 1), (61, 1), (70, 1), (45, 1), (33, 1)],
            [(0, 1), (17, 1), (20, 1), (31, 1), (16, 1), (900, 1), (5, 1), (12, 1), (0, 9)],
        ];
        foreach (int threads in new[] { 1, 2 })
        {
            using var pool = new WorkerPool(threads);
            foreach (var (h, kv, d, blockSize) in configs)
            {
                if (dtype.Unsupported(d) is not null)
                {
                    continue;
                }

                foreach ((int Start, int T)[] seqs in steps)
                {
                    int kvDim = kv * d, rowBytes = (int)dtype.Bytes(kvDim);
                    int[] blocksOf = seqs.Select(x => (x.Start + x.T + blockSize - 1) / blockSize).ToArray();
                    int totalBlocks = blocksOf.Sum() + 3;
                    byte[] keys = new byte[totalBlocks * blockSize * rowBytes], values = new byte[keys.Length];
                    KvConvert.FromSingle(KernelAssert.Random(rng, totalBlocks * blockSize * kvDim, 2f), dtype, keys);
                    KvConvert.FromSingle(KernelAssert.Random(rng, totalBlocks * blockSize * kvDim), dtype, values);
                    int[] blockTables = Enumerable.Range(0, totalBlocks).OrderBy(_ => rng.Next()).Take(blocksOf.Sum()).ToArray();
                    var step = new AttentionSequence[seqs.Length];
                    for (int i = 0, row = 0, at = 0; i < seqs.Length; row += seqs[i].T, at += blocksOf[i], i++)
                    {
                        step[i] = new AttentionSequence(row, seqs[i].T, seqs[i].Start, at, blocksOf[i]);
                    }

                    float[] q = KernelAssert.Random(rng, seqs.Sum(x => x.T) * h * d, 2f);
                    float scale = 1f / MathF.Sqrt(d);
                    float[] together = new float[q.Length], alone = new float[q.Length];
                    RunStep(isa, dtype, pool, q, step, keys, values, blockTables, blockSize, h, kv, d, scale, together);
                    foreach (AttentionSequence s in step)
                    {
                        int n = s.TokenCount * h * d;
                        Run(isa, dtype, pool, q.AsSpan(s.TokenOffset * h * d, n), s.TokenCount, s.StartPosition, keys, values,
                            blockTables.AsSpan(s.TableOffset, s.TableLength).ToArray(), blockSize, h, kv, d, scale, alone.AsSpan(s.TokenOffset * h * d, n));
                    }

                    KernelAssert.Close(alone, together, atol: 0, rtol: 0,
                        $"{isa} {dtype} heads={h}/{kv} headDim={d} block={blockSize} {seqs.Length} sequences, {threads} threads");
                }
            }
        }
    }

    [Theory, MemberData(nameof(IsasAndDTypes))]
    public void CausalDecode_DeepSplitByPositions_MatchesUnsplitAndIgnoresThreadCount(string isa, KvCacheDType dtype)
    {
        // A lone decode deeper than a part is split by positions (parts of whole blocks, each over all kv heads, merged
        // by their maxima and sums): it must agree with the unsplit (batch-invariant) kernel, itself pinned to the scalar
        // reference above, to rounding; and give the same bits on 1, 2 and 3 threads (the parts do not depend on them).
        // Contexts just past one part and deep, blocks of 16, 5, 1 and 64 positions (the last part shorter than the
        // others, down to one position), group sizes 1, 2 and 3, a head with a tail past the last vector.
        var rng = new Random(47);
        (int H, int Kv, int D, int BlockSize, int Start)[] configs =
            [(16, 8, 128, 16, 4000), (16, 8, 128, 16, 256), (6, 2, 64, 5, 700), (4, 4, 32, 1, 300), (3, 1, 40, 64, 1000), (2, 1, 96, 16, 2047)];
        using var one = new WorkerPool(1);
        using var two = new WorkerPool(2);
        using var three = new WorkerPool(3);
        foreach (var (h, kv, d, blockSize, start) in configs)
        {
            if (dtype.Unsupported(d) is not null)
            {
                continue;
            }

            int context = start + 1, blocks = (context + blockSize - 1) / blockSize, kvDim = kv * d;
            Assert.True(Attention.Parts(context, blockSize, out _) > 1, $"{context} positions in blocks of {blockSize} are split");
            int rowBytes = (int)dtype.Bytes(kvDim);
            byte[] keys = new byte[(blocks + 2) * blockSize * rowBytes], values = new byte[keys.Length];
            KvConvert.FromSingle(KernelAssert.Random(rng, (blocks + 2) * blockSize * kvDim, 2f), dtype, keys);
            KvConvert.FromSingle(KernelAssert.Random(rng, (blocks + 2) * blockSize * kvDim), dtype, values);
            int[] table = Enumerable.Range(0, blocks + 2).OrderBy(_ => rng.Next()).Take(blocks).ToArray();
            float[] q = KernelAssert.Random(rng, h * d, 2f);
            float scale = 1f / MathF.Sqrt(d);
            float[] unsplit = new float[q.Length], split1 = new float[q.Length], split2 = new float[q.Length], split3 = new float[q.Length];
            Run(isa, dtype, two, q, 1, start, keys, values, table, blockSize, h, kv, d, scale, unsplit, batchInvariant: true);
            Run(isa, dtype, one, q, 1, start, keys, values, table, blockSize, h, kv, d, scale, split1);
            Run(isa, dtype, two, q, 1, start, keys, values, table, blockSize, h, kv, d, scale, split2);
            Run(isa, dtype, three, q, 1, start, keys, values, table, blockSize, h, kv, d, scale, split3);
            string what = $"{isa} {dtype} heads={h}/{kv} headDim={d} block={blockSize} at {start}";
            KernelAssert.Close(unsplit, split2, atol: 2e-6f, rtol: 1e-5f, what);
            KernelAssert.Close(split2, split1, atol: 0, rtol: 0, what + ", 1 thread against 2");
            KernelAssert.Close(split2, split3, atol: 0, rtol: 0, what + ", 3 threads against 2");
        }
    }

    [Fact]
    public void Parts_SplitDeepContextsIntoWholeBlocks()
    {
        Assert.Equal(1, Attention.Parts(256, 16, out _));                  // up to MinPartPositions: one part
        Assert.Equal(2, Attention.Parts(257, 16, out int positions));
        Assert.Equal(256, positions);
        Assert.Equal(16, Attention.Parts(4001, 16, out positions));        // at most MaxParts, of whole blocks
        Assert.Equal(256, positions);
        Assert.Equal(16, Attention.Parts(100_000, 16, out positions));
        Assert.Equal(6256, positions);
        Assert.Equal(1, Attention.Parts(260, 5, out _));                   // 256 rounded up to whole blocks of 5
        Assert.Equal(2, Attention.Parts(261, 5, out positions));
        Assert.Equal(260, positions);
        Assert.Equal(1, Attention.Parts(4001, 4001, out _));              // one dense block: never split
    }

    private static void RunStep(string isa, KvCacheDType dtype, WorkerPool pool, ReadOnlySpan<float> q, ReadOnlySpan<AttentionSequence> step,
        byte[] keys, byte[] values, int[] tables, int blockSize, int h, int kv, int d, float scale, Span<float> destination, bool batchInvariant = false)
    {
        switch (dtype)
        {
            case KvCacheDType.F32: RunStep<KvF32>(isa, pool, q, step, keys, values, tables, blockSize, h, kv, d, scale, destination, batchInvariant); break;
            case KvCacheDType.BF16: RunStep<KvBf16>(isa, pool, q, step, keys, values, tables, blockSize, h, kv, d, scale, destination, batchInvariant); break;
            case KvCacheDType.F16: RunStep<KvF16>(isa, pool, q, step, keys, values, tables, blockSize, h, kv, d, scale, destination, batchInvariant); break;
            default: RunStep<KvQ8>(isa, pool, q, step, keys, values, tables, blockSize, h, kv, d, scale, destination, batchInvariant); break;
        }
    }

    private static void RunStep<TK>(string isa, WorkerPool pool, ReadOnlySpan<float> q, ReadOnlySpan<AttentionSequence> step, byte[] keys,
        byte[] values, int[] tables, int blockSize, int h, int kv, int d, float scale, Span<float> destination, bool batchInvariant) where TK : IKvElement
    {
        switch (isa)
        {
            case "V512": Attention.Run<Vector512<float>, Simd512, TK>(pool, q, step, keys, values, tables, blockSize, h, kv, d, scale, destination, batchInvariant); break;
            case "V256": Attention.Run<Vector256<float>, Simd256, TK>(pool, q, step, keys, values, tables, blockSize, h, kv, d, scale, destination, batchInvariant); break;
            case "V128": Attention.Run<Vector128<float>, Simd128, TK>(pool, q, step, keys, values, tables, blockSize, h, kv, d, scale, destination, batchInvariant); break;
            case "Scalar": Attention.Run<float, SimdScalar, TK>(pool, q, step, keys, values, tables, blockSize, h, kv, d, scale, destination, batchInvariant); break;
            default:
                KvCacheDType dtype = typeof(TK) == typeof(KvF32) ? KvCacheDType.F32 : typeof(TK) == typeof(KvBf16) ? KvCacheDType.BF16
                    : typeof(TK) == typeof(KvF16) ? KvCacheDType.F16 : KvCacheDType.Q8_0;
                Attention.Causal(pool, q, step, keys, values, dtype, tables, blockSize, h, kv, d, scale, destination, batchInvariant);
                break;
        }
    }

    private static void Run(string isa, KvCacheDType dtype, WorkerPool pool, ReadOnlySpan<float> q, int t, int start, byte[] keys, byte[] values,
        int[] table, int blockSize, int h, int kv, int d, float scale, Span<float> destination, bool batchInvariant = false)
    {
        switch (dtype)
        {
            case KvCacheDType.F32: Run<KvF32>(isa, pool, q, t, start, keys, values, table, blockSize, h, kv, d, scale, destination, batchInvariant); break;
            case KvCacheDType.BF16: Run<KvBf16>(isa, pool, q, t, start, keys, values, table, blockSize, h, kv, d, scale, destination, batchInvariant); break;
            case KvCacheDType.F16: Run<KvF16>(isa, pool, q, t, start, keys, values, table, blockSize, h, kv, d, scale, destination, batchInvariant); break;
            default: Run<KvQ8>(isa, pool, q, t, start, keys, values, table, blockSize, h, kv, d, scale, destination, batchInvariant); break;
        }
    }

    private static void Run<TK>(string isa, WorkerPool pool, ReadOnlySpan<float> q, int t, int start, byte[] keys, byte[] values,
        int[] table, int blockSize, int h, int kv, int d, float scale, Span<float> destination, bool batchInvariant) where TK : IKvElement
    {
        switch (isa)
        {
            case "V512": Attention.Run<Vector512<float>, Simd512, TK>(pool, q, t, start, keys, values, table, blockSize, h, kv, d, scale, destination, batchInvariant); break;
            case "V256": Attention.Run<Vector256<float>, Simd256, TK>(pool, q, t, start, keys, values, table, blockSize, h, kv, d, scale, destination, batchInvariant); break;
            case "V128": Attention.Run<Vector128<float>, Simd128, TK>(pool, q, t, start, keys, values, table, blockSize, h, kv, d, scale, destination, batchInvariant); break;
            case "Scalar": Attention.Run<float, SimdScalar, TK>(pool, q, t, start, keys, values, table, blockSize, h, kv, d, scale, destination, batchInvariant); break;
            default:
                KvCacheDType dtype = typeof(TK) == typeof(KvF32) ? KvCacheDType.F32 : typeof(TK) == typeof(KvBf16) ? KvCacheDType.BF16
                    : typeof(TK) == typeof(KvF16) ? KvCacheDType.F16 : KvCacheDType.Q8_0;
                Attention.Causal(pool, q, t, start, keys, values, dtype, table, blockSize, h, kv, d, scale, destination, batchInvariant);
                break;
        }
    }

    [Fact]
    public void CausalStep_TableOutsideTheConcatenation_Throws()
    {
        using var pool = new WorkerPool(1);
        AttentionSequence[] step = [new(0, 1, 0, 0, 1), new(1, 1, 16, 1, 2)];
        Assert.Throws<ArgumentException>(() => Attention.Causal(pool, new float[2 * 16], step, new byte[64 * 16 * 4], new byte[64 * 16 * 4],
            KvCacheDType.F32, [0, 1], 16, 2, 1, 8, 1f, new float[2 * 16]));
    }

    [Fact]
    public void CausalPaged_TableTooShort_Throws()
    {
        using var pool = new WorkerPool(1);
        Assert.Throws<ArgumentException>(() =>
            Attention.Causal(pool, new float[16], 1, 16, new float[32 * 16], new float[32 * 16], [0], 16, 2, 1, 8, 1f, new float[16]));
    }

    [Fact]
    public void Causal_HeadsNotMultipleOfKvHeads_Throws()
    {
        using var pool = new WorkerPool(1);
        Assert.Throws<ArgumentException>(() =>
            Attention.Causal(pool, new float[24], 1, 0, new float[16], new float[16], 3, 2, 8, 1f, new float[24]));
    }
}

public sealed class MemoryBandwidthTests
{
    [Fact]
    public void Measure_SmallBuffer_ReturnsPositiveFiniteRate()
    {
        using var pool = new WorkerPool(2);
        double gbps = MemoryBandwidth.Measure(pool, 8L << 20);
        Assert.True(gbps > 0 && double.IsFinite(gbps), $"bandwidth {gbps}");
    }

    [Fact]
    public void Probe_MeasuresAgainAndAgainOverOneBuffer_AndRefusesUseAfterDispose()
    {
        using var pool = new WorkerPool(2);
        var probe = new MemoryBandwidth.Probe(pool, (8L << 20) + 12345);
        Assert.Equal(8L << 20, probe.Bytes);   // whole 1 MiB chunks
        for (int i = 0; i < 3; i++)
        {
            double gbps = probe.Measure();
            Assert.True(gbps > 0 && double.IsFinite(gbps), $"bandwidth {gbps}");
        }

        probe.Dispose();
        probe.Dispose();
        Assert.Throws<ObjectDisposedException>(() => probe.Measure());
        Assert.Throws<ArgumentOutOfRangeException>(() => new MemoryBandwidth.Probe(pool, 1000));
    }
}
