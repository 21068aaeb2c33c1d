using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;

namespace Qwen3Sharp.Kernels;

/// <summary>A work item for <see cref="WorkerPool.Run{TJob}"/>: a struct holding pointers, run once per index.</summary>
public interface IPoolJob
{
    /// <summary>Does item <paramref name="index"/>; <paramref name="worker"/> is 0 (the caller) .. ThreadCount-1.</summary>
    void Execute(int index, int worker);
}

/// <summary>
/// The persistent worker threads that kernels split their rows across: ThreadCount - 1 background threads
/// plus the calling thread. One pool per model; kernels receive it as their first argument.
/// </summary>
/// <remarks>
/// A job is a function pointer and a state pointer, so dispatch allocates nothing. Items are handed out by an
/// atomic counter (dynamic scheduling copes with a busy, shared machine). Idle workers spin for
/// <see cref="SpinTicks"/> and then block on a monitor. One job runs at a time: a call made while another is
/// running (from another thread, or from inside a job) runs inline on its own thread.
/// The first exception thrown by a job item stops the remaining items and is rethrown to the caller.
/// Each worker owns a 64-byte-aligned scratch block that kernels grow before dispatch
/// (<see cref="EnsureWorkerScratch"/>) and use without synchronisation.
/// </remarks>
public sealed unsafe class WorkerPool : IDisposable
{
    private static readonly long SpinTicks = Stopwatch.Frequency / 5000;   // 200 µs

    private readonly Thread[] _threads;
    private readonly object _wakeGate = new();
    private readonly object _doneGate = new();

    // The current job (written by the dispatcher before _generation is bumped).
    private delegate*<void*, int, int, void> _body;
    private void* _state;
    private int _count;
    private int _next;
    private int _pending;
    private Exception? _error;

    private long _generation;
    private int _sleepingWorkers;
    private int _callerSleeping;
    private int _busy;
    private volatile bool _disposed;

    private readonly void** _scratch;          // [ThreadCount] native, so unmanaged jobs can carry it
    private readonly long[] _scratchBytes;
    private void* _shared;
    private long _sharedBytes;

