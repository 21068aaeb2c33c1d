using System.Runtime.InteropServices;
using System.Text.Json;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Loading;

/// <summary>How <see cref="ModelSynthesizer"/> writes a model.</summary>
public sealed record SynthesisOptions
{
    /// <summary>Storage type of every tensor.</summary>
    public DType DType { get; init; } = DType.BF16;

    /// <summary>Seed of every weight: the same seed, config and dtype give byte-identical files.</summary>
    public ulong Seed { get; init; }

    /// <summary>Shard size limit; a checkpoint larger than this is split into model-0000N-of-0000M files plus an index.</summary>
    public long MaxShardBytes { get; init; } = 2L << 30;

    /// <summary>Directory whose tokenizer.json and tokenizer_config.json are copied next to the weights (none when null).</summary>
    public string? TokenizerDirectory { get; init; }
}

/// <summary>
/// Writes a random-weight model in the exact Hugging Face layout (config.json, generation_config.json,
/// model.safetensors or shards + model.safetensors.index.json, tokenizer files) from a preset or any config:
/// for tests, demos and benchmarks at real shapes without downloading. Weights are N(0, 0.02²) (norm weights
/// 1 + N(0, 0.1²)), streamed to disk; each tensor's values depend only on the seed and its key.
/// </summary>
public static class ModelSynthesizer
{
    private const int TableSize = 1 << 16;

    private static readonly Dictionary<string, Qwen3Config> Presets = new(StringComparer.OrdinalIgnoreCase)
    {
        ["qwen3-0.6b"] = Qwen3(hidden: 1024, intermediate: 3072, layers: 28, heads: 16, kvHeads: 8, headDim: 128),
        ["qwen3-1.7b"] = Qwen3(hidden: 2048, intermediate: 6144, layers: 28, heads: 16, kvHeads: 8, headDim: 128),
        ["qwen3-4b"] = Qwen3(hidden: 2560, intermediate: 9728, layers: 36, heads: 32, kvHeads: 8, headDim: 128),
        // The embedded demo model: the real vocabulary (pair with the real tokenizer), a toy body.
        ["tiny"] = Qwen3(hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, headDim: 32),
        // Small vocabulary for fast tests; untied, multi-query.
        ["tiny-mqa"] = Qwen3(hidden: 96, intermediate: 256, layers: 3, heads: 6, kvHeads: 1, headDim: 16) with
        {
            VocabSize = 1024,
            TieWordEmbeddings = false,
        },
        // Qwen2/2.5 architecture: q/k/v biases, no q/k norm, head_dim = hidden / heads.
        ["tiny-qwen2"] = Qwen3(hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, headDim: 16) with
        {
            ModelType = "qwen2",
            Architectures = ["Qwen2ForCausalLM"],
            VocabSize = 1024,
            MaxPositionEmbeddings = 32768,
        },
    };

    /// <summary>Names accepted by <see cref="Preset"/>.</summary>
    public static IReadOnlyCollection<string> PresetNames => Presets.Keys;

    /// <summary>The config of a preset (qwen3-0.6b, qwen3-1.7b, qwen3-4b, tiny, tiny-mqa, tiny-qwen2).</summary>
    public static Qwen3Config Preset(string name)
        => Presets.TryGetValue(name, out Qwen3Config? config)
            ? config
            : throw new ArgumentException($"unknown preset '{name}'; presets: {string.Join(", ", Presets.Keys)}", nameof(name));

    private static Qwen3Config Qwen3(int hidden, int intermediate, int layers, int heads, int kvHeads, int headDim) => new()
    {
        Architectures = ["Qwen3ForCausalLM"],
        ModelType = "qwen3",
        HiddenSize = hidden,
        IntermediateSize = intermediate,
        NumHiddenLayers = layers,
        NumAttentionHeads = heads,
        NumKeyValueHeads = kvHeads,
        HeadDim = headDim,
        VocabSize = 151936,
        MaxPositionEmbeddings = 40960,
        RopeTheta = 1000000,
        RmsNormEps = 1e-6,
        TieWordEmbeddings = true,
        TorchDType = "bfloat16",
        HiddenAct = "silu",
        BosTokenId = [151643],
        EosTokenId = [151645],
        MaxWindowLayers = layers,
    };

    /// <summary>Writes preset <paramref name="preset"/> to <paramref name="directory"/> (created if needed).</summary>
    public static Qwen3Config Write(string directory, string preset, SynthesisOptions? options = null)
        => Write(directory, Preset(preset), options);

