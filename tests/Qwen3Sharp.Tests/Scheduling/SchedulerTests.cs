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
}
