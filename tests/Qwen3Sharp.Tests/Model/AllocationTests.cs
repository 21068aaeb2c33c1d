using Qwen3Sharp.Cache;
using Qwen3Sharp.Model;

namespace Qwen3Sharp.Tests.Model;

[CollectionDefinition(nameof(AllocationSensitive), DisableParallelization = true)]
public sealed class AllocationSensitive;

/// <summary>Runs alone, so that parallel tests do not slow the JIT's tiering during the warm-up.</summary>
[Collection(nameof(AllocationSensitive))]
public sealed class AllocationTests
{
    [Fact]
    public void Forward_DecodeSteadyState_AllocatesNothing()
    {
        using Qwen3Model m = Qwen3Model.Load(GoldenCase.Dir("tiny-a"), new Qwen3ModelOptions { ThreadCount = 2 });
        using KvCache cache = m.CreateCache(1024);
        var logits = new float[m.VocabSize];
        int[] prompt = GoldenCase.LoadAll("tiny-a")[2].InputIds;
        int[] next = new int[1];
        m.Forward(prompt, 0, cache, logits);
        int position = prompt.Length;
        void Step()
        {
            next[0] = GoldenModelTests.ArgMax(logits);
            m.Forward(next, position++, cache, logits);
        }

        // Warm-up: the JIT's tiering and on-stack replacement allocate while code is first promoted. Run until a
        // 16-step window allocates nothing (a per-token allocation never gives one), giving background tiering time.
        for (int window = 0; window < 20; window++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 16; i++)
            {
                Step();
            }

            if (GC.GetAllocatedBytesForCurrentThread() == before)
            {
                break;
            }

            Thread.Sleep(100);
        }

        // Measured on this thread, which runs the forward pass and takes pool items too. (The process-wide
        // GC.GetTotalAllocatedBytes(true) is no use inside the test host: its own threads allocate all the time.)
        long before64 = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 64; i++)
        {
            Step();
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before64;
        Assert.True(allocated == 0, $"64 decode steps allocated {allocated} bytes on the decoding thread");
    }

    [Fact]
    public void RunnerForwardBatch_FourSequencesDecodeSteadyState_AllocatesNothing()
    {
        var m = Qwen3Model.Load(GoldenCase.Dir("tiny-a"), new Qwen3ModelOptions { ThreadCount = 2, ContextSize = 1024 });
        using var runner = new Qwen3Sharp.Engine.Qwen3ModelRunner(m, maxSequences: 4, kvBlockCount: 4 * 64);
        int[] prompt = GoldenCase.LoadAll("tiny-a")[2].InputIds;
        var sequences = Enumerable.Range(0, 4).Select(_ => runner.TryAllocateSequence()!).ToArray();
        var logits = new float[5 * m.VocabSize];
        var entries = new Qwen3Sharp.Engine.RunnerEntry[4];
        int[] tokens = new int[4];
        for (int i = 0; i < 4; i++)
        {
            runner.ForwardBatch(prompt, [new Qwen3Sharp.Engine.RunnerEntry(sequences[i], 0, prompt.Length, true)], logits);
            entries[i] = new Qwen3Sharp.Engine.RunnerEntry(sequences[i], i, 1, true);
        }

        void Step()
        {
            for (int i = 0; i < 4; i++)
            {
                tokens[i] = GoldenModelTests.ArgMax(logits.AsSpan(i * m.VocabSize, m.VocabSize));
            }

            runner.ForwardBatch(tokens, entries, logits);
        }

        for (int window = 0; window < 20; window++)
        {
            long start = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 16; i++)
            {
                Step();
            }

            if (GC.GetAllocatedBytesForCurrentThread() == start)
            {
                break;
            }

            Thread.Sleep(100);
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 32; i++)
        {
            Step();
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated == 0, $"32 batched decode steps of 4 sequences allocated {allocated} bytes on the decoding thread");
    }
}
