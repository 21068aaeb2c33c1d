using System.Runtime.InteropServices;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Loading;

public sealed unsafe partial class ModelWeights
{
    /// <summary>
    /// Repacks every Q4_0, Q4_K, Q5_K, Q6_K and Q8_0 matrix into <see cref="DType.Q4_0x8"/> / <see cref="DType.Q4_Kx8"/> / <see cref="DType.Q5_Kx8"/> /
    /// <see cref="DType.Q6_Kx8"/> / <see cref="DType.Q8_0x8"/> (groups of 8 interleaved rows, the decode kernels' layout:
    /// QuantMatMul.Q4x8.cs, Q5x8.cs, Q6x8.cs, Q8x8.cs)
    /// in one 2 MiB-aligned buffer, added to <paramref name="buffers"/> and advised for huge pages only with
    /// <paramref name="hugePages"/> (<see cref="WeightPlacement.HugePageCopy"/>: on the shared Zen 3 the kernel's compaction
    /// for 1 GB of huge pages took the Q4_0 1.7B load from 2.6 s to 7.9 s), and repoints <paramref name="matrices"/> at the copies. Chunks of <see cref="DefaultRepackChunkRows"/> rows, on every core, are each checked,
    /// repacked and its source pages dropped from the resident set (<see cref="DropPages"/>), so peak RSS stays within a
    /// chunk per core of the weights' size (checking or repacking a whole matrix first held the largest one, the 330 MB Q8_0 output
    /// head, twice). Nothing reads the row layout again (prefill and embedding lookups dequantize from the groups). A
    /// matrix with an infinite or NaN block scale keeps the row layout: its dropped pages fault back in from the file.
    /// </summary>
    /// <remarks>
    /// <para><paramref name="files"/>: the files the matrices are mapped from (a GGUF model's parts), if any. Each chunk is then read from its
    /// file with <c>pread</c> into a buffer reused from chunk to chunk and repacked from there, and the mapping is never
    /// touched (a pass over a fresh mapping read ~2 GB/s on this project's Zen 5 VM, <c>pread</c> ~8: a fifth of a Q8_0 load).</para>
    /// </remarks>
    private static void RepackGroups(Dictionary<string, WeightView> matrices, List<nint> buffers, bool hugePages, MappedFiles? files = null)
    {
        string[] keys = [.. matrices.Where(kv => QuantMatMul.GroupLayoutOf(kv.Value.DType) is not null).Select(kv => kv.Key)];
        WeightView[] sources = [.. keys.Select(k => matrices[k])];
        // a matrix left in rows leaves its space untouched (never resident)
        byte* buffer = LayOut(sources, v => RepackedBytes(v), hugePages, out nint[] targets);
        if (buffer == null)
        {
            return;
        }

        buffers.Add((nint)buffer);
        int chunkRows = RepackChunkRowsOnThisThread;

        var failed = new int[keys.Length];   // a bad scale in any chunk leaves the matrix in rows
        using (var reads = new ChunkBuffers(sources.Max(v => Math.Min(chunkRows, v.RowCount) * v.RowBytes)))
        {
            ForEachChunk(sources, _ => chunkRows, c =>
            {
                WeightView v = sources[c.Matrix];
                if (Volatile.Read(ref failed[c.Matrix]) != 0)
                {
                    return;
                }

                long groupBytes = RepackedBytes(new WeightView(v.Data, v.DType, QuantMatMul.GroupRows, v.ColCount));
                byte* source = v.Data + c.Row * v.RowBytes, destination = (byte*)targets[c.Matrix] + c.Row / QuantMatMul.GroupRows * groupBytes;
                FileMapping? file = null;
                long offset = 0;
                bool read = files is not null && files.TryLocate(source, out file, out offset);
                byte* chunkBuffer = read ? reads.Rent() : null;
                try
                {
                    if (read)
                    {
                        file!.ReadExactly(chunkBuffer, c.Rows * v.RowBytes, offset);
                        source = chunkBuffer;
                    }
                    else
                    {
                        Populate(source, c.Rows * v.RowBytes, write: false);
                    }

                    if (!Repackable(new WeightView(source, v.DType, c.Rows, v.ColCount)))
                    {
                        Volatile.Write(ref failed[c.Matrix], 1);
                        return;
                    }

                    Populate(destination, (c.Rows + QuantMatMul.GroupRows - 1) / QuantMatMul.GroupRows * groupBytes, write: true);
                    QuantMatMul.Repack(v.DType, source, c.Rows, v.ColCount, destination);
                    if (!read)
                    {
                        DropPages(source, c.Rows * v.RowBytes);
                    }
                }
                finally
                {
                    if (chunkBuffer != null)
                    {
                        reads.Return(chunkBuffer);
                    }
                }
            });
        }

        for (int m = 0; m < keys.Length; m++)
        {
            WeightView v = sources[m];
            if (failed[m] == 0)
            {
                DropPages(v.Data, v.DataBytes);   // the pages that straddled two chunks
                matrices[keys[m]] = new WeightView((byte*)targets[m], QuantMatMul.GroupLayoutOf(v.DType)!.Value, v.RowCount, v.ColCount);
            }
        }
    }

