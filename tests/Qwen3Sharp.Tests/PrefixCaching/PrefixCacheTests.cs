using Qwen3Sharp.Cache;

namespace Qwen3Sharp.Tests.PrefixCaching;

/// <summary>The block pool's automatic prefix cache: hits, misses, LRU eviction, reference counts, collision safety.</summary>
public sealed class PrefixCacheTests
{
    private const int BlockSize = 4;

    private static KvBlockPool Pool(int blocks, BlockHasher? hasher = null) => new(1, 1, 1, blocks, BlockSize, KvCacheDType.F32, hasher);

    /// <summary>A sequence that computed <paramref name="tokens"/>: its blocks, every full one registered as the runner does.</summary>
    private static BlockTable Computed(KvBlockPool pool, int[] tokens)
    {
        var table = new BlockTable(16);
        Assert.True(pool.TryGrow(table, tokens.Length));
        ulong key = KvBlockPool.RootKey;
        for (int b = 0; b < tokens.Length / BlockSize; b++)
        {
            ReadOnlySpan<int> block = tokens.AsSpan(b * BlockSize, BlockSize);
            key = pool.KeyOf(key, block);
            pool.Register(table, b, block, key);
        }

        return table;
    }

    private static int Lookup(KvBlockPool pool, int[] tokens, out BlockTable table)
    {
        table = new BlockTable(16);
        return pool.AcquireCachedPrefix(table, tokens, out _);
    }

    private static int[] Seq(int start, int count) => Enumerable.Range(start, count).ToArray();

    [Fact]
    public void ResetPrefixCache_DropsUnreferencedBlocksKeepsHeldOnes_LaterLookupsMiss()
    {
        using KvBlockPool pool = Pool(8);
        int[] released = Seq(100, 8), held = Seq(500, 4);
        pool.Release(Computed(pool, released));
        BlockTable h = Computed(pool, held);
        Assert.Equal(3, pool.CachedBlockCount);

        Assert.Equal(2, pool.ResetPrefixCache());
        Assert.Equal(1, pool.CachedBlockCount);      // still referenced: stays registered
        Assert.Equal(1, pool.UsedBlockCount);
        Assert.Equal(7, pool.FreeBlockCount);
        Assert.Equal(0, Lookup(pool, [.. released, 1], out BlockTable miss));
        pool.Release(miss);
        Assert.Equal(1, Lookup(pool, [.. held, 1], out BlockTable hit));

        pool.Release(hit);
        pool.Release(h);
        Assert.Equal(1, pool.ResetPrefixCache());
        Assert.Equal(0, pool.CachedBlockCount);
        Assert.Equal(8, pool.FreeBlockCount);
        var all = new BlockTable(16);
        Assert.True(pool.TryGrow(all, 8 * BlockSize));   // every block handed out once: the free list holds each exactly once
        Assert.Equal(8, all.Blocks.Take(all.Count).Distinct().Count());
    }

    [Fact]
    public void Lookup_SamePrefix_HitsEveryFullBlockSharedWhileHeldAndCachedAfterRelease()
    {
        using KvBlockPool pool = Pool(8);
        int[] tokens = Seq(100, 10);   // 2 full blocks and 2 tokens
        BlockTable a = Computed(pool, tokens);
        Assert.Equal(3, pool.UsedBlockCount);
        Assert.Equal(2, pool.CachedBlockCount);

        Assert.Equal(2, Lookup(pool, tokens, out BlockTable b));
        Assert.Equal(a.Blocks[..2], b.Blocks[..2]);
        Assert.Equal(2, pool.RefCount(a.Blocks[0]));
        Assert.Equal(3, pool.UsedBlockCount);   // shared, not copied

        pool.Release(a);
        pool.Release(b);
        Assert.Equal(0, pool.UsedBlockCount);
        Assert.Equal(8, pool.FreeBlockCount);
        Assert.Equal(2, pool.CachedBlockCount);  // unreferenced but still cached

        Assert.Equal(2, Lookup(pool, [.. tokens, 7, 7], out BlockTable c));
        Assert.Equal(1, pool.RefCount(c.Blocks[0]));
        pool.Release(c);
        for (int i = 0; i < 8; i++)
        {
            Assert.Equal(0, pool.RefCount(i));
        }
    }

