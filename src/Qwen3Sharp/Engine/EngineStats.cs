using Qwen3Sharp.Scheduling;

namespace Qwen3Sharp.Engine;

/// <summary>
/// Live counters of an <see cref="InferenceEngine"/> for metrics: written by the engine loop after every step,
/// read lock-free from any thread (each value is individually current; they are not a consistent snapshot).
/// Meanings follow vLLM's metrics: running and waiting requests, KV-cache blocks, prefix-cache queries and hits in
/// tokens, preemptions.
/// </summary>
public sealed class EngineStats
{
    private readonly IModelRunner _runner;
    private int _running, _waiting;
    private long _preemptions, _prefixQueries, _prefixHits;

    internal EngineStats(IModelRunner runner) => _runner = runner;

    /// <summary>Requests scheduled in the engine now (holding KV memory).</summary>
    public int RunningRequests => Volatile.Read(ref _running);

    /// <summary>Requests admitted to the engine and waiting to be scheduled (including preempted ones).</summary>
    public int WaitingRequests => Volatile.Read(ref _waiting);

    /// <summary>KV-cache blocks in all (0 for a runner without paged memory).</summary>
    public int KvBlocksTotal => _runner.KvBlockCount;

    /// <summary>KV-cache blocks held by sequences (and by the prefix cache while referenced).</summary>
    public int KvBlocksUsed => _runner.UsedKvBlockCount;

    /// <summary>KvBlocksUsed / KvBlocksTotal in 0..1 (vLLM's kv_cache_usage_perc); 0 without paged memory.</summary>
    public double KvCacheUsage => KvBlocksTotal == 0 ? 0 : (double)KvBlocksUsed / KvBlocksTotal;

    /// <summary>Requests preempted so far (blocks taken back, recomputed later). Monotonic.</summary>
    public long Preemptions => Volatile.Read(ref _preemptions);

    /// <summary>Prompt tokens looked up in the prefix cache so far. Monotonic.</summary>
    public long PrefixCacheQueriedTokens => Volatile.Read(ref _prefixQueries);

    /// <summary>Prompt tokens found in the prefix cache so far. Monotonic.</summary>
    public long PrefixCacheHitTokens => Volatile.Read(ref _prefixHits);

    internal void Update(Scheduler scheduler)
    {
        Volatile.Write(ref _running, scheduler.RunningCount);
        Volatile.Write(ref _waiting, scheduler.WaitingCount);
        Volatile.Write(ref _preemptions, scheduler.PreemptionCount);
    }

    internal void AddPrefixLookup(int queriedTokens, int hitTokens)
    {
        Interlocked.Add(ref _prefixQueries, queriedTokens);
        Interlocked.Add(ref _prefixHits, hitTokens);
    }
}
