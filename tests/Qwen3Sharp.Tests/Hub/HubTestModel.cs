using System.Text;

namespace Qwen3Sharp.Tests.Hub;

/// <summary>A small fake checkpoint: two LFS shards, JSON and tokenizer files, and files pull must skip.</summary>
internal static class HubTestModel
{
    public const string RepoId = "Qwen/Qwen3-Test";

    public static Dictionary<string, byte[]> Files(int seed = 1)
    {
        var random = new Random(seed);
        byte[] Bytes(int n)
        {
            var b = new byte[n];
            random.NextBytes(b);
            return b;
        }

        return new Dictionary<string, byte[]>(StringComparer.Ordinal)
        {
            ["config.json"] = Encoding.UTF8.GetBytes($"{{\"model_type\":\"qwen3\",\"seed\":{seed}}}"),
            ["generation_config.json"] = Encoding.UTF8.GetBytes("{\"temperature\":0.6}"),
            ["tokenizer.json"] = Encoding.UTF8.GetBytes("{\"model\":{\"type\":\"BPE\"}}" + new string(' ', 20_000)),
            ["tokenizer_config.json"] = Encoding.UTF8.GetBytes("{\"chat_template\":\"{{ messages }}\"}"),
            ["merges.txt"] = Encoding.UTF8.GetBytes("#version: 0.2\nĠ t\n"),
            ["model.safetensors.index.json"] = Encoding.UTF8.GetBytes(
                "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"model-00002-of-00002.safetensors\"}}"),
            ["model-00001-of-00002.safetensors"] = Bytes(600_000),
            ["model-00002-of-00002.safetensors"] = Bytes(250_000),
            ["README.md"] = Encoding.UTF8.GetBytes("# not needed"),
            ["onnx/model.safetensors"] = Bytes(1000),
        };
    }

    public static readonly string[] PulledNames =
    [
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "merges.txt",
        "model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
    ];
}

/// <summary>Records progress callbacks (thread-safe).</summary>
internal sealed class RecordingProgress : Qwen3Sharp.Hub.IPullProgress
{
    private readonly Lock _lock = new();

    public List<string> Events { get; } = [];

    public Dictionary<string, long> LastBytes { get; } = new(StringComparer.Ordinal);

    public void OnPlan(string repoId, string commit, IReadOnlyList<Qwen3Sharp.Hub.PullFile> files) =>
        Add($"plan {files.Count}");

    public void OnFileStarted(string fileName, long? totalBytes, long resumedBytes) =>
        Add($"start {fileName} {totalBytes} {resumedBytes}");

    public void OnFileProgress(string fileName, long bytesDone, long? totalBytes)
    {
        lock (_lock) LastBytes[fileName] = bytesDone;
    }

    public void OnFileCompleted(string fileName, long bytes, Qwen3Sharp.Hub.PulledFileSource source) =>
        Add($"done {fileName} {bytes} {source}");

    private void Add(string e)
    {
        lock (_lock) Events.Add(e);
    }
}
