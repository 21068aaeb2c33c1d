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
    /// they are. The file pages read are then dropped from this process's mappings (the page cache keeps them), so
    /// the resident set holds the quantized weights only.
    /// </summary>
    private static byte* QuantizeMatrices(Dictionary<string, WeightView> matrices, DType target)
    {
        if (!LoadQuantizations.Contains(target))
        {
            throw new ArgumentException($"cannot quantize to {target} at load (supported: {string.Join(", ", LoadQuantizations)})", nameof(target));
        }

        List<string> keys = matrices.Where(m => m.Value.DType is DType.BF16 or DType.F16 or DType.F32
                && m.Value.ColCount % QuantScalar.BlockSize == 0)
            .Select(m => m.Key).Order(StringComparer.Ordinal).ToList();
        long total = 0;
        foreach (string key in keys)
        {
            total += (target.RowBytes(matrices[key].ColCount) * matrices[key].RowCount + 63) & ~63L;
        }

        long bytes = Math.Max(HugePageBytes, (total + HugePageBytes - 1) & ~(HugePageBytes - 1));
        byte* buffer = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, (nuint)HugePageBytes);
        if (OperatingSystem.IsLinux())
        {
            _ = Madvise(buffer, (nuint)bytes, MadviseHugePage);
        }

        byte* next = buffer;
        foreach (string key in keys)
        {
            WeightView source = matrices[key];
            var quantized = new WeightView(next, target, source.RowCount, source.ColCount);
            QuantizeRows(source, quantized);
            if (OperatingSystem.IsLinux())
            {
                long start = ((long)source.Data + 4095) & ~4095L, end = ((long)source.Data + source.ByteCount) & ~4095L;
                if (end > start)
                {
                    _ = Madvise((void*)start, (nuint)(end - start), MadviseDontNeed);
                }
            }

            matrices[key] = quantized;
            next += (quantized.ByteCount + 63) & ~63L;
        }

        return buffer;
    }

    /// <summary>Widens each row to float32 and quantizes it; rows are independent, so they go in parallel.</summary>
    private static void QuantizeRows(WeightView source, WeightView destination)
    {
        const int RowsPerItem = 64;
        int items = (source.RowCount + RowsPerItem - 1) / RowsPerItem;
        Parallel.For(0, items, () => new float[source.ColCount], (item, _, row) =>
        {
            fixed (float* x = row)
            {
                for (int r = item * RowsPerItem; r < Math.Min(source.RowCount, (item + 1) * RowsPerItem); r++)
                {
                    WidenRow(source, r, x);
                    if (destination.DType == DType.Q8_0)
                    {
                        QuantScalar.QuantizeRowQ8_0(x, source.ColCount, destination.Row(r));
                    }
                    else
                    {
                        QuantScalar.QuantizeRowQ4_0(x, source.ColCount, destination.Row(r));
                    }
                }
            }

            return row;
        }, _ => { });
    }

    private static void WidenRow(WeightView source, int row, float* x)
    {
        byte* p = source.Row(row);
        switch (source.DType)
        {
            case DType.F32:
                new ReadOnlySpan<float>(p, source.ColCount).CopyTo(new Span<float>(x, source.ColCount));
                break;
            case DType.F16:
                for (int c = 0; c < source.ColCount; c++)
                {
                    x[c] = (float)((Half*)p)[c];
                }

                break;
            default:
                for (int c = 0; c < source.ColCount; c++)
                {
                    x[c] = BitConverter.Int32BitsToSingle(((ushort*)p)[c] << 16);
                }

                break;
        }
    }
}
