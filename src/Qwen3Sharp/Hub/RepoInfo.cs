using System.Text.Json.Serialization;

namespace Qwen3Sharp.Hub;

/// <summary>
/// The answer of <c>GET {endpoint}/api/models/{repo}/revision/{revision}?blobs=true</c>: the commit the revision
/// points to and the files of that commit.
/// </summary>
public sealed record RepoInfo
{
    /// <summary>The repository id as the hub spells it.</summary>
    [JsonPropertyName("id")] public string? Id { get; init; }

    /// <summary>The 40-hex commit sha the requested revision resolved to.</summary>
    [JsonPropertyName("sha")] public string? Sha { get; init; }

    [JsonPropertyName("siblings")] public IReadOnlyList<RepoSibling> Siblings { get; init; } = [];
}

/// <summary>One file of a repository commit.</summary>
public sealed record RepoSibling
{
    /// <summary>The path of the file inside the repository, '/'-separated.</summary>
    [JsonPropertyName("rfilename")] public string RFileName { get; init; } = "";

    /// <summary>The git blob id (sha1 of "blob {size}\0" + content) of the file or, for LFS files, of its pointer.</summary>
    [JsonPropertyName("blobId")] public string? BlobId { get; init; }

    /// <summary>The file size in bytes (with <c>?blobs=true</c>).</summary>
    [JsonPropertyName("size")] public long? Size { get; init; }

    /// <summary>Present for LFS files (with <c>?blobs=true</c>): the sha256 and size of the real content.</summary>
    [JsonPropertyName("lfs")] public RepoLfsInfo? Lfs { get; init; }
}

public sealed record RepoLfsInfo
{
    [JsonPropertyName("sha256")] public string Sha256 { get; init; } = "";

    [JsonPropertyName("size")] public long Size { get; init; }
}

[JsonSerializable(typeof(RepoInfo))]
[JsonSourceGenerationOptions(PropertyNameCaseInsensitive = false)]
internal sealed partial class HubJsonContext : JsonSerializerContext;
