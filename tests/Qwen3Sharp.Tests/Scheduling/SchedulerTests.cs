using System.Threading.Channels;
using Qwen3Sharp.Engine;
using Qwen3Sharp.Scheduling;
using Qwen3Sharp.Tests.Engine;

namespace Qwen3Sharp.Tests.Scheduling;

public class SchedulerTests
{
    private static SequenceRequest Request(int id, int promptTokens) =>
        new(id, new GenerationRequest { PromptTokens = new int[promptTokens] }, 16, Channel.CreateUnbounded<GenerationEvent>());

    [Fact]
    public void Schedule_ThreeLongPrompts_ChunksWithinBudget()
    {
        var runner = new FakeRunner(contextSize: 4096, maxSequences: 8);
        var scheduler = new Scheduler(1024, runner.TryAllocateSequence);
        var requests = Enumerable.Range(0, 3).Select(i => Request(i, 800)).ToList();
        requests.ForEach(scheduler.Add);

        var plan = scheduler.Schedule();
        Assert.Equal([800, 224], plan.Select(c => c.TokenCount));
        Assert.Equal(1, scheduler.WaitingCount);  // the third is not admitted: no budget left
        foreach (var c in plan)
        {
            c.Request.ComputedTokenCount += c.TokenCount;
        }

        plan = scheduler.Schedule();
        // request 0 is fully computed (waits for its sampled token), 1 gets its remaining 576, 2 starts with 448
        Assert.Equal([(1, 576), (2, 448)], plan.Select(c => ((int)c.Request.Id, c.TokenCount)));
    }

    [Fact]
    public void Schedule_NoFreeSequence_RequestWaits()
    {
        var runner = new FakeRunner(contextSize: 4096, maxSequences: 1);
        var scheduler = new Scheduler(512, runner.TryAllocateSequence);
        var a = Request(0, 10);
        var b = Request(1, 10);
        scheduler.Add(a);
        scheduler.Add(b);
        Assert.Single(scheduler.Schedule());
        Assert.Equal(1, scheduler.WaitingCount);
        scheduler.Finish(a);
        Assert.Equal(0, runner.LiveSequences);
        var plan = scheduler.Schedule();
        Assert.Same(b, Assert.Single(plan).Request);
    }

    private static SequenceRequest Request(int id, int promptTokens, int maxNew) =>
        new(id, new GenerationRequest { PromptTokens = new int[promptTokens] }, maxNew, Channel.CreateUnbounded<GenerationEvent>());

    /// <summary>Runs the plan as the engine does: the runner's forward (which checks the blocks), counters, a sampled token.</summary>
    private static void Execute(FakeRunner runner, IReadOnlyList<ScheduledChunk> plan)
    {
        var logits = new float[runner.VocabSize];
        foreach ((SequenceRequest r, int n) in plan)
        {
            runner.Forward(r.Sequence!, r.Tokens.Skip(r.ComputedTokenCount).Take(n).ToArray(), logits);
            r.ComputedTokenCount += n;
            if (r.ComputedTokenCount == r.TokenCount)
            {
                r.AppendToken(1);
            }
        }
    }

    [Fact]
    public void Schedule_MaxSequences_AdmitsNoMore()
    {
        var runner = new FakeRunner(contextSize: 4096, maxSequences: 8);
        var scheduler = new Scheduler(1024, runner.TryAllocateSequence, runner.TryReserve, maxSequences: 2);
        for (int i = 0; i < 3; i++)
        {
            scheduler.Add(Request(i, 10));
        }

        Assert.Equal([0, 1], scheduler.Schedule().Select(c => (int)c.Request.Id));
        Assert.Equal(1, scheduler.WaitingCount);
    }

    [Fact]
    public void Schedule_RunningDecodesThenPrefillChunk_RunningNeverStalledBeyondOneChunk()
    {
        var runner = new FakeRunner(contextSize: 8192, maxSequences: 8);
        var scheduler = new Scheduler(64, runner.TryAllocateSequence, runner.TryReserve);
        var a = Request(0, 5);
        var b = Request(1, 5);
        scheduler.Add(a);
        scheduler.Add(b);
        Execute(runner, scheduler.Schedule());
        var longPrompt = Request(2, 4000);
        scheduler.Add(longPrompt);
        for (int step = 0; step < 10; step++)
        {
            var plan = scheduler.Schedule();
            // every step: one decode token for each running stream, then the rest of the budget for the long prompt
            Assert.Equal([(0, 1), (1, 1), (2, 62)], plan.Select(c => ((int)c.Request.Id, c.TokenCount)));
            Execute(runner, plan);
        }
    }

    [Fact]
    public void Schedule_BlocksRunOut_NewestPreemptedThenResumedWithItsOutput()
    {
        // 5 blocks of 16: two requests of 30 prompt tokens take 2 blocks each; decoding past 32 needs a third each.
        var runner = new FakeRunner(vocabSize: 16, contextSize: 4096, maxSequences: 8, kvBlocks: 5);
        var scheduler = new Scheduler(256, runner.TryAllocateSequence, runner.TryReserve);
        var a = Request(0, 30, maxNew: 100);
        var b = Request(1, 30, maxNew: 100);
        scheduler.Add(a);
        scheduler.Add(b);
        Execute(runner, scheduler.Schedule());
        Assert.Equal(4, runner.UsedBlocks);
        while (scheduler.PreemptionCount == 0)
        {
            Execute(runner, scheduler.Schedule());
            Assert.True(runner.UsedBlocks <= 5);
            Assert.True(a.TokenCount < 60, "no preemption happened");
        }

        // a (older) grew into its third block first; b then needed a 6th block: b gave its blocks back and waits first in line.
        Assert.Equal(1, b.PreemptionCount);
        Assert.Null(b.Sequence);
        Assert.Equal(0, b.ComputedTokenCount);
        Assert.Same(b, scheduler.Waiting.First());
        Assert.Equal(3, runner.UsedBlocks);
        int bTokens = b.TokenCount;
        Assert.True(bTokens > 30, "b had generated tokens before preemption");

        // a finishes; b comes back and recomputes its prompt and its output so far in one chunk.
        scheduler.Finish(a);
        var plan = scheduler.Schedule();
        Assert.Same(b, Assert.Single(plan).Request);
        Assert.Equal(bTokens, plan[0].TokenCount);
        Execute(runner, plan);
        Assert.Equal(bTokens + 1, b.TokenCount);
        scheduler.Finish(b);
        Assert.Equal(0, runner.UsedBlocks);
        Assert.Equal(0, runner.LiveSequences);
    }

