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
/// <para>
/// With a prefix cache, a waiting request whose prompt shares at least one full block with the prompt a running
/// request is still prefilling (the choices of an <c>n &gt; 1</c> request, or the same prompt sent twice at once) is
/// not admitted until that prefill has registered its blocks: it then starts after them, so the shared prompt is
/// computed and stored once instead of once per request. Requests behind it in the queue are admitted meanwhile.
/// </para>
/// <para>
/// <see cref="PrefillFirst"/> (the engine's default): when requests can be admitted while others are running, that
/// step runs only the new requests' first prompt chunks, and the next step serves the running requests (so arrivals
/// cannot starve them: at most every other step is admissions only), as SGLang's new-requests-first order. On a CPU a
/// step costs about its token count once past a few tokens, so a mixed step of 8 decode tokens and a 16-token prompt
/// costs the prompt's first token about what the two steps cost apart, while the prompt alone gives its first token
/// after its own prefill: measured (Zen 3, BF16 1.7B, 8 streams decoding) 2.5× the idle time to first token mixed.
/// </para>
/// </summary>
internal sealed class Scheduler
{
    private readonly LinkedList<SequenceRequest> _waiting = new();
    private readonly List<SequenceRequest> _running = [];
    private readonly List<ScheduledChunk> _plan = [];
    private readonly Func<Engine.ISequenceState?> _allocate;
    private readonly Func<Engine.ISequenceState, int, bool> _reserve;
    private readonly Engine.IModelRunner? _prefixCache;

    /// <param name="tokenBudget">Most tokens computed in one step.</param>
    /// <param name="allocate">KV state for a new sequence, or null when none is free.</param>
    /// <param name="reserve">Makes room for n more tokens of a sequence (KvCacheManager.AllocateSlots); false means wait or preempt.</param>
    /// <param name="maxSequences">Most requests running at once.</param>
    /// <param name="prefillFirst">See <see cref="PrefillFirst"/>.</param>
    public Scheduler(int tokenBudget, Func<Engine.ISequenceState?> allocate, Func<Engine.ISequenceState, int, bool>? reserve = null,
        int maxSequences = int.MaxValue, Engine.IModelRunner? prefixCache = null, bool prefillFirst = false)
    {
        PrefillFirst = prefillFirst;
        ArgumentOutOfRangeException.ThrowIfLessThan(tokenBudget, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSequences, 1);
        TokenBudget = tokenBudget;
        MaxSequences = maxSequences;
        _allocate = allocate;
        _reserve = reserve ?? ((_, _) => true);
        _prefixCache = prefixCache;
    }

    /// <summary>Tokens looked up in the prefix cache at admissions so far.</summary>
    public long PrefixQueriedTokens { get; private set; }

    /// <summary>Tokens found in the prefix cache at admissions so far.</summary>
    public long PrefixHitTokens { get; private set; }

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

    /// <summary>
    /// Whether a step that can admit waiting requests while others decode runs only their prompts (see the class
    /// remarks); false: every step is mixed, running requests first (vLLM v1's order).
    /// </summary>
    public bool PrefillFirst { get; }

    private bool _admittedFirst;   // the last step ran only new admissions: the next one serves the running requests

    /// <summary>The plan of this step. The list is reused by the next call.</summary>
    public IReadOnlyList<ScheduledChunk> Schedule()
    {
        _plan.Clear();
        int budget = TokenBudget;
        if (PrefillFirst && !_admittedFirst && _running.Count > 0 && _waiting.Count > 0 && _running.Count < MaxSequences)
        {
            Admit(budget);
            if (_plan.Count > 0)
            {
                _admittedFirst = true;
                return _plan;
            }
        }

        _admittedFirst = false;
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

        Admit(budget);
        return _plan;
    }

    /// <summary>Admits waiting requests in arrival order while a sequence, KV blocks and <paramref name="budget"/> are free, each with its first chunk in the plan.</summary>
    private void Admit(int budget)
    {
        for (LinkedListNode<SequenceRequest>? node = _waiting.First, next; node is not null && budget > 0 && _running.Count < MaxSequences; node = next)
        {
            next = node.Next;
            SequenceRequest r = node.Value;
            if (AwaitsSharedPrefill(r))
            {
                continue;
            }

            Engine.ISequenceState? state = _allocate();
            if (state is null)
            {
                break;  // no sequence free: wait until a running request finishes
            }

            int cached = _prefixCache is null ? 0
                : _prefixCache.AcquireCachedPrefix(state, System.Runtime.InteropServices.CollectionsMarshal.AsSpan((List<int>)r.Tokens));
            int n = Math.Min(r.TokenCount - cached, budget);
            if (!_reserve(state, n))
            {
                state.Dispose();   // not enough blocks for its first chunk: wait (admission never preempts); hits stay cached
                break;
            }

            r.ComputedTokenCount = cached;
            PrefixQueriedTokens += r.TokenCount;
            PrefixHitTokens += cached;
            if (r.PreemptionCount == 0)
            {
                r.CachedPromptTokenCount = Math.Min(cached, r.PromptTokenCount);
            }

            _waiting.Remove(node);
            r.Sequence = state;
            _running.Add(r);
            _plan.Add(new ScheduledChunk(r, n));
            budget -= n;
        }
    }

    /// <summary>
    /// Whether a running request is still prefilling a prompt whose full blocks <paramref name="r"/> shares beyond those
    /// already computed (so <paramref name="r"/> would find more of its prompt cached by waiting for it).
    /// </summary>
    private bool AwaitsSharedPrefill(SequenceRequest r)
    {
        int blockSize = _prefixCache?.KvBlockSize ?? 0;
        if (blockSize == 0 || r.PromptTokenCount <= blockSize)
        {
            return false;
        }

        ReadOnlySpan<int> tokens = System.Runtime.InteropServices.CollectionsMarshal.AsSpan((List<int>)r.Tokens)[..r.PromptTokenCount];
        foreach (SequenceRequest p in _running)
        {
            if (p.ComputedTokenCount >= p.PromptTokenCount)
            {
                continue;   // decoding: its prompt's full blocks are registered already
            }

            ReadOnlySpan<int> other = System.Runtime.InteropServices.CollectionsMarshal.AsSpan((List<int>)p.Tokens)[..p.PromptTokenCount];
            // r looks up at most its first PromptTokenCount - 1 tokens (the last is always computed).
            int shared = tokens[..^1].CommonPrefixLength(other) / blockSize;
            if (shared > p.ComputedTokenCount / blockSize)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Gives the request's blocks back (full ones stay prefix-cached) and queues it first, to be recomputed from its first token.</summary>
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