    [Fact]
    public void Lookup_StopsAtTheFirstDifferentBlockAndNeverHitsAPartialBlock()
    {
        using KvBlockPool pool = Pool(8);
        int[] tokens = Seq(100, 12);
        pool.Release(Computed(pool, tokens));

        int[] laterDiffers = [.. tokens];
        laterDiffers[9] = 1;
        Assert.Equal(2, Lookup(pool, laterDiffers, out BlockTable t1));
        pool.Release(t1);

        int[] firstDiffers = [.. tokens];
        firstDiffers[0] = 1;
        Assert.Equal(0, Lookup(pool, firstDiffers, out BlockTable t2));
        Assert.Equal(0, t2.Count);

        Assert.Equal(1, Lookup(pool, tokens[..7], out BlockTable t3));   // 1 full block + 3 tokens
        Assert.Equal(0, Lookup(pool, tokens[..3], out BlockTable t4));   // shorter than a block
        pool.Release(t3);
        pool.Release(t4);
        Assert.Equal(0, pool.UsedBlockCount);
    }

    [Fact]
    public void Allocation_WhenNothingIsFree_EvictsLeastRecentlyUsedUnreferencedBlocksTailFirst()
    {
        using KvBlockPool pool = Pool(4);
        int[] a = Seq(100, 8), b = Seq(200, 8);
        BlockTable ta = Computed(pool, a), tb = Computed(pool, b);
        int a0 = ta.Blocks[0], a1 = ta.Blocks[1];
        pool.Release(ta);   // LRU: a1, a0
        pool.Release(tb);   // LRU: a1, a0, b1, b0
        Assert.Equal(4, pool.FreeBlockCount);

        var other = new BlockTable(16);
        Assert.True(pool.TryGrow(other, 1));
        Assert.Equal(a1, other.Blocks[0]);           // a's tail went first
        Assert.Equal(1, Lookup(pool, a, out BlockTable ha));
        Assert.Equal(a0, ha.Blocks[0]);

        Assert.Equal(2, Lookup(pool, b, out BlockTable hb));   // touches b: now most recently used
        pool.Release(hb);   // LRU: b1, b0
        pool.Release(ha);   // LRU: b1, b0, a0
        Assert.True(pool.TryGrow(other, 2 * BlockSize));       // evicts b1, the least recently used
        Assert.Equal(1, Lookup(pool, b, out BlockTable hb2));
        Assert.Equal(1, Lookup(pool, a, out BlockTable ha2));
        pool.Release(hb2);
        pool.Release(ha2);
        pool.Release(other);
        Assert.Equal(0, pool.UsedBlockCount);
        Assert.False(pool.TryGrow(new BlockTable(16), 5 * BlockSize));
    }

    [Fact]
    public void Lookup_ForcedHashCollision_NeverReturnsBlocksOfOtherTokensOrAnotherParent()
    {
        using KvBlockPool pool = Pool(8, (_, _) => 42UL);   // every block has the same key
        int[] a = [1, 2, 3, 4, 9, 9, 9, 9];
        pool.Release(Computed(pool, a));   // block 0 cached under 42; block 1 collides and stays uncached
        Assert.Equal(1, pool.CachedBlockCount);

        Assert.Equal(0, Lookup(pool, [5, 6, 7, 8, 0], out BlockTable other));  // same key, other tokens
        Assert.Equal(1, Lookup(pool, a, out BlockTable prefix));
        // Same key and same tokens as block 0, but block 0 is a first block, not the child of block 0.
        Assert.Equal(1, Lookup(pool, [1, 2, 3, 4, 1, 2, 3, 4, 0], out BlockTable repeated));
        pool.Release(other);
        pool.Release(prefix);
        pool.Release(repeated);
        Assert.Equal(0, pool.UsedBlockCount);
    }

    [Fact]
    public void Lookup_SameKeyAndTokensUnderAnotherParent_Misses()
    {
        // Keys that ignore the parent: only the parent check keeps [3333][2222] from taking [1111][2222]'s second block.
        using KvBlockPool pool = Pool(8, (_, tokens) => (ulong)tokens[0]);
        pool.Release(Computed(pool, [1, 1, 1, 1, 2, 2, 2, 2]));
        pool.Release(Computed(pool, [3, 3, 3, 3]));
        Assert.Equal(3, pool.CachedBlockCount);
        Assert.Equal(1, Lookup(pool, [3, 3, 3, 3, 2, 2, 2, 2, 0], out BlockTable t));
        Assert.Equal(2, Lookup(pool, [1, 1, 1, 1, 2, 2, 2, 2, 0], out BlockTable u));
        pool.Release(t);
        pool.Release(u);
        Assert.Equal(0, pool.UsedBlockCount);
    }
}
