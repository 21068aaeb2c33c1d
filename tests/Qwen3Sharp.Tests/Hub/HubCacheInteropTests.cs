using Qwen3Sharp.Engine;
using Qwen3Sharp.Hub;
using Qwen3Sharp.Tests.TestModels;

namespace Qwen3Sharp.Tests.Hub;

/// <summary>A cache laid out the way huggingface_hub lays it out is read by us, and our pulls extend it in kind.</summary>
public sealed class HubCacheInteropTests
{
    private const string RepoId = "Qwen/Qwen3-Interop";

    [Fact]
    public async Task PythonLaidCache_ResolvesByBranchTagAndCommit_LoadsAndIsExtendedByPull()
    {
        using var cache = new TempDir();
        Dictionary<string, byte[]> files = PythonHubCache.ReadModel(TinyModel.Directory);
        string commit = PythonHubCache.Commit('c');
        string snapshot = PythonHubCache.Write(cache.Path, RepoId, commit, files, refs: ["main", "v1.0"],
            noExist: ["chat_template.jinja", "vocab.json"]);
        string repoDir = HubCache.RepoDir(cache.Path, RepoId);

        var offline = new ModelLocator(new HubSettings { CacheDir = cache.Path, Offline = true });
        Assert.Equal(snapshot, offline.TryResolveLocal(RepoId));
        Assert.Equal(snapshot, offline.TryResolveLocal(RepoId + "@v1.0"));
        Assert.Equal(snapshot, offline.TryResolveLocal(RepoId + "@" + commit));
        Assert.Null(offline.TryResolveLocal(RepoId + "@v2.0"));
        using (Qwen3Host host = Qwen3Host.Load(snapshot, new HostOptions { ThreadCount = 1, ContextSize = 128 }))
        {
            Assert.Equal(2, host.Config.NumHiddenLayers);
        }

        // the hub has the same commit under the tag: pulling it downloads nothing and keeps Python's markers
        await using FakeHub hub = await FakeHub.StartAsync();
        FakeRepo repo = hub.AddRepo(RepoId, files, commit);
        repo.Branches["v1.0"] = commit;
        var settings = new HubSettings { CacheDir = cache.Path, Endpoint = hub.Endpoint };
        using (var client = new HubClient(settings))
        {
            PullResult again = await client.PullAsync(RepoId, "v1.0");
            Assert.Equal(snapshot, again.SnapshotDir);
            Assert.All(again.Files, f => Assert.Equal(PulledFileSource.Cached, f.Source));
            Assert.Empty(hub.ContentRequests);

            // a new commit on main: a snapshot of ours next to Python's, sharing its blobs, refs/main moved
            var changed = new Dictionary<string, byte[]>(files) { ["generation_config.json"] = "{\"temperature\": 0.5}"u8.ToArray() };
            string commit2 = repo.AddCommit(PythonHubCache.Commit('d'), changed, branch: "main");
            PullResult pulled = await client.PullAsync(RepoId);
            Assert.Equal(HubCache.SnapshotDir(cache.Path, RepoId, commit2), pulled.SnapshotDir);
            Assert.Equal(PulledFileSource.Downloaded, pulled.Files.Single(f => f.Name == "generation_config.json").Source);
            Assert.All(pulled.Files.Where(f => f.Name != "generation_config.json"),
                f => Assert.Equal(PulledFileSource.LinkedExistingBlob, f.Source));
            Assert.Equal(commit2, File.ReadAllText(Path.Combine(repoDir, "refs", "main")));   // no newline, as Python writes
            Assert.Equal(commit, File.ReadAllText(Path.Combine(repoDir, "refs", "v1.0")));
            foreach (string name in changed.Keys)
            {
                string link = Path.Combine(pulled.SnapshotDir, name);
                Assert.StartsWith("../../blobs/", new FileInfo(link).LinkTarget);
                Assert.Equal(changed[name], File.ReadAllBytes(link));
            }
        }

        // we write no .no_exist markers of our own: Python's are left exactly as they were
        Assert.Equal(["chat_template.jinja", "vocab.json"],
            Directory.GetFiles(Path.Combine(repoDir, ".no_exist", commit)).Select(Path.GetFileName).Order());
        Assert.False(Directory.Exists(Path.Combine(repoDir, ".no_exist", PythonHubCache.Commit('d'))));
        Assert.Equal(PythonHubCache.Commit('d'), Path.GetFileName(new ModelLocator(settings with { Offline = true }).TryResolveLocal(RepoId)));
    }

    [Fact]
    public async Task IncompleteSnapshotOffline_NamesTheDanglingFileAndItsTarget()
    {
        using var cache = new TempDir();
        Dictionary<string, byte[]> files = PythonHubCache.ReadModel(TinyModel.Directory);
        string commit = PythonHubCache.Commit('e');
        PythonHubCache.Write(cache.Path, RepoId, commit, files, refs: ["main"], noExist: []);
        string blob = Path.Combine(HubCache.RepoDir(cache.Path, RepoId), "blobs", FakeHub.Sha256(files["model.safetensors"]));
        File.Delete(blob);   // what freeing disk space by hand does

        var locator = new ModelLocator(new HubSettings { CacheDir = cache.Path, Offline = true });
        Assert.Null(locator.TryResolveLocal(RepoId));
        HubException e = await Assert.ThrowsAsync<HubException>(() => locator.ResolveAsync(RepoId));
        Assert.Contains("model.safetensors: is a symbolic link to '../../blobs/" + Path.GetFileName(blob) + "'", e.Message);
        Assert.Contains("does not exist", e.Message);
    }
}
