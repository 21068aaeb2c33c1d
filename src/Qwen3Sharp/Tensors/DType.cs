namespace Qwen3Sharp.Tensors;

/// <summary>
/// Element types of stored weights: safetensors' F32, F16, BF16, and GGML's block formats Q8_0 and Q4_0 (blocks
/// of 32 elements along a row, each with an fp16 scale) and the K-quants Q4_K, Q5_K, Q6_K (super-blocks of 256
/// elements with fp16 super-scales and 6- or 8-bit sub-block scales), laid out as in ggml-common.h.
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

    /// <summary>GGML Q4_K (block_q4_K, 144 bytes per 256 elements): fp16 d, fp16 dmin, 12 bytes of eight 6-bit
    /// sub-block scales sc and mins m (get_scale_min_k4's packing), 128 bytes of 4-bit codes. Chunk c (64 elements)
    /// is bytes 32c..32c+31: element 64c + l is the low nibble of byte l, 64c + 32 + l the high nibble, in sub-blocks
    /// 2c and 2c + 1; w = d·sc·q − dmin·m.</summary>
    Q4_K,

    /// <summary>GGML Q5_K (block_q5_K, 176 bytes): as Q4_K, then 32 bytes qh of high bits before the 128 bytes of
    /// low nibbles; element 64c + l takes bit 2c of qh[l] as its fifth bit, element 64c + 32 + l bit 2c + 1.</summary>
    Q5_K,

    /// <summary>GGML Q6_K (block_q6_K, 210 bytes): 128 bytes ql of low nibbles, 64 bytes qh of 2-bit high parts,
    /// sixteen int8 scales (one per 16 elements), fp16 d last; w = d·scale·(q − 32).</summary>
    Q6_K,

    /// <summary>
    /// Q4_0 repacked at load into groups of 8 rows (<see cref="Kernels.QuantMatMul.RepackQ4_0x8"/>), so a decode kernel
    /// dots one activation block against 8 rows at once. Per group: the codes of every block, 128 bytes each (four
    /// 32-byte vectors; in vector v, bytes 4i..4i+3 are row i's: low nibble of byte j element 8v + j, high nibble
    /// element 8v + 4 + j; unsigned, w = d·(q − 8)), then the fp16 scales, 8 per block (row order). A last group short
    /// of 8 rows is padded with zero rows. The same 18 bytes per 32 elements as Q4_0; rows are not contiguous, so
    /// <see cref="WeightView.Row"/> does not apply (see <see cref="Kernels.QuantMatMul.DequantizeRow(in WeightView, int, float*)"/>).
    /// </summary>
    Q4_0x8,

    /// <summary>
    /// Q4_K repacked at load into groups of 8 rows (<see cref="Kernels.QuantMatMul.RepackQ4_Kx8"/>). Per group and
    /// super-block (1184 bytes, 148 per row against Q4_K's 144): the codes of its eight 32-element sub-blocks as
    /// <see cref="Q4_0x8"/> lays out a block (128 bytes each), then the 6-bit scales sc as bytes [sub-block][row], the
    /// mins m likewise, the 8 rows' fp16 d, then their fp16 dmin; w = d·sc·q − dmin·m.
    /// </summary>
    Q4_Kx8,

    /// <summary>
    /// Q8_0 repacked at load into groups of 8 rows (<see cref="Kernels.QuantMatMul.RepackQ8_0x8"/>): per group, the codes
    /// of every block, 256 bytes each (eight 32-byte vectors; in vector v, bytes 4i..4i+3 are row i's codes 4v..4v+3,
    /// signed), then the fp16 scales, 8 per block (row order); w = d·q. The same 34 bytes per 32 elements as Q8_0.
    /// </summary>
    Q8_0x8,

    /// <summary>
    /// Q6_K repacked at load into groups of 8 rows (<see cref="Kernels.QuantMatMul.RepackQ6_Kx8"/>). Per group and
    /// super-block (1680 bytes, 210 per row as Q6_K's): for each 32-element sub-block s its codes in six 32-byte vectors
    /// (192 bytes at 192s; byte 4i + j of a vector is row i's): vector m (0..3) holds element 8m + j's code in bits 0–5
    /// and the top two bits of element 8m + 4 + j in bits 6–7; vector 4 + n (n = 0, 1) the low nibbles of elements
    /// 16n + 4 + j (bits 0–3) and 16n + 12 + j (bits 4–7); then for each s 16 int8 scales (at 1536 + 16s) of its groups
    /// of 16, g0 = 2s and g1 = 2s + 1, in the
    /// order g0 rows 0..3, g1 rows 0..3, g0 rows 4..7, g1 rows 4..7 (so one <c>vpmovsxbw</c> and one unpack give each
    /// group's scales per row lane); then the 8 rows' fp16 d (at 1664). Codes q are 0..63; w = d·sc·(q − 32).
    /// </summary>
    Q6_Kx8,

    /// <summary>
    /// Q5_K repacked at load into groups of 8 rows (<see cref="Kernels.QuantMatMul.RepackQ5_Kx8"/>). Per group and
    /// super-block (1440 bytes, 180 per row against Q5_K's 176): the low four bits of each 32-element sub-block's codes as
    /// <see cref="Q4_Kx8"/> lays them out (128 bytes each), then per sub-block a 32-byte vector of fifth bits (byte 4i + j:
    /// bit 2v + h is the fifth bit of row i's element 8v + 4h + j), then the scales, mins, d and dmin as Q4_Kx8;
    /// w = d·sc·q − dmin·m, q = 0..31.
    /// </summary>
    Q5_Kx8,

    /// <summary>
    /// MLX affine 8-bit codes (BF16 scales and biases) repacked at load into groups of 8 rows
    /// (<see cref="Kernels.QuantMatMul.RepackAffineX8"/>), for the int8-activation kernels. Per group: the codes of every
    /// 32-element block as <see cref="Q8_0x8"/> lays them out (eight 32-byte vectors; in vector v, bytes 4i..4i+3 are row
    /// i's codes 4v..4v+3), stored centred (q − 128, signed); then the BF16 scales [affine group][row], then the BF16
    /// biases [affine group][row]. w = scale·q + bias = scale·(q − 128) + (bias + 128·scale). The affine group size
    /// (32, 64 or 128) is the view's <see cref="WeightView.GroupSize"/>; bytes per row: the MLX file's.
    /// </summary>
    Affine8x8,

    /// <summary>
    /// MLX affine 4-bit codes (BF16 scales and biases; 2- and 3-bit codes widened to 4) in groups of 8 rows, as
    /// <see cref="Affine8x8"/>: the codes of every block as <see cref="Q4_0x8"/> lays them out (unsigned 0..15), then
    /// the scales and biases. w = scale·(q − 8) + (bias + 8·scale).
    /// </summary>
    Affine4x8,

    /// <summary>
    /// BF16 repacked at load into groups of 8 rows (<see cref="Kernels.MatMul.RepackFloatGroups"/>, MatMul.FloatGroups.cs): per
    /// group and column pair (2p, 2p + 1) one 32-byte vector whose 32-bit lane i holds row i's two BF16 values, column 2p in
    /// the low half. The same 2 bytes per element as BF16; a last group short of 8 rows is padded with zero rows.
    /// </summary>
    BF16x8,

    /// <summary>F16 in groups of 8 rows, as <see cref="BF16x8"/>: per column pair the 8 rows' halves of column 2p, then of 2p + 1.</summary>
    F16x8,

    /// <summary>F32 in groups of 8 rows, as <see cref="BF16x8"/>: per column pair the 8 rows' floats of column 2p, then of 2p + 1.</summary>
    F32x8,
}

