using System.Text.Json;
using System.Text.Json.Serialization;

namespace Qwen3Sharp.Loading;

/// <summary>
/// A Hugging Face <c>config.json</c> of a Qwen3 (<c>model_type</c> "qwen3") or Qwen2/2.5 ("qwen2") causal LM.
/// Property names mirror the file. Obtain one through <see cref="Load"/> or <see cref="Parse"/>, which validate
/// it and fill the defaults transformers uses; it is immutable afterwards.
/// </summary>
public sealed record Qwen3Config
{
    public const string FileName = "config.json";

    /// <summary>The <c>model_type</c> values this engine runs.</summary>
    public static readonly IReadOnlyList<string> SupportedModelTypes = ["qwen3", "qwen2"];

    [JsonPropertyName("architectures")] public IReadOnlyList<string>? Architectures { get; init; }
    [JsonPropertyName("model_type")] public string ModelType { get; init; } = "";
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; }
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; }
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; }
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; }

    /// <summary>Defaults to <see cref="NumAttentionHeads"/> when absent.</summary>
    [JsonPropertyName("num_key_value_heads")] public int NumKeyValueHeads { get; init; }

    /// <summary>Defaults to hidden_size / num_attention_heads when absent.</summary>
    [JsonPropertyName("head_dim")] public int HeadDim { get; init; }

    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; }
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 32768;
    [JsonPropertyName("rope_theta")] public double RopeTheta { get; init; } = 10000.0;
    [JsonPropertyName("rms_norm_eps")] public double RmsNormEps { get; init; } = 1e-6;
    [JsonPropertyName("tie_word_embeddings")] public bool TieWordEmbeddings { get; init; }

    /// <summary>"bfloat16", "float16" or "float32" (informational: the safetensors headers decide).
    /// Newer transformers write it as "dtype"; <see cref="Load"/> folds that in here.</summary>
    [JsonPropertyName("torch_dtype")] public string? TorchDType { get; init; }

    /// <summary>transformers 5 spelling of torch_dtype.</summary>
    [JsonPropertyName("dtype"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? DtypeAlias { get; init; }

    /// <summary>Qwen3: biases on q/k/v/o projections. Qwen2 always has q/k/v biases (see <see cref="HasQkvBias"/>).</summary>
    [JsonPropertyName("attention_bias")] public bool AttentionBias { get; init; }

    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "silu";

    [JsonPropertyName("bos_token_id"), JsonConverter(typeof(TokenIdListJsonConverter))]
    public IReadOnlyList<int>? BosTokenId { get; init; }

    [JsonPropertyName("eos_token_id"), JsonConverter(typeof(TokenIdListJsonConverter))]
    public IReadOnlyList<int>? EosTokenId { get; init; }

    [JsonPropertyName("use_sliding_window")] public bool UseSlidingWindow { get; init; }
    [JsonPropertyName("sliding_window")] public int? SlidingWindow { get; init; }
    [JsonPropertyName("max_window_layers")] public int? MaxWindowLayers { get; init; }
    [JsonPropertyName("rope_scaling")] public RopeScaling? RopeScaling { get; init; }

    /// <summary>transformers 5 form of rope_theta + rope_scaling (<c>{"rope_theta": ..., "rope_type": ...}</c>);
    /// <see cref="Load"/> folds it into <see cref="RopeTheta"/> and <see cref="RopeScaling"/>.</summary>
    [JsonPropertyName("rope_parameters"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public RopeScaling? RopeParameters { get; init; }

    /// <summary>Qwen3 normalizes every q and k head before RoPE (q_norm, k_norm); Qwen2 does not.</summary>
    [JsonIgnore] public bool HasQkNorm => ModelType == "qwen3";

    /// <summary>Whether q_proj, k_proj and v_proj carry biases (always in Qwen2, with attention_bias in Qwen3).</summary>
    [JsonIgnore] public bool HasQkvBias => ModelType == "qwen2" || AttentionBias;

    /// <summary>Whether o_proj carries a bias (Qwen3 with attention_bias only).</summary>
    [JsonIgnore] public bool HasOBias => ModelType == "qwen3" && AttentionBias;

    /// <summary>The source file name used in error messages.</summary>
    [JsonIgnore] public string SourceFile { get; init; } = FileName;

    private static readonly JsonSerializerOptions SerializerOptions = new()
    {
        AllowTrailingCommas = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
    };

    /// <summary>Reads and validates <c>config.json</c> in <paramref name="directory"/>.</summary>
    /// <exception cref="ModelFormatException">The file is missing, is not JSON, or a field is invalid (the message names it).</exception>
    public static Qwen3Config Load(string directory)
    {
        string path = Path.Combine(directory, FileName);
        if (ModelFile.TryResolve(path) is null)
        {
            throw new ModelFormatException(path, null, "file not found: a Hugging Face model directory needs a config.json");
        }

        return Parse(System.IO.File.ReadAllText(path), path);
    }

    /// <summary>Parses and validates config.json text; <paramref name="sourceFile"/> names it in errors.</summary>
    public static Qwen3Config Parse(string json, string sourceFile = FileName)
    {
        Qwen3Config? raw;
        try
        {
            raw = JsonSerializer.Deserialize<Qwen3Config>(json, SerializerOptions);
        }
        catch (JsonException ex)
        {
            throw new ModelFormatException(sourceFile, FieldFromPath(ex.Path), $"invalid JSON: {ex.Message}", ex);
        }
        catch (FormatException ex)
        {
            throw new ModelFormatException(sourceFile, null, $"invalid JSON: {ex.Message}", ex);
        }

        if (raw is null)
        {
            throw new ModelFormatException(sourceFile, null, "expected a JSON object, found null");
        }

        return raw.WithDefaultsAndValidate(sourceFile);
    }

    private static string? FieldFromPath(string? jsonPath)
    {
        if (string.IsNullOrEmpty(jsonPath) || jsonPath == "$")
        {
            return null;
        }

        return jsonPath.StartsWith("$.", StringComparison.Ordinal) ? jsonPath[2..] : jsonPath;
    }

    private Qwen3Config WithDefaultsAndValidate(string file)
    {
        if (string.IsNullOrEmpty(ModelType))
        {
            throw Field(file, "model_type", $"missing; supported model types: {string.Join(", ", SupportedModelTypes)}");
        }

        if (!SupportedModelTypes.Contains(ModelType))
        {
            throw Field(file, "model_type",
                $"'{ModelType}' is not supported; supported model types: {string.Join(", ", SupportedModelTypes)} (Qwen3, Qwen2/2.5 dense causal LMs)");
        }

        RequirePositive(file, "hidden_size", HiddenSize);
        RequirePositive(file, "intermediate_size", IntermediateSize);
        RequirePositive(file, "num_hidden_layers", NumHiddenLayers);
        RequirePositive(file, "num_attention_heads", NumAttentionHeads);
        RequirePositive(file, "vocab_size", VocabSize);
        RequirePositive(file, "max_position_embeddings", MaxPositionEmbeddings);

        int kvHeads = NumKeyValueHeads == 0 ? NumAttentionHeads : NumKeyValueHeads;
        if (kvHeads < 0)
        {
            throw Field(file, "num_key_value_heads", $"must be a positive integer (got {kvHeads})");
        }

        if (NumAttentionHeads % kvHeads != 0)
        {
            throw Field(file, "num_key_value_heads",
                $"num_attention_heads ({NumAttentionHeads}) must be a multiple of num_key_value_heads ({kvHeads})");
        }

        int headDim = HeadDim;
        if (headDim == 0)
        {
            if (HiddenSize % NumAttentionHeads != 0)
            {
                throw Field(file, "head_dim",
                    $"absent, and hidden_size ({HiddenSize}) is not a multiple of num_attention_heads ({NumAttentionHeads})");
            }

            headDim = HiddenSize / NumAttentionHeads;
        }

        if (headDim < 0 || headDim % 2 != 0)
        {
            throw Field(file, "head_dim", $"must be a positive even integer for rotary embeddings (got {headDim})");
        }

        double ropeTheta = RopeParameters?.RopeTheta ?? RopeTheta;
        RopeScaling? ropeScaling = RopeParameters is { Kind: not "default" } p ? p : RopeScaling;
        if (!(ropeTheta > 0) || double.IsInfinity(ropeTheta))
        {
            throw Field(file, "rope_theta", $"must be a positive number (got {ropeTheta})");
        }

        if (!(RmsNormEps > 0) || double.IsInfinity(RmsNormEps))
        {
            throw Field(file, "rms_norm_eps", $"must be a positive number (got {RmsNormEps})");
        }

        if (HiddenAct != "silu")
        {
            throw Field(file, "hidden_act", $"'{HiddenAct}' is not supported; only 'silu' (SwiGLU MLP) is");
        }

        string? dtype = TorchDType ?? DtypeAlias;
        if (dtype is not null and not ("bfloat16" or "float16" or "float32"))
        {
            throw Field(file, TorchDType is null ? "dtype" : "torch_dtype", $"'{dtype}' is not supported; supported: bfloat16, float16, float32");
        }

        if (UseSlidingWindow)
        {
            throw Field(file, "use_sliding_window",
                "sliding-window attention is not supported (Qwen3 and Qwen2.5 checkpoints ship with it off)");
        }

        ValidateTokenIds(file, "bos_token_id", BosTokenId);
        ValidateTokenIds(file, "eos_token_id", EosTokenId);
        ropeScaling?.Validate(file, RopeParameters is { Kind: not "default" } ? "rope_parameters" : "rope_scaling");

        return this with
        {
            NumKeyValueHeads = kvHeads,
            HeadDim = headDim,
            TorchDType = dtype,
            DtypeAlias = null,
            RopeTheta = ropeTheta,
            RopeScaling = ropeScaling?.Kind == "default" ? null : ropeScaling,
            RopeParameters = null,
            SourceFile = file,
        };
    }

    private static void ValidateTokenIds(string file, string field, IReadOnlyList<int>? ids)
    {
        if (ids is null)
        {
            return;
        }

        foreach (int id in ids)
        {
            if (id < 0)
            {
                throw Field(file, field, $"token ids must be non-negative (got {id})");
            }
        }
    }

    private static void RequirePositive(string file, string field, int value)
    {
        if (value <= 0)
        {
            throw Field(file, field, value == 0 ? "missing (a positive integer is required)" : $"must be a positive integer (got {value})");
        }
    }

    internal static ModelFormatException Field(string file, string field, string reason) => new(file, field, reason);
}

/// <summary>
/// <c>rope_scaling</c>: null (plain RoPE), <c>{"rope_type": "yarn", "factor", "original_max_position_embeddings", ...}</c>
/// or <c>{"rope_type": "linear", "factor"}</c>. Older files spell rope_type as "type".
/// </summary>
public sealed record RopeScaling
{
    [JsonPropertyName("rope_type")] public string? RopeType { get; init; }
    [JsonPropertyName("type")] public string? Type { get; init; }
    [JsonPropertyName("factor")] public double? Factor { get; init; }
    [JsonPropertyName("original_max_position_embeddings")] public int? OriginalMaxPositionEmbeddings { get; init; }
    [JsonPropertyName("beta_fast")] public double? BetaFast { get; init; }
    [JsonPropertyName("beta_slow")] public double? BetaSlow { get; init; }
    [JsonPropertyName("mscale")] public double? Mscale { get; init; }
    [JsonPropertyName("mscale_all_dim")] public double? MscaleAllDim { get; init; }
    [JsonPropertyName("attention_factor")] public double? AttentionFactor { get; init; }
    [JsonPropertyName("truncate")] public bool? Truncate { get; init; }

    /// <summary>Only in transformers 5's rope_parameters.</summary>
    [JsonPropertyName("rope_theta"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public double? RopeTheta { get; init; }

    /// <summary>"yarn", "linear" or "default" (rope_type, else type).</summary>
    [JsonIgnore] public string Kind => RopeType ?? Type ?? "default";

    internal void Validate(string file, string field = "rope_scaling")
    {
        switch (Kind)
        {
            case "default":
                return;
            case "yarn":
                if (Factor is null && OriginalMaxPositionEmbeddings is null)
                {
                    throw Qwen3Config.Field(file, field + ".factor",
                        "YaRN needs a factor (or original_max_position_embeddings to derive it from max_position_embeddings)");
                }

                if (Factor is { } yf && (!(yf >= 1) || double.IsInfinity(yf)))
                {
                    throw Qwen3Config.Field(file, field + ".factor", $"YaRN needs a factor >= 1 (got {yf})");
                }

                if (OriginalMaxPositionEmbeddings is <= 0)
                {
                    throw Qwen3Config.Field(file, field + ".original_max_position_embeddings",
                        $"must be a positive integer (got {OriginalMaxPositionEmbeddings})");
                }

                if (BetaFast is <= 0 || BetaSlow is <= 0)
                {
                    throw Qwen3Config.Field(file, field + ".beta_fast", "beta_fast and beta_slow must be positive");
                }

                return;
            case "linear":
                if (Factor is not { } lf || !(lf > 0) || double.IsInfinity(lf))
                {
                    throw Qwen3Config.Field(file, field + ".factor", $"linear scaling needs a positive factor (got {Factor?.ToString() ?? "none"})");
                }

                return;
            default:
                throw Qwen3Config.Field(file, field + ".rope_type",
                    $"'{Kind}' is not supported; supported: null (plain RoPE), 'yarn', 'linear'");
        }
    }
}

/// <summary>Reads a token id given as a JSON integer or a list of integers (bos/eos ids); null stays null.</summary>
public sealed class TokenIdListJsonConverter : JsonConverter<IReadOnlyList<int>?>
{
    public override bool HandleNull => true;

    public override IReadOnlyList<int>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return null;
            case JsonTokenType.Number:
                return [reader.GetInt32()];
            case JsonTokenType.StartArray:
                var ids = new List<int>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (reader.TokenType != JsonTokenType.Number)
                    {
                        throw new JsonException($"expected an integer token id, found {reader.TokenType}");
                    }

                    ids.Add(reader.GetInt32());
                }

                return ids;
            default:
                throw new JsonException($"expected an integer or a list of integers, found {reader.TokenType}");
        }
    }

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<int>? value, JsonSerializerOptions options)
    {
        if (value is null)
        {
            writer.WriteNullValue();
        }
        else if (value.Count == 1)
        {
            writer.WriteNumberValue(value[0]);
        }
        else
        {
            writer.WriteStartArray();
            foreach (int id in value)
            {
                writer.WriteNumberValue(id);
            }

            writer.WriteEndArray();
        }
    }
}
