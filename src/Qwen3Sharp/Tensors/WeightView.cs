namespace Qwen3Sharp.Tensors;

/// <summary>
/// A read-only 2-D weight matrix used in place (memory-mapped file or native buffer):
/// <c>[RowCount, ColCount]</c>, row-major, as stored by PyTorch (<c>Linear.weight</c> is [out, in]).
/// The memory it points to is owned elsewhere and must outlive the view.
/// </summary>
public readonly unsafe struct WeightView
{
    public readonly byte* Data;
    public readonly DType DType;
    public readonly int RowCount;
    public readonly int ColCount;

    public WeightView(byte* data, DType dtype, int rowCount, int colCount)
    {
        Data = data;
        DType = dtype;
        RowCount = rowCount;
        ColCount = colCount;
    }

    /// <summary>Bytes of one stored row (block formats: ColCount / 32 blocks, K-quants ColCount / 256 super-blocks).</summary>
    public long RowBytes => DType.RowBytes(ColCount);

    public long ByteCount => RowCount * RowBytes;

    public byte* Row(int row) => Data + row * RowBytes;

    /// <summary>One element as float32 (slow path: tests and loading only).</summary>
    public float this[int row, int col]
    {
        get
        {
            long i = (long)row * ColCount + col;
            return DType switch
            {
                DType.F32 => ((float*)Data)[i],
                DType.F16 => (float)((Half*)Data)[i],
                DType.BF16 => BitConverter.Int32BitsToSingle(((ushort*)Data)[i] << 16),
                DType.Q8_0 or DType.Q4_0 or DType.Q4_K or DType.Q5_K or DType.Q6_K => Kernels.Reference.QuantScalar.Element(Row(row), DType, col),
                _ => throw new InvalidOperationException(),
            };
        }
    }
}
