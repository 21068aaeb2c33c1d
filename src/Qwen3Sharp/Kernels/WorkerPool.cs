namespace Qwen3Sharp.Kernels;

/// <summary>
/// The persistent worker threads that kernels split their rows across.
/// One pool per model; kernels receive it as their first argument.
/// </summary>
/// <remarks>Placeholder: runs every job on the calling thread until the threaded pool lands.</remarks>
public sealed class WorkerPool : IDisposable
{
    public WorkerPool(int threadCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threadCount, 1);
        ThreadCount = threadCount;
    }

    public int ThreadCount { get; }

    public void Dispose()
    {
    }
}
