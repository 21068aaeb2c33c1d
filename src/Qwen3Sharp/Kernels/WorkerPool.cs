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
/// A job is a function pointer and a state pointer, so dispatch allocates nothing. Items are claimed one at a
/// time with a compare-and-swap on a single word holding (generation, item count, next item), and the caller
/// returns as soon as every item has completed: a worker that wakes late (descheduled on a busy machine) finds
/// nothing to claim and is never waited for. Idle workers spin for 200 µs and then block on a monitor.
/// One job runs at a time: a call made while another is running (from another thread, or from inside a job)
/// runs inline on its own thread. The first exception thrown by an item skips the items not yet started and is
/// rethrown to the caller. Each worker owns a 64-byte-aligned scratch block that kernels grow before dispatch
/// (<see cref="EnsureWorkerScratch"/>) and use without synchronisation; so kernels on one pool must be called
/// from one thread at a time (one pool per model, driven by the engine loop).
/// </remarks>
public sealed unsafe class WorkerPool : IDisposable
{
    private static readonly long SpinTicks = Stopwatch.Frequency / 5000;   // 200 µs

    // _work: generation (24 bits) | count (20 bits) | next item (20 bits).
    private const int FieldBits = 20;
    private const long FieldMask = (1L << FieldBits) - 1;
    private const int MaxItemsPerRound = (int)FieldMask;

    private readonly Thread[] _threads;
    private readonly object _wakeGate = new();
    private readonly object _doneGate = new();

    // The current job; written before _work publishes its generation, rewritten only after all items are claimed.
    private delegate*<void*, int, int, void> _body;
    private void* _state;
    private int _offset;
    private long _work;
    private int _remaining;
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
            for (int offset = 0; offset < count; offset += MaxItemsPerRound)
            {
                Round(body, state, offset, Math.Min(MaxItemsPerRound, count - offset));
            }
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    private void Round(delegate*<void*, int, int, void> body, void* state, int offset, int count)
    {
        _body = body;
        _state = state;
        _offset = offset;
        _error = null;
        Volatile.Write(ref _remaining, count);
        long generation = (_generation + 1) & 0xFFFFFF;
        _generation = generation;
        Interlocked.Exchange(ref _work, (generation << (2 * FieldBits)) | ((long)count << FieldBits));   // publishes the job
        if (Volatile.Read(ref _sleepingWorkers) > 0)
        {
            lock (_wakeGate)
            {
                Monitor.PulseAll(_wakeGate);
            }
        }

        RunItems(generation, 0);
        WaitForItems();
        Exception? error = _error;
        if (error is not null)
        {
            ExceptionDispatchInfo.Capture(error).Throw();
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

    /// <summary>Claims and runs items of <paramref name="generation"/> until none are left.</summary>
    private void RunItems(long generation, int worker)
    {
        // Safe to read before claiming: they change only after every item of this generation is claimed,
        // and then the claim below fails.
        delegate*<void*, int, int, void> body = _body;
        void* state = _state;
        int offset = _offset;
        while (true)
        {
            long work = Volatile.Read(ref _work);
            int next = (int)(work & FieldMask);
            if (work >>> (2 * FieldBits) != generation || next >= (int)((work >> FieldBits) & FieldMask))
            {
                return;
            }

            if (Interlocked.CompareExchange(ref _work, work + 1, work) != work)
            {
                continue;
            }

            if (Volatile.Read(ref _error) is null)
            {
                try
                {
                    body(state, offset + next, worker);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref _error, e, null);
                }
            }

            if (Interlocked.Decrement(ref _remaining) == 0 && Volatile.Read(ref _callerSleeping) != 0)
            {
                lock (_doneGate)
                {
                    Monitor.Pulse(_doneGate);
                }
            }
        }
    }

    private void WaitForItems()
    {
        long start = Stopwatch.GetTimestamp();
        while (Volatile.Read(ref _remaining) != 0)
        {
            if (Stopwatch.GetTimestamp() - start > SpinTicks)
            {
                lock (_doneGate)
                {
                    Interlocked.Exchange(ref _callerSleeping, 1);
                    while (Volatile.Read(ref _remaining) != 0)
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
            while ((generation = Volatile.Read(ref _work) >>> (2 * FieldBits)) == seen && !_disposed)
            {
                if (Stopwatch.GetTimestamp() - start > SpinTicks)
                {
                    lock (_wakeGate)
                    {
                        Interlocked.Increment(ref _sleepingWorkers);
                        while (Volatile.Read(ref _work) >>> (2 * FieldBits) == seen && !_disposed)
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
            RunItems(generation, worker);
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
