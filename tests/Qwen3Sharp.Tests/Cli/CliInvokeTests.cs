using Qwen3Sharp.Cli;
using Qwen3Sharp.Cli.Commands;
using Qwen3Sharp.Hub;
using Qwen3Sharp.Tests.Hub;

namespace Qwen3Sharp.Tests.Cli;

public sealed class CliInvokeTests
{
    private static async Task<(int Code, string Out, string Err)> InvokeAsync(string commandLine,
        IReadOnlyDictionary<string, string>? env = null)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var environment = new Dictionary<string, string>(env ?? new Dictionary<string, string>())
        {
            ["HF_TOKEN_PATH"] = "/nonexistent/token",
        };
        int code = await Qwen3Cli.InvokeAsync(commandLine.Split(' ', StringSplitOptions.RemoveEmptyEntries), stdout, stderr,
            name => environment.GetValueOrDefault(name));
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Theory]
    [InlineData("--help", "serve")]
    [InlineData("serve --help", "--served-model-name")]
    [InlineData("chat --help", "--no-think")]
    [InlineData("run --help", "--max-tokens")]
    [InlineData("pull --help", "--revision")]
    [InlineData("bench --help", "--prompt-tokens")]
    [InlineData("synth --help", "--preset")]
    public async Task Invoke_Help_ExitsZeroWithUsage(string commandLine, string expected)
    {
        (int code, string output, _) = await InvokeAsync(commandLine);
        Assert.Equal(Qwen3Cli.ExitOk, code);
        Assert.Contains("Usage:", output);
        Assert.Contains(expected, output);
    }

    [Theory]
    [InlineData("serve --port 0", "qwen3 serve [options]")]
    [InlineData("serve --bogus", "qwen3 serve [options]")]
    [InlineData("run", "qwen3 run <prompt> [options]")]
    [InlineData("synth --preset big --out x", "qwen3 synth [options]")]
    [InlineData("frobnicate", "qwen3 [command] [options]")]
    [InlineData("", "qwen3 [command] [options]")]
    public async Task Invoke_BadUsage_ExitsTwoWithErrorAndUsageOnStderr(string commandLine, string usage)
    {
        (int code, string output, string error) = await InvokeAsync(commandLine);
        Assert.Equal(Qwen3Cli.ExitUsage, code);
        Assert.StartsWith("error: ", error);
        Assert.Contains(usage, error);
        Assert.Equal("", output);
    }

    [Fact]
    public async Task Pull_AgainstFakeHub_DownloadsIntoHfHomeAndPrintsSnapshot()
    {
        await using FakeHub hub = await FakeHub.StartAsync();
        hub.AddRepo(HubTestModel.RepoId, HubTestModel.Files());
        using var home = new TempDir();
        var env = new Dictionary<string, string> { ["HF_HOME"] = home.Path, ["HF_ENDPOINT"] = hub.Endpoint };

        (int code, string output, string error) = await InvokeAsync($"pull {HubTestModel.RepoId}", env);

        Assert.True(code == 0, error);
        string[] lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        string snapshot = lines[^1];
        Assert.StartsWith(Path.Combine(home.Path, "hub", "models--Qwen--Qwen3-Test", "snapshots"), snapshot);
        Assert.True(HubCache.IsCompleteSnapshot(snapshot));
        Assert.Contains(lines, l => l.StartsWith("model-00001-of-00002.safetensors: ", StringComparison.Ordinal) && l.Contains("downloaded"));

        (int again, string secondOutput, _) = await InvokeAsync($"pull {HubTestModel.RepoId}", env);
        Assert.Equal(0, again);
        Assert.Contains("config.json: ", secondOutput);
        Assert.Contains("(0 B downloaded)", secondOutput);
    }

    [Fact]
    public async Task Pull_UnknownRepo_ExitsOneWithNotFoundMessage()
    {
        await using FakeHub hub = await FakeHub.StartAsync();
        using var home = new TempDir();
        var env = new Dictionary<string, string> { ["HF_HOME"] = home.Path, ["HF_ENDPOINT"] = hub.Endpoint };

        (int code, _, string error) = await InvokeAsync("pull Qwen/Missing --revision main", env);

        Assert.Equal(Qwen3Cli.ExitError, code);
        Assert.Contains("Repository Qwen/Missing was not found", error);
    }

    [Fact]
    public async Task Pull_OfflineWithoutCache_ExitsOneMentioningOffline()
    {
        using var home = new TempDir();
        var env = new Dictionary<string, string> { ["HF_HOME"] = home.Path, ["HF_HUB_OFFLINE"] = "1" };

        (int code, _, string error) = await InvokeAsync("pull Qwen/Qwen3-1.7B", env);

        Assert.Equal(Qwen3Cli.ExitError, code);
        Assert.Contains("HF_HUB_OFFLINE", error);
    }

    [Fact]
    public async Task Pull_TerminalOutput_DrawsSpectreProgress()
    {
        await using FakeHub hub = await FakeHub.StartAsync();
        hub.AddRepo(HubTestModel.RepoId, HubTestModel.Files());
        using var home = new TempDir();
        var stdout = new StringWriter();
        var env = new Dictionary<string, string> { ["HF_HOME"] = home.Path, ["HF_ENDPOINT"] = hub.Endpoint, ["HF_TOKEN_PATH"] = "/x" };
        var context = new CliContext { Out = stdout, Error = stdout, GetEnvironmentVariable = env.GetValueOrDefault, IsOutputTerminal = true };

        int code = await Qwen3Cli.InvokeAsync(["pull", HubTestModel.RepoId], context);

        Assert.True(code == 0, stdout.ToString());
        string text = stdout.ToString();
        Assert.Contains("model-00001-of-00002.safetensors", text);
        Assert.Contains("100%", text);
        Assert.Contains("\u001b[", text); // ANSI: the live progress display, not log lines
    }
}

public sealed class ModelResolutionTests
{
    [Fact]
    public async Task ResolveModelAsync_LocalDirectory_ReturnsFullPath()
    {
        using var dir = new TempDir();
        var context = new CliContext { Out = TextWriter.Null, Error = TextWriter.Null, GetEnvironmentVariable = _ => null };

        Assert.Equal(Path.GetFullPath(dir.Path), await context.ResolveModelAsync(dir.Path, CancellationToken.None));
    }

    [Fact]
    public async Task ResolveModelAsync_HubIdNotCached_PullsWithProgressOnStderrOnly()
    {
        await using FakeHub hub = await FakeHub.StartAsync();
        hub.AddRepo(HubTestModel.RepoId, HubTestModel.Files());
        using var home = new TempDir();
        var env = new Dictionary<string, string> { ["HF_HOME"] = home.Path, ["HF_ENDPOINT"] = hub.Endpoint, ["HF_TOKEN_PATH"] = "/x" };
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var context = new CliContext { Out = stdout, Error = stderr, GetEnvironmentVariable = env.GetValueOrDefault };

        string dir = await context.ResolveModelAsync(HubTestModel.RepoId + "@main", CancellationToken.None);

        Assert.True(HubCache.IsCompleteSnapshot(dir));
        Assert.Equal("", stdout.ToString());
        Assert.Contains("config.json: ", stderr.ToString());
    }
}
