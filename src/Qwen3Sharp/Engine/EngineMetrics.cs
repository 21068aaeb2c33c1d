using System.Diagnostics;

namespace Qwen3Sharp.Engine;

/// <summary>
/// The engine's counters, gauges and latency histograms, with vLLM's meanings (vllm/v1/metrics/loggers.py):
/// the server exports them as Prometheus text on <c>GET /metrics</c>. The engine loop is the only writer and
/// records at its natural points (a request's first token, each later token, its end, a preemption); any
/// thread may read. Recording allocates nothing: fixed buckets, <see cref="Interlocked"/> updates.
/// </summary>
public sealed class EngineMetrics
{
    /// <summary>vLLM's <c>vllm:time_to_first_token_seconds</c> buckets.</summary>
    public static readonly double[] TimeToFirstTokenBuckets =
        [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0];

    /// <summary>vLLM's <c>vllm:inter_token_latency_seconds</c> (and <c>time_per_output_token_seconds</c>) buckets.</summary>
    public static readonly double[] InterTokenLatencyBuckets =
        [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];

    /// <summary>vLLM's request latency buckets (<c>vllm:e2e_request_latency_seconds</c>).</summary>
    public static readonly double[] RequestLatencyBuckets =
        [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0];

    private readonly long[] _finished = new long[Enum.GetValues<RequestOutcome>().Length];   // by RequestOutcome
    private long _promptTokens;
    private long _generationTokens;
    private long _preemptions;
    private long _prefixCacheQueries;
    private long _prefixCacheHits;
    private readonly Func<int> _pendingRequests;
    private int _running;
    private long _kvBlocksUsed;
    private long _kvBlocksTotal;

    /// <param name="pendingRequests">Requests accepted and not finished (running or not), read when scraped.</param>
    public EngineMetrics(Func<int> pendingRequests)
    {
        ArgumentNullException.ThrowIfNull(pendingRequests);
        _pendingRequests = pendingRequests;
    }

    public Histogram TimeToFirstToken { get; } = new(TimeToFirstTokenBuckets);

    public Histogram InterTokenLatency { get; } = new(InterTokenLatencyBuckets);

    public Histogram EndToEndLatency { get; } = new(RequestLatencyBuckets);

    /// <summary>Requests the scheduler is running (holding KV memory).</summary>
    public int RunningRequests => Volatile.Read(ref _running);

    /// <summary>Requests accepted and not yet running (queued in the scheduler or not yet admitted by it).</summary>
    public int WaitingRequests => Math.Max(0, _pendingRequests() - RunningRequests);

    public long KvBlocksUsed => Volatile.Read(ref _kvBlocksUsed);

    public long KvBlocksTotal => Volatile.Read(ref _kvBlocksTotal);

    /// <summary>KV blocks in use over all blocks, 0–1 (vLLM's <c>kv_cache_usage_perc</c>).</summary>
    public double KvCacheUsage
    {
        get
        {
            long total = KvBlocksTotal;
            return total == 0 ? 0 : Math.Clamp((double)KvBlocksUsed / total, 0, 1);
        }
    }

    /// <summary>Prompt tokens of requests that reached their first token (cached ones included, as vLLM counts).</summary>
    public long PromptTokens => Interlocked.Read(ref _promptTokens);

    /// <summary>Tokens generated, sampled or forced.</summary>
    public long GenerationTokens => Interlocked.Read(ref _generationTokens);

    public long Preemptions => Interlocked.Read(ref _preemptions);

    /// <summary>Prompt tokens looked up in the prefix cache.</summary>
    public long PrefixCacheQueries => Interlocked.Read(ref _prefixCacheQueries);

    /// <summary>Prompt tokens found in the prefix cache.</summary>
    public long PrefixCacheHits => Interlocked.Read(ref _prefixCacheHits);

    public long FinishedRequests(RequestOutcome outcome) => Interlocked.Read(ref _finished[(int)outcome]);

    /// <summary>The scheduler's queue and the KV memory in use, published once per engine step.</summary>
    public void SetSchedulerState(int running, long kvBlocksUsed, long kvBlocksTotal)
    {
        Volatile.Write(ref _running, running);
        Volatile.Write(ref _kvBlocksUsed, kvBlocksUsed);
        Volatile.Write(ref _kvBlocksTotal, kvBlocksTotal);
    }

