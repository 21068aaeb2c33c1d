using System.Globalization;
using System.Text;
using System.Text.Json;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Loading;

/// <summary>
/// A Qwen3 or Qwen2 model in one GGUF file, as llama.cpp's convert_hf_to_gguf.py writes it: the config from the
/// <c>{arch}.*</c> keys, tensors under llama.cpp's names (<c>blk.N.attn_q.weight</c>…), the tokenizer from
/// <c>tokenizer.ggml.*</c> and the chat template from <c>tokenizer.chat_template</c>. For qwen2/qwen3 the converter
/// stores Q and K unpermuted (only the llama architecture's converter permutes them for its rope layout; qwen
/// uses NEOX-style rope, the same as Hugging Face), so the matrices are used exactly as the safetensors ones.
/// </summary>
public static class GgufModel
{
    public static readonly IReadOnlyList<string> SupportedArchitectures = ["qwen3", "qwen2"];

    /// <summary>True when <paramref name="path"/> is a file that starts with the GGUF magic.</summary>
    public static bool IsGguf(string path) => File.Exists(path) && GgufFile.HasMagic(path);

    /// <summary>The model's config, written as config.json would be and validated by the same code.</summary>
    /// <remarks>For a split model use the <see cref="GgufParts"/> overload: the tensors it looks at may be in any part.</remarks>
    public static Qwen3Config ReadConfig(GgufFile file) => ReadConfig(file, file.Tensors.GetValueOrDefault);

    /// <summary>The config of a model in one or several GGUF files (metadata from the first part).</summary>
    public static Qwen3Config ReadConfig(GgufParts parts) => ReadConfig(parts.First, name => parts.Find(name)?.Tensors[name]);

    private static Qwen3Config ReadConfig(GgufFile file, Func<string, GgufTensorInfo?> tensor)
    {
        string arch = String(file, "general.architecture");
        if (!SupportedArchitectures.Contains(arch))
        {
            throw new ModelFormatException(file.FilePath, "general.architecture",
                $"architecture '{arch}' is not supported (supported: {string.Join(", ", SupportedArchitectures)})");
        }

        long hidden = Int(file, arch + ".embedding_length");
        long heads = Int(file, arch + ".attention.head_count");
        GgufTensorInfo embed = tensor("token_embd.weight") ?? throw new ModelFormatException(file.FilePath, "token_embd.weight", "no such tensor");
        long vocab = file.Metadata.ContainsKey(arch + ".vocab_size") ? Int(file, arch + ".vocab_size") : embed.Dims[^1];
        var config = new Dictionary<string, object?>
        {
            ["model_type"] = arch,
            ["hidden_size"] = hidden,
            ["intermediate_size"] = Int(file, arch + ".feed_forward_length"),
            ["num_hidden_layers"] = Int(file, arch + ".block_count"),
            ["num_attention_heads"] = heads,
            ["num_key_value_heads"] = file.Metadata.ContainsKey(arch + ".attention.head_count_kv") ? Int(file, arch + ".attention.head_count_kv") : heads,
            ["head_dim"] = file.Metadata.ContainsKey(arch + ".attention.key_length") ? Int(file, arch + ".attention.key_length") : hidden / Math.Max(1, heads),
            ["vocab_size"] = vocab,
            ["max_position_embeddings"] = file.Metadata.ContainsKey(arch + ".context_length") ? Int(file, arch + ".context_length") : 32768,
            ["rope_theta"] = file.Metadata.ContainsKey(arch + ".rope.freq_base") ? Float(file, arch + ".rope.freq_base") : 1_000_000.0,
            ["rms_norm_eps"] = Float(file, arch + ".attention.layer_norm_rms_epsilon"),
            ["tie_word_embeddings"] = tensor("output.weight") is null,
            ["attention_bias"] = arch == "qwen3" && tensor("blk.0.attn_q.bias") is not null,
        };
        if (file.Metadata.TryGetValue(arch + ".rope.scaling.type", out object? scaling) && scaling is string kind && kind != "none")
        {
            var rope = new Dictionary<string, object?> { ["rope_type"] = kind, ["factor"] = Float(file, arch + ".rope.scaling.factor") };
            if (file.Metadata.ContainsKey(arch + ".rope.scaling.original_context_length"))
            {
                rope["original_max_position_embeddings"] = Int(file, arch + ".rope.scaling.original_context_length");
            }

            config["rope_scaling"] = rope;
        }

        return Qwen3Config.Parse(JsonSerializer.Serialize(config), file.FilePath);
    }

