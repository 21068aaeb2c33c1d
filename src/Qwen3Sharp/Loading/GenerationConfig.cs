using System.Text.Json;
using System.Text.Json.Serialization;

namespace Qwen3Sharp.Loading;

/// <summary>
/// A Hugging Face <c>generation_config.json</c>: the checkpoint's sampling defaults. Every field is optional
/// (null when absent); a directory without the file gives <see cref="Empty"/>.
/// </summary>
public sealed record GenerationConfig
{
    public const string FileName = "generation_config.json";

    public static GenerationConfig Empty { get; } = new();

    [JsonPropertyName("bos_token_id"), JsonConverter(typeof(TokenIdListJsonConverter))]
    public IReadOnlyList<int>? BosTokenId { get; init; }

    /// <summary>Every id that ends generation (Qwen3: [151645, 151643]).</summary>
    [JsonPropertyName("eos_token_id"), JsonConverter(typeof(TokenIdListJsonConverter))]
    public IReadOnlyList<int>? EosTokenId { get; init; }

    [JsonPropertyName("pad_token_id"), JsonConverter(typeof(TokenIdListJsonConverter))]
    public IReadOnlyList<int>? PadTokenId { get; init; }

    [JsonPropertyName("do_sample")] public bool? DoSample { get; init; }
    [JsonPropertyName("temperature")] public double? Temperature { get; init; }
    [JsonPropertyName("top_p")] public double? TopP { get; init; }
    [JsonPropertyName("top_k")] public int? TopK { get; init; }
    [JsonPropertyName("min_p")] public double? MinP { get; init; }
    [JsonPropertyName("repetition_penalty")] public double? RepetitionPenalty { get; init; }
    [JsonPropertyName("presence_penalty")] public double? PresencePenalty { get; init; }
    [JsonPropertyName("frequency_penalty")] public double? FrequencyPenalty { get; init; }
    [JsonPropertyName("max_new_tokens")] public int? MaxNewTokens { get; init; }
    [JsonPropertyName("max_length")] public int? MaxLength { get; init; }

    private static readonly JsonSerializerOptions SerializerOptions = new()
    {
        AllowTrailingCommas = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
    };

    /// <summary>Reads <c>generation_config.json</c> from <paramref name="directory"/>; <see cref="Empty"/> when there is none.</summary>
    /// <exception cref="ModelFormatException">The file exists but is malformed (the message names the field).</exception>
    public static GenerationConfig Load(string directory)
    {
        string path = Path.Combine(directory, FileName);
        return ModelFile.TryResolve(path) is not null ? Parse(File.ReadAllText(path), path) : Empty;
    }

    public static GenerationConfig Parse(string json, string sourceFile = FileName)
    {
        GenerationConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<GenerationConfig>(json, SerializerOptions);
        }
        catch (JsonException ex)
        {
            string? field = string.IsNullOrEmpty(ex.Path) || ex.Path == "$" ? null : ex.Path.TrimStart('$', '.');
            throw new ModelFormatException(sourceFile, field, $"invalid JSON: {ex.Message}", ex);
        }

        if (config is null)
        {
            throw new ModelFormatException(sourceFile, null, "expected a JSON object, found null");
        }

        if (config.Temperature is < 0)
        {
            throw new ModelFormatException(sourceFile, "temperature", $"must be >= 0 (got {config.Temperature})");
        }

        if (config.TopP is < 0 or > 1)
        {
            throw new ModelFormatException(sourceFile, "top_p", $"must be in [0, 1] (got {config.TopP})");
        }

        if (config.MinP is < 0 or > 1)
        {
            throw new ModelFormatException(sourceFile, "min_p", $"must be in [0, 1] (got {config.MinP})");
        }

        if (config.TopK is < 0)
        {
            throw new ModelFormatException(sourceFile, "top_k", $"must be >= 0 (got {config.TopK})");
        }

        if (config.RepetitionPenalty is <= 0)
        {
            throw new ModelFormatException(sourceFile, "repetition_penalty", $"must be > 0 (got {config.RepetitionPenalty})");
        }

        return config;
    }
}
