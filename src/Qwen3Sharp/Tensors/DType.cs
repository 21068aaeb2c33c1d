namespace Qwen3Sharp.Tensors;

/// <summary>
/// Element types of stored weights: safetensors' F32, F16, BF16, and GGML's block formats Q8_0 and Q4_0
/// (blocks of <see cref="DTypeExtensions.BlockSize"/> elements along a row, each with an fp16 scale).
/// </summary>
public enum DType
{
    F32,
    F16,
    BF16,

    /// <summary>GGML Q8_0: per 32 elements an fp16 scale d and 32 int8 codes q; w = d·q (34 bytes).</summary>
    Q8_0,

    /// <summary>GGML Q4_0: per 32 elements an fp16 scale d and 16 bytes of 4-bit codes; element j is the low
    /// nibble of byte j, element j+16 the high nibble; w = d·(q − 8) (18 bytes).</summary>
    Q4_0,

    /// <summary>Raw unsigned 32-bit words as stored in safetensors (<c>U32</c>): only as the packed codes of an MLX
    /// affine-quantized matrix, never a matrix on its own.</summary>
    U32,

    /// <summary>
    /// MLX affine quantization: a row is <see cref="WeightView.Bits"/>-bit codes packed from the least significant
    /// bit (4: element 2k in the low nibble of byte k, 2k+1 in the high one; 8: one byte each), with one scale and
    /// one bias per <see cref="WeightView.GroupSize"/> elements in separate tables; w = scale·code + bias.
    /// </summary>
    Affine,
}

public static class DTypeExtensions
{
    /// <summary>Bytes per element of the plain types (block formats: see <see cref="RowBytes"/>).</summary>
    public static int ByteSize(this DType dtype) => dtype switch
    {
        DType.F32 => 4,
        DType.F16 => 2,
        DType.BF16 => 2,
        DType.U32 => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "a block format has no per-element size"),
    };

    /// <summary>True for the GGML block formats.</summary>
    public static bool IsBlockQuantized(this DType dtype) => dtype is DType.Q8_0 or DType.Q4_0;

    /// <summary>Elements per block (1 for the plain types).</summary>
    public static int BlockSize(this DType dtype) => dtype.IsBlockQuantized() ? 32 : 1;

    /// <summary>Bytes per block (the element size for the plain types).</summary>
    public static int BlockBytes(this DType dtype) => dtype switch
    {
        DType.Q8_0 => 34,
        DType.Q4_0 => 18,
        _ => dtype.ByteSize(),
    };

    /// <summary>Bytes of one row of <paramref name="colCount"/> elements (a multiple of the block size).</summary>
    public static long RowBytes(this DType dtype, long colCount) => colCount / dtype.BlockSize() * dtype.BlockBytes();
}