    // The checkpoint-key names of Loading/CheckpointKeys → llama.cpp's tensor names.
    private static readonly Dictionary<string, string> s_names = new(StringComparer.Ordinal)
    {
        ["EmbedTokens"] = "token_embd.weight",
        ["Norm"] = "output_norm.weight",
        ["LmHead"] = "output.weight",
        ["InputLayerNorm"] = "blk.{0}.attn_norm.weight",
        ["QProj"] = "blk.{0}.attn_q.weight",
        ["QBias"] = "blk.{0}.attn_q.bias",
        ["KProj"] = "blk.{0}.attn_k.weight",
        ["KBias"] = "blk.{0}.attn_k.bias",
        ["VProj"] = "blk.{0}.attn_v.weight",
        ["VBias"] = "blk.{0}.attn_v.bias",
        ["OProj"] = "blk.{0}.attn_output.weight",
        ["OBias"] = "blk.{0}.attn_output.bias",
        ["QNorm"] = "blk.{0}.attn_q_norm.weight",
        ["KNorm"] = "blk.{0}.attn_k_norm.weight",
        ["PostAttentionLayerNorm"] = "blk.{0}.ffn_norm.weight",
        ["GateProj"] = "blk.{0}.ffn_gate.weight",
        ["UpProj"] = "blk.{0}.ffn_up.weight",
        ["DownProj"] = "blk.{0}.ffn_down.weight",
    };

    /// <summary>The GGUF tensor name of a checkpoint key (Hugging Face name → llama.cpp name).</summary>
    public static string TensorName(CheckpointKey key, int layer) =>
        string.Format(CultureInfo.InvariantCulture, s_names[key.Name], layer);

    // Added tokens that Qwen2.5/Qwen3's tokenizer.json marks "special": false but the GGUF converters store as CONTROL,
    // because they look special (<|...|>: convert_hf_to_gguf.py's does_token_look_special). GGUF keeps no special
    // flag, so without this list skip_special_tokens would drop them where the Hugging Face directory keeps them.
    private static readonly HashSet<string> s_nonSpecialControl = new(StringComparer.Ordinal)
    {
        "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
    };

