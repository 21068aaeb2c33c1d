using Qwen3Sharp.Cache;
using Qwen3Sharp.Kernels;

namespace Qwen3Sharp.Tests.PrefixCaching;

/// <summary>The block pool in each KV dtype: sizes, writes through a sequence's view, block copies, prefix-cache reuse (heads of 32: q8_0's block).</summary>
public sealed class KvBlockPoolDTypeTests
{
    public static TheoryData<KvCacheDType> DTypes() => [KvCacheDType.F32, KvCacheDType.BF16, KvCacheDType.F16, KvCacheDType.Q8_0];

    [Theory]
    [InlineData(KvCacheDType.F32, 229_376)]
    [InlineData(KvCacheDType.BF16, 114_688)]
    [InlineData(KvCacheDType.F16, 114_688)]
    [InlineData(KvCacheDType.Q8_0, 60_928)]   // 57,344 / 32 blocks × 34 bytes
    public void Sizes_Qwen3_1_7BShape_16BitHalvesBytesPerToken(KvCacheDType dtype, long bytesPerToken)
    {
        // Qwen3-1.7B: 28 layers × (keys + values) × 8 kv heads × 128 = 57,344 elements per token.
        using var pool = new KvBlockPool(28, 8, 128, blockCount: 2, dtype: dtype);
        Assert.Equal(dtype, pool.DType);
        Assert.Equal(bytesPerToken, pool.TotalBytes / (2 * KvBlockPool.DefaultBlockSize));
        Assert.Equal(2 * KvBlockPool.DefaultBlockSize * dtype.Bytes(8 * 128), pool.KeyBytes(27).Length);
        Assert.Equal(dtype.Bytes(8 * 128), pool.RowBytes);
    }

    [Fact]
    public void Create_Q8_0_HeadsNotAMultipleOf32_IsAClearError()
    {
        var e = Assert.Throws<NotSupportedException>(() => new KvBlockPool(1, 2, 8, blockCount: 2, dtype: KvCacheDType.Q8_0));
        Assert.Contains("q8_0 needs head_dim to be a multiple of 32; this model's is 8", e.Message);
    }

    [Fact]
    public void Create_MoreThanOneSpanPerLayer_Throws()
    {
        // 2^31 bytes per layer do not fit a span: 16-bit holds twice float32's blocks before that limit.
        int f32Blocks = (int)(KvBlockPool.MaxLayerBytes / (16L * 1024 * 4)) + 1;
        Assert.Throws<ArgumentOutOfRangeException>(() => new KvBlockPool(1, 8, 128, f32Blocks, dtype: KvCacheDType.F32));
    }

    /// <summary>Writes positions 0..count-1 of random k/v through a block table, returns what each stored value should read back as.</summary>
    private static (float[] K, float[] V) WriteSequence(KvBlockPool pool, BlockTable table, int layer, int count, Random rng)
    {
        int kvDim = pool.KvDim;
        Assert.True(pool.TryGrow(table, count));
        float[] k = Tests.Kernels.KernelAssert.Random(rng, count * kvDim, 3f);
        float[] v = Tests.Kernels.KernelAssert.Random(rng, count * kvDim, 3f);
        var view = new KvCacheView(pool, table.Blocks, pool.BlockSize, kvDim);
        // Ragged writes: a prompt chunk crossing blocks, then one token at a time.
        int first = Math.Min(count, 21);
        view.Write(layer, 0, k.AsSpan(0, first * kvDim), v.AsSpan(0, first * kvDim), first);
        for (int p = first; p < count; p++)
        {
            view.Write(layer, p, k.AsSpan(p * kvDim, kvDim), v.AsSpan(p * kvDim, kvDim), 1);
        }

        return (Rounded(k, pool.DType), Rounded(v, pool.DType));
    }