    public WorkerPool(int threadCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threadCount, 1);
        ThreadCount = threadCount;
        _scratch = (void**)NativeMemory.AllocZeroed((nuint)threadCount, (nuint)sizeof(void*));
        _scratchBytes = new long[threadCount];
        _threads = new Thread[threadCount - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            int worker = i + 1;
            _threads[i] = new Thread(() => WorkerLoop(worker))
            {
                IsBackground = true,
                Name = $"Qwen3Sharp worker {worker}",
            };
            _threads[i].Start();
        }
    }

    /// <summary>Threads that run a job, the caller included.</summary>
    public int ThreadCount { get; }

    /// <summary>True once every background worker thread has exited (after <see cref="Dispose"/>).</summary>
    internal bool WorkersStopped => Array.TrueForAll(_threads, t => !t.IsAlive);

    /// <summary>
    /// Runs <paramref name="body"/>(state, index, worker) for every index in [0, count) across the pool and
    /// returns when all are done. <paramref name="state"/> must stay valid (pinned) until then.
    /// </summary>
    public void For(int count, delegate*<void*, int, int, void> body, void* state)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (count == 0)
        {
            return;
        }

        if (count == 1 || _threads.Length == 0 || Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            for (int i = 0; i < count; i++)
            {
                body(state, i, 0);
            }

            return;
        }

        try
        {
            _body = body;
            _state = state;
            _count = count;
            _error = null;
            Volatile.Write(ref _next, 0);
            Volatile.Write(ref _pending, _threads.Length);
            Interlocked.Increment(ref _generation);              // full fence: publishes the job
            if (Volatile.Read(ref _sleepingWorkers) > 0)
            {
                lock (_wakeGate)
                {
                    Monitor.PulseAll(_wakeGate);
                }
            }

            RunItems(0);
            WaitForWorkers();
            Exception? error = _error;
            _body = null;
            _state = null;
            if (error is not null)
            {
                ExceptionDispatchInfo.Capture(error).Throw();
            }
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    /// <summary>Runs <paramref name="job"/>.Execute(index, worker) for every index in [0, count).</summary>
    public void Run<TJob>(ref TJob job, int count) where TJob : unmanaged, IPoolJob
    {
        TJob local = job;                    // a stack copy: its address stays fixed while the workers read it
        For(count, &Trampoline<TJob>, &local);
    }

    private static void Trampoline<TJob>(void* state, int index, int worker) where TJob : unmanaged, IPoolJob
        => ((TJob*)state)->Execute(index, worker);

    private void RunItems(int worker)
    {
        delegate*<void*, int, int, void> body = _body;
        void* state = _state;
        int count = _count;
        try
        {
            int i;
            while ((i = Interlocked.Increment(ref _next) - 1) < count)
            {
                body(state, i, worker);
            }
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref _error, e, null);
            Volatile.Write(ref _next, count);                 // the others stop taking items
        }
    }

    private void WaitForWorkers()
    {
        long start = Stopwatch.GetTimestamp();
        while (Volatile.Read(ref _pending) != 0)
        {
            if (Stopwatch.GetTimestamp() - start > SpinTicks)
            {
                lock (_doneGate)
                {
                    Interlocked.Exchange(ref _callerSleeping, 1);
                    while (Volatile.Read(ref _pending) != 0)
                    {
                        Monitor.Wait(_doneGate);
                    }

                    Volatile.Write(ref _callerSleeping, 0);
                }

                return;
            }

            Thread.SpinWait(8);
        }
    }

    private void WorkerLoop(int worker)
    {
        long seen = 0;
        while (true)
        {
            long start = Stopwatch.GetTimestamp();
            long generation;
            while ((generation = Volatile.Read(ref _generation)) == seen && !_disposed)
            {
                if (Stopwatch.GetTimestamp() - start > SpinTicks)
                {
                    lock (_wakeGate)
                    {
                        Interlocked.Increment(ref _sleepingWorkers);
                        while (Volatile.Read(ref _generation) == seen && !_disposed)
                        {
                            Monitor.Wait(_wakeGate);
                        }

                        Interlocked.Decrement(ref _sleepingWorkers);
                    }
                }
                else
                {
                    Thread.SpinWait(8);
                }
            }

            if (_disposed)
            {
                return;
            }

            seen = generation;
            RunItems(worker);
            if (Interlocked.Decrement(ref _pending) == 0 && Volatile.Read(ref _callerSleeping) != 0)
            {
                lock (_doneGate)
                {
                    Monitor.Pulse(_doneGate);
                }
            }
        }
    }

    /// <summary>Grows every worker's scratch to at least <paramref name="bytes"/>; call before dispatching.</summary>
    internal void EnsureWorkerScratch(long bytes)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        for (int w = 0; w < ThreadCount; w++)
        {
            if (_scratchBytes[w] < bytes)
            {
                NativeMemory.AlignedFree(_scratch[w]);
                _scratch[w] = NativeMemory.AlignedAlloc((nuint)bytes, 64);
                _scratchBytes[w] = bytes;
            }
        }
    }

    /// <summary>The scratch block of <paramref name="worker"/> (see <see cref="EnsureWorkerScratch"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void* WorkerScratch(int worker) => _scratch[worker];

    /// <summary>The table of worker scratch pointers, indexed by worker, valid until <see cref="Dispose"/>.</summary>
    internal void** WorkerScratchTable => _scratch;

    /// <summary>A scratch block the dispatching thread fills and the workers read (e.g. a permuted activation).</summary>
    internal void* SharedScratch(long bytes)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_sharedBytes < bytes)
        {
            NativeMemory.AlignedFree(_shared);
            _shared = NativeMemory.AlignedAlloc((nuint)bytes, 64);
            _sharedBytes = bytes;
        }

        return _shared;
    }

    /// <summary>Stops and joins the worker threads and frees the scratch memory.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        lock (_wakeGate)
        {
            Monitor.PulseAll(_wakeGate);
        }

        foreach (Thread t in _threads)
        {
            t.Join();
        }

        for (int w = 0; w < ThreadCount; w++)
        {
            NativeMemory.AlignedFree(_scratch[w]);
            _scratch[w] = null;
        }

        NativeMemory.Free(_scratch);
        NativeMemory.AlignedFree(_shared);
        _shared = null;
    }
}
