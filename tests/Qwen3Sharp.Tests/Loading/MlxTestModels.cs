using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Qwen3Sharp.Kernels.Reference;
using Qwen3Sharp.Loading;

namespace Qwen3Sharp.Tests.Loading;

/// <summary>
/// MLX quantized directories made in the tests: a Hugging Face directory's matrices through MLX's affine quantizer
/// (<see cref="QuantScalar.QuantizeRowAffine"/>), written as mlx_lm lays them out, and optionally the same weights
/// dequantized into a float32 directory for the safetensors path (whose logits the golden tests check) to compare with.
/// </summary>
internal static unsafe class MlxTestModels
{
    public static void Write(string source, string destination, int bits, int groupSize, string? dequantized = null)
    {
        ModelDirectory src = ModelDirectory.Open(source);
        var quantized = new List<(string Name, string DType, long[] Shape, byte[] Data)>();
        var plain = new List<(string Name, string DType, long[] Shape, byte[] Data)>();
        foreach (string path in src.WeightFiles)
        {
            using SafetensorsFile f = SafetensorsFile.Open(path);
            foreach (var (name, info) in f.Tensors.OrderBy(t => t.Key, StringComparer.Ordinal))
            {
                float[] values = f.ReadFloats(name);
                if (name.EndsWith(".weight", StringComparison.Ordinal) && info.Shape.Count == 2 && info.Shape[1] % groupSize == 0)
                {
                    int rows = (int)info.Shape[0], cols = (int)info.Shape[1], groups = cols / groupSize;
                    var codes = new byte[(long)rows * cols * bits / 8];
                    var scales = new ushort[rows * groups];
                    var biases = new ushort[rows * groups];
                    var deq = new float[values.Length];
                    fixed (float* pv = values)
                    fixed (byte* pc = codes)
                    fixed (ushort* ps = scales, pb = biases)
                    {
                        for (int r = 0; r < rows; r++)
                        {
                            byte* row = pc + (long)r * cols * bits / 8;
                            QuantScalar.QuantizeRowAffine(pv + (long)r * cols, cols, bits, groupSize, row, ps + r * groups, pb + r * groups);
                            for (int c = 0; c < cols && dequantized is not null; c++)
                            {
                                float s = BitConverter.Int32BitsToSingle(ps[r * groups + c / groupSize] << 16);
                                float b = BitConverter.Int32BitsToSingle(pb[r * groups + c / groupSize] << 16);
                                deq[(long)r * cols + c] = s * ModelWeights.PackedCode(row, bits, c) + b;
                            }
                        }
                    }

                    string module = name[..^".weight".Length];
                    quantized.Add((name, "U32", [rows, cols * bits / 32], codes));
                    quantized.Add((module + ".scales", "BF16", [rows, groups], Bytes(scales)));
                    quantized.Add((module + ".biases", "BF16", [rows, groups], Bytes(biases)));
                    plain.Add((name, "F32", [rows, cols], Bytes(deq)));
                }
                else
                {
                    quantized.Add((name, "F32", info.Shape.ToArray(), Bytes(values)));
                    plain.Add((name, "F32", info.Shape.ToArray(), Bytes(values)));
                }
            }
        }

        Directory.CreateDirectory(destination);
        foreach (string file in Directory.EnumerateFiles(source))   // config, tokenizer, chat template
        {
            if (!file.EndsWith(".safetensors", StringComparison.Ordinal) && !file.EndsWith("safetensors.index.json", StringComparison.Ordinal))
            {
                File.Copy(file, Path.Combine(destination, Path.GetFileName(file)), overwrite: true);
            }
        }

        JsonNode config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!;
        config["quantization"] = new JsonObject { ["group_size"] = groupSize, ["bits"] = bits };
        File.WriteAllText(Path.Combine(destination, "config.json"), config.ToJsonString());
        WriteSafetensors(Path.Combine(destination, "model.safetensors"), quantized);
        if (dequantized is not null)
        {
            Directory.CreateDirectory(dequantized);
            File.Copy(Path.Combine(source, "config.json"), Path.Combine(dequantized, "config.json"), overwrite: true);
            WriteSafetensors(Path.Combine(dequantized, "model.safetensors"), plain);
        }
    }

    private static byte[] Bytes<T>(T[] values) where T : unmanaged
        => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    public static void WriteSafetensors(string path, IReadOnlyList<(string Name, string DType, long[] Shape, byte[] Data)> tensors)
    {
        var header = new JsonObject();
        long offset = 0;
        foreach (var t in tensors)
        {
            header[t.Name] = new JsonObject
            {
                ["dtype"] = t.DType,
                ["shape"] = new JsonArray(t.Shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + t.Data.Length),
            };
            offset += t.Data.Length;
        }

        TestFiles.WriteRaw(path, header.ToJsonString(), tensors.SelectMany(t => t.Data).ToArray());
    }

    /// <summary>A copy of <paramref name="source"/> with its config and safetensors header edited (same data bytes).</summary>
    public static string EditedCopy(string source, string destination, Action<JsonNode>? config = null, Action<JsonObject>? header = null)
    {
        Directory.CreateDirectory(destination);
        foreach (string file in Directory.EnumerateFiles(source))
        {
            File.Copy(file, Path.Combine(destination, Path.GetFileName(file)), overwrite: true);
        }

        if (config is not null)
        {
            JsonNode c = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!;
            config(c);
            File.WriteAllText(Path.Combine(destination, "config.json"), c.ToJsonString());
        }

        if (header is not null)
        {
            byte[] bytes = File.ReadAllBytes(Path.Combine(source, "model.safetensors"));
            int n = (int)BitConverter.ToUInt64(bytes, 0);
            var h = (JsonObject)JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, n))!;
            header(h);
            TestFiles.WriteRaw(Path.Combine(destination, "model.safetensors"), h.ToJsonString(), bytes[(8 + n)..]);
        }

        return destination;
    }
}
