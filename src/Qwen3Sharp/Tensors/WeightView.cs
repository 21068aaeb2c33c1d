namespace Qwen3Sharp.Tensors;

/// <summary>
/// A read-only 2-D weight matrix used in place (memory-mapped file or native buffer):
/// <c>[RowCount, ColCount]</c>, row-major, as stored by PyTorch (<c>Linear.weight</c> is [out, in]).
/// The memory it points to is owned elsewhere and must outlive the view. An <see cref="DType.Affine"/> matrix
/// also points at its per-group scale and bias tables ([RowCount, ColCount / GroupSize] of
/// <see cref="GroupDType"/>).
/// </summary>
public readonly unsafe struct WeightView
{
    public readonly byte* Data;
    public readonly DType DType;
    public readonly int RowCount;
    public readonly int ColCount;

    /// <summary>Affine (and its 8-row groups) only: the code width in memory (4 or 8).</summary>
    public readonly int Bits;

    /// <summary>
    /// Affine (and its 8-row groups) only: the bit width the checkpoint was quantized with (2, 3, 4, 6 or 8), so codes are
    /// 0..2^SourceBits − 1; 2- and 3-bit codes are held 4 bits wide in memory and 6-bit ones 8 bits wide (<see cref="Bits"/>).
    /// </summary>
    public readonly int SourceBits;

    /// <summary>Affine (and its 8-row groups) only: elements per scale/bias pair (32, 64 or 128).</summary>
    public readonly int GroupSize;

    /// <summary>Affine only: the scale and bias tables, [RowCount, ColCount / GroupSize] each.</summary>
    public readonly byte* Scales, Biases;

    /// <summary>Affine only: the element type of the scale and bias tables (BF16, F16 or F32).</summary>
    public readonly DType GroupDType;

    public WeightView(byte* data, DType dtype, int rowCount, int colCount)
    {
        Data = data;
        DType = dtype;
        RowCount = rowCount;
        ColCount = colCount;
    }

    /// <summary>An MLX affine matrix (see <see cref="DType.Affine"/>).</summary>
    public WeightView(byte* codes, int bits, int groupSize, byte* scales, byte* biases, DType groupDType, int rowCount, int colCount,
        int sourceBits = 0)
    {
        if (bits is not (4 or 8))
        {
            throw new ArgumentOutOfRangeException(nameof(bits), bits, "affine codes are 4 or 8 bits wide in memory");
        }

        sourceBits = sourceBits == 0 ? bits : sourceBits;
        if (sourceBits is not (2 or 3 or 4 or 6 or 8) || sourceBits > bits)
        {
            throw new ArgumentOutOfRangeException(nameof(sourceBits), sourceBits, $"affine codes of 2, 3, 4, 6 or 8 bits, held {bits} bits wide");
        }

        if (groupSize is not (32 or 64 or 128) || colCount % groupSize != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(groupSize), groupSize, $"the group size must be 32, 64 or 128 and divide the {colCount} columns");
        }

        if (groupDType is not (DType.BF16 or DType.F16 or DType.F32))
        {
            throw new ArgumentOutOfRangeException(nameof(groupDType), groupDType, "scales and biases are BF16, F16 or F32");
        }

        Data = codes;
        DType = DType.Affine;
        RowCount = rowCount;
        ColCount = colCount;
        Bits = bits;
        SourceBits = sourceBits;
        GroupSize = groupSize;
        Scales = scales;
        Biases = biases;
        GroupDType = groupDType;
    }

    /// <summary>
    /// An MLX affine matrix repacked into 8-row groups (<see cref="DType.Affine8x8"/>, <see cref="DType.Affine4x8"/>):
    /// codes, scales and biases all at <paramref name="data"/>.
    /// </summary>
    public WeightView(byte* data, DType dtype, int groupSize, int sourceBits, int rowCount, int colCount)
    {
        if (dtype is not (DType.Affine8x8 or DType.Affine4x8))
        {
            throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "only the affine 8-row groups carry a group size");
        }

        if (groupSize is not (32 or 64 or 128) || colCount % groupSize != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(groupSize), groupSize, $"the group size must be 32, 64 or 128 and divide the {colCount} columns");
        }

        Data = data;
        DType = dtype;
        RowCount = rowCount;
        ColCount = colCount;
        Bits = dtype == DType.Affine8x8 ? 8 : 4;
        if (sourceBits is not (2 or 3 or 4 or 6 or 8) || sourceBits > Bits)
        {
            throw new ArgumentOutOfRangeException(nameof(sourceBits), sourceBits, $"affine codes of 2, 3, 4, 6 or 8 bits, held {Bits} bits wide");
        }

        SourceBits = sourceBits;
        GroupSize = groupSize;
        Scales = Biases = null;
        GroupDType = DType.BF16;
    }

    /// <summary>
    /// Bytes of one stored row of <see cref="Data"/> (block formats: ColCount / 32 blocks; affine: the codes; affine in
    /// 8-row groups: the codes and the row's BF16 scale and bias per group).
    /// </summary>
    public long RowBytes => DType switch
    {
        DType.Affine => (long)ColCount * Bits / 8,
        DType.Affine8x8 or DType.Affine4x8 => (long)ColCount * Bits / 8 + 4L * (ColCount / GroupSize),
        _ => DType.RowBytes(ColCount),
    };

    /// <summary>Bytes at <see cref="Data"/> (row-interleaved formats: whole groups, the last one padded).</summary>
    public long DataBytes => ((long)RowCount + DType.RowGroup() - 1) / DType.RowGroup() * DType.RowGroup() * RowBytes;

    /// <summary>Bytes a full pass over the matrix reads (affine: the codes and the scale and bias tables).</summary>
    public long ByteCount => DataBytes + (DType == DType.Affine ? 2L * RowCount * (ColCount / GroupSize) * GroupDType.ByteSize() : 0);

    /// <summary>Row <paramref name="row"/> of a row-major matrix (not the 8-row group formats, whose rows are interleaved).</summary>
    public byte* Row(int row) => Data + row * RowBytes;

    /// <summary>The same matrix with its <see cref="Data"/> (the codes, for affine) at another address.</summary>
    public WeightView WithData(byte* data) => DType switch
    {
        DType.Affine => new WeightView(data, Bits, GroupSize, Scales, Biases, GroupDType, RowCount, ColCount, SourceBits),
        DType.Affine8x8 or DType.Affine4x8 => new WeightView(data, DType, GroupSize, SourceBits, RowCount, ColCount),
        _ => new WeightView(data, DType, RowCount, ColCount),
    };

    /// <summary>Affine only: the scale and bias of group <paramref name="group"/> of row <paramref name="row"/>.</summary>
    public (float Scale, float Bias) GroupParams(int row, int group)
    {
        long i = (long)row * (ColCount / GroupSize) + group;
        return (Load(Scales, GroupDType, i), Load(Biases, GroupDType, i));
    }

    /// <summary>Element <paramref name="i"/> of a BF16/F16/F32 array as float32.</summary>
    public static float Load(byte* p, DType dtype, long i) => dtype switch
    {
        DType.BF16 => BitConverter.Int32BitsToSingle(((ushort*)p)[i] << 16),
        DType.F16 => (float)((Half*)p)[i],
        _ => ((float*)p)[i],
    };

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
                DType.BF16x8 or DType.F16x8 or DType.F32x8 => Kernels.MatMul.FloatGroupElement(this, row, col),
                DType.Q8_0 or DType.Q4_0 or DType.Q4_K or DType.Q5_K or DType.Q6_K => Kernels.Reference.QuantScalar.Element(Row(row), DType, col),
                DType.Q4_0x8 => Kernels.QuantMatMul.ElementQ4_0x8(Data, ColCount, row, col),
                DType.Q4_Kx8 => Kernels.QuantMatMul.ElementQ4_Kx8(Data, ColCount, row, col),
                DType.Q5_Kx8 => Kernels.QuantMatMul.ElementQ5_Kx8(Data, ColCount, row, col),
                DType.Q8_0x8 => Kernels.QuantMatMul.ElementQ8_0x8(Data, ColCount, row, col),
                DType.Q6_Kx8 => Kernels.QuantMatMul.ElementQ6_Kx8(Data, ColCount, row, col),
                DType.Affine => Kernels.Reference.QuantScalar.AffineElement(this, row, col),
                DType.Affine8x8 or DType.Affine4x8 => Kernels.QuantMatMul.ElementAffineX8(this, row, col),
                _ => throw new InvalidOperationException(),
            };
        }
    }
}
