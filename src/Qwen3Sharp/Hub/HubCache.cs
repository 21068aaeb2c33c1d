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
    /// interrupted leaves an incomplete snapshot; dangling symlinks count as missing.
    /// </summary>
    public static bool IsCompleteSnapshot(string dir)
    {
        if (!ModelFile.IsFile(Path.Combine(dir, "config.json")) || !ModelFile.IsFile(Path.Combine(dir, "tokenizer.json")))
            return false;
        string index = Path.Combine(dir, "model.safetensors.index.json");
        if (!ModelFile.IsFile(index))
            return ModelFile.EnumerateFiles(dir, "*.safetensors").Any();
        try
        {
            using FileStream stream = File.OpenRead(index);
            using JsonDocument doc = JsonDocument.Parse(stream);
            if (!doc.RootElement.TryGetProperty("weight_map", out JsonElement map) || map.ValueKind != JsonValueKind.Object)
                return false;
            var shards = new HashSet<string>(StringComparer.Ordinal);
            foreach (JsonProperty entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String) return false;
                shards.Add(entry.Value.GetString()!);
            }
            return shards.Count > 0 && shards.All(shard => ModelFile.IsFile(Path.Combine(dir, shard)));
        }
        catch (Exception e) when (e is JsonException or IOException)
        {
            return false;
        }
    }
}
