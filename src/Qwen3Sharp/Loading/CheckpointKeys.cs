namespace Qwen3Sharp.Loading;

/// <summary>What a checkpoint tensor is: a matrix used in place, or a small vector converted to float32 once.</summary>
public enum TensorKind
{
    Matrix,
    Vector,
}

/// <summary>One row of the checkpoint-key table: our name, the Hugging Face key, and its shape under a config.</summary>
/// <param name="Name">Our name (QProj, KNorm, EmbedTokens...).</param>
/// <param name="KeyTemplate">The checkpoint key; <c>{0}</c> stands for the layer index in per-layer tensors.</param>
public sealed record CheckpointKey(
    string Name,
    string KeyTemplate,
    bool PerLayer,
    TensorKind Kind,
    Func<Qwen3Config, long[]> Shape,
    Func<Qwen3Config, bool> IsPresent)
{
    public string Key(int layer = 0) => PerLayer ? string.Format(System.Globalization.CultureInfo.InvariantCulture, KeyTemplate, layer) : KeyTemplate;
}

/// <summary>
/// The one table that maps Hugging Face checkpoint keys (<c>model.layers.{i}.self_attn.q_proj.weight</c>) to the names
/// the engine uses, with the shape each must have. The loader and <see cref="ModelSynthesizer"/> both read it.
/// </summary>
public static class CheckpointKeys
{
    private static int QDim(Qwen3Config c) => c.NumAttentionHeads * c.HeadDim;

    private static int KvDim(Qwen3Config c) => c.NumKeyValueHeads * c.HeadDim;

    private static bool Always(Qwen3Config c) => true;

    /// <summary>Global tensors before the layers, in checkpoint order.</summary>
    public static IReadOnlyList<CheckpointKey> Head { get; } =
    [
        new("EmbedTokens", "model.embed_tokens.weight", false, TensorKind.Matrix, c => [c.VocabSize, c.HiddenSize], Always),
    ];

    /// <summary>Per-layer tensors, in checkpoint order.</summary>
    public static IReadOnlyList<CheckpointKey> Layer { get; } =
    [
        new("InputLayerNorm", "model.layers.{0}.input_layernorm.weight", true, TensorKind.Vector, c => [c.HiddenSize], Always),
        new("QProj", "model.layers.{0}.self_attn.q_proj.weight", true, TensorKind.Matrix, c => [QDim(c), c.HiddenSize], Always),
        new("QBias", "model.layers.{0}.self_attn.q_proj.bias", true, TensorKind.Vector, c => [QDim(c)], c => c.HasQkvBias),
        new("KProj", "model.layers.{0}.self_attn.k_proj.weight", true, TensorKind.Matrix, c => [KvDim(c), c.HiddenSize], Always),
        new("KBias", "model.layers.{0}.self_attn.k_proj.bias", true, TensorKind.Vector, c => [KvDim(c)], c => c.HasQkvBias),
        new("VProj", "model.layers.{0}.self_attn.v_proj.weight", true, TensorKind.Matrix, c => [KvDim(c), c.HiddenSize], Always),
        new("VBias", "model.layers.{0}.self_attn.v_proj.bias", true, TensorKind.Vector, c => [KvDim(c)], c => c.HasQkvBias),
        new("OProj", "model.layers.{0}.self_attn.o_proj.weight", true, TensorKind.Matrix, c => [c.HiddenSize, QDim(c)], Always),
        new("OBias", "model.layers.{0}.self_attn.o_proj.bias", true, TensorKind.Vector, c => [c.HiddenSize], c => c.HasOBias),
        new("QNorm", "model.layers.{0}.self_attn.q_norm.weight", true, TensorKind.Vector, c => [c.HeadDim], c => c.HasQkNorm),
        new("KNorm", "model.layers.{0}.self_attn.k_norm.weight", true, TensorKind.Vector, c => [c.HeadDim], c => c.HasQkNorm),
        new("PostAttentionLayerNorm", "model.layers.{0}.post_attention_layernorm.weight", true, TensorKind.Vector, c => [c.HiddenSize], Always),
        new("GateProj", "model.layers.{0}.mlp.gate_proj.weight", true, TensorKind.Matrix, c => [c.IntermediateSize, c.HiddenSize], Always),
        new("UpProj", "model.layers.{0}.mlp.up_proj.weight", true, TensorKind.Matrix, c => [c.IntermediateSize, c.HiddenSize], Always),
        new("DownProj", "model.layers.{0}.mlp.down_proj.weight", true, TensorKind.Matrix, c => [c.HiddenSize, c.IntermediateSize], Always),
    ];

    /// <summary>Global tensors after the layers, in checkpoint order (lm_head only when embeddings are untied).</summary>
    public static IReadOnlyList<CheckpointKey> Tail { get; } =
    [
        new("Norm", "model.norm.weight", false, TensorKind.Vector, c => [c.HiddenSize], Always),
        new("LmHead", "lm_head.weight", false, TensorKind.Matrix, c => [c.VocabSize, c.HiddenSize], c => !c.TieWordEmbeddings),
    ];

    /// <summary>Every (key, entry) a checkpoint for <paramref name="config"/> holds, in checkpoint order.</summary>
    public static IEnumerable<(string Key, CheckpointKey Entry, int Layer)> Enumerate(Qwen3Config config)
    {
        foreach (CheckpointKey k in Head)
        {
            if (k.IsPresent(config))
            {
                yield return (k.Key(), k, -1);
            }
        }

        for (int l = 0; l < config.NumHiddenLayers; l++)
        {
            foreach (CheckpointKey k in Layer)
            {
                if (k.IsPresent(config))
                {
                    yield return (k.Key(l), k, l);
                }
            }
        }

        foreach (CheckpointKey k in Tail)
        {
            if (k.IsPresent(config))
            {
                yield return (k.Key(), k, -1);
            }
        }
    }
}
