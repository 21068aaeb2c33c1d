using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Loading;

/// <summary>One decoder layer's weights. Matrices point into the mapped files; vectors are float32 copies.</summary>
public readonly struct Qwen3LayerWeights
{
    public WeightView QProj { get; init; }            // [heads * headDim, hidden]
    public WeightView KProj { get; init; }            // [kvHeads * headDim, hidden]
    public WeightView VProj { get; init; }            // [kvHeads * headDim, hidden]
    public WeightView OProj { get; init; }            // [hidden, heads * headDim]
    public WeightView GateProj { get; init; }         // [intermediate, hidden]
    public WeightView UpProj { get; init; }           // [intermediate, hidden]
    public WeightView DownProj { get; init; }         // [hidden, intermediate]
    public float[] InputLayerNorm { get; init; }      // [hidden]
    public float[] PostAttentionLayerNorm { get; init; } // [hidden]
    public float[]? QNorm { get; init; }              // [headDim] (qwen3)
    public float[]? KNorm { get; init; }              // [headDim] (qwen3)
    public float[]? QBias { get; init; }              // [heads * headDim] (qwen2, or attention_bias)
    public float[]? KBias { get; init; }              // [kvHeads * headDim]
    public float[]? VBias { get; init; }              // [kvHeads * headDim]
    public float[]? OBias { get; init; }              // [hidden] (qwen3 with attention_bias)
}

/// <summary>
/// Every weight of a Qwen3/Qwen2 checkpoint, validated against the config: matrices used in place from the
/// memory-mapped safetensors files (BF16, F16 or F32), small 1-D weights converted to float32 once. With tied
/// embeddings <see cref="LmHead"/> aliases <see cref="EmbedTokens"/>. Disposing unmaps the files.
/// </summary>
public sealed class ModelWeights : IDisposable
{
    private readonly SafetensorsFile[] _files;

    private ModelWeights(Qwen3Config config, SafetensorsFile[] files, WeightView embedTokens, WeightView lmHead, float[] norm,
        Qwen3LayerWeights[] layers)
    {
        Config = config;
        _files = files;
        EmbedTokens = embedTokens;
        LmHead = lmHead;
        Norm = norm;
        Layers = layers;
    }

    public Qwen3Config Config { get; }

    public WeightView EmbedTokens { get; }   // [vocab, hidden]

    public WeightView LmHead { get; }        // [vocab, hidden]; the same memory as EmbedTokens when tied

    public float[] Norm { get; }             // [hidden]

    public Qwen3LayerWeights[] Layers { get; }

    public IReadOnlyList<SafetensorsFile> Files => _files;

    /// <summary>Total size of the mapped weight files.</summary>
    public long FileBytes => _files.Sum(f => f.FileBytes);

    public static ModelWeights Load(string directory) => Load(ModelDirectory.Open(directory));

    /// <exception cref="ModelFormatException">A file is malformed, a tensor is missing or has the wrong shape for the config.</exception>
    public static ModelWeights Load(ModelDirectory directory)
    {
        Qwen3Config config = directory.Config;
        var files = new List<SafetensorsFile>();
        try
        {
            foreach (string path in directory.WeightFiles)
            {
                files.Add(SafetensorsFile.Open(path));
            }

            var owner = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            foreach (SafetensorsFile f in files)
            {
                foreach (string name in f.Tensors.Keys)
                {
                    if (!owner.TryAdd(name, f))
                    {
                        throw new ModelFormatException(f.FilePath, name, $"tensor also appears in {owner[name].FilePath}");
                    }
                }
            }

            if (directory.WeightMap is { } map)
            {
                foreach (var (key, shard) in map)
                {
                    if (!owner.TryGetValue(key, out SafetensorsFile? f) || Path.GetFileName(f.FilePath) != shard)
                    {
                        throw new ModelFormatException(Path.Combine(directory.DirectoryPath, ModelDirectory.IndexFileName), key,
                            $"weight_map places this tensor in '{shard}', which does not contain it");
                    }
                }
            }

            string describeFiles = files.Count == 1 ? files[0].FilePath : directory.DirectoryPath + " (" + files.Count + " shards)";
            var matrices = new Dictionary<string, WeightView>(StringComparer.Ordinal);
            var vectors = new Dictionary<string, float[]>(StringComparer.Ordinal);
            foreach (var (key, entry, _) in CheckpointKeys.Enumerate(config))
            {
                if (!owner.TryGetValue(key, out SafetensorsFile? file))
                {
                    throw new ModelFormatException(describeFiles, key, $"missing tensor ({entry.Name}), required by {config.SourceFile}");
                }

                SafetensorsTensorInfo info = file.GetInfo(key);
                long[] expected = entry.Shape(config);
                if (!info.Shape.SequenceEqual(expected))
                {
                    throw new ModelFormatException(file.FilePath, key,
                        $"shape {info.ShapeText} does not match the config: {entry.Name} must be [{string.Join(", ", expected)}]");
                }

                if (entry.Kind == TensorKind.Matrix)
                {
                    matrices[key] = file.GetMatrix(key);
                }
                else
                {
                    vectors[key] = file.ReadFloats(key);
                }
            }

            var layers = new Qwen3LayerWeights[config.NumHiddenLayers];
            for (int l = 0; l < layers.Length; l++)
            {
                WeightView M(string name) => matrices[Find(CheckpointKeys.Layer, name).Key(l)];
                float[]? V(string name) => vectors.GetValueOrDefault(Find(CheckpointKeys.Layer, name).Key(l));
                layers[l] = new Qwen3LayerWeights
                {
                    QProj = M("QProj"),
                    KProj = M("KProj"),
                    VProj = M("VProj"),
                    OProj = M("OProj"),
                    GateProj = M("GateProj"),
                    UpProj = M("UpProj"),
                    DownProj = M("DownProj"),
                    InputLayerNorm = V("InputLayerNorm")!,
                    PostAttentionLayerNorm = V("PostAttentionLayerNorm")!,
                    QNorm = V("QNorm"),
                    KNorm = V("KNorm"),
                    QBias = V("QBias"),
                    KBias = V("KBias"),
                    VBias = V("VBias"),
                    OBias = V("OBias"),
                };
            }

            WeightView embed = matrices[Find(CheckpointKeys.Head, "EmbedTokens").Key()];
            WeightView lmHead = config.TieWordEmbeddings ? embed : matrices[Find(CheckpointKeys.Tail, "LmHead").Key()];
            float[] norm = vectors[Find(CheckpointKeys.Tail, "Norm").Key()];
            return new ModelWeights(config, files.ToArray(), embed, lmHead, norm, layers);
        }
        catch
        {
            foreach (SafetensorsFile f in files)
            {
                f.Dispose();
            }

            throw;
        }
    }

    private static CheckpointKey Find(IReadOnlyList<CheckpointKey> table, string name)
    {
        foreach (CheckpointKey k in table)
        {
            if (k.Name == name)
            {
                return k;
            }
        }

        throw new InvalidOperationException($"'{name}' is not in the checkpoint key table");
    }

    public void Dispose()
    {
        foreach (SafetensorsFile f in _files)
        {
            f.Dispose();
        }
    }
}