    /// <summary>A request's first token: its time to first token and its prompt tokens.</summary>
    public void RecordFirstToken(long arrivalTimestamp, long nowTimestamp, int promptTokens)
    {
        TimeToFirstToken.Observe(Stopwatch.GetElapsedTime(arrivalTimestamp, nowTimestamp).TotalSeconds);
        Interlocked.Add(ref _promptTokens, promptTokens);
        Interlocked.Increment(ref _generationTokens);
    }

    /// <summary>A later token: the time since the request's previous token.</summary>
    public void RecordNextToken(long previousTimestamp, long nowTimestamp)
    {
        InterTokenLatency.Observe(Stopwatch.GetElapsedTime(previousTimestamp, nowTimestamp).TotalSeconds);
        Interlocked.Increment(ref _generationTokens);
    }

    /// <summary>A request ended: its outcome and its latency from arrival.</summary>
    public void RecordFinished(RequestOutcome outcome, long arrivalTimestamp, long nowTimestamp)
    {
        Interlocked.Increment(ref _finished[(int)outcome]);
        EndToEndLatency.Observe(Stopwatch.GetElapsedTime(arrivalTimestamp, nowTimestamp).TotalSeconds);
    }

    /// <summary>A running request gave its KV memory back, to be recomputed later.</summary>
    public void RecordPreemption() => Interlocked.Increment(ref _preemptions);

    /// <summary>The scheduler's own monotonic count of preemptions, published once per engine step.</summary>
    public void SetPreemptions(long total) => Volatile.Write(ref _preemptions, total);

    /// <summary>A prompt looked up in the prefix cache: tokens queried and tokens found (vLLM counts tokens).</summary>
    public void RecordPrefixCacheLookup(int queriedTokens, int hitTokens)
    {
        Interlocked.Add(ref _prefixCacheQueries, queriedTokens);
        Interlocked.Add(ref _prefixCacheHits, hitTokens);
    }

    /// <summary>
    /// A fixed-bucket histogram: one counter per bucket (not cumulative; the exporter sums them), a count and a
    /// sum. Observing is a short scan and two or three interlocked operations.
    /// </summary>
    public sealed class Histogram
    {
        private readonly double[] _upperBounds;
        private readonly long[] _bucketCounts;   // [upperBounds.Length + 1]: the last is +Inf
        private long _count;
        private long _sumBits;

        public Histogram(double[] upperBounds)
        {
            ArgumentNullException.ThrowIfNull(upperBounds);
            for (int i = 1; i < upperBounds.Length; i++)
            {
                if (!(upperBounds[i] > upperBounds[i - 1]))
                {
                    throw new ArgumentException("Bucket bounds must increase.", nameof(upperBounds));
                }
            }

            _upperBounds = upperBounds;
            _bucketCounts = new long[upperBounds.Length + 1];
        }

        /// <summary>The buckets' upper bounds (inclusive, Prometheus's <c>le</c>), without +Inf.</summary>
        public ReadOnlySpan<double> UpperBounds => _upperBounds;

        public long Count => Interlocked.Read(ref _count);

        public double Sum => BitConverter.Int64BitsToDouble(Interlocked.Read(ref _sumBits));

        public void Observe(double value)
        {
            int i = 0;
            while (i < _upperBounds.Length && value > _upperBounds[i])
            {
                i++;
            }

            Interlocked.Increment(ref _bucketCounts[i]);
            long seen = Interlocked.Read(ref _sumBits);
            while (true)
            {
                long updated = BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(seen) + value);
                long found = Interlocked.CompareExchange(ref _sumBits, updated, seen);
                if (found == seen)
                {
                    break;
                }

                seen = found;
            }

            Interlocked.Increment(ref _count);
        }

        /// <summary>
        /// Cumulative counts per bucket (the last is +Inf) into <paramref name="destination"/>
        /// [UpperBounds.Length + 1], and the count that goes with them (the +Inf bucket, so they always agree).
        /// </summary>
        public long CopyCumulative(Span<long> destination)
        {
            long total = 0;
            for (int i = 0; i < _bucketCounts.Length; i++)
            {
                total += Interlocked.Read(ref _bucketCounts[i]);
                destination[i] = total;
            }

            return total;
        }
    }
}

/// <summary>How a request ended, as vLLM's <c>finished_reason</c> label names it.</summary>
public enum RequestOutcome
{
    /// <summary><c>stop</c>: an end-of-turn token or a stop string.</summary>
    Stop,

    /// <summary><c>length</c>: max_tokens or the context.</summary>
    Length,

    /// <summary><c>abort</c>: the client cancelled or disconnected, or the server shut down.</summary>
    Abort,

    /// <summary><c>error</c>: the engine failed the request.</summary>
    Error,
}