    /// <summary>
    /// Repacks every MLX affine matrix with BF16 scales and biases into <see cref="DType.Affine8x8"/> /
    /// <see cref="DType.Affine4x8"/> (QuantMatMul.AffineX8.cs: the int8-activation kernels' 8-row groups, codes, scales and
    /// biases together) in one 2 MiB-aligned buffer added to <paramref name="buffers"/>, as <see cref="RepackGroups"/> does
    /// for the GGML formats: chunks of rows on every core, each chunk's source pages (codes and tables) dropped from the
    /// resident set once repacked. Every BF16 value widens exactly, so no matrix has to stay in rows. Matrices with F16 or
    /// F32 tables keep <see cref="DType.Affine"/> (the float-activation <see cref="Kernels.AffineMatMul"/>). A matrix whose
    /// codes and tables all lie in <paramref name="files"/> is read chunk by chunk with <c>pread</c> into a buffer reused from
    /// chunk to chunk (codes, scales, biases) and repacked from there, the mapping never touched (see <see cref="RepackGroups"/>).
    /// </summary>
    private static void RepackAffineGroups(Dictionary<string, WeightView> matrices, List<nint> buffers, bool hugePages, MappedFiles? files = null)
    {
        string[] keys = [.. matrices.Where(kv => QuantMatMul.AffineGroupLayoutOf(kv.Value) is not null).Select(kv => kv.Key).Order(StringComparer.Ordinal)];
        WeightView[] sources = [.. keys.Select(k => matrices[k])];
        byte* buffer = LayOut(sources, v => QuantMatMul.RepackedBytesAffineX8(v.Bits, v.GroupSize, v.RowCount, v.ColCount), hugePages, out nint[] targets);
        if (buffer == null)
        {
            return;
        }

        buffers.Add((nint)buffer);
        int chunkRows = RepackChunkRowsOnThisThread;
        static long TableBytes(in WeightView v) => (long)(v.ColCount / v.GroupSize) * sizeof(ushort);   // one row's scales (and its biases)

        using (var reads = new ChunkBuffers(sources.Max(v => Math.Min(chunkRows, v.RowCount) * (v.RowBytes + 2 * TableBytes(v)))))
        {
            ForEachChunk(sources, _ => chunkRows, c =>
            {
                WeightView v = sources[c.Matrix];
                int r0 = c.Row, n = c.Rows;
                long groupBytes = QuantMatMul.RepackedBytesAffineX8(v.Bits, v.GroupSize, QuantMatMul.GroupRows, v.ColCount), tableBytes = TableBytes(v);
                byte* destination = (byte*)targets[c.Matrix] + r0 / QuantMatMul.GroupRows * groupBytes;
                Populate(destination, (n + QuantMatMul.GroupRows - 1) / QuantMatMul.GroupRows * groupBytes, write: true);
                FileMapping? codeFile = null, scaleFile = null, biasFile = null;
                long codeOffset = 0, scaleOffset = 0, biasOffset = 0;
                if (files is not null && files.TryLocate(v.Data + r0 * v.RowBytes, out codeFile, out codeOffset)
                    && files.TryLocate(v.Scales + r0 * tableBytes, out scaleFile, out scaleOffset)
                    && files.TryLocate(v.Biases + r0 * tableBytes, out biasFile, out biasOffset))
                {
                    // the chunk's codes, scales and biases one after another in the buffer: a matrix of its n rows
                    byte* rows = reads.Rent();
                    try
                    {
                        long codeBytes = n * v.RowBytes;
                        codeFile!.ReadExactly(rows, codeBytes, codeOffset);
                        scaleFile!.ReadExactly(rows + codeBytes, n * tableBytes, scaleOffset);
                        biasFile!.ReadExactly(rows + codeBytes + n * tableBytes, n * tableBytes, biasOffset);
                        var part = new WeightView(rows, v.Bits, v.GroupSize, rows + codeBytes, rows + codeBytes + n * tableBytes, v.GroupDType, n, v.ColCount, v.SourceBits);
                        QuantMatMul.RepackAffineX8(part, 0, n, destination);
                    }
                    finally
                    {
                        reads.Return(rows);
                    }

                    return;
                }

                Populate(v.Data + r0 * v.RowBytes, n * v.RowBytes, write: false);
                QuantMatMul.RepackAffineX8(v, r0, n, destination);
                DropPages(v.Data + r0 * v.RowBytes, n * v.RowBytes);
                DropPages(v.Scales + r0 * tableBytes, n * tableBytes);
                DropPages(v.Biases + r0 * tableBytes, n * tableBytes);
            });
        }

        for (int m = 0; m < keys.Length; m++)
        {
            WeightView v = sources[m];
            DropPages(v.Data, v.DataBytes);   // the pages that straddled two chunks (none read with pread)
            matrices[keys[m]] = new WeightView((byte*)targets[m], QuantMatMul.AffineGroupLayoutOf(v)!.Value, v.GroupSize, v.SourceBits, v.RowCount, v.ColCount);
        }
    }