    private static float[] Rounded(float[] x, KvCacheDType dtype)
    {
        var bytes = new byte[dtype.Bytes(x.Length)];
        KvConvert.FromSingle(x, dtype, bytes);
        var back = new float[x.Length];
        KvConvert.ToSingle(bytes, dtype, back);
        return back;
    }

    private static float[] ReadRow(KvBlockPool pool, Span<byte> layerBytes, int block, int offset)
    {
        var row = new float[pool.KvDim];
        KvConvert.ToSingle(StoredRow(pool, layerBytes, block, offset), pool.DType, row);
        return row;
    }

    /// <summary>A position's stored bytes, its heads' parts gathered from their runs (head-major blocks).</summary>
    private static byte[] StoredRow(KvBlockPool pool, Span<byte> layerBytes, int block, int offset)
    {
        int heads = pool.KvHeadCount, headBytes = pool.RowBytes / heads;
        var row = new byte[pool.RowBytes];
        for (int h = 0; h < heads; h++)
        {
            layerBytes.Slice(((block * heads + h) * pool.BlockSize + offset) * headBytes, headBytes).CopyTo(row.AsSpan(h * headBytes));
        }

        return row;
    }

    [Theory, MemberData(nameof(DTypes))]
    public void Write_OnTheWorkerPool_StoresTheBytesOfTheOneThreadWrite(KvCacheDType dtype)
    {
        // a prefill-sized write (>= PooledElementwise.MinElements) split across threads, from a position inside a block,
        // into blocks another sequence's interleave: every slot gets the bytes of the one-thread write into a second pool
        const int heads = 4, headDim = 64, kvDim = heads * headDim, tokens = 150, start = 3;
        using var workers = new WorkerPool(3);
        using var one = new KvBlockPool(1, heads, headDim, blockCount: 48, blockSize: 4, dtype: dtype);
        using var many = new KvBlockPool(1, heads, headDim, blockCount: 48, blockSize: 4, dtype: dtype);
        var rng = new Random(7);
        float[] k = Enumerable.Range(0, tokens * kvDim).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        float[] v = Enumerable.Range(0, tokens * kvDim).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        Assert.True(2L * tokens * kvDim >= PooledElementwise.MinElements);
        var tables = new List<int[]>();
        foreach (KvBlockPool pool in new[] { one, many })
        {
            var other = new BlockTable(48);
            var table = new BlockTable(48);
            for (int i = 0; i < 3; i++)   // interleaved, so this sequence's blocks are not in order
            {
                Assert.True(pool.TryGrow(other, 4 * (i + 1)));
                Assert.True(pool.TryGrow(table, 4 * 13 * (i + 1)));
            }

            var view = new KvCacheView(pool, table.Blocks, pool.BlockSize, kvDim);
            if (ReferenceEquals(pool, one))
            {
                view.Write(0, start, k, v, tokens);
            }
            else
            {
                view.Write(workers, 0, start, k, v, tokens);
            }

            tables.Add(table.Blocks);
        }

        Assert.Equal(tables[0], tables[1]);
        int headBytes = (int)dtype.Bytes(headDim);
        for (int p = start; p < start + tokens; p++)
        {
            for (int h = 0; h < heads; h++)
            {
                int at = ((tables[0][p / 4] * heads + h) * 4 + p % 4) * headBytes;   // the written slots (the rest was never written)
                Assert.Equal(one.KeyBytes(0).Slice(at, headBytes).ToArray(), many.KeyBytes(0).Slice(at, headBytes).ToArray());
                Assert.Equal(one.ValueBytes(0).Slice(at, headBytes).ToArray(), many.ValueBytes(0).Slice(at, headBytes).ToArray());
            }
        }

        // positions past the table: the pool rethrows the worker's error, as the inline write throws it
        var shortTable = new KvCacheView(many, [0, 1], many.BlockSize, kvDim);
        Assert.ThrowsAny<Exception>(() => shortTable.Write(workers, 0, 0, k, v, tokens));
    }

