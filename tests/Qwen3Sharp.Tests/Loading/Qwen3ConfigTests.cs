using Qwen3Sharp.Loading;

namespace Qwen3Sharp.Tests.Loading;

public sealed class Qwen3ConfigTests
{
    private const string Minimal = """
        {"model_type": "qwen3", "hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 28,
         "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
         "max_position_embeddings": 40960, "rope_theta": 1000000, "rms_norm_eps": 1e-06, "tie_word_embeddings": true,
         "torch_dtype": "bfloat16", "bos_token_id": 151643, "eos_token_id": 151645, "rope_scaling": null,
         "use_sliding_window": false, "sliding_window": null, "max_window_layers": 28, "attention_bias": false, "hidden_act": "silu"}
        """;

    private static string With(string field, string value)
        => System.Text.RegularExpressions.Regex.Replace(Minimal, $"\"{field}\": [^,}}]+", $"\"{field}\": {value}");

    private static ModelFormatException Fails(string json) => Assert.Throws<ModelFormatException>(() => Qwen3Config.Parse(json, "x/config.json"));

    [Fact]
    public void Parse_Qwen3_1_7BConfig_ReadsEveryField()
    {
        Qwen3Config c = Qwen3Config.Parse(Minimal);
        Assert.Equal((2048, 6144, 28, 16, 8, 128, 151936), (c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.VocabSize));
        Assert.Equal((40960, 1e6, 1e-6, true, "bfloat16"), (c.MaxPositionEmbeddings, c.RopeTheta, c.RmsNormEps, c.TieWordEmbeddings, c.TorchDType));
        Assert.Equal([151643], c.BosTokenId!);
        Assert.Equal([151645], c.EosTokenId!);
        Assert.Null(c.RopeScaling);
        Assert.True(c.HasQkNorm);
        Assert.False(c.HasQkvBias);
        Assert.Equal(28, c.MaxWindowLayers);
    }

    [Fact]
    public void Load_GoldenDirectory_ReadsConfigAndGenerationConfig()
    {
        string dir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "golden", "tiny-b");
        Qwen3Config c = Qwen3Config.Load(dir);
        Assert.Equal((96, 6, 1, 16, false), (c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.TieWordEmbeddings));
        GenerationConfig g = GenerationConfig.Load(dir);
        Assert.Equal([151645, 151643], g.EosTokenId!);
        Assert.Equal((0.6, 20, 0.95, true), (g.Temperature!.Value, g.TopK!.Value, g.TopP!.Value, g.DoSample!.Value));
    }

    [Fact]
    public void LoadGeneration_NoFile_ReturnsEmpty()
    {
        using var dir = new TempDir();
        Assert.Same(GenerationConfig.Empty, GenerationConfig.Load(dir.Path));
    }

    [Fact]
    public void ParseGeneration_BadTopP_NamesField()
    {
        var ex = Assert.Throws<ModelFormatException>(() => GenerationConfig.Parse("""{"top_p": 1.5}""", "g.json"));
        Assert.Equal("top_p", ex.Tensor);
        Assert.Contains("g.json", ex.Message);
    }

    [Fact]
    public void Parse_HeadDimAbsent_DefaultsToHiddenOverHeads()
    {
        string json = Minimal.Replace("\"head_dim\": 128,", "");
        Assert.Equal(128, Qwen3Config.Parse(json).HeadDim);
    }

    [Fact]
    public void Parse_KvHeadsAbsent_DefaultsToHeads()
    {
        Assert.Equal(16, Qwen3Config.Parse(Minimal.Replace("\"num_key_value_heads\": 8,", "")).NumKeyValueHeads);
    }

    [Fact]
    public void Parse_EosList_ReadsEveryId()
        => Assert.Equal([151645, 151643], Qwen3Config.Parse(With("eos_token_id", "[151645, 151643]")).EosTokenId!);

    [Fact]
    public void Parse_UnsupportedModelType_NamesSupportedTypes()
    {
        ModelFormatException ex = Fails(With("model_type", "\"llama\""));
        Assert.Equal("model_type", ex.Tensor);
        Assert.Contains("x/config.json", ex.Message);
        Assert.Contains("qwen3, qwen2", ex.Message);
    }

    [Fact]
    public void Parse_MissingHiddenSize_NamesFileAndField()
    {
        ModelFormatException ex = Fails(Minimal.Replace("\"hidden_size\": 2048,", ""));
        Assert.Equal("hidden_size", ex.Tensor);
        Assert.Equal("x/config.json", ex.File);
    }

    [Fact]
    public void Parse_WrongJsonType_NamesField()
        => Assert.Equal("num_hidden_layers", Fails(With("num_hidden_layers", "\"many\"")).Tensor);

    [Fact]
    public void Parse_NotJson_Throws() => Assert.Contains("invalid JSON", Fails("{ nope").Message);

    [Fact]
    public void Parse_HeadsNotMultipleOfKvHeads_Throws()
        => Assert.Equal("num_key_value_heads", Fails(With("num_key_value_heads", "5")).Tensor);

    [Fact]
    public void Parse_OddHeadDim_Throws() => Assert.Equal("head_dim", Fails(With("head_dim", "127")).Tensor);

    [Fact]
    public void Parse_GeluActivation_Refused() => Assert.Equal("hidden_act", Fails(With("hidden_act", "\"gelu\"")).Tensor);

    [Fact]
    public void Parse_SlidingWindowOn_Refused() => Assert.Equal("use_sliding_window", Fails(With("use_sliding_window", "true")).Tensor);

    [Fact]
    public void Parse_UnknownDType_Refused() => Assert.Equal("torch_dtype", Fails(With("torch_dtype", "\"int8\"")).Tensor);

    [Fact]
    public void Parse_Yarn_ReadsParameters()
    {
        Qwen3Config c = Qwen3Config.Parse(With("rope_scaling",
            """{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}"""));
        Assert.Equal("yarn", c.RopeScaling!.Kind);
        Assert.Equal(4.0, c.RopeScaling.Factor);
        Assert.Equal(32768, c.RopeScaling.OriginalMaxPositionEmbeddings);
    }

    [Fact]
    public void Parse_LegacyTypeKey_ReadsLinear()
        => Assert.Equal("linear", Qwen3Config.Parse(With("rope_scaling", """{"type": "linear", "factor": 2.0}""")).RopeScaling!.Kind);

    [Fact]
    public void Parse_UnsupportedRopeType_NamesSupported()
    {
        ModelFormatException ex = Fails(With("rope_scaling", """{"rope_type": "dynamic", "factor": 2.0}"""));
        Assert.Equal("rope_scaling.rope_type", ex.Tensor);
        Assert.Contains("'yarn', 'linear'", ex.Message);
    }

    [Fact]
    public void Parse_YarnWithoutFactor_Throws()
        => Assert.Equal("rope_scaling.factor", Fails(With("rope_scaling", """{"rope_type": "yarn"}""")).Tensor);

    [Fact]
    public void Parse_Qwen2_HasQkvBiasAndNoQkNorm()
    {
        Qwen3Config c = Qwen3Config.Parse(With("model_type", "\"qwen2\""));
        Assert.True(c.HasQkvBias);
        Assert.False(c.HasQkNorm);
        Assert.False(c.HasOBias);
    }

    [Fact]
    public void Load_MissingFile_NamesPath()
    {
        using var dir = new TempDir();
        var ex = Assert.Throws<ModelFormatException>(() => Qwen3Config.Load(dir.Path));
        Assert.EndsWith("config.json", ex.File);
    }
}
