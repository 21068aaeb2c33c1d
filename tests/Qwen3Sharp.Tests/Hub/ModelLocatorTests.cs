using Qwen3Sharp.Hub;

namespace Qwen3Sharp.Tests.Hub;

public sealed class ModelLocatorTests : IAsyncLifetime
{
    private FakeHub _hub = null!;
    private readonly TempDir _cache = new();

    public async Task InitializeAsync()
    {
        _hub = await FakeHub.StartAsync();
        _hub.AddRepo(HubTestModel.RepoId, HubTestModel.Files());
    }

    public async Task DisposeAsync()
    {
        await _hub.DisposeAsync();
        _cache.Dispose();
    }

    private HubSettings Settings(bool offline = false) =>
        new() { CacheDir = _cache.Path, Endpoint = _hub.Endpoint, Offline = offline };

    [Fact]
    public async Task ResolveAsync_ExistingDirectory_ReturnsItWithoutNetwork()
    {
        using var dir = new TempDir();
        var locator = new ModelLocator(Settings());

        string resolved = await locator.ResolveAsync(dir.Path);

        Assert.Equal(Path.GetFullPath(dir.Path), resolved);
        Assert.Empty(_hub.Requests);
    }

    [Fact]
    public async Task ResolveAsync_HubIdNotCached_PullsThenServesFromCache()
    {
        var locator = new ModelLocator(Settings());

        string first = await locator.ResolveAsync(HubTestModel.RepoId);
        int requests = _hub.Requests.Count;
        string second = await locator.ResolveAsync(HubTestModel.RepoId);

        Assert.True(HubCache.IsCompleteSnapshot(first));
        Assert.Equal(first, second);
        Assert.Equal(requests, _hub.Requests.Count); // the cached snapshot needs no network at all
    }

    [Fact]
    public async Task ResolveAsync_IncompleteSnapshot_PullsTheMissingFiles()
    {
        var locator = new ModelLocator(Settings());
        string dir = await locator.ResolveAsync(HubTestModel.RepoId);
        File.Delete(Path.Combine(dir, "model-00002-of-00002.safetensors"));
        Assert.False(HubCache.IsCompleteSnapshot(dir));

        string again = await locator.ResolveAsync(HubTestModel.RepoId);

        Assert.Equal(dir, again);
        Assert.True(HubCache.IsCompleteSnapshot(again));
    }

    [Fact]
    public async Task ResolveAsync_OfflineAndCached_ReturnsSnapshot()
    {
        string online = await new ModelLocator(Settings()).ResolveAsync(HubTestModel.RepoId + "@main");
        int requests = _hub.Requests.Count;

        string offline = await new ModelLocator(Settings(offline: true)).ResolveAsync(HubTestModel.RepoId);

        Assert.Equal(online, offline);
        Assert.Equal(requests, _hub.Requests.Count);
    }

    [Fact]
    public async Task ResolveAsync_OfflineAndMissing_ThrowsOfflineNotCached()
    {
        var locator = new ModelLocator(Settings(offline: true));

        HubException e = await Assert.ThrowsAsync<HubException>(() => locator.ResolveAsync(HubTestModel.RepoId));

        Assert.Equal(HubErrorKind.OfflineNotCached, e.Kind);
        Assert.Contains("qwen3 pull Qwen/Qwen3-Test", e.Message);
        Assert.Empty(_hub.Requests);
    }

    [Fact]
    public async Task ResolveAsync_NeitherDirectoryNorHubId_ThrowsInvalidReference()
    {
        var locator = new ModelLocator(Settings());

        HubException e = await Assert.ThrowsAsync<HubException>(() => locator.ResolveAsync("./no/such/dir"));

        Assert.Equal(HubErrorKind.InvalidReference, e.Kind);
        Assert.Contains("neither an existing directory or GGUF file nor a hub model id", e.Message);
    }
}