    [Theory, MemberData(nameof(DTypes))]
    public void Write_RaggedAcrossBlocks_ReadsBackTheRoundedValues(KvCacheDType dtype)
    {
        using var pool = new KvBlockPool(2, 2, 32, blockCount: 8, blockSize: 4, dtype: dtype);
        var rng = new Random(5);
        var other = new BlockTable(8);
        Assert.True(pool.TryGrow(other, 5));   // another sequence holds the first blocks, so this one's are not 0, 1, ...
        var table = new BlockTable(8);
        var (k, v) = WriteSequence(pool, table, layer: 1, count: 13, rng);
        for (int p = 0; p < 13; p++)
        {
            int block = table.Blocks[p / 4];
            Assert.Equal(k.AsSpan(p * 64, 64).ToArray(), ReadRow(pool, pool.KeyBytes(1), block, p % 4));
            Assert.Equal(v.AsSpan(p * 64, 64).ToArray(), ReadRow(pool, pool.ValueBytes(1), block, p % 4));
        }

        pool.Release(table);
        pool.Release(other);
        Assert.Equal(0, pool.UsedBlockCount);
    }

    [Theory, MemberData(nameof(DTypes))]
    public void CopyBlock_PartialRows_CopiesEveryLayerInTheStoredDType(KvCacheDType dtype)
    {
        using var pool = new KvBlockPool(3, 2, 32, blockCount: 6, blockSize: 4, dtype: dtype);
        var rng = new Random(9);
        var table = new BlockTable(6);
        var written = new (float[] K, float[] V)[3];
        for (int l = 0; l < 3; l++)
        {
            written[l] = WriteSequence(pool, table, l, count: 7, rng);   // blocks 0 (full) and 1 (3 of 4 rows)
        }

        var target = new BlockTable(6);
        Assert.True(pool.TryGrow(target, 4));
        int source = table.Blocks[1], destination = target.Blocks[0];
        byte[] untouched = StoredRow(pool, pool.KeyBytes(0), destination, 3);
        pool.CopyBlock(source, destination, positions: 3);
        for (int l = 0; l < 3; l++)
        {
            for (int r = 0; r < 3; r++)
            {
                int p = 4 + r;
                Assert.Equal(written[l].K.AsSpan(p * 64, 64).ToArray(), ReadRow(pool, pool.KeyBytes(l), destination, r));
                Assert.Equal(written[l].V.AsSpan(p * 64, 64).ToArray(), ReadRow(pool, pool.ValueBytes(l), destination, r));
            }
        }

        Assert.Equal(untouched, StoredRow(pool, pool.KeyBytes(0), destination, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.CopyBlock(source, 6, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.CopyBlock(source, destination, 5));
    }

    [Theory, MemberData(nameof(DTypes))]
    public void PrefixCache_HitBlocks_HoldTheFirstSequencesStoredValues(KvCacheDType dtype)
    {
        using var pool = new KvBlockPool(1, 2, 32, blockCount: 8, blockSize: 4, dtype: dtype);
        var rng = new Random(13);
        int[] tokens = Enumerable.Range(50, 9).ToArray();   // 2 full blocks and 1 token
        var table = new BlockTable(8);
        var (k, _) = WriteSequence(pool, table, 0, tokens.Length, rng);
        ulong key = KvBlockPool.RootKey;
        for (int b = 0; b < 2; b++)
        {
            key = pool.KeyOf(key, tokens.AsSpan(b * 4, 4));
            pool.Register(table, b, tokens.AsSpan(b * 4, 4), key);
        }

        pool.Release(table);
        var next = new BlockTable(8);
        Assert.Equal(2, pool.AcquireCachedPrefix(next, tokens, out _));
        for (int p = 0; p < 8; p++)
        {
            Assert.Equal(k.AsSpan(p * 64, 64).ToArray(), ReadRow(pool, pool.KeyBytes(0), next.Blocks[p / 4], p % 4));
        }

        pool.Release(next);
        Assert.Equal(0, pool.UsedBlockCount);
    }
}
