using System.Text.Json;

namespace Qwen3Sharp.Loading;

/// <summary>
/// A Hugging Face model directory: <c>config.json</c>, optional <c>generation_config.json</c>, and either
/// <c>model.safetensors</c> or shards <c>model-0000N-of-0000M.safetensors</c> listed by
/// <c>model.safetensors.index.json</c>. Opening reads and validates the JSON files and checks that every weight file
/// exists (following symbolic links, as in a Hugging Face cache snapshot: <see cref="ModelFile"/>); the weights themselves are mapped by <see cref="ModelWeights.Load(ModelDirectory)"/>.
/// </summary>
public sealed class ModelDirectory
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    private ModelDirectory(string path, Qwen3Config config, GenerationConfig generation, IReadOnlyList<string> weightFiles,
        IReadOnlyDictionary<string, string>? weightMap)
    {
        DirectoryPath = path;
        Config = config;
        Generation = generation;
        WeightFiles = weightFiles;
        WeightMap = weightMap;
    }

    public string DirectoryPath { get; }

    public Qwen3Config Config { get; }

    public GenerationConfig Generation { get; }

    /// <summary>Full paths of the safetensors files, in shard order.</summary>
    public IReadOnlyList<string> WeightFiles { get; }

    /// <summary>Tensor key → shard file name, from the index (null for a single-file checkpoint).</summary>
    public IReadOnlyDictionary<string, string>? WeightMap { get; }

    /// <summary>tokenizer.json's path when the directory has one.</summary>
    /// <exception cref="ModelFormatException">tokenizer.json is a dangling link, a link loop or a directory.</exception>
    public string? TokenizerJsonPath => ModelFile.TryResolve(Path.Combine(DirectoryPath, "tokenizer.json")) is null ? null : Path.Combine(DirectoryPath, "tokenizer.json");

    /// <exception cref="ModelFormatException">Missing directory/config/weights, malformed JSON, or an index naming a missing shard.</exception>
    public static ModelDirectory Open(string directory)
    {
        if (!Directory.Exists(directory))
        {
            throw new ModelFormatException(directory, null, "model directory not found");
        }

        Qwen3Config config = Qwen3Config.Load(directory);
        GenerationConfig generation = GenerationConfig.Load(directory);

        string indexPath = Path.Combine(directory, IndexFileName);
        if (ModelFile.TryResolve(indexPath) is not null)
        {
            Dictionary<string, string> map = ReadIndex(indexPath);
            var shards = new List<string>();
            foreach (string shard in map.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
            {
                if (shard.Contains('/') || shard.Contains('\\') || shard == ".." || shard.Length == 0)
                {
                    throw new ModelFormatException(indexPath, null, $"weight_map names '{shard}', which is not a file name in this directory");
                }

                string shardPath = Path.Combine(directory, shard);
                if (ModelFile.TryResolve(shardPath) is null)
                {
                    string example = map.First(kv => kv.Value == shard).Key;
                    throw new ModelFormatException(indexPath, example, $"weight_map names shard '{shard}', which does not exist in {directory}");
                }

                shards.Add(shardPath);
            }

            if (shards.Count == 0)
            {
                throw new ModelFormatException(indexPath, "weight_map", "is empty");
            }

            return new ModelDirectory(directory, config, generation, shards, map);
        }

        string single = Path.Combine(directory, SingleFileName);
        if (ModelFile.TryResolve(single) is not null)
        {
            return new ModelDirectory(directory, config, generation, [single], null);
        }

        throw new ModelFormatException(directory, null, $"no weights: expected {SingleFileName} or {IndexFileName}");
    }

    private static Dictionary<string, string> ReadIndex(string indexPath)
    {
        try
        {
            using JsonDocument doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            if (doc.RootElement.ValueKind != JsonValueKind.Object
                || !doc.RootElement.TryGetProperty("weight_map", out JsonElement weightMap)
                || weightMap.ValueKind != JsonValueKind.Object)
            {
                throw new ModelFormatException(indexPath, "weight_map", "missing: the index must be an object with a 'weight_map' object");
            }

            var map = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (JsonProperty p in weightMap.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String)
                {
                    throw new ModelFormatException(indexPath, p.Name, "weight_map values must be shard file names (strings)");
                }

                map[p.Name] = p.Value.GetString()!;
            }

            return map;
        }
        catch (JsonException ex)
        {
            throw new ModelFormatException(indexPath, null, $"invalid JSON: {ex.Message}", ex);
        }
    }
}
