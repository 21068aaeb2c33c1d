namespace Qwen3Sharp.Scheduling;

/// <summary>One step's work for one request: run this many of its not-yet-computed tokens.</summary>
internal readonly record struct ScheduledChunk(SequenceRequest Request, int TokenCount);

/// <summary>
/// Decides each step what runs (vLLM v1's scheduler, simplified): running requests decode one token each,
/// then waiting requests are admitted in arrival order while KV state is free, and prompts are prefilled in
/// chunks so that a step never computes more than <see cref="TokenBudget"/> tokens. It only compares counters:
/// <see cref="SequenceRequest.ComputedTokenCount"/> against <see cref="SequenceRequest.TokenCount"/>.
/// </summary>
internal sealed class Scheduler(int tokenBudget, Func<Engine.ISequenceState?> allocate)
{
    private readonly LinkedList<SequenceRequest> _waiting = new();
    private readonly List<SequenceRequest> _running = [];
    private readonly List<ScheduledChunk> _plan = [];

    public int TokenBudget { get; } = tokenBudget;

    public int WaitingCount => _waiting.Count;

    public int RunningCount => _running.Count;

    public bool HasWork => _waiting.Count > 0 || _running.Count > 0;

    public IReadOnlyList<SequenceRequest> Running => _running;

    public IEnumerable<SequenceRequest> Waiting => _waiting;

    public void Add(SequenceRequest request) => _waiting.AddLast(request);

    /// <summary>The plan of this step. The list is reused by the next call.</summary>
    public IReadOnlyList<ScheduledChunk> Schedule()
    {
        _plan.Clear();
        int budget = TokenBudget;
        foreach (SequenceRequest r in _running)
        {
            if (budget == 0)
            {
                break;
            }

            int n = Math.Min(r.TokenCount - r.ComputedTokenCount, budget);
            if (n > 0)
            {
                _plan.Add(new ScheduledChunk(r, n));
                budget -= n;
            }
        }

        while (budget > 0 && _waiting.First is { } node)
        {
            SequenceRequest r = node.Value;
            Engine.ISequenceState? state = allocate();
            if (state is null)
            {
                break;  // no KV memory free: wait until a running request finishes
            }

            _waiting.RemoveFirst();
            r.Sequence = state;
            _running.Add(r);
            int n = Math.Min(r.TokenCount - r.ComputedTokenCount, budget);
            _plan.Add(new ScheduledChunk(r, n));
            budget -= n;
        }

        return _plan;
    }

    /// <summary>Removes a request, running or waiting, and frees its KV state.</summary>
    public void Finish(SequenceRequest request)
    {
        if (!_running.Remove(request))
        {
            _waiting.Remove(request);
        }

        request.Sequence?.Dispose();
        request.Sequence = null;
    }

    /// <summary>Adds every cancelled request, running or waiting, to <paramref name="destination"/> (no allocation).</summary>
    public void CollectCancelled(List<SequenceRequest> destination)
    {
        foreach (SequenceRequest r in _running)
        {
            if (r.CancelRequested)
            {
                destination.Add(r);
            }
        }

        foreach (SequenceRequest r in _waiting)
        {
            if (r.CancelRequested)
            {
                destination.Add(r);
            }
        }
    }
}
