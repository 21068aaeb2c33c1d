using System.Runtime.Intrinsics;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Kernels;

public static unsafe class Embedding
{
    /// <summary>Rows of <paramref name="table"/> [vocab, hidden] for each token id into destination [tokens, hidden].</summary>
    public static void Gather(in WeightView table, ReadOnlySpan<int> tokenIds, Span<float> destination)
    {
        int n = table.ColCount;
        if (destination.Length < (long)tokenIds.Length * n)
        {
            throw new ArgumentException(
                $"destination has {destination.Length} elements; {tokenIds.Length} tokens × {n} need {(long)tokenIds.Length * n}.",
                nameof(destination));
        }

        for (int t = 0; t < tokenIds.Length; t++)
        {
            if ((uint)tokenIds[t] >= (uint)table.RowCount)
            {
                throw new ArgumentOutOfRangeException(nameof(tokenIds),
                    $"Token id {tokenIds[t]} at index {t} is outside the embedding table's {table.RowCount} rows.");
            }
        }

        fixed (float* pd = destination)
        fixed (int* pt = tokenIds)
        {
            if (Vector512.IsHardwareAccelerated && n >= 2 * Vector512<float>.Count)
            {
                Rows<Vector512<float>, Simd512>(table, pt, tokenIds.Length, pd);
            }
            else if (Vector256.IsHardwareAccelerated && n >= 2 * Vector256<float>.Count)
            {
                Rows<Vector256<float>, Simd256>(table, pt, tokenIds.Length, pd);
            }
            else if (Vector128.IsHardwareAccelerated && n >= 2 * Vector128<float>.Count)
            {
                Rows<Vector128<float>, Simd128>(table, pt, tokenIds.Length, pd);
            }
            else
            {
                Rows<float, SimdScalar>(table, pt, tokenIds.Length, pd);
            }
        }
    }

    internal static void Rows<TV, TS>(in WeightView table, int* tokenIds, int tokenCount, float* destination)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int n = table.ColCount;
        int block = 2 * TS.Count;
        int main = n - n % block;
        for (int t = 0; t < tokenCount; t++)
        {
            float* d = destination + (long)t * n;
            byte* row = table.DType.RowGroup() > 1 ? null : table.Row(tokenIds[t]);
            switch (table.DType)
            {
                case DType.F32:
                    new ReadOnlySpan<float>(row, n).CopyTo(new Span<float>(d, n));
                    break;
                case DType.Q8_0 or DType.Q8_0x8 or DType.Q4_0 or DType.Q4_0x8 or DType.Q4_Kx8 or DType.Q5_Kx8 or DType.Q6_Kx8 or DType.Q4_K or DType.Q5_K or DType.Q6_K
                    or DType.Affine8x8 or DType.Affine4x8:
                    QuantMatMul.DequantizeRow(table, tokenIds[t], d);
                    break;
                case DType.Affine:
                    AffineMatMul.DequantizeRow(table, tokenIds[t], d);
                    break;
                case DType.BF16x8 or DType.F16x8 or DType.F32x8:
                    MatMul.FloatGroupRow(table, tokenIds[t], d);
                    break;
                case DType.BF16:
                    for (int c = 0; c < main; c += block)
                    {
                        TS.Bf16ToSingle((ushort*)row + c, d + c);
                    }

                    for (int c = main; c < n; c++)
                    {
                        d[c] = BitConverter.UInt32BitsToSingle((uint)((ushort*)row)[c] << 16);
                    }

                    break;
                default:
                    for (int c = 0; c < main; c += block)
                    {
                        TS.F16ToSingle((ushort*)row + c, d + c);
                    }

                    for (int c = main; c < n; c++)
                    {
                        d[c] = (float)BitConverter.UInt16BitsToHalf(((ushort*)row)[c]);
                    }

                    break;
            }
        }
    }
}
