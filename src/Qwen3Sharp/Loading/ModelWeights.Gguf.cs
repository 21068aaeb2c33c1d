using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Loading;

public sealed unsafe partial class ModelWeights
{
    /// <summary>
    /// Every weight of a GGUF model (see <see cref="GgufModel"/>): one file, or the first part of a split one with the
    /// others beside it (<see cref="GgufParts"/>); matrices used in place from the mapped files.
    /// </summary>
    /// <exception cref="ModelFormatException">A file is malformed or missing, a tensor is missing, has the wrong shape or an unsupported type.</exception>
    /// <param name="layout">
    /// Q4_0, Q4_K, Q5_K, Q6_K and Q8_0 matrices in row layout or repacked into 8-row groups (<see cref="DType.Q4_0x8"/>, <see cref="DType.Q4_Kx8"/>, <see cref="DType.Q5_Kx8"/>,
    /// <see cref="DType.Q6_Kx8"/>, <see cref="DType.Q8_0x8"/>: <see cref="RepackGroups"/>).
    /// null: <see cref="Kernels.KernelSelection.QuantLayout"/>, except rows when <see cref="Kernels.KernelSelection.QuantDecode"/>
    /// is the float path (the 8-row layout has only the integer-activation kernel).
    /// </param>
    public static ModelWeights LoadGguf(string path, WeightPlacement placement = WeightPlacement.Mapped, DType? quantize = null,
        Kernels.QuantLayout? layout = null, Kernels.QuantLayout? floatLayout = null)
    {
        GgufParts parts = GgufParts.Open(path);
        byte* copy = null;
        var buffers = new List<nint>();
        try
        {
            Qwen3Config config = GgufModel.ReadConfig(parts);
            var matrices = new Dictionary<string, WeightView>(StringComparer.Ordinal);
            var vectors = new Dictionary<string, float[]>(StringComparer.Ordinal);
            foreach (var (key, entry, layer) in CheckpointKeys.Enumerate(config))
            {
                string name = GgufModel.TensorName(entry, layer);
                GgufFile? file = parts.Find(name);
                if (file is null)
                {
                    throw new ModelFormatException(path, name, $"missing tensor ({entry.Name})");
                }

                GgufTensorInfo info = file.Tensors[name];
                long[] expected = entry.Shape(config);
                if (!info.Shape.SequenceEqual(expected))
                {
                    throw new ModelFormatException(path, name,
                        $"shape {info.ShapeText} does not match the metadata: {entry.Name} must be [{string.Join(", ", expected)}]");
                }

                if (entry.Kind == TensorKind.Matrix)
                {
                    matrices[key] = file.GetMatrix(name);
                }
                else
                {
                    vectors[key] = file.ReadFloats(name);
                }
            }

            // The block-format matrices repacked from the file first, then the float ones copied (or quantized into the
            // same layout) from it.
            MappedFiles mapped = parts.Mappings;
            Kernels.QuantLayout resolved = ResolveLayout(layout);
            if (resolved == Kernels.QuantLayout.Interleaved8)
            {
                RepackGroups(matrices, buffers, hugePages: placement == WeightPlacement.HugePageCopy, files: mapped);
            }

            copy = Place(matrices, placement, quantize, resolved, floatLayout, mapped);

            (Qwen3LayerWeights[] layers, WeightView embed, WeightView lmHead, float[] norm) = Assemble(config, matrices, vectors);
            return new ModelWeights(config, [], embed, lmHead, norm, layers, copy, parts, buffers)
                { Placement = placement, LoadQuantization = quantize };
        }
        catch
        {
            System.Runtime.InteropServices.NativeMemory.AlignedFree(copy);
            foreach (nint b in buffers)
            {
                System.Runtime.InteropServices.NativeMemory.AlignedFree((void*)b);
            }

            parts.Dispose();
            throw;
        }
    }
}
