using System.Runtime.InteropServices;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Loading;

public sealed unsafe partial class ModelWeights
{
    /// <summary>
    /// Repacks every Q4_0 and Q4_K matrix into <see cref="DType.Q4_0x8"/> / <see cref="DType.Q4_Kx8"/> (groups of 8
    /// interleaved rows, the decode kernels' layout: QuantMatMul.Q4x8.cs) in one 2 MiB-aligned buffer, added to
    /// <paramref name="buffers"/> and advised for huge pages only with <paramref name="hugePages"/>
    /// (<see cref="WeightPlacement.HugePageCopy"/>: on the shared Zen 3 the kernel's compaction for 1 GB of huge pages
    /// took the Q4_0 1.7B load from 2.6 s to 7.9 s), and repoints <paramref name="matrices"/> at the copies. Each source's
    /// pages are dropped from the resident set right after its repack (<see cref="DropPages"/>), so peak RSS stays near
    /// the weights' size once; nothing reads the row layout again (prefill and embedding lookups dequantize from the
    /// groups). A matrix with an infinite or NaN block scale keeps the row layout.
    /// </summary>
    private static void RepackGroups(Dictionary<string, WeightView> matrices, List<nint> buffers, bool hugePages)
    {
        string[] keys = [.. matrices.Where(kv => Repackable(kv.Value)).Select(kv => kv.Key)];
        long total = 0;
        foreach (string key in keys)
        {
            total += (RepackedBytes(matrices[key]) + 63) & ~63L;
        }

        if (total == 0)
        {
            return;
        }

        long bytes = (total + HugePageBytes - 1) & ~(HugePageBytes - 1);
        byte* buffer = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, (nuint)HugePageBytes);
        buffers.Add((nint)buffer);
        if (hugePages && OperatingSystem.IsLinux())
        {
            _ = Madvise(buffer, (nuint)bytes, MadviseHugePage);      // advice only
        }

        byte* next = buffer;
        foreach (string key in keys)
        {
            WeightView v = matrices[key];
            bool q4 = v.DType == DType.Q4_0;
            // slices of 512 rows, each slice's source pages dropped as soon as it is repacked: the resident set never
            // holds a whole matrix twice (a tied 151936-row output head is 175 MB in Q4_0)
            long groupBytes = QuantMatMul.GroupRows * v.RowBytes * (q4 ? 1 : 148) / (q4 ? 1 : 144);
            for (int r0 = 0; r0 < v.RowCount; r0 += RepackSliceRows)
            {
                int rows = Math.Min(RepackSliceRows, v.RowCount - r0);
                byte* source = v.Data + r0 * v.RowBytes;
                byte* destination = next + r0 / QuantMatMul.GroupRows * groupBytes;
                if (q4)
                {
                    QuantMatMul.RepackQ4_0x8(source, rows, v.ColCount, destination);
                }
                else
                {
                    QuantMatMul.RepackQ4_Kx8(source, rows, v.ColCount, destination);
                }

                DropPages(source, rows * v.RowBytes);
            }

            DropPages(v.Data, v.DataBytes);   // the pages that straddled two slices
            DType packed = q4 ? DType.Q4_0x8 : DType.Q4_Kx8;
            matrices[key] = new WeightView(next, packed, v.RowCount, v.ColCount);
            next += (RepackedBytes(v) + 63) & ~63L;
        }
    }

    /// <summary>Rows per repack slice (a multiple of <see cref="QuantMatMul.GroupRows"/>).</summary>
    private const int RepackSliceRows = 512;

    private static bool Repackable(in WeightView v) => v.DType switch
    {
        DType.Q4_0 => QuantMatMul.CanRepackQ4_0x8(v.Data, v.RowCount, v.ColCount),
        DType.Q4_K => QuantMatMul.CanRepackQ4_Kx8(v.Data, v.RowCount, v.ColCount),
        _ => false,
    };

    private static long RepackedBytes(in WeightView v) => v.DType == DType.Q4_0
        ? QuantMatMul.RepackedBytesQ4_0x8(v.RowCount, v.ColCount)
        : QuantMatMul.RepackedBytesQ4_Kx8(v.RowCount, v.ColCount);
}
