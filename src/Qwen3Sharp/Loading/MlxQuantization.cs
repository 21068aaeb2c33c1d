using System.Text.Json;

namespace Qwen3Sharp.Loading;

/// <summary>One module's MLX affine quantization: code width and elements per scale/bias pair.</summary>
public readonly record struct MlxQuantSpec(int Bits, int GroupSize);

/// <summary>
/// The <c>"quantization"</c> (or <c>"quantization_config"</c>) object of an MLX quantized model's config.json, as
/// mlx_lm writes it: <c>{"group_size": 64, "bits": 4, "mode": "affine"}</c>, plus per-module overrides for mixed
/// quantization keyed by module path (<c>"model.layers.0.mlp.down_proj": {"group_size": 64, "bits": 8}</c>, or
/// <c>false</c> for a module left unquantized). Only the affine mode is supported; bits 2, 3, 4, 6, 8; group sizes
/// 32, 64, 128.
/// </summary>
public sealed class MlxQuantization
{
    public static readonly int[] SupportedBits = [2, 3, 4, 6, 8];
    public static readonly int[] SupportedGroupSizes = [32, 64, 128];

    private readonly Dictionary<string, MlxQuantSpec?> _overrides;

    private MlxQuantization(string sourceFile, MlxQuantSpec defaults, Dictionary<string, MlxQuantSpec?> overrides)
    {
        SourceFile = sourceFile;
        Default = defaults;
        _overrides = overrides;
    }

    public string SourceFile { get; }

    /// <summary>The setting of every module without an override.</summary>
    public MlxQuantSpec Default { get; }

    /// <summary>The setting of <paramref name="module"/> (e.g. <c>model.layers.3.mlp.up_proj</c>); null when the config leaves it unquantized.</summary>
    public MlxQuantSpec? For(string module) => _overrides.TryGetValue(module, out MlxQuantSpec? spec) ? spec : Default;

    /// <summary>True when the config names <paramref name="module"/> explicitly (an override or <c>false</c>).</summary>
    public bool HasOverride(string module) => _overrides.ContainsKey(module);

    /// <summary>The quantization section of <paramref name="configPath"/>, or null when the model is not quantized.</summary>
    /// <exception cref="ModelFormatException">A malformed section, an unsupported mode, bit width or group size, or another quantizer's config.</exception>
    public static MlxQuantization? Read(string configPath)
    {
        string text = File.ReadAllText(ModelFile.Resolve(configPath));
        try
        {
            using JsonDocument doc = JsonDocument.Parse(text);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                return null;    // Qwen3Config reports this
            }

            JsonElement section;
            string field;
            if (doc.RootElement.TryGetProperty("quantization", out section))
            {
                field = "quantization";
            }
            else if (doc.RootElement.TryGetProperty("quantization_config", out section))
            {
                field = "quantization_config";
            }
            else
            {
                return null;
            }

            return section.ValueKind == JsonValueKind.Null ? null : Parse(configPath, field, section);
        }
        catch (JsonException ex)
        {
            throw new ModelFormatException(configPath, null, $"invalid JSON: {ex.Message}", ex);
        }
    }

    private static MlxQuantization Parse(string path, string field, JsonElement section)
    {
        if (section.ValueKind != JsonValueKind.Object)
        {
            throw new ModelFormatException(path, field, $"must be an object, found {section.ValueKind}");
        }

        if (section.TryGetProperty("quant_method", out JsonElement method))
        {
            string name = method.ValueKind == JsonValueKind.String ? method.GetString()! : method.GetRawText();
            throw new ModelFormatException(path, field + ".quant_method",
                $"'{name}' checkpoints are not supported; quantized models load from GGUF files or MLX directories (affine mode)");
        }

        if (section.TryGetProperty("mode", out JsonElement mode))
        {
            string? m = mode.ValueKind == JsonValueKind.String ? mode.GetString() : null;
            if (m != "affine")
            {
                throw new ModelFormatException(path, field + ".mode",
                    $"MLX quantization mode '{m ?? mode.GetRawText()}' is not supported; only 'affine' (w = scale·code + bias per group) is");
            }
        }

        MlxQuantSpec defaults = Spec(path, field, section);
        var overrides = new Dictionary<string, MlxQuantSpec?>(StringComparer.Ordinal);
        foreach (JsonProperty p in section.EnumerateObject())
        {
            switch (p.Value.ValueKind)
            {
                case JsonValueKind.False:
                    overrides[p.Name] = null;
                    break;
                case JsonValueKind.Object:
                    if (p.Value.TryGetProperty("mode", out JsonElement m) && !(m.ValueKind == JsonValueKind.String && m.GetString() == "affine"))
                    {
                        throw new ModelFormatException(path, $"{field}.{p.Name}.mode",
                            $"MLX quantization mode {m.GetRawText()} is not supported; only 'affine' is");
                    }

                    overrides[p.Name] = Spec(path, $"{field}.{p.Name}", p.Value);
                    break;
                case JsonValueKind.True:
                    overrides[p.Name] = defaults;
                    break;
                default:
                    break;   // group_size, bits, mode and any other scalar setting
            }
        }

        return new MlxQuantization(path, defaults, overrides);
    }

    private static MlxQuantSpec Spec(string path, string field, JsonElement e)
    {
        int bits = Int(path, field, e, "bits");
        int groupSize = Int(path, field, e, "group_size");
        if (Array.IndexOf(SupportedBits, bits) < 0)
        {
            throw new ModelFormatException(path, field + ".bits", $"{bits}-bit MLX quantization is not supported; supported: 2, 3, 4, 6, 8");
        }

        if (Array.IndexOf(SupportedGroupSizes, groupSize) < 0)
        {
            throw new ModelFormatException(path, field + ".group_size", $"group size {groupSize} is not supported; supported: 32, 64, 128");
        }

        return new MlxQuantSpec(bits, groupSize);
    }

    private static int Int(string path, string field, JsonElement e, string name)
    {
        if (!e.TryGetProperty(name, out JsonElement v) || v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int value))
        {
            throw new ModelFormatException(path, field + "." + name, "missing or not an integer");
        }

        return value;
    }
}
