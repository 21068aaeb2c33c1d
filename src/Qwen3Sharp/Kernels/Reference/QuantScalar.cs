using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Kernels.Reference;

/// <summary>
/// Plain loops over the GGML block formats (Q8_0, Q4_0): the test oracle for <see cref="QuantMatMul"/>, never
/// used on the hot path. Layouts as in ggml-common.h: <c>block_q8_0 { half d; int8 qs[32]; }</c>,
/// <c>block_q4_0 { half d; uint8 qs[16]; }</c> with element j in the low nibble and j+16 in the high nibble.
/// </summary>
public static unsafe class QuantScalar
{
    public const int BlockSize = 32;

    /// <summary>Element <paramref name="col"/> of a stored row.</summary>
    public static float Element(byte* row, DType dtype, int col)
    {
        int b = col / BlockSize, j = col % BlockSize;
        byte* block = row + (long)b * dtype.BlockBytes();
        float d = (float)BitConverter.UInt16BitsToHalf(*(ushort*)block);
        return dtype switch
        {
            DType.Q8_0 => d * ((sbyte*)(block + 2))[j],
            DType.Q4_0 => d * ((j < 16 ? block[2 + j] & 0xF : block[2 + j - 16] >> 4) - 8),
            _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not a block format"),
        };
    }

    /// <summary>
    /// Element (<paramref name="row"/>, <paramref name="col"/>) of an MLX affine matrix: scale·code + bias of its
    /// group, the code read from the LSB-first packing (<see cref="DType.Affine"/>).
    /// </summary>
    public static float AffineElement(in WeightView w, int row, int col)
    {
        byte* codes = w.Row(row);
        int code = w.Bits == 8 ? codes[col] : (codes[col / 2] >> (col % 2 * 4)) & 0xF;
        (float scale, float bias) = w.GroupParams(row, col / w.GroupSize);
        return scale * code + bias;
    }

    /// <summary>A whole row to float32.</summary>
    public static void DequantizeRow(byte* row, DType dtype, int colCount, float* destination)
    {
        for (int c = 0; c < colCount; c++)
        {
            destination[c] = Element(row, dtype, c);
        }
    }

    /// <summary>y[t, r] = Σ_c x[t, c] · w[r, c], accumulated in double.</summary>
    public static void MatMul(float* x, int tokenCount, in WeightView w, double* destination)
    {
        for (int t = 0; t < tokenCount; t++)
        {
            for (int r = 0; r < w.RowCount; r++)
            {
                double s = 0;
                byte* row = w.Row(r);
                for (int c = 0; c < w.ColCount; c++)
                {
                    double wc = w.DType == DType.Affine ? AffineElement(w, r, c) : Element(row, w.DType, c);
                    s += (double)x[(long)t * w.ColCount + c] * wc;
                }

                destination[(long)t * w.RowCount + r] = s;
            }
        }
    }

    /// <summary>
    /// llama.cpp's reference quantizer (quantize_row_q8_0_ref): d = amax/127, q = round(x/d) (half away from
    /// zero), d stored as fp16.
    /// </summary>
    public static void QuantizeRowQ8_0(float* x, int colCount, byte* destination)
    {
        for (int b = 0; b < colCount / BlockSize; b++)
        {
            float* v = x + b * BlockSize;
            byte* block = destination + b * 34;
            float amax = 0;
            for (int j = 0; j < BlockSize; j++)
            {
                amax = MathF.Max(amax, MathF.Abs(v[j]));
            }

            float d = amax / 127f;
            float id = d != 0 ? 1f / d : 0f;
            *(ushort*)block = BitConverter.HalfToUInt16Bits((Half)d);
            for (int j = 0; j < BlockSize; j++)
            {
                ((sbyte*)(block + 2))[j] = (sbyte)MathF.Round(v[j] * id, MidpointRounding.AwayFromZero);
            }
        }
    }

    /// <summary>
    /// llama.cpp's reference quantizer (quantize_row_q4_0_ref): the element of largest magnitude m (signed),
    /// d = m / −8, q = min(15, (int8)(x/d + 8.5)) (truncation), d stored as fp16.
    /// </summary>
    public static void QuantizeRowQ4_0(float* x, int colCount, byte* destination)
    {
        for (int b = 0; b < colCount / BlockSize; b++)
        {
            float* v = x + b * BlockSize;
            byte* block = destination + b * 18;
            float amax = 0, max = 0;
            for (int j = 0; j < BlockSize; j++)
            {
                if (amax < MathF.Abs(v[j]))
                {
                    amax = MathF.Abs(v[j]);
                    max = v[j];
                }
            }

            float d = max / -8f;
            float id = d != 0 ? 1f / d : 0f;
            *(ushort*)block = BitConverter.HalfToUInt16Bits((Half)d);
            for (int j = 0; j < 16; j++)
            {
                int q0 = Math.Min(15, (int)(sbyte)(v[j] * id + 8.5f));
                int q1 = Math.Min(15, (int)(sbyte)(v[j + 16] * id + 8.5f));
                block[2 + j] = (byte)(q0 | (q1 << 4));
            }
        }
    }

    /// <summary>
    /// MLX's affine quantizer (the Metal <c>affine_quantize</c> kernel) for one row, in float32: per group,
    /// w_min = min, w_max = max(0, max); scale = max((w_max − w_min)/(2^bits − 1), 1e-7); the edge is w_min when
    /// |w_min| &gt; |w_max|, else w_max with the scale negated; q0 = round(edge/scale); if q0 ≠ 0, scale = edge/q0 and
    /// bias = edge, else bias = 0; code = min(round((w − bias)/scale), 2^bits − 1), rounding half away from zero.
    /// Codes are written as MLX stores them (one little-endian bit stream, element i at bits [i·bits, (i+1)·bits));
    /// scales and biases as bf16 (round to nearest even).
    /// </summary>
    public static void QuantizeRowAffine(float* x, int colCount, int bits, int groupSize, byte* codes, ushort* scales, ushort* biases)
    {
        float bins = (1 << bits) - 1;
        new Span<byte>(codes, colCount * bits / 8).Clear();
        for (int g = 0; g < colCount / groupSize; g++)
        {
            float* v = x + g * groupSize;
            float min = float.MaxValue, max = 0;
            for (int j = 0; j < groupSize; j++)
            {
                min = MathF.Min(min, v[j]);
                max = MathF.Max(max, v[j]);
            }

            float scale = MathF.Max((max - min) / bins, 1e-7f);
            bool side = MathF.Abs(min) > MathF.Abs(max);
            scale = side ? scale : -scale;
            float edge = side ? min : max;
            float q0 = MathF.Round(edge / scale, MidpointRounding.AwayFromZero);
            float bias = 0;
            if (q0 != 0)
            {
                scale = edge / q0;
                bias = edge;
            }

            for (int j = 0; j < groupSize; j++)
            {
                int code = (int)Math.Clamp(MathF.Round((v[j] - bias) / scale, MidpointRounding.AwayFromZero), 0, bins);
                long bit = (long)(g * groupSize + j) * bits;
                int word = code << (int)(bit & 7);
                codes[bit >> 3] |= (byte)word;
                if ((bit & 7) + bits > 8)
                {
                    codes[(bit >> 3) + 1] |= (byte)(word >> 8);
                }
            }

            scales[g] = ToBf16(scale);
            biases[g] = ToBf16(bias);
        }
    }

    /// <summary>float32 to bf16 bits, rounding to nearest even (finite values).</summary>
    public static ushort ToBf16(float value)
    {
        uint u = BitConverter.SingleToUInt32Bits(value);
        return (ushort)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
    }
}
