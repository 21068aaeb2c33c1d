using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Kernels.Reference;

/// <summary>
/// Plain loops over the GGML block formats (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K): the test oracle for
/// <see cref="QuantMatMul"/>, never used on the hot path. Layouts as in ggml-common.h: <c>block_q8_0 { half d; int8
/// qs[32]; }</c>, <c>block_q4_0 { half d; uint8 qs[16]; }</c> with element j in the low nibble and j+16 in the high
/// nibble; the K-quants as <see cref="DType"/> describes them. Each element is computed in float32 in the order of
/// ggml's dequantize_row_* (and gguf-py's quants.py): (d·sc)·q − (dmin·m), (d·scale)·(q − 32), so the values are
/// bit-identical to theirs.
/// </summary>
public static unsafe class QuantScalar
{
    public const int BlockSize = 32;

    /// <summary>Element <paramref name="col"/> of a stored row.</summary>
    public static float Element(byte* row, DType dtype, int col)
    {
        if (dtype.IsKQuant())
        {
            return KElement(row + (long)(col / 256) * dtype.BlockBytes(), dtype, col % 256);
        }

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

    /// <summary>Element <paramref name="j"/> (0..255) of one K-quant super-block.</summary>
    private static float KElement(byte* block, DType dtype, int j)
    {
        if (dtype == DType.Q6_K)
        {
            int n = j / 128, part = j % 128 / 32, l = j % 32;
            byte ql = block[64 * n + l + 32 * (part & 1)];
            int low = part < 2 ? ql & 0xF : ql >> 4;
            int high = (block[128 + 32 * n + l] >> (2 * part)) & 3;
            float d6 = Half(block + 208);
            return d6 * ((sbyte*)(block + 192))[j / 16] * ((low | (high << 4)) - 32);
        }

        int chunk = j / 64, sub = j / 32, k = j % 32;           // sub-block 2·chunk (low nibbles) or 2·chunk + 1 (high)
        (int sc, int m) = ScaleMin(block + 4, sub);
        byte* qs = block + (dtype == DType.Q5_K ? 48 : 16);
        byte b = qs[32 * chunk + k];
        int q = sub % 2 == 0 ? b & 0xF : b >> 4;
        if (dtype == DType.Q5_K)
        {
            q |= ((block[16 + k] >> sub) & 1) << 4;
        }

        float d = Half(block), dmin = Half(block + 2);
        return d * sc * q - dmin * m;
    }

    /// <summary>Sub-block <paramref name="j"/>'s 6-bit scale and min from the 12 packed bytes (ggml's get_scale_min_k4).</summary>
    public static (int Scale, int Min) ScaleMin(byte* scales, int j) => j < 4
        ? (scales[j] & 63, scales[j + 4] & 63)
        : ((scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4), (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));

    private static float Half(byte* p) => (float)BitConverter.UInt16BitsToHalf(*(ushort*)p);

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
                    double wc = w.DType == DType.Affine ? AffineElement(w, r, c) : w.DType.RowGroup() > 1 ? w[r, c] : Element(row, w.DType, c);
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

    /// <summary>
    /// The integer-activation path's activation quantizer, written independently of the kernels: per 32 elements
    /// d = amax/127 (float32), q = round-to-even(x · (1/d)), and the block's code sum.
    /// </summary>
    public static void QuantizeActivationQ8(float* x, int colCount, sbyte* codes, float* scales, int* sums)
    {
        for (int b = 0; b < colCount / BlockSize; b++)
        {
            float amax = 0;
            for (int j = 0; j < BlockSize; j++)
            {
                amax = Math.Max(amax, Math.Abs(x[b * BlockSize + j]));
            }

            float d = amax / 127f;
            float id = d == 0 ? 0 : 1 / d;
            int sum = 0;
            for (int j = 0; j < BlockSize; j++)
            {
                int q = (int)Math.Round(x[b * BlockSize + j] * id, MidpointRounding.ToEven);
                codes[b * BlockSize + j] = (sbyte)q;
                sum += q;
            }

            scales[b] = d;
            sums[b] = sum;
        }
    }

    /// <summary>
    /// The integer-activation product of Q8_0/Q4_0 weights: activations quantized by <see cref="QuantizeActivationQ8"/>,
    /// exact integer dots per block of the weight codes (Q4_0: code − 8) with the activation codes, then
    /// Σ d_w·d_x·dot in double. <paramref name="magnitude"/> (optional) gets Σ |d_w·d_x·dot|, the float32 rounding's scale.
    /// </summary>
    public static void Int8MatMul(float* x, int tokenCount, in WeightView w, double* destination, double* magnitude = null)
    {
        int cols = w.ColCount, blocks = cols / BlockSize;
        var codes = new sbyte[cols];
        var scales = new float[blocks];
        var sums = new int[blocks];
        fixed (sbyte* pc = codes)
        fixed (float* ps = scales)
        fixed (int* pu = sums)
        {
            for (int t = 0; t < tokenCount; t++)
            {
                QuantizeActivationQ8(x + (long)t * cols, cols, pc, ps, pu);
                for (int r = 0; r < w.RowCount; r++)
                {
                    byte* row = w.Row(r);
                    double s = 0, m = 0;
                    for (int b = 0; b < blocks; b++)
                    {
                        byte* block = row + b * (w.DType == DType.Q8_0 ? 34 : 18);
                        long dot = 0;
                        for (int j = 0; j < BlockSize; j++)
                        {
                            int q = w.DType == DType.Q8_0 ? ((sbyte*)(block + 2))[j]
                                : (j < 16 ? block[2 + j] & 0xF : block[2 + j - 16] >> 4) - 8;
                            dot += q * pc[b * BlockSize + j];
                        }

                        double term = (double)Half(block) * ps[b] * dot;
                        s += term;
                        m += Math.Abs(term);
                    }

                    destination[(long)t * w.RowCount + r] = s;
                    if (magnitude != null)
                    {
                        magnitude[(long)t * w.RowCount + r] = m;
                    }
                }
            }
        }
    }

    /// <summary>float32 to bf16 bits, rounding to nearest even (finite values).</summary>
    public static ushort ToBf16(float value)
    {
        uint u = BitConverter.SingleToUInt32Bits(value);
        return (ushort)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
    }
}
