using Qwen3Sharp.Cache;
using Qwen3Sharp.Model;

namespace Qwen3Sharp.Tests.Model;

[CollectionDefinition(nameof(AllocationSensitive), DisableParallelization = true)]
public sealed class AllocationSensitive;

/// <summary>Runs alone so that the process-wide allocation counter sees only the decode loop.</summary>
[Collection(nameof(AllocationSensitive))]
public sealed class AllocationTests
{
    [Fact]
    public void Forward_DecodeSteadyState_AllocatesNothing()
    {
        using Qwen3Model m = Qwen3Model.Load(GoldenCase.Dir("tiny-a"), new Qwen3ModelOptions { ThreadCount = 1 });
        using KvCache cache = m.CreateCache(256);
        var logits = new float[m.VocabSize];
        int[] prompt = GoldenCase.LoadAll("tiny-a")[2].InputIds;
        int[] next = new int[1];
        m.Forward(prompt, 0, cache, logits);
        int position = prompt.Length;
        for (int i = 0; i < 8; i++)   // warm-up (JIT tiers)
        {
            next[0] = GoldenModelTests.ArgMax(logits);
            m.Forward(next, position++, cache, logits);
        }

        long threadBefore = GC.GetAllocatedBytesForCurrentThread();
        long totalBefore = GC.GetTotalAllocatedBytes(precise: true);
        for (int i = 0; i < 64; i++)
        {
            next[0] = GoldenModelTests.ArgMax(logits);
            m.Forward(next, position++, cache, logits);
        }

        long totalAfter = GC.GetTotalAllocatedBytes(precise: true);
        long threadAfter = GC.GetAllocatedBytesForCurrentThread();
        Assert.Equal(0, threadAfter - threadBefore);
        Assert.Equal(0, totalAfter - totalBefore);
    }
}
