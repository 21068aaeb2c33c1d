namespace Qwen3Sharp.Hub;

/// <summary>How a file of a pull was satisfied.</summary>
public enum PulledFileSource
{
    /// <summary>The snapshot already had the file.</summary>
    Cached,
    /// <summary>The blob was in the cache (e.g. fetched by a Python tool for another revision); only the link was made.</summary>
    LinkedExistingBlob,
    /// <summary>Bytes were downloaded (possibly resuming an earlier partial download).</summary>
    Downloaded,
}

/// <summary>One file of a pull, as planned from the repository metadata.</summary>
/// <param name="Name">Path inside the repository, e.g. <c>model-00001-of-00002.safetensors</c>.</param>
/// <param name="Size">Size in bytes when the hub published it.</param>
public readonly record struct PullFile(string Name, long? Size);

/// <summary>
/// Receives progress of <see cref="HubClient.PullAsync"/>. Files download in parallel, so the methods are called
/// from several threads at once; implementations must be thread-safe. Byte callbacks come at most every 64 KiB.
/// </summary>
public interface IPullProgress
{
    /// <summary>The list of files the pull will make sure are present, before any of them starts.</summary>
    void OnPlan(string repoId, string commit, IReadOnlyList<PullFile> files);

    /// <summary>A download starts; <paramref name="resumedBytes"/> &gt; 0 when a partial download is continued.</summary>
    void OnFileStarted(string fileName, long? totalBytes, long resumedBytes);

    /// <summary><paramref name="bytesDone"/> of <paramref name="totalBytes"/> are on disk (including resumed bytes).</summary>
    void OnFileProgress(string fileName, long bytesDone, long? totalBytes);

    /// <summary>The file is in the snapshot, downloaded or found in the cache.</summary>
    void OnFileCompleted(string fileName, long bytes, PulledFileSource source);
}

/// <summary>The result of a pull.</summary>
/// <param name="SnapshotDir">The local directory <c>snapshots/{commit}</c> holding the files (symlinks).</param>
public sealed record PullResult(string RepoId, string Revision, string Commit, string SnapshotDir,
    IReadOnlyList<PulledFile> Files)
{
    /// <summary>What <c>--model</c> loads: the snapshot directory, or the GGUF file (the first part of a split one) of a quantization pull.</summary>
    public string ModelPath { get; init; } = SnapshotDir;

    public long DownloadedBytes => Files.Sum(f => f.DownloadedBytes);
}

/// <summary>One file of a finished pull.</summary>
public readonly record struct PulledFile(string Name, long Size, PulledFileSource Source, long DownloadedBytes);