    /// <summary>
    /// Writes a random-weight model for <paramref name="config"/> to <paramref name="directory"/> (replacing any
    /// model*.safetensors* already there); returns the config written, as <see cref="Qwen3Config.Load"/> reads it back.
    /// </summary>
    public static Qwen3Config Write(string directory, Qwen3Config config, SynthesisOptions? options = null)
    {
        options ??= new SynthesisOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxShardBytes, 1);
        config = config with
        {
            TorchDType = options.DType switch { DType.BF16 => "bfloat16", DType.F16 => "float16", _ => "float32" },
        };
        config = Qwen3Config.Parse(JsonSerializer.Serialize(config), "preset"); // validates and fills defaults
        Directory.CreateDirectory(directory);

        WriteJson(Path.Combine(directory, Qwen3Config.FileName), config);
        WriteGenerationConfig(Path.Combine(directory, GenerationConfig.FileName), config);
        WriteWeights(directory, config, options);
        if (options.TokenizerDirectory is { } tokenizerDir)
        {
            foreach (string name in new[] { "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt" })
            {
                string source = Path.Combine(tokenizerDir, name);
                if (ModelFile.TryResolve(source) is { } resolved)
                {
                    File.Copy(resolved, Path.Combine(directory, name), overwrite: true);
                }
                else if (name == "tokenizer.json")
                {
                    throw new FileNotFoundException($"no tokenizer.json in {tokenizerDir}", source);
                }
            }
        }

        return Qwen3Config.Load(directory);
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    private static void WriteJson(string path, Qwen3Config config)
        => File.WriteAllText(path, JsonSerializer.Serialize(config, Indented) + "\n");

    /// <summary>Writes the generation_config.json Qwen3 ships (sampling: temperature 0.6, top_p 0.95, top_k 20).</summary>
    public static void WriteGenerationConfig(string path, Qwen3Config config)
    {
        int bos = config.BosTokenId is [int b, ..] ? b : 151643;
        int eos = config.EosTokenId is [int e, ..] ? e : 151645;
        var generation = new GenerationConfig
        {
            BosTokenId = [bos],
            DoSample = true,
            EosTokenId = eos == bos ? [eos] : [eos, bos],
            PadTokenId = [bos],
            Temperature = 0.6,
            TopK = 20,
            TopP = 0.95,
        };
        File.WriteAllText(path, JsonSerializer.Serialize(generation,
            new JsonSerializerOptions { WriteIndented = true, DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull }) + "\n");
    }

    private static void WriteWeights(string directory, Qwen3Config config, SynthesisOptions options)
    {
        var tensors = CheckpointKeys.Enumerate(config)
            .Select(t => (Entry: new SafetensorsEntry(t.Key, options.DType, t.Entry.Shape(config)), t.Entry))
            .ToList();

        // Greedy sharding in checkpoint order; a tensor larger than the limit gets a shard of its own.
        var shards = new List<List<(SafetensorsEntry Entry, CheckpointKey Key)>> { new() };
        long shardBytes = 0;
        foreach (var t in tensors)
        {
            if (shardBytes > 0 && shardBytes + t.Entry.ByteCount > options.MaxShardBytes)
            {
                shards.Add([]);
                shardBytes = 0;
            }

            shards[^1].Add(t);
            shardBytes += t.Entry.ByteCount;
        }

        // Remove stale files of an earlier synthesis with a different layout.
        foreach (string stale in Directory.EnumerateFiles(directory, "model*.safetensors*"))
        {
            File.Delete(stale);
        }

        var tables = new ValueTables(options.DType);
        byte[] buffer = new byte[4 << 20];
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (int s = 0; s < shards.Count; s++)
        {
            string fileName = shards.Count == 1
                ? ModelDirectory.SingleFileName
                : $"model-{s + 1:D5}-of-{shards.Count:D5}.safetensors";
            var entries = shards[s].Select(x => x.Entry).ToList();
            using var writer = new SafetensorsWriter(Path.Combine(directory, fileName), entries,
                new Dictionary<string, string> { ["format"] = "pt" });
            foreach (var (entry, key) in shards[s])
            {
                weightMap[entry.Name] = fileName;
                WriteRandomTensor(writer, entry, tables.For(entry.Name, key), options.Seed, buffer);
            }

            writer.Complete();
        }

        if (shards.Count > 1)
        {
            using var stream = File.Create(Path.Combine(directory, ModelDirectory.IndexFileName));
            using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
            w.WriteStartObject();
            w.WriteStartObject("metadata");
            w.WriteNumber("total_size", tensors.Sum(t => t.Entry.ByteCount));
            w.WriteEndObject();
            w.WriteStartObject("weight_map");
            foreach (var (k, v) in weightMap)
            {
                w.WriteString(k, v);
            }

            w.WriteEndObject();
            w.WriteEndObject();
        }
    }

