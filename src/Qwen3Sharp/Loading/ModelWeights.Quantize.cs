using System.Runtime.InteropServices;
using Qwen3Sharp.Kernels.Reference;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Loading;

public sealed unsafe partial class ModelWeights
{
    /// <summary>The block formats a BF16/F16/F32 checkpoint can be quantized to at load (<c>--quantize</c>).</summary>
    public static readonly IReadOnlyList<DType> LoadQuantizations = [DType.Q8_0, DType.Q4_0];

    /// <summary>
    /// Quantizes every BF16/F16/F32 matrix whose rows are whole 32-element blocks into <paramref name="target"/> (Q8_0 or
    /// Q4_0) with llama.cpp's reference rounding (quantize_row_q8_0_ref / quantize_row_q4_0_ref, the rounding of
    /// <c>llama-quantize</c> without an imatrix and of <c>../shared/tools/hf_to_gguf.py</c>), into one 2 MiB-aligned buffer
    /// advised for huge pages, and repoints <paramref name="matrices"/> at the blocks. Every matrix is quantized, the
    /// embedding and output head included ("pure", as <c>llama-quantize --pure</c>; llama-quantize's default Q4_0 recipe
    /// keeps the output head in Q6_K, which this engine does not have). Matrices already in a block format stay as
    /// they are.
    /// <para>With <paramref name="groups"/> the blocks go straight into the 8-row groups of the decode kernels
    /// (<see cref="DType.Q8_0x8"/>, <see cref="DType.Q4_0x8"/>); a matrix with a block scale the groups cannot hold (an fp16
    /// infinity: weights beyond ±8.3 million) is quantized again into rows.</para>
    /// <para>Chunks of up to <see cref="RepackChunkRowsOnThisThread"/> rows (and <see cref="QuantizeChunkBytes"/>) of every matrix, on every core: each chunk is read
    /// from its file with <c>pread</c> (<paramref name="files"/>; otherwise through the mapping, whose pages are then
    /// dropped from this process's resident set) into a buffer reused from chunk to chunk, widened, quantized there and
    /// repacked into place, so the resident set holds the quantized weights and a chunk per core.</para>
    /// </summary>
    private static byte* QuantizeMatrices(Dictionary<string, WeightView> matrices, DType target, bool groups, MappedFiles? files)
    {
        if (!LoadQuantizations.Contains(target))
        {
            throw new ArgumentException($"cannot quantize to {target} at load (supported: {string.Join(", ", LoadQuantizations)})", nameof(target));
        }

        string[] keys = [.. matrices.Where(m => m.Value.DType is DType.BF16 or DType.F16 or DType.F32
                && m.Value.ColCount % QuantScalar.BlockSize == 0)
            .Select(m => m.Key).Order(StringComparer.Ordinal)];
        long RowsBytes(in WeightView v) => target.RowBytes(v.ColCount) * v.RowCount;
        long SlotBytes(in WeightView v) => groups ? Math.Max(RowsBytes(v), Kernels.QuantMatMul.RepackedBytes(target, v.RowCount, v.ColCount)) : RowsBytes(v);
        WeightView[] sources = [.. keys.Select(k => matrices[k])];
        byte* buffer = LayOut(sources, v => SlotBytes(v), hugePages: true, out nint[] slots);
        if (buffer == null)
        {
            return null;
        }

        int chunkRows = RepackChunkRowsOnThisThread;
        long chunkBytes = sources.Max(v => Math.Min(ChunkRows(v), v.RowCount) * (v.RowBytes + target.RowBytes(v.ColCount)) + 4L * v.ColCount);

        // a chunk holds its source rows and its quantized rows (at most QuantizeChunkBytes, in whole 8-row groups) and one widened row
        int ChunkRows(WeightView v) => (int)Math.Min(chunkRows, Math.Max(Kernels.QuantMatMul.GroupRows,
            QuantizeChunkBytes / (v.RowBytes + target.RowBytes(v.ColCount)) / Kernels.QuantMatMul.GroupRows * Kernels.QuantMatMul.GroupRows));

        var failed = new int[keys.Length];     // a chunk of the matrix had a scale the groups cannot hold
        using (var reads = new ChunkBuffers(chunkBytes))
        {
            ForEachChunk(sources, ChunkRows, c =>
            {
                WeightView v = sources[c.Matrix];
                long qRowBytes = target.RowBytes(v.ColCount);
                byte* rows = reads.Rent();
                try
                {
                    byte* source = v.Data + c.Row * v.RowBytes;
                    FileMapping? file = null;
                    long offset = 0;
                    bool read = files is not null && files.TryLocate(source, out file, out offset);
                    if (read)
                    {
                        file!.ReadExactly(rows, c.Rows * v.RowBytes, offset);
                        source = rows;
                    }
                    else
                    {
                        Populate(source, c.Rows * v.RowBytes, write: false);
                    }

                    byte* quantized = groups ? rows + c.Rows * v.RowBytes : (byte*)slots[c.Matrix] + c.Row * qRowBytes;
                    Populate(quantized, c.Rows * qRowBytes, write: true);
                    QuantizeRows(new WeightView(source, v.DType, c.Rows, v.ColCount), target, quantized, (float*)(rows + c.Rows * (v.RowBytes + qRowBytes)));
                    if (groups)
                    {
                        if (Volatile.Read(ref failed[c.Matrix]) == 0 && Kernels.QuantMatMul.CanRepack(target, quantized, c.Rows, v.ColCount))
                        {
                            long groupBytes = Kernels.QuantMatMul.RepackedBytes(target, Kernels.QuantMatMul.GroupRows, v.ColCount);
                            byte* destination = (byte*)slots[c.Matrix] + c.Row / Kernels.QuantMatMul.GroupRows * groupBytes;
                            Populate(destination, (c.Rows + Kernels.QuantMatMul.GroupRows - 1) / Kernels.QuantMatMul.GroupRows * groupBytes, write: true);
                            Kernels.QuantMatMul.Repack(target, quantized, c.Rows, v.ColCount, destination);
                        }
                        else
                        {
                            Volatile.Write(ref failed[c.Matrix], 1);
                        }
                    }

                    if (!read)
                    {
                        DropPages(source, c.Rows * v.RowBytes);
                    }
                }
                finally
                {
                    reads.Return(rows);
                }
            });
        }

        for (int m = 0; m < keys.Length; m++)
        {
            WeightView v = sources[m];
            bool grouped = groups && failed[m] == 0;
            if (groups && !grouped)
            {
                // rows after all: quantized again from the mapping into the matrix's own slot
                float* row = (float*)NativeMemory.Alloc((nuint)v.ColCount, sizeof(float));
                try
                {
                    QuantizeRows(v, target, (byte*)slots[m], row);
                }
                finally
                {
                    NativeMemory.Free(row);
                }
            }

            DropPages(v.Data, v.DataBytes);   // the pages that straddled two chunks (none after pread)
            matrices[keys[m]] = grouped ? new WeightView((byte*)slots[m], Kernels.QuantMatMul.GroupLayoutOf(target)!.Value, v.RowCount, v.ColCount)
                : new WeightView((byte*)slots[m], target, v.RowCount, v.ColCount);
        }

        return buffer;
    }

    /// <summary>Most bytes of one chunk of <see cref="QuantizeMatrices"/> (source and quantized rows): 8 MiB, a buffer per core.</summary>
    private const long QuantizeChunkBytes = 8L << 20;

    /// <summary>Widens each row of <paramref name="source"/> to float32 in <paramref name="row"/> and quantizes it into <paramref name="destination"/>'s rows.</summary>
    private static void QuantizeRows(in WeightView source, DType target, byte* destination, float* row)
    {
        long rowBytes = target.RowBytes(source.ColCount);
        var widened = new Span<float>(row, source.ColCount);
        for (int r = 0; r < source.RowCount; r++)
        {
            Kernels.Embedding.Gather(source, new ReadOnlySpan<int>(in r), widened);
            if (target == DType.Q8_0)
            {
                Kernels.RowQuantizer.Q8_0(row, source.ColCount, destination + r * rowBytes);
            }
            else
            {
                Kernels.RowQuantizer.Q4_0(row, source.ColCount, destination + r * rowBytes);
            }
        }
    }
}
