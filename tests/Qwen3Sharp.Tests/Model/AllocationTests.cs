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
        using KvCache cache = m.CreateCache(2048);
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

        // Up to 16 windows of 64 steps: the first ones warm the JIT up, and a one-off allocation of the runtime's own
        // (tiering, on-stack replacement; seen in CI: 3,880 bytes in a 64-step window after a clean 16-step one) fails
        // one window, while an allocation per token fails them all (Allocations.Fewest).
        long allocated = Allocations.Fewest(() =>
        {
            for (int i = 0; i < 64; i++)
            {
                Step();
            }
        }, windows: 16);
        Assert.True(allocated == 0, $"every window of 64 decode steps allocated on the decoding thread, the fewest {allocated} bytes");
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

        long allocated = Allocations.Fewest(() =>
        {
            for (int i = 0; i < 32; i++)
            {
                Step();
            }
        }, windows: 16);
        Assert.True(allocated == 0, $"every window of 32 batched decode steps of 4 sequences allocated on the decoding thread, the fewest {allocated} bytes");
    }
}
