using Qwen3Sharp.Hub;

namespace Qwen3Sharp.Tests.Hub;

public sealed class HubSettingsTests
{
    private static HubSettings From(params (string Name, string Value)[] vars)
    {
        var env = vars.ToDictionary(v => v.Name, v => v.Value);
        // HOME-relative defaults must not read the real token file: point HF_TOKEN_PATH nowhere unless given
        if (!env.ContainsKey("HF_TOKEN_PATH") && !env.ContainsKey("HF_HOME")) env["HF_TOKEN_PATH"] = "/nonexistent/token";
        return HubSettings.FromEnvironment(name => env.GetValueOrDefault(name));
    }

    [Fact]
    public void FromEnvironment_NothingSet_UsesHuggingFaceDefaults()
    {
        HubSettings s = From();
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        Assert.Equal(Path.Combine(home, ".cache", "huggingface", "hub"), s.CacheDir);
        Assert.Equal("https://huggingface.co", s.Endpoint);
        Assert.Null(s.Token);
        Assert.False(s.Offline);
        Assert.Equal(TimeSpan.FromSeconds(10), s.DownloadTimeout);
    }

    [Fact]
    public void FromEnvironment_HfHome_PutsHubCacheAndTokenUnderIt()
    {
        using var dir = new TempDir();
        File.WriteAllText(Path.Combine(dir.Path, "token"), "hf_from_file\n");

        HubSettings s = From(("HF_HOME", dir.Path));

        Assert.Equal(Path.Combine(dir.Path, "hub"), s.CacheDir);
        Assert.Equal("hf_from_file", s.Token);
    }

    [Fact]
    public void FromEnvironment_HfHubCacheAndToken_OverrideHfHome()
    {
        using var dir = new TempDir();
        File.WriteAllText(Path.Combine(dir.Path, "token"), "hf_from_file");
        string hub = Path.Combine(dir.Path, "elsewhere");

        HubSettings s = From(("HF_HOME", dir.Path), ("HF_HUB_CACHE", hub), ("HF_TOKEN", "hf_env"));

        Assert.Equal(hub, s.CacheDir);
        Assert.Equal("hf_env", s.Token);
    }

    [Theory]
    [InlineData("1", true)]
    [InlineData("true", true)]
    [InlineData("YES", true)]
    [InlineData("on", true)]
    [InlineData("0", false)]
    [InlineData("false", false)]
    public void FromEnvironment_HfHubOffline_ParsesLikeHuggingFaceHub(string value, bool offline) =>
        Assert.Equal(offline, From(("HF_HUB_OFFLINE", value)).Offline);

    [Fact]
    public void FromEnvironment_HfEndpointWithTrailingSlash_IsTrimmed() =>
        Assert.Equal("https://hf-mirror.com", From(("HF_ENDPOINT", "https://hf-mirror.com/")).Endpoint);

    [Fact]
    public void FromEnvironment_HfEndpointNotHttp_ThrowsInvalidConfiguration()
    {
        HubException e = Assert.Throws<HubException>(() => From(("HF_ENDPOINT", "ftp://mirror")));
        Assert.Equal(HubErrorKind.InvalidConfiguration, e.Kind);
        Assert.Contains("HF_ENDPOINT", e.Message);
    }

    [Fact]
    public async Task FromEnvironment_HfEndpointPointsAtFakeHub_PullUsesIt()
    {
        await using FakeHub hub = await FakeHub.StartAsync();
        hub.AddRepo(HubTestModel.RepoId, HubTestModel.Files());
        using var home = new TempDir();
        HubSettings s = From(("HF_HOME", home.Path), ("HF_ENDPOINT", hub.Endpoint + "/"));
        using var client = new HubClient(s);

        PullResult result = await client.PullAsync(HubTestModel.RepoId);

        Assert.StartsWith(Path.Combine(home.Path, "hub", "models--Qwen--Qwen3-Test", "snapshots"), result.SnapshotDir);
        Assert.Contains(hub.Requests, r => r.Path == $"/api/models/{HubTestModel.RepoId}/revision/main");
    }
}

public sealed class ModelReferenceTests
{
    [Theory]
    [InlineData("Qwen/Qwen3-1.7B", "Qwen/Qwen3-1.7B", "main")]
    [InlineData("Qwen/Qwen3-1.7B@v1.0", "Qwen/Qwen3-1.7B", "v1.0")]
    [InlineData("org_x/name.y@refs/pr/1", "org_x/name.y", "refs/pr/1")]
    public void TryParse_HubIds_SplitsRepoAndRevision(string text, string repo, string revision)
    {
        Assert.True(ModelReference.TryParse(text, out ModelReference r));
        Assert.Equal(repo, r.RepoId);
        Assert.Equal(revision, r.Revision);
    }

    [Theory]
    [InlineData("Qwen3-1.7B")]
    [InlineData("a/b/c")]
    [InlineData("/abs/path")]
    [InlineData("./models/x")]
    [InlineData("Qwen/bad--name")]
    [InlineData("Qwen/x@")]
    [InlineData("Qwen/x@a b")]
    [InlineData("Qwen/x@../../etc")]
    public void TryParse_NotHubIds_ReturnsFalse(string text) => Assert.False(ModelReference.TryParse(text, out _));

    [Fact]
    public void RepoFolderName_MatchesHuggingFaceHub() =>
        Assert.Equal("models--Qwen--Qwen3-1.7B", HubCache.RepoFolderName("Qwen/Qwen3-1.7B"));
}