    /// <summary>The tokenizer from tokenizer.ggml.* (gpt2 BPE), as the JSON files it was converted from.</summary>
    /// <returns>tokenizer.json and tokenizer_config.json texts for <see cref="Tokenization.Qwen3Tokenizer.FromJson"/>.</returns>
    public static (string TokenizerJson, string TokenizerConfigJson) ReadTokenizer(GgufFile file)
    {
        string model = String(file, "tokenizer.ggml.model");
        if (model != "gpt2")
        {
            throw new ModelFormatException(file.FilePath, "tokenizer.ggml.model", $"tokenizer model '{model}' is not supported (only gpt2 byte-level BPE)");
        }

        object[] tokens = Array(file, "tokenizer.ggml.tokens");
        object[] types = file.Metadata.ContainsKey("tokenizer.ggml.token_type") ? Array(file, "tokenizer.ggml.token_type") : [];
        object[] merges = Array(file, "tokenizer.ggml.merges");
        if (types.Length != 0 && types.Length != tokens.Length)
        {
            throw new ModelFormatException(file.FilePath, "tokenizer.ggml.token_type", $"{types.Length} types for {tokens.Length} tokens");
        }

        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteStartArray("added_tokens");
            for (int i = 0; i < tokens.Length; i++)
            {
                long type = types.Length == 0 ? 1 : types[i] as long? ?? 1;
                if (type is 3 or 4)   // CONTROL: special added token; USER_DEFINED: non-special added token
                {
                    string content = TokenText(file, tokens, i);
                    w.WriteStartObject();
                    w.WriteNumber("id", i);
                    w.WriteString("content", content);
                    w.WriteBoolean("special", type == 3 && !s_nonSpecialControl.Contains(content));
                    w.WriteBoolean("normalized", false);
                    w.WriteEndObject();
                }
            }

            w.WriteEndArray();
            w.WritePropertyName("normalizer");
            w.WriteRawValue("""{"type":"NFC"}""");
            w.WritePropertyName("pre_tokenizer");
            w.WriteRawValue("""{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false}]}""");
            w.WritePropertyName("decoder");
            w.WriteRawValue("""{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false}""");
            w.WriteStartObject("model");
            w.WriteString("type", "BPE");
            w.WriteStartObject("vocab");
            for (int i = 0; i < tokens.Length; i++)
            {
                long type = types.Length == 0 ? 1 : types[i] as long? ?? 1;
                if (type is 1 or 6)   // NORMAL, BYTE; UNUSED padding entries and added tokens are not in the BPE vocab
                {
                    w.WriteNumber(TokenText(file, tokens, i), i);
                }
            }

            w.WriteEndObject();
            w.WriteStartArray("merges");
            foreach (object m in merges)
            {
                w.WriteStringValue(m as string ?? throw new ModelFormatException(file.FilePath, "tokenizer.ggml.merges", "a merge is not a string"));
            }

            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        }

        var config = new Dictionary<string, string>();
        foreach ((string key, string field) in new[] { ("tokenizer.ggml.eos_token_id", "eos_token"), ("tokenizer.ggml.padding_token_id", "pad_token") })
        {
            if (file.Metadata.TryGetValue(key, out object? id))
            {
                config[field] = id is long n && n >= 0 && n < tokens.Length ? TokenText(file, tokens, (int)n)
                    : throw new ModelFormatException(file.FilePath, key, $"{id} is not a token id below {tokens.Length}");
            }
        }

        return (Encoding.UTF8.GetString(stream.ToArray()), JsonSerializer.Serialize(config));
    }

    /// <summary>tokenizer.chat_template, or null.</summary>
    public static string? ReadChatTemplate(GgufFile file) =>
        file.Metadata.TryGetValue("tokenizer.chat_template", out object? t) ? t as string
            ?? throw new ModelFormatException(file.FilePath, "tokenizer.chat_template", "is not a string") : null;

    private static string TokenText(GgufFile file, object[] tokens, int i) =>
        tokens[i] as string ?? throw new ModelFormatException(file.FilePath, "tokenizer.ggml.tokens", $"token {i} is not a string");

    private static object Get(GgufFile file, string key) =>
        file.Metadata.TryGetValue(key, out object? v) ? v : throw new ModelFormatException(file.FilePath, key, "missing metadata key");

    private static string String(GgufFile file, string key) =>
        Get(file, key) as string ?? throw new ModelFormatException(file.FilePath, key, "is not a string");

    private static long Int(GgufFile file, string key) => Get(file, key) switch
    {
        long n when n >= 0 && n <= int.MaxValue => n,
        object v => throw new ModelFormatException(file.FilePath, key, $"{v} is not a non-negative 32-bit integer"),
    };

    private static double Float(GgufFile file, string key) => Get(file, key) switch
    {
        double d => d,
        long n => n,
        object v => throw new ModelFormatException(file.FilePath, key, $"{v} is not a number"),
    };

    private static object[] Array(GgufFile file, string key) =>
        Get(file, key) as object[] ?? throw new ModelFormatException(file.FilePath, key, "is not an array");
}