    /// <summary>
    /// Runs <paramref name="body"/> on every chunk of <paramref name="chunkRows"/>(matrix) rows of every matrix of
    /// <paramref name="sources"/>, all from one list on every core (one matrix after another left 1.7B's one-chunk
    /// matrices on one core), at most one chunk per core at a time (so at most one chunk buffer each): the copy's pieces,
    /// the block and MLX repacks' chunks and the quantize pass's.
    /// </summary>
    private static void ForEachChunk(WeightView[] sources, Func<WeightView, int> chunkRows, Action<(int Matrix, int Row, int Rows)> body)
    {
        var chunks = new List<(int Matrix, int Row, int Rows)>();
        for (int m = 0; m < sources.Length; m++)
        {
            int rows = chunkRows(sources[m]);
            for (int r = 0; r < sources[m].RowCount; r += rows)
            {
                chunks.Add((m, r, Math.Min(rows, sources[m].RowCount - r)));
            }
        }

        try
        {
            Parallel.ForEach(chunks, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, body);
        }
        catch (AggregateException e)
        {
            // one clear error for the load's caller (a file that shrank fails every chunk after its end alike)
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
        }
    }

    /// <summary>
    /// Native buffers of <see cref="Bytes"/> each for the chunks a repack reads from its files, reused from chunk to chunk
    /// (one per thread at a time; a fresh buffer per chunk would fault its pages in again), freed at the end of the load.
    /// </summary>
    private sealed class ChunkBuffers(long bytes) : IDisposable
    {
        private readonly System.Collections.Concurrent.ConcurrentBag<nint> _free = [];
        private readonly System.Collections.Concurrent.ConcurrentBag<nint> _all = [];

        public long Bytes { get; } = bytes;

        public byte* Rent()
        {
            if (_free.TryTake(out nint buffer))
            {
                return (byte*)buffer;
            }

            buffer = (nint)NativeMemory.AlignedAlloc((nuint)Bytes, 4096);
            _all.Add(buffer);
            return (byte*)buffer;
        }

        public void Return(byte* buffer) => _free.Add((nint)buffer);

        public void Dispose()
        {
            foreach (nint buffer in _all)
            {
                NativeMemory.AlignedFree((void*)buffer);
            }
        }
    }

    /// <summary>
    /// Lays <paramref name="sources"/> out one after another in one 2 MiB-aligned buffer, <paramref name="bytes"/>(matrix)
    /// each, every one starting on a cache line, advised for huge pages with <paramref name="hugePages"/> (advice only): the
    /// buffer (the caller's to free; null when there is nothing to lay out) and each matrix's place in it.
    /// </summary>
    private static byte* LayOut(WeightView[] sources, Func<WeightView, long> bytes, bool hugePages, out nint[] places)
    {
        var offsets = new long[sources.Length];
        long total = 0;
        for (int m = 0; m < sources.Length; m++)
        {
            offsets[m] = total;
            total += (bytes(sources[m]) + 63) & ~63L;
        }

        places = new nint[sources.Length];
        if (total == 0)
        {
            return null;
        }

        total = (total + HugePageBytes - 1) & ~(HugePageBytes - 1);
        byte* buffer = (byte*)NativeMemory.AlignedAlloc((nuint)total, (nuint)HugePageBytes);
        if (hugePages && OperatingSystem.IsLinux())
        {
            _ = Madvise(buffer, (nuint)total, MadviseHugePage);
        }

        for (int m = 0; m < sources.Length; m++)
        {
            places[m] = (nint)(buffer + offsets[m]);
        }

        return buffer;
    }

    /// <summary>
    /// The layout a load gives block-format matrices: <paramref name="layout"/> when given, otherwise
    /// <see cref="Kernels.KernelSelection.QuantLayout"/>, except rows when <see cref="Kernels.KernelSelection.QuantDecode"/>
    /// is the float path (the 8-row groups have only the integer-activation kernel).
    /// </summary>
    private static Kernels.QuantLayout ResolveLayout(Kernels.QuantLayout? layout)
        => layout ?? (Kernels.KernelSelection.QuantDecode == Kernels.QuantDecodeKernel.Float ? Kernels.QuantLayout.Rows : Kernels.KernelSelection.QuantLayout);

    /// <summary>Rows per repack step (a multiple of the group's 8): 2,048 rows of 1.7B's Q8_0 output head are 4.5 MB.</summary>
    private const int DefaultRepackChunkRows = 2048;

    [ThreadStatic]
    private static int t_repackChunkRows;

    /// <summary>Rows per repack step for loads on this thread (tests: small chunks split the tiny models' matrices); 0 restores the default.</summary>
    internal static int RepackChunkRowsOnThisThread
    {
        get => t_repackChunkRows > 0 ? t_repackChunkRows : DefaultRepackChunkRows;
        set => t_repackChunkRows = value is 0 || value % QuantMatMul.GroupRows == 0 ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "a multiple of the 8-row group");
    }

    private static bool Repackable(in WeightView v) => QuantMatMul.CanRepack(v.DType, v.Data, v.RowCount, v.ColCount);

    private static long RepackedBytes(in WeightView v) => QuantMatMul.RepackedBytes(v.DType, v.RowCount, v.ColCount);
}
