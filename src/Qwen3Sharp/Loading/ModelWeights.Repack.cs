using System.Runtime.InteropServices;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Loading;

public sealed unsafe partial class ModelWeights
{
    /// <summary>
    /// Repacks every Q4_0, Q4_K and Q8_0 matrix into <see cref="DType.Q4_0x8"/> / <see cref="DType.Q4_Kx8"/> / <see cref="DType.Q8_0x8"/> (groups of 8
    /// interleaved rows, the decode kernels' layout: QuantMatMul.Q4x8.cs) in one 2 MiB-aligned buffer advised for huge
    /// pages, added to <paramref name="buffers"/>, and repoints <paramref name="matrices"/> at the copies. Each source's
    /// pages are dropped from the resident set right after its repack (<see cref="DropPages"/>), so peak RSS stays near
    /// the weights' size once; nothing reads the row layout again (prefill and embedding lookups dequantize from the
    /// groups). A matrix with an infinite or NaN block scale keeps the row layout.
    /// </summary>
    private static void RepackGroups(Dictionary<string, WeightView> matrices, List<nint> buffers)
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
        if (OperatingSystem.IsLinux())
        {
            _ = Madvise(buffer, (nuint)bytes, MadviseHugePage);      // advice only
        }

        byte* next = buffer;
        foreach (string key in keys)
        {
            WeightView v = matrices[key];
            DType packed;
            if (v.DType == DType.Q4_0)
            {
                QuantMatMul.RepackQ4_0x8(v.Data, v.RowCount, v.ColCount, next);
                packed = DType.Q4_0x8;
            }
            else if (v.DType == DType.Q8_0)
            {
                QuantMatMul.RepackQ8_0x8(v.Data, v.RowCount, v.ColCount, next);
                packed = DType.Q8_0x8;
            }
            else
            {
                QuantMatMul.RepackQ4_Kx8(v.Data, v.RowCount, v.ColCount, next);
                packed = DType.Q4_Kx8;
            }

            DropPages(v.Data, v.DataBytes);
            matrices[key] = new WeightView(next, packed, v.RowCount, v.ColCount);
            next += (RepackedBytes(v) + 63) & ~63L;
        }
    }

    private static bool Repackable(in WeightView v) => v.DType switch
    {
        DType.Q4_0 => QuantMatMul.CanRepackQ4_0x8(v.Data, v.RowCount, v.ColCount),
        DType.Q4_K => QuantMatMul.CanRepackQ4_Kx8(v.Data, v.RowCount, v.ColCount),
        DType.Q8_0 => QuantMatMul.CanRepackQ8_0x8(v.Data, v.RowCount, v.ColCount),
        _ => false,
    };

    private static long RepackedBytes(in WeightView v) => v.DType switch
    {
        DType.Q4_0 => QuantMatMul.RepackedBytesQ4_0x8(v.RowCount, v.ColCount),
        DType.Q8_0 => QuantMatMul.RepackedBytesQ8_0x8(v.RowCount, v.ColCount),
        _ => QuantMatMul.RepackedBytesQ4_Kx8(v.RowCount, v.ColCount),
    };
}