public static class DTypeExtensions
{
    /// <summary>Bytes per element of the plain types (block formats: see <see cref="RowBytes"/>).</summary>
    public static int ByteSize(this DType dtype) => dtype switch
    {
        DType.F32 => 4,
        DType.F16 => 2,
        DType.BF16 or DType.BF16x8 or DType.F16x8 => 2,
        DType.F32x8 => 4,
        DType.U32 => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "a block format has no per-element size"),
    };

    /// <summary>True for the GGML block formats and the 8-row groups (MLX affine ones included: blocks of 32 for the int8 kernels).</summary>
    public static bool IsBlockQuantized(this DType dtype) => dtype is DType.Q8_0 or DType.Q4_0 || (dtype.RowGroup() > 1 && !dtype.IsFloatGroups()) || dtype.IsKQuant();

    /// <summary>True for the K-quants (super-blocks of 256 elements).</summary>
    public static bool IsKQuant(this DType dtype) => dtype is DType.Q4_K or DType.Q5_K or DType.Q6_K;

    /// <summary>Elements per block (1 for the plain types).</summary>
    public static int BlockSize(this DType dtype) => dtype.IsKQuant() || dtype is DType.Q4_Kx8 or DType.Q5_Kx8 or DType.Q6_Kx8 ? 256 : dtype.IsBlockQuantized() ? 32 : 1;

    /// <summary>Bytes per block (the element size for the plain types).</summary>
    public static int BlockBytes(this DType dtype) => dtype switch
    {
        DType.Q8_0 or DType.Q8_0x8 => 34,
        DType.Q4_0 or DType.Q4_0x8 => 18,
        DType.Q4_K => 144,
        DType.Q5_K => 176,
        DType.Q6_K or DType.Q6_Kx8 => 210,
        DType.Q4_Kx8 => 148,
        DType.Q5_Kx8 => 180,
        _ => dtype.ByteSize(),
    };

    /// <summary>Bytes of one row of <paramref name="colCount"/> elements (a multiple of the block size).</summary>
    public static long RowBytes(this DType dtype, long colCount) => dtype is DType.Affine8x8 or DType.Affine4x8
        ? throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "an affine row's bytes depend on its group size (WeightView.RowBytes)")
        : colCount / dtype.BlockSize() * dtype.BlockBytes();

    /// <summary>True for the MLX affine formats (row-major <see cref="DType.Affine"/> and its 8-row groups).</summary>
    public static bool IsAffine(this DType dtype) => dtype is DType.Affine or DType.Affine8x8 or DType.Affine4x8;

    /// <summary>Rows interleaved in a group (<see cref="DType.BF16x8"/>, <see cref="DType.Q4_0x8"/>, <see cref="DType.Q4_Kx8"/>, <see cref="DType.Q5_Kx8"/>, <see cref="DType.Q6_Kx8"/>, <see cref="DType.Q8_0x8"/>, <see cref="DType.Affine8x8"/>, <see cref="DType.Affine4x8"/>: 8), or 1 for row-major formats.</summary>
    public static int RowGroup(this DType dtype) => dtype is DType.Q4_0x8 or DType.Q4_Kx8 or DType.Q5_Kx8 or DType.Q6_Kx8 or DType.Q8_0x8 or DType.Affine8x8 or DType.Affine4x8 || dtype.IsFloatGroups() ? 8 : 1;

    /// <summary>True for the 8-row float groups (<see cref="DType.BF16x8"/>, <see cref="DType.F16x8"/>, <see cref="DType.F32x8"/>).</summary>
    public static bool IsFloatGroups(this DType dtype) => dtype is DType.BF16x8 or DType.F16x8 or DType.F32x8;
}
