using System.Diagnostics;

namespace Qwen3Sharp.Model;

/// <summary>The parts of a forward pass that <see cref="ForwardProfile"/> times separately.</summary>
public enum ForwardPhase
{
    /// <summary>Embedding gather and per-step setup.</summary>
    Embed,

    /// <summary>The input and post-attention RMSNorms of every layer, and the final norm.</summary>
    Norm,

    /// <summary>The q, k and v projections (and Qwen2's biases).</summary>
    QkvProjection,

    /// <summary>Qwen3's per-head q/k RMSNorm and RoPE.</summary>
    QkNormRope,

    /// <summary>Writing the step's keys and values into the (paged) cache.</summary>
    KvWrite,

    /// <summary>Attention over the cache (every sequence of the batch).</summary>
    Attention,

    /// <summary>The output projection with its fused residual.</summary>
    OutputProjection,

    /// <summary>The MLP's gate and up projections.</summary>
    GateUpProjection,

    /// <summary>SiLU(gate) · up.</summary>
    SwiGlu,

    /// <summary>The MLP's down projection with its fused residual.</summary>
    DownProjection,

    /// <summary>The output projection to the vocabulary (the LM head).</summary>
    LmHead,
}

/// <summary>
/// Wall time of each <see cref="ForwardPhase"/> summed over forward passes, for <c>qwen3 bench --profile</c>: set
/// <see cref="Qwen3Model.Profile"/> and every pass records a timestamp at each phase boundary (one
/// <see cref="Stopwatch.GetTimestamp"/> per phase, ~25 ns; nothing when unset). Phases run on the calling thread and
/// the worker pool together, so the split is of wall time, what a decode step is made of. Not thread-safe: one model
/// runs one pass at a time.
/// </summary>
public sealed class ForwardProfile
{
    private static readonly int PhaseCount = Enum.GetValues<ForwardPhase>().Length;
    private readonly long[] _ticks = new long[PhaseCount];
    private long _last;

    /// <summary>Forward passes recorded.</summary>
    public int PassCount { get; private set; }

    /// <summary>Wall time of all recorded passes, from each pass's start to its last phase.</summary>
    public TimeSpan Total => Stopwatch.GetElapsedTime(0, _ticks.Sum());

    /// <summary>Summed wall time of <paramref name="phase"/>.</summary>
    public TimeSpan this[ForwardPhase phase] => Stopwatch.GetElapsedTime(0, _ticks[(int)phase]);

    /// <summary>Clears every phase and the pass count.</summary>
    public void Reset()
    {
        Array.Clear(_ticks);
        PassCount = 0;
    }

    internal void BeginPass()
    {
        PassCount++;
        _last = Stopwatch.GetTimestamp();
    }

    /// <summary>Charges the time since the previous mark (or the pass's start) to <paramref name="phase"/>.</summary>
    internal void Mark(ForwardPhase phase)
    {
        long now = Stopwatch.GetTimestamp();
        _ticks[(int)phase] += now - _last;
        _last = now;
    }
}