    [Fact]
    public void Schedule_AdmissionWithoutBlocks_WaitsWithoutPreempting()
    {
        var runner = new FakeRunner(contextSize: 4096, maxSequences: 8, kvBlocks: 4);
        var scheduler = new Scheduler(512, runner.TryAllocateSequence, runner.TryReserve);
        var a = Request(0, 60);
        var b = Request(1, 20);
        scheduler.Add(a);
        scheduler.Add(b);
        var plan = scheduler.Schedule();
        Assert.Same(a, Assert.Single(plan).Request);
        Assert.Equal(1, scheduler.WaitingCount);
        Assert.Equal(0, scheduler.PreemptionCount);
        Assert.Equal(1, runner.LiveSequences);   // b's sequence was given back at once
        scheduler.Finish(a);
        Assert.Same(b, Assert.Single(scheduler.Schedule()).Request);
    }

    [Fact]
    public void Finish_CancelledRunningAndWaiting_EveryBlockReturned()
    {
        var runner = new FakeRunner(contextSize: 4096, maxSequences: 8, kvBlocks: 64);
        var scheduler = new Scheduler(100, runner.TryAllocateSequence, runner.TryReserve);
        var requests = Enumerable.Range(0, 6).Select(i => Request(i, 70)).ToList();
        requests.ForEach(scheduler.Add);
        Execute(runner, scheduler.Schedule());
        Execute(runner, scheduler.Schedule());
        Assert.True(runner.UsedBlocks > 0);
        requests[1].CancelRequested = true;
        requests[5].CancelRequested = true;
        var cancelled = new List<SequenceRequest>();
        scheduler.CollectCancelled(cancelled);
        Assert.Equal([1, 5], cancelled.Select(r => (int)r.Id).Order());
        cancelled.ForEach(scheduler.Finish);
        foreach (var r in requests.Where(r => !r.CancelRequested))
        {
            scheduler.Finish(r);
        }

        Assert.False(scheduler.HasWork);
        Assert.Equal(0, runner.UsedBlocks);
        Assert.Equal(0, runner.LiveSequences);
    }
    [Fact]
    public void PrefillFirst_AnArrivalWhileOthersDecode_GetsAStepOfItsOwn_ThenTheDecodersGoOn()
    {
        var runner = new FakeRunner(contextSize: 4096, maxSequences: 8);
        var scheduler = new Scheduler(512, runner.TryAllocateSequence, runner.TryReserve, prefillFirst: true);
        var decoders = Enumerable.Range(0, 3).Select(i => Request(i, 20, maxNew: 50)).ToList();
        decoders.ForEach(scheduler.Add);
        Execute(runner, scheduler.Schedule());                 // nothing running yet: the three prompts together
        var decode = scheduler.Schedule();
        Assert.Equal([1, 1, 1], decode.Select(c => c.TokenCount));
        Execute(runner, decode);

        var probe = Request(10, 16, maxNew: 5);
        var second = Request(11, 30, maxNew: 5);
        scheduler.Add(probe);
        var plan = scheduler.Schedule();
        Assert.Same(probe, Assert.Single(plan).Request);       // only the new prompt: its first token after its own prefill
        Assert.Equal(16, plan[0].TokenCount);
        Execute(runner, plan);

        scheduler.Add(second);                                   // arrives right after: the decoders are served first
        plan = scheduler.Schedule();
        Assert.Equal([0, 1, 2, 10, 11], plan.Select(c => (int)c.Request.Id));
        Assert.Equal([1, 1, 1, 1, 30], plan.Select(c => c.TokenCount));
    }

    [Fact]
    public void PrefillFirst_Off_MixesTheArrivalWithTheDecodeTokens()
    {
        var runner = new FakeRunner(contextSize: 4096, maxSequences: 8);
        var scheduler = new Scheduler(512, runner.TryAllocateSequence, runner.TryReserve);
        scheduler.Add(Request(0, 20, maxNew: 50));
        Execute(runner, scheduler.Schedule());
        scheduler.Add(Request(1, 16, maxNew: 5));
        Assert.Equal([(0, 1), (1, 16)], scheduler.Schedule().Select(c => ((int)c.Request.Id, c.TokenCount)));
    }

    [Fact]
    public void PrefillFirst_NoRoomToAdmit_ServesTheRunningRequests()
    {
        var runner = new FakeRunner(contextSize: 4096, maxSequences: 1);
        var scheduler = new Scheduler(512, runner.TryAllocateSequence, runner.TryReserve, prefillFirst: true);
        scheduler.Add(Request(0, 20, maxNew: 50));
        Execute(runner, scheduler.Schedule());
        scheduler.Add(Request(1, 16, maxNew: 5));               // no sequence free: the running one decodes
        Assert.Equal([(0, 1)], scheduler.Schedule().Select(c => ((int)c.Request.Id, c.TokenCount)));
        Assert.Equal(1, scheduler.WaitingCount);
    }
}