    private static void WriteRandomTensor(SafetensorsWriter writer, SafetensorsEntry entry, byte[] table, ulong seed, byte[] buffer)
    {
        int elementBytes = entry.DType.ByteSize();
        ulong state = seed ^ Fnv1a(entry.Name);
        long remaining = entry.ByteCount;
        while (remaining > 0)
        {
            int bytes = (int)Math.Min(buffer.Length, remaining);
            FillFromTable(table, elementBytes, ref state, buffer.AsSpan(0, bytes));
            writer.WriteTensor(buffer.AsSpan(0, bytes));
            remaining -= bytes;
        }
    }

    /// <summary>Fills <paramref name="destination"/> with table entries picked by 16-bit slices of a SplitMix64 stream.</summary>
    private static void FillFromTable(byte[] table, int elementBytes, ref ulong state, Span<byte> destination)
    {
        int count = destination.Length / elementBytes;
        if (elementBytes == 2)
        {
            ReadOnlySpan<ushort> t = MemoryMarshal.Cast<byte, ushort>(table);
            Span<ushort> d = MemoryMarshal.Cast<byte, ushort>(destination);
            FillElements(t, d, ref state, count);
        }
        else
        {
            ReadOnlySpan<uint> t = MemoryMarshal.Cast<byte, uint>(table);
            Span<uint> d = MemoryMarshal.Cast<byte, uint>(destination);
            FillElements(t, d, ref state, count);
        }
    }

    private static void FillElements<T>(ReadOnlySpan<T> table, Span<T> destination, ref ulong state, int count)
    {
        int i = 0;
        for (; i + 4 <= count; i += 4)
        {
            ulong r = SplitMix64(ref state);
            destination[i] = table[(int)(r & 0xFFFF)];
            destination[i + 1] = table[(int)((r >> 16) & 0xFFFF)];
            destination[i + 2] = table[(int)((r >> 32) & 0xFFFF)];
            destination[i + 3] = table[(int)(r >> 48)];
        }

        for (; i < count; i++)
        {
            destination[i] = table[(int)(SplitMix64(ref state) & 0xFFFF)];
        }
    }

    private static ulong SplitMix64(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private static ulong Fnv1a(string s)
    {
        ulong h = 14695981039346656037UL;
        foreach (char c in s)
        {
            h = (h ^ c) * 1099511628211UL;
        }

        return h;
    }

    /// <summary>65,536 samples per distribution (weights, norm weights), already encoded in the target dtype.</summary>
    private sealed class ValueTables(DType dtype)
    {
        private byte[]? _weights, _norms;

        public byte[] For(string key, CheckpointKey entry)
        {
            bool isNormWeight = entry.Kind == TensorKind.Vector && key.EndsWith("norm.weight", StringComparison.Ordinal);
            return isNormWeight
                ? _norms ??= Build(dtype, mean: 1.0, std: 0.1, salt: 2)
                : _weights ??= Build(dtype, mean: 0.0, std: 0.02, salt: 1);
        }

        private static byte[] Build(DType dtype, double mean, double std, ulong salt)
        {
            ulong state = 0x5EED0000UL + salt;
            var table = new byte[TableSize * dtype.ByteSize()];
            for (int i = 0; i < TableSize; i += 2)
            {
                // Box-Muller from two uniforms in (0, 1].
                double u1 = ((SplitMix64(ref state) >> 11) + 1) * (1.0 / (1UL << 53));
                double u2 = (SplitMix64(ref state) >> 11) * (1.0 / (1UL << 53));
                double radius = Math.Sqrt(-2 * Math.Log(u1));
                Store(table, dtype, i, (float)(mean + std * radius * Math.Cos(2 * Math.PI * u2)));
                Store(table, dtype, i + 1, (float)(mean + std * radius * Math.Sin(2 * Math.PI * u2)));
            }

            return table;
        }

        private static void Store(byte[] table, DType dtype, int index, float value)
        {
            switch (dtype)
            {
                case DType.F32:
                    MemoryMarshal.Cast<byte, float>(table.AsSpan())[index] = value;
                    break;
                case DType.F16:
                    MemoryMarshal.Cast<byte, Half>(table.AsSpan())[index] = (Half)value;
                    break;
                default:
                    uint bits = BitConverter.SingleToUInt32Bits(value);
                    bits += 0x7FFF + ((bits >> 16) & 1);   // round to nearest even
                    MemoryMarshal.Cast<byte, ushort>(table.AsSpan())[index] = (ushort)(bits >> 16);
                    break;
            }
        }
    }
}
