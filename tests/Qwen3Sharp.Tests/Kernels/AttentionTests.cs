using System.Runtime.Intrinsics;
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
        (int Start, int T)[] seqs = [(0, 1), (15, 1), (16, 1), (33, 5), (0, 40), (100, 1), (250, 7)];
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
                int row = table[p / BlockSize] * BlockSize + p % BlockSize;
                Array.Copy(k, p * Kv * D, poolK, row * Kv * D, Kv * D);
                Array.Copy(v, p * Kv * D, poolV, row * Kv * D, Kv * D);
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
}
