using System.Text.Json;
using Qwen3Sharp.Loading;

namespace Qwen3Sharp.Hub;

/// <summary>
/// The huggingface_hub cache layout, shared with Python tools:
/// <code>
/// {cacheDir}/models--ORG--NAME/
///   blobs/{etag}                      file contents; etag = sha256 for LFS files, git blob sha1 otherwise
///   blobs/{etag}.incomplete           a download in progress (resumed with a Range request)
///   refs/{revision}                   the commit sha the branch or tag pointed to, no newline
///   snapshots/{commit}/{file}         relative symlink to ../../blobs/{etag}
/// {cacheDir}/.locks/models--ORG--NAME/{etag}.lock
/// </code>
/// </summary>
public static class HubCache
{
    /// <summary><c>models--ORG--NAME</c>: huggingface_hub's repo_folder_name for a model repository.</summary>
    public static string RepoFolderName(string repoId) => "models--" + repoId.Replace("/", "--", StringComparison.Ordinal);

    public static string RepoDir(string cacheDir, string repoId) => Path.Combine(cacheDir, RepoFolderName(repoId));

    public static string BlobPath(string cacheDir, string repoId, string etag) =>
        Path.Combine(RepoDir(cacheDir, repoId), "blobs", etag);

    public static string SnapshotDir(string cacheDir, string repoId, string commit) =>
        Path.Combine(RepoDir(cacheDir, repoId), "snapshots", commit);

    public static string RefPath(string cacheDir, string repoId, string revision) =>
        Path.Combine(RepoDir(cacheDir, repoId), "refs", revision.Replace('/', Path.DirectorySeparatorChar));

    public static string LockPath(string cacheDir, string repoId, string etag) =>
        Path.Combine(cacheDir, ".locks", RepoFolderName(repoId), etag + ".lock");

    /// <summary>
    /// The commit a revision resolves to in the cache: the revision itself when it is a commit sha, otherwise the
    /// content of refs/{revision}. Null when the cache has no such ref.
    /// </summary>
    public static string? TryResolveCommit(string cacheDir, ModelReference model)
    {
        if (ModelReference.IsCommitHash(model.Revision)) return model.Revision;
        string refPath = RefPath(cacheDir, model.RepoId, model.Revision);
        try
        {
            if (!File.Exists(refPath)) return null;
            string commit = File.ReadAllText(refPath).Trim();
            return commit.Length > 0 ? commit : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>The snapshot directory for <paramref name="model"/> when it is in the cache, else null.</summary>
    public static string? TryGetSnapshotDir(string cacheDir, ModelReference model)
    {
        string? commit = TryResolveCommit(cacheDir, model);
        if (commit is null) return null;
        string dir = SnapshotDir(cacheDir, model.RepoId, commit);
        return Directory.Exists(dir) ? dir : null;
    }

    /// <summary>
    /// True when <paramref name="dir"/> holds what inference needs: config.json, tokenizer.json and the weights
    /// (every shard named by model.safetensors.index.json, or at least one *.safetensors file). A pull that was
    /// interrupted leaves an incomplete snapshot; dangling symlinks (a blob deleted to free space) count as missing.
    /// </summary>
    public static bool IsCompleteSnapshot(string dir) => MissingFiles(dir).Count == 0;

    /// <summary>
    /// What keeps <paramref name="dir"/> from being a complete snapshot, one line per file, naming the file and, for
    /// a link that leads nowhere, its target. Empty when complete.
    /// </summary>
    public static IReadOnlyList<string> MissingFiles(string dir)
    {
        var missing = new List<string>();
        void Require(string name)
        {
            string path = Path.Combine(dir, name);
            try
            {
                if (ModelFile.TryResolve(path) is null) missing.Add($"{name}: missing");
            }
            catch (ModelFormatException e)
            {
                missing.Add($"{name}: {e.Reason}");
            }
        }

        Require("config.json");
        Require("tokenizer.json");
        string index = Path.Combine(dir, "model.safetensors.index.json");
        if (!ModelFile.IsFile(index))
        {
            if (ModelFile.EnumerateFiles(dir, "*.safetensors").Any()) return missing;
            if (Directory.EnumerateFiles(dir, "*.safetensors").Any())
                foreach (string f in Directory.EnumerateFiles(dir, "*.safetensors").Order(StringComparer.Ordinal)) Require(Path.GetFileName(f));
            else
                missing.Add("model.safetensors (or model.safetensors.index.json and its shards): missing");
            return missing;
        }
        try
        {
            using FileStream stream = File.OpenRead(index);
            using JsonDocument doc = JsonDocument.Parse(stream);
            var shards = new SortedSet<string>(StringComparer.Ordinal);
            if (doc.RootElement.ValueKind == JsonValueKind.Object
                && doc.RootElement.TryGetProperty("weight_map", out JsonElement map) && map.ValueKind == JsonValueKind.Object)
            {
                foreach (JsonProperty entry in map.EnumerateObject())
                {
                    if (entry.Value.ValueKind == JsonValueKind.String) shards.Add(entry.Value.GetString()!);
                }
            }
            if (shards.Count == 0) missing.Add("model.safetensors.index.json: no weight_map naming the shards");
            foreach (string shard in shards) Require(shard);
        }
        catch (Exception e) when (e is JsonException or IOException)
        {
            missing.Add($"model.safetensors.index.json: unreadable ({e.Message})");
        }
        return missing;
    }
}
