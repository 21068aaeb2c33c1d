using Qwen3Sharp.Hub;

namespace Qwen3Sharp.Tests.Hub;

public sealed class HubClientTests : IAsyncLifetime
{
    private FakeHub _hub = null!;
    private readonly TempDir _cache = new();
    private readonly Dictionary<string, byte[]> _files = HubTestModel.Files();
    private FakeRepo _repo = null!;

    public async Task InitializeAsync()
    {
        _hub = await FakeHub.StartAsync();
        _repo = _hub.AddRepo(HubTestModel.RepoId, _files);
    }

    public async Task DisposeAsync()
    {
        await _hub.DisposeAsync();
        _cache.Dispose();
    }

    private string Commit => _repo.Branches["main"];

    private HubSettings Settings(string? token = null, bool offline = false) =>
        new() { CacheDir = _cache.Path, Endpoint = _hub.Endpoint, Token = token, Offline = offline };

    private static HubClientOptions FastRetries(int retries) => new() { MaxRetries = retries, RetryDelay = TimeSpan.Zero };

    private string RepoDir => HubCache.RepoDir(_cache.Path, HubTestModel.RepoId);

    [Fact]
    public async Task PullAsync_FreshCache_WritesHuggingFaceLayoutWithRelativeSymlinks()
    {
        using var client = new HubClient(Settings());
        var progress = new RecordingProgress();
        PullResult result = await client.PullAsync(HubTestModel.RepoId, progress: progress);

        Assert.Equal(Commit, result.Commit);
        Assert.Equal(Path.Combine(RepoDir, "snapshots", Commit), result.SnapshotDir);
        Assert.Equal(Commit, File.ReadAllText(Path.Combine(RepoDir, "refs", "main")));
        Assert.Equal(HubTestModel.PulledNames.Order(), result.Files.Select(f => f.Name).Order());
        Assert.All(result.Files, f => Assert.Equal(PulledFileSource.Downloaded, f.Source));
        foreach (string name in HubTestModel.PulledNames)
        {
            string pointer = Path.Combine(result.SnapshotDir, name);
            byte[] expected = _files[name];
            string etag = name.EndsWith(".safetensors", StringComparison.Ordinal) ? FakeHub.Sha256(expected) : FakeHub.GitBlobId(expected);
            Assert.Equal($"../../blobs/{etag}", new FileInfo(pointer).LinkTarget);
            Assert.Equal(expected, File.ReadAllBytes(pointer));
            Assert.Equal(expected, File.ReadAllBytes(Path.Combine(RepoDir, "blobs", etag)));
            Assert.Contains($"done {name} {expected.Length} Downloaded", progress.Events);
            Assert.Equal(expected.Length, progress.LastBytes[name]);
        }
        Assert.False(File.Exists(Path.Combine(result.SnapshotDir, "README.md")));
        Assert.False(Directory.Exists(Path.Combine(result.SnapshotDir, "onnx")));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(RepoDir, "blobs"), "*.incomplete"));
        Assert.True(HubCache.IsCompleteSnapshot(result.SnapshotDir));
        Assert.Equal(_files.Where(f => HubTestModel.PulledNames.Contains(f.Key)).Sum(f => (long)f.Value.Length), result.DownloadedBytes);
    }

    [Fact]
    public async Task PullAsync_SecondPull_DownloadsNothing()
    {
        using var client = new HubClient(Settings());
        await client.PullAsync(HubTestModel.RepoId);
        int contentRequests = _hub.ContentRequests.Count();
        int headRequests = _hub.Requests.Count(r => r.Method == "HEAD");

        PullResult second = await client.PullAsync(HubTestModel.RepoId);

        Assert.All(second.Files, f => Assert.Equal(PulledFileSource.Cached, f.Source));
        Assert.Equal(0, second.DownloadedBytes);
        Assert.Equal(contentRequests, _hub.ContentRequests.Count());
        Assert.Equal(headRequests, _hub.Requests.Count(r => r.Method == "HEAD"));
    }

    [Fact]
    public async Task PullAsync_ConnectionCutWithoutRetries_FailsWithResumeHintAndNextPullResumes()
    {
        const string shard = "model-00001-of-00002.safetensors";
        _hub.DropConnection(shard, afterBytes: 200_000);
        using (var failing = new HubClient(Settings(), FastRetries(0)))
        {
            HubException e = await Assert.ThrowsAsync<HubException>(() => failing.PullAsync(HubTestModel.RepoId));
            Assert.Equal(HubErrorKind.ConnectionInterrupted, e.Kind);
            Assert.Equal(shard, e.FileName);
            Assert.Contains("resume", e.Message);
        }
        string partial = Path.Combine(RepoDir, "blobs", FakeHub.Sha256(_files[shard]) + ".incomplete");
        long kept = new FileInfo(partial).Length;
        Assert.InRange(kept, 1, _files[shard].Length - 1);

        using var client = new HubClient(Settings(), FastRetries(0));
        var progress = new RecordingProgress();
        PullResult result = await client.PullAsync(HubTestModel.RepoId, progress: progress);

        Assert.Contains(_hub.ContentRequests, r => r.Path.Contains(shard) && r.Range == $"bytes={kept}-");
        Assert.Contains($"start {shard} {_files[shard].Length} {kept}", progress.Events);
        Assert.Equal(_files[shard], File.ReadAllBytes(Path.Combine(result.SnapshotDir, shard)));
        Assert.False(File.Exists(partial));
        Assert.Equal(_files[shard].Length - kept, result.Files.Single(f => f.Name == shard).DownloadedBytes);
    }

    [Fact]
    public async Task PullAsync_ConnectionCutWithRetries_ResumesWithRangeInOnePull()
    {
        const string shard = "model-00002-of-00002.safetensors";
        _hub.DropConnection(shard, afterBytes: 100_000, times: 2);
        using var client = new HubClient(Settings(), FastRetries(3));

        PullResult result = await client.PullAsync(HubTestModel.RepoId);

        Assert.Equal(_files[shard], File.ReadAllBytes(Path.Combine(result.SnapshotDir, shard)));
        Assert.Equal(2, _hub.ContentRequests.Count(r => r.Path.Contains(shard) && r.Range is not null));
    }

    [Fact]
    public async Task PullAsync_CorruptLfsBytes_ThrowsChecksumMismatchAndLeavesNoBlob()
    {
        const string shard = "model-00001-of-00002.safetensors";
        _hub.Corrupt(shard);
        using var client = new HubClient(Settings());

        HubException e = await Assert.ThrowsAsync<HubException>(() => client.PullAsync(HubTestModel.RepoId));

        Assert.Equal(HubErrorKind.ChecksumMismatch, e.Kind);
        Assert.Contains("sha256", e.Message);
        Assert.Contains(FakeHub.Sha256(_files[shard]), e.Message);
        string blob = Path.Combine(RepoDir, "blobs", FakeHub.Sha256(_files[shard]));
        Assert.False(File.Exists(blob));
        Assert.False(File.Exists(blob + ".incomplete"));
        Assert.False(File.Exists(Path.Combine(RepoDir, "snapshots", Commit, shard)));
    }

    [Fact]
    public async Task PullAsync_CorruptRegularFile_ThrowsChecksumMismatchOnGitBlobId()
    {
        _hub.Corrupt("tokenizer.json");
        using var client = new HubClient(Settings());

        HubException e = await Assert.ThrowsAsync<HubException>(() => client.PullAsync(HubTestModel.RepoId));

        Assert.Equal(HubErrorKind.ChecksumMismatch, e.Kind);
        Assert.Equal("tokenizer.json", e.FileName);
        string blob = Path.Combine(RepoDir, "blobs", FakeHub.GitBlobId(_files["tokenizer.json"]));
        Assert.False(File.Exists(blob));
        Assert.False(File.Exists(blob + ".incomplete"));
    }

    [Fact]
    public async Task PullAsync_Offline_UsesCacheWithoutRequests()
    {
        using (var online = new HubClient(Settings())) await online.PullAsync(HubTestModel.RepoId);
        int requests = _hub.Requests.Count;
        using var offline = new HubClient(Settings(offline: true));

        PullResult result = await offline.PullAsync(HubTestModel.RepoId);

        Assert.Equal(Commit, result.Commit);
        Assert.Equal(HubTestModel.PulledNames.Order(), result.Files.Select(f => f.Name).Order());
        Assert.Equal(requests, _hub.Requests.Count);
    }

    [Fact]
    public async Task PullAsync_OfflineWithoutCache_ThrowsOfflineNotCached()
    {
        using var offline = new HubClient(Settings(offline: true));

        HubException e = await Assert.ThrowsAsync<HubException>(() => offline.PullAsync(HubTestModel.RepoId));

        Assert.Equal(HubErrorKind.OfflineNotCached, e.Kind);
        Assert.Contains("HF_HUB_OFFLINE", e.Message);
        Assert.Empty(_hub.Requests);
    }

    [Fact]
    public async Task PullAsync_PrivateRepoWithoutToken_ThrowsUnauthorizedMentioningHfToken()
    {
        _hub.RequiredToken = "hf_secret";
        using var client = new HubClient(Settings());

        HubException e = await Assert.ThrowsAsync<HubException>(() => client.PullAsync(HubTestModel.RepoId));

        Assert.Equal(HubErrorKind.Unauthorized, e.Kind);
        Assert.Equal(401, e.StatusCode);
        Assert.Contains("HF_TOKEN", e.Message);
        Assert.Contains(HubTestModel.RepoId, e.Message);
    }

    [Fact]
    public async Task PullAsync_WithToken_SendsBearerToHubButNotToCdn()
    {
        _hub.RequiredToken = "hf_secret";
        using var client = new HubClient(Settings(token: "hf_secret"));

        PullResult result = await client.PullAsync(HubTestModel.RepoId);

        Assert.Equal(HubTestModel.PulledNames.Length, result.Files.Count);
        Assert.All(_hub.Requests.Where(r => !r.Path.StartsWith("/cdn/", StringComparison.Ordinal)),
            r => Assert.Equal("Bearer hf_secret", r.Authorization));
        FakeRequest[] cdn = _hub.Requests.Where(r => r.Path.StartsWith("/cdn/", StringComparison.Ordinal)).ToArray();
        Assert.Equal(2, cdn.Length);
        Assert.All(cdn, r => Assert.Null(r.Authorization));
    }

    [Fact]
    public async Task PullAsync_UnknownRepo_ThrowsNotFoundNamingRepo()
    {
        using var client = new HubClient(Settings());

        HubException e = await Assert.ThrowsAsync<HubException>(() => client.PullAsync("Qwen/Does-Not-Exist"));

        Assert.Equal(HubErrorKind.NotFound, e.Kind);
        Assert.Equal(404, e.StatusCode);
        Assert.Contains("Repository Qwen/Does-Not-Exist was not found", e.Message);
    }

    [Fact]
    public async Task PullAsync_UnknownRevision_ThrowsNotFoundNamingRevision()
    {
        using var client = new HubClient(Settings());

        HubException e = await Assert.ThrowsAsync<HubException>(() => client.PullAsync(HubTestModel.RepoId, "v9"));

        Assert.Equal(HubErrorKind.NotFound, e.Kind);
        Assert.Contains("Revision 'v9'", e.Message);
    }

    [Fact]
    public async Task PullAsync_RenamedRepo_FollowsRelativeRedirects()
    {
        _hub.Rename("Qwen/Old-Name", HubTestModel.RepoId);
        using var client = new HubClient(Settings());

        PullResult result = await client.PullAsync("Qwen/Old-Name");

        Assert.Equal(_files["config.json"], File.ReadAllBytes(Path.Combine(result.SnapshotDir, "config.json")));
        Assert.StartsWith(HubCache.RepoDir(_cache.Path, "Qwen/Old-Name"), result.SnapshotDir);
    }

    [Fact]
    public async Task PullAsync_BranchSharingBlobs_LinksExistingBlobsWithoutDownloading()
    {
        using var client = new HubClient(Settings());
        await client.PullAsync(HubTestModel.RepoId);
        var v2 = new Dictionary<string, byte[]>(_files) { ["config.json"] = "{\"model_type\":\"qwen3\",\"v\":2}"u8.ToArray() };
        string commit2 = _repo.AddCommit(FakeHub.RandomCommit(), v2, branch: "v2");
        int contentBefore = _hub.ContentRequests.Count();

        PullResult result = await client.PullAsync(HubTestModel.RepoId, "v2");

        Assert.Equal(commit2, result.Commit);
        Assert.Equal(commit2, File.ReadAllText(Path.Combine(RepoDir, "refs", "v2")));
        Assert.Equal(PulledFileSource.Downloaded, result.Files.Single(f => f.Name == "config.json").Source);
        Assert.All(result.Files.Where(f => f.Name != "config.json"), f => Assert.Equal(PulledFileSource.LinkedExistingBlob, f.Source));
        Assert.Equal(contentBefore + 1, _hub.ContentRequests.Count());
        Assert.Equal(v2["config.json"], File.ReadAllBytes(Path.Combine(result.SnapshotDir, "config.json")));
    }

    [Fact]
    public async Task PullAsync_TwoConcurrentPullsOfOneRepo_DownloadEachFileOnce()
    {
        using var a = new HubClient(Settings());
        using var b = new HubClient(Settings());

        PullResult[] results = await Task.WhenAll(a.PullAsync(HubTestModel.RepoId), b.PullAsync(HubTestModel.RepoId));

        foreach (string name in HubTestModel.PulledNames)
        {
            Assert.Equal(1, _hub.ContentRequests.Count(r => r.Path.EndsWith("/" + name, StringComparison.Ordinal)));
            Assert.All(results, r => Assert.Equal(_files[name], File.ReadAllBytes(Path.Combine(r.SnapshotDir, name))));
        }
    }

    [Fact]
    public async Task PullAsync_CommitShaRevision_DoesNotWriteRef()
    {
        using var client = new HubClient(Settings());

        PullResult result = await client.PullAsync(HubTestModel.RepoId, Commit);

        Assert.Equal(Commit, result.Commit);
        Assert.False(Directory.Exists(Path.Combine(RepoDir, "refs")));
    }

    [Fact]
    public async Task PullAsync_DiskFull_ThrowsDiskFullWithAdvice()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists("/dev/full")) return; // ENOSPC on demand exists only on Linux
        const string shard = "model-00001-of-00002.safetensors";
        string blobs = Path.Combine(RepoDir, "blobs");
        Directory.CreateDirectory(blobs);
        // the partial download of one shard is a link to /dev/full, whose writes fail with ENOSPC
        File.CreateSymbolicLink(Path.Combine(blobs, FakeHub.Sha256(_files[shard]) + ".incomplete"), "/dev/full");
        using var client = new HubClient(Settings());

        HubException e = await Assert.ThrowsAsync<HubException>(() => client.PullAsync(HubTestModel.RepoId));

        Assert.Equal(HubErrorKind.DiskFull, e.Kind);
        Assert.Equal(shard, e.FileName);
        Assert.Contains("disk is full", e.Message);
        Assert.Contains("HF_HOME", e.Message);
    }

    [Fact]
    public void IsDiskFull_WriteToDevFull_IsRecognised()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists("/dev/full")) return; // ENOSPC on demand exists only on Linux
        IOException e = Assert.ThrowsAny<IOException>(() =>
        {
            using var stream = new FileStream("/dev/full", FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0);
            stream.Write(new byte[4096]);
        });
        Assert.True(HubClient.IsDiskFull(e), $"HResult {e.HResult}: {e.Message}");
        Assert.False(HubClient.IsDiskFull(new IOException("Connection reset by peer")));
    }
}
