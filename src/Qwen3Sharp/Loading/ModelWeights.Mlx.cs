using System.Runtime.InteropServices;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Loading;

public sealed unsafe partial class ModelWeights
{
    /// <summary>
    /// One MLX affine-quantized matrix: <c>{module}.weight</c> (U32, [rows, cols·bits/32], codes packed LSB-first
    /// as one bit stream per row), <c>{module}.scales</c> and <c>{module}.biases</c> (BF16/F16/F32, [rows, cols/groupSize]).
    /// 4- and 8-bit codes are used in place; 2- and 3-bit codes are widened to 4 bits and 6-bit codes to 8 bits in a
    /// buffer added to <paramref name="buffers"/> (the kernels read only those two widths).
    /// </summary>
    /// <exception cref="ModelFormatException">A tensor missing, of the wrong type or shape for the config and quantization.</exception>
    private static WeightView AffineMatrix(Dictionary<string, SafetensorsFile> owner, string describeFiles, string module, string entryName,
        long[] expected, MlxQuantSpec spec, List<nint> buffers)
    {
        (int bits, int gs) = (spec.Bits, spec.GroupSize);
        long rows = expected[0], cols = expected[1];
        string weightKey = module + ".weight";
        SafetensorsFile file = owner[weightKey];
        SafetensorsTensorInfo info = file.GetInfo(weightKey);
        if (info.DType != DType.U32)
        {
            throw new ModelFormatException(file.FilePath, weightKey,
                $"is {info.DType}, but config.json quantizes this module ({bits}-bit, group size {gs}): packed codes must be U32");
        }

        if (cols % gs != 0 || cols * bits % 32 != 0)
        {
            throw new ModelFormatException(file.FilePath, weightKey,
                $"{entryName} has {cols} columns, which group size {gs} at {bits} bits does not divide into whole groups and 32-bit words");
        }

        long[] packed = [rows, cols * bits / 32];
        if (!info.Shape.SequenceEqual(packed))
        {
            throw new ModelFormatException(file.FilePath, weightKey,
                $"shape {info.ShapeText} does not match the config: {entryName} [{rows}, {cols}] at {bits} bits packs to [{packed[0]}, {packed[1]}]");
        }

        long[] groupShape = [rows, cols / gs];
        SafetensorsTensorInfo Group(string suffix, out SafetensorsFile f)
        {
            string key = module + "." + suffix;
            if (!owner.TryGetValue(key, out f!))
            {
                throw new ModelFormatException(describeFiles, key, $"missing tensor: the quantized {entryName} needs its {suffix}");
            }

            SafetensorsTensorInfo g = f.GetInfo(key);
            if (g.DType is not (DType.BF16 or DType.F16 or DType.F32))
            {
                throw new ModelFormatException(f.FilePath, key, $"is {g.DType}; scales and biases must be BF16, F16 or F32");
            }

            if (!g.Shape.SequenceEqual(groupShape))
            {
                throw new ModelFormatException(f.FilePath, key,
                    $"shape {g.ShapeText} does not match: {entryName} [{rows}, {cols}] in groups of {gs} needs [{groupShape[0]}, {groupShape[1]}]");
            }

            return g;
        }

        SafetensorsTensorInfo scales = Group("scales", out SafetensorsFile scalesFile);
        SafetensorsTensorInfo biases = Group("biases", out SafetensorsFile biasesFile);
        if (scales.DType != biases.DType)
        {
            throw new ModelFormatException(biasesFile.FilePath, module + ".biases", $"is {biases.DType} but the scales are {scales.DType}; they must match");
        }

        byte* codes = file.DataPointer(info);
        byte* s = scalesFile.DataPointer(scales);
        byte* b = biasesFile.DataPointer(biases);
        if (bits is 4 or 8)
        {
            return new WeightView(codes, bits, gs, s, b, scales.DType, (int)rows, (int)cols);
        }

        int wide = bits == 6 ? 8 : 4;
        long rowBytes = cols * wide / 8;
        byte* buffer = (byte*)NativeMemory.AlignedAlloc((nuint)(rows * rowBytes), 64);
        buffers.Add((nint)buffer);
        long sourceRowBytes = cols * bits / 8;
        for (long r = 0; r < rows; r++)
        {
            RepackRow(codes + r * sourceRowBytes, bits, (int)cols, buffer + r * rowBytes, wide);
        }

        return new WeightView(buffer, wide, gs, s, b, scales.DType, (int)rows, (int)cols, sourceBits: bits);
    }

    /// <summary>
    /// Code <paramref name="index"/> of a row packed as MLX packs it: a little-endian bit stream, element i in bits
    /// [i·bits, (i+1)·bits) (for 3 and 6 bits codes straddle bytes; for 2, 4 and 8 this is the uint32 packing
    /// from the least significant bits).
    /// </summary>
    internal static int PackedCode(byte* row, int bits, long index)
    {
        long bit = index * bits;
        int word = row[bit >> 3] | (((bit & 7) + bits > 8 ? row[(bit >> 3) + 1] : 0) << 8);
        return (word >> (int)(bit & 7)) & ((1 << bits) - 1);
    }

    private static void RepackRow(byte* source, int bits, int cols, byte* destination, int wide)
    {
        if (wide == 8)
        {
            for (int c = 0; c < cols; c++)
            {
                destination[c] = (byte)PackedCode(source, bits, c);
            }

            return;
        }

        for (int c = 0; c < cols; c += 2)
        {
            destination[c / 2] = (byte)(PackedCode(source, bits, c) | (PackedCode(source, bits, c + 1) << 4));
        }
    }
}
