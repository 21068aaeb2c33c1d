namespace Qwen3Sharp.Scheduling;

/// <summary>One step's work for one request: run this many of its not-yet-computed tokens.</summary>
internal readonly record struct ScheduledChunk(SequenceRequest Request, int TokenCount);

/// <summary>
/// Decides each step what runs (vLLM v1's scheduler): running requests first (a decode token each, or their next
/// prompt chunk), then waiting requests in arrival order while a sequence slot, KV blocks and budget are free; a step
/// never computes more than <see cref="TokenBudget"/> tokens nor runs more than <see cref="MaxSequences"/> requests.
/// It only compares counters: <see cref="SequenceRequest.ComputedTokenCount"/> against <see cref="SequenceRequest.TokenCount"/>.
/// When a running request cannot get KV blocks for its next tokens, the newest running request is preempted: it
/// gives its blocks back and goes to the front of the queue, to be recomputed (prompt and output so far) later.
/// </summary>
internal sealed class Scheduler
{
    private readonly LinkedList<SequenceRequest> _waiting = new();
    private readonly List<SequenceRequest> _running = [];
    private readonly List<ScheduledChunk> _plan = [];
    private readonly Func<Engine.ISequenceState?> _allocate;
    private readonly Func<Engine.ISequenceState, int, bool> _reserve;

    /// <param name="tokenBudget">Most tokens computed in one step.</param>
    /// <param name="allocate">KV state for a new sequence, or null when none is free.</param>
    /// <param name="reserve">Makes room for n more tokens of a sequence (KvCacheManager.AllocateSlots); false means wait or preempt.</param>
    /// <param name="maxSequences">Most requests running at once.</param>
    public Scheduler(int tokenBudget, Func<Engine.ISequenceState?> allocate, Func<Engine.ISequenceState, int, bool>? reserve = null,
        int maxSequences = int.MaxValue)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(tokenBudget, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSequences, 1);
        TokenBudget = tokenBudget;
        MaxSequences = maxSequences;
        _allocate = allocate;
        _reserve = reserve ?? ((_, _) => true);
    }

    public int TokenBudget { get; }

    public int MaxSequences { get; }

    public int WaitingCount => _waiting.Count;

    public int RunningCount => _running.Count;

    /// <summary>Requests preempted so far (their blocks taken back to let older requests go on).</summary>
    public long PreemptionCount { get; private set; }

    public bool HasWork => _waiting.Count > 0 || _running.Count > 0;

    public IReadOnlyList<SequenceRequest> Running => _running;

    public IEnumerable<SequenceRequest> Waiting => _waiting;

    public void Add(SequenceRequest request) => _waiting.AddLast(request);

    /// <summary>The plan of this step. The list is reused by the next call.</summary>
    public IReadOnlyList<ScheduledChunk> Schedule()
    {
        _plan.Clear();
        int budget = TokenBudget;
        for (int i = 0; i < _running.Count && budget > 0; i++)
        {
            SequenceRequest r = _running[i];
            int n = Math.Min(r.TokenCount - r.ComputedTokenCount, budget);
            if (n <= 0)
            {
                continue;
            }

            bool reserved = true;
            while (!_reserve(r.Sequence!, n))
            {
                // Out of blocks: the newest running request gives its blocks back (possibly r itself).
                SequenceRequest victim = _running[^1];
                Preempt(victim);
                if (ReferenceEquals(victim, r))
                {
                    reserved = false;
                    break;
                }
            }

            if (!reserved)
            {
                break;   // r was the newest: everything after it is gone too
            }

            _plan.Add(new ScheduledChunk(r, n));
            budget -= n;
        }

        while (budget > 0 && _running.Count < MaxSequences && _waiting.First is { } node)
        {
            SequenceRequest r = node.Value;
            Engine.ISequenceState? state = _allocate();
            if (state is null)
            {
                break;  // no sequence free: wait until a running request finishes
            }

            int n = Math.Min(r.TokenCount - r.ComputedTokenCount, budget);
            if (!_reserve(state, n))
            {
                state.Dispose();   // not enough blocks for its first chunk: wait (admission never preempts)
                break;
            }

            _waiting.RemoveFirst();
            r.Sequence = state;
            _running.Add(r);
            _plan.Add(new ScheduledChunk(r, n));
            budget -= n;
        }

        return _plan;
    }

    /// <summary>Gives the request's blocks back and queues it first, to be recomputed from its first token.</summary>
    private void Preempt(SequenceRequest r)
    {
        _running.Remove(r);
        r.Sequence?.Dispose();
        r.Sequence = null;
        r.ComputedTokenCount = 0;
        r.PreemptionCount++;
        PreemptionCount++;
        _waiting.AddFirst(r);
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
