using Qwen3Sharp.Kernels;

namespace Qwen3Sharp.Tests.Kernels;

public sealed unsafe class WorkerPoolTests
{
    private struct CountJob : IPoolJob
    {
        public int* Hits;
        public int* WorkerOutOfRange;
        public int ThreadCount;

        public readonly void Execute(int index, int worker)
        {
            Interlocked.Increment(ref Hits[index]);
            if ((uint)worker >= (uint)ThreadCount)
            {
                Interlocked.Increment(ref *WorkerOutOfRange);
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    public void Run_ManyRepetitions_EveryIndexExactlyOnce(int threads)
    {
        using var pool = new WorkerPool(threads);
        var rng = new Random(1);
        int[] hits = new int[600];
        int outOfRange = 0;
        for (int rep = 0; rep < 3000; rep++)
        {
            int count = rep % 10 == 0 ? rng.Next(0, 600) : rng.Next(0, 9);
            Array.Clear(hits);
            fixed (int* h = hits)
            {
                var job = new CountJob { Hits = h, WorkerOutOfRange = &outOfRange, ThreadCount = threads };
                pool.Run(ref job, count);
            }

            for (int i = 0; i < hits.Length; i++)
            {
                int expected = i < count ? 1 : 0;
                if (hits[i] != expected)
                {
                    Assert.Fail($"repetition {rep}, count {count}: index {i} ran {hits[i]} times, expected {expected}");
                }
            }
        }

        Assert.Equal(0, outOfRange);
    }

    private static void AddIndex(void* state, int index, int worker) => Interlocked.Add(ref *(long*)state, index + 1);

    [Fact]
    public void For_FunctionPointer_SumsAllIndices()
    {
        using var pool = new WorkerPool(2);
        long sum = 0;
        pool.For(1000, &AddIndex, &sum);
        Assert.Equal(1000L * 1001 / 2, sum);
    }

    [Fact]
    public void For_MoreItemsThanOneRoundHolds_RunsThemAll()
    {
        using var pool = new WorkerPool(2);
        long sum = 0;
        const int count = (1 << 20) + 77;
        pool.For(count, &AddIndex, &sum);
        Assert.Equal((long)count * (count + 1) / 2, sum);
    }

    private struct ThrowingJob : IPoolJob
    {
        public int ThrowAt;

        public readonly void Execute(int index, int worker)
        {
            if (index == ThrowAt)
            {
                throw new InvalidOperationException($"item {index} failed");
            }
        }
    }

    [Fact]
    public void Run_ItemThrows_ExceptionReachesCallerAndPoolStaysUsable()
    {
        using var pool = new WorkerPool(3);
        for (int rep = 0; rep < 50; rep++)
        {
            var job = new ThrowingJob { ThrowAt = rep % 40 };
            var e = Assert.Throws<InvalidOperationException>(() => pool.Run(ref job, 40));
            Assert.Equal($"item {rep % 40} failed", e.Message);
        }

        long sum = 0;
        pool.For(100, &AddIndex, &sum);
        Assert.Equal(5050, sum);
    }

    private struct NestedJob : IPoolJob
    {
        public long* Sum;
        public IntPtr PoolHandle;

        public readonly void Execute(int index, int worker)
        {
            var pool = (WorkerPool)System.Runtime.InteropServices.GCHandle.FromIntPtr(PoolHandle).Target!;
            pool.For(10, &AddIndex, Sum);
        }
    }

    [Fact]
    public void For_CalledFromInsideAJob_RunsInline()
    {
        using var pool = new WorkerPool(2);
        var handle = System.Runtime.InteropServices.GCHandle.Alloc(pool);
        try
        {
            long sum = 0;
            var job = new NestedJob { Sum = &sum, PoolHandle = System.Runtime.InteropServices.GCHandle.ToIntPtr(handle) };
            pool.Run(ref job, 8);
            Assert.Equal(8 * 55, sum);
        }
        finally
        {
            handle.Free();
        }
    }

    [Fact]
    public void Run_AfterWorkersFellAsleep_StillCompletes()
    {
        using var pool = new WorkerPool(2);
        for (int rep = 0; rep < 3; rep++)
        {
            Thread.Sleep(5);                       // longer than the spin window: the workers block
            long sum = 0;
            pool.For(64, &AddIndex, &sum);
            Assert.Equal(64 * 65 / 2, sum);
        }
    }

    [Fact]
    public void Dispose_JoinsWorkerThreads_AndLaterCallsThrow()
    {
        var pool = new WorkerPool(3);
        long sum = 0;
        pool.For(10, &AddIndex, &sum);
        pool.Dispose();
        Assert.True(pool.WorkersStopped);
        Assert.Throws<ObjectDisposedException>(() => pool.For(10, &AddIndex, null));
        pool.Dispose();                            // idempotent
    }

    [Fact]
    public void Constructor_ZeroThreads_Throws()
        => Assert.Throws<ArgumentOutOfRangeException>(() => new WorkerPool(0));
}
