namespace Qwen3Sharp.Kernels;

/// <summary>
/// When the elementwise steps of a forward pass (norms, RoPE, SwiGLU, the KV cache writes) split across the worker pool:
/// a prefill's [T, width] arrays are big enough that on one thread they were ~3.5% of a 2,048-token Q8_0 prefill on 2
/// threads (Zen 5; a larger share the more threads the products have), while a decode step's few rows cost less than a
/// dispatch.
/// </summary>
public static class PooledElementwise
{
    /// <summary>Elements below which a step stays on the calling thread (64K floats: 32 tokens of a 2,048-wide hidden state).</summary>
    public const int MinElements = 1 << 16;

    /// <summary>Items to split <paramref name="units"/> (rows or tokens) of <paramref name="elements"/> elements into: 1 for "inline".</summary>
    internal static int Items(WorkerPool pool, long elements, int units)
        => elements < MinElements || pool.ThreadCount < 2 ? 1 : Math.Min(units, 4 * pool.ThreadCount);
}

