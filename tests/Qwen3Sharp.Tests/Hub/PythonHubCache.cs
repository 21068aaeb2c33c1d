using System.Security.Cryptography;
using Qwen3Sharp.Hub;

namespace Qwen3Sharp.Tests.Hub;

/// <summary>
/// Lays out a model in a cache directory by hand, exactly as huggingface_hub's <c>snapshot_download</c> /
/// <c>hf_hub_download</c> do (file_download.py): <c>blobs/{etag}</c> (sha256 for LFS files, the git blob sha1
/// otherwise), <c>snapshots/{commit}/{file}</c> as relative links <c>../../blobs/{etag}</c>, <c>refs/{revision}</c>
/// holding the commit without a newline, <c>.no_exist/{commit}/{file}</c> empty markers for files the hub answered 404
/// to, and <c>.locks/models--ORG--NAME/</c>. Written independently of <see cref="HubClient"/>.
/// </summary>
internal static class PythonHubCache
{
    public static string Write(string cacheDir, string repoId, string commit, IReadOnlyDictionary<string, byte[]> files,
        IEnumerable<string> refs, IEnumerable<string> noExist)
    {
        string repo = Path.Combine(cacheDir, "models--" + repoId.Replace("/", "--", StringComparison.Ordinal));
        string snapshot = Path.Combine(repo, "snapshots", commit);
        Directory.CreateDirectory(Path.Combine(repo, "blobs"));
        Directory.CreateDirectory(snapshot);
        Directory.CreateDirectory(Path.Combine(cacheDir, ".locks", Path.GetFileName(repo)));
        foreach (var (name, data) in files)
        {
            string etag = FakeRepo.IsLfs(name) ? FakeHub.Sha256(data) : FakeHub.GitBlobId(data);
            File.WriteAllBytes(Path.Combine(repo, "blobs", etag), data);
            File.CreateSymbolicLink(Path.Combine(snapshot, name), "../../blobs/" + etag);
        }

        foreach (string revision in refs)
        {
            string refPath = Path.Combine(repo, "refs", revision);
            Directory.CreateDirectory(Path.GetDirectoryName(refPath)!);
            File.WriteAllText(refPath, commit);
        }

        foreach (string name in noExist)
        {
            string marker = Path.Combine(repo, ".no_exist", commit, name);
            Directory.CreateDirectory(Path.GetDirectoryName(marker)!);
            File.WriteAllBytes(marker, []);
        }

        return snapshot;
    }

    /// <summary>Every file of a model directory, by name.</summary>
    public static Dictionary<string, byte[]> ReadModel(string directory) =>
        Directory.GetFiles(directory).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes, StringComparer.Ordinal);

    public static string Commit(char c) => new(c, 40);
}
