using System.Text.Json;
using System.Text.RegularExpressions;
using Qwen3Sharp.Hub;
using Qwen3Sharp.Loading;
using Qwen3Sharp.Tests.Hub;
using Qwen3Sharp.Tests.TestModels;

namespace Qwen3Sharp.Tests.Cli;

/// <summary>
/// The README's path, as a user runs it: <c>qwen3 pull</c> from a hub into the Hugging Face cache, then serve, run
/// and chat from that cache offline. Every file of a snapshot is a symbolic link into blobs/, so this is what fails
/// when any loader asks the file system about a link instead of its target.
/// </summary>
public sealed class HubCacheProcessTests
{
    [Fact]
    public async Task PullThenServeRunAndChatFromTheCache_Offline()
    {
        using var home = new TempDir();
        string cacheDir = Path.Combine(home.Path, "hf", "hub");
        await using FakeHub hub = await FakeHub.StartAsync();

        // Qwen/Qwen3-1.7B on the hub: the tiny model in shards (index + shards), pulled by `qwen3 pull`
        string sharded = Path.Combine(home.Path, "sharded-source");
        ModelSynthesizer.Write(sharded, "tiny", new SynthesisOptions { Seed = 11, TokenizerDirectory = TinyModel.TokenizerDirectory, MaxShardBytes = 4 << 20 });
        Dictionary<string, byte[]> shardedFiles = PythonHubCache.ReadModel(sharded);
        Assert.True(shardedFiles.Keys.Count(n => n.EndsWith(".safetensors", StringComparison.Ordinal)) >= 2);
        Assert.Contains(ModelDirectory.IndexFileName, shardedFiles.Keys);
        string commit = hub.AddRepo("Qwen/Qwen3-1.7B", shardedFiles).Branches["main"];
        // Qwen/Qwen3-0.6B: already in the cache, laid out as huggingface_hub lays it out
        string smallSnapshot = PythonHubCache.Write(cacheDir, "Qwen/Qwen3-0.6B", PythonHubCache.Commit('6'),
            PythonHubCache.ReadModel(TinyModel.Directory), refs: ["main"], noExist: ["chat_template.jinja"]);

        Dictionary<string, string> env = HubEnvironment(home, hub);
        var (pullCode, _, pullError) = await CliProcess.RunAsync("pull Qwen/Qwen3-1.7B", environment: env);
        Assert.True(pullCode == 0, pullError);
        string snapshot = HubCache.SnapshotDir(cacheDir, "Qwen/Qwen3-1.7B", commit);
        Assert.All(Directory.GetFiles(snapshot), f => Assert.StartsWith("../../blobs/", new FileInfo(f).LinkTarget));
        Assert.Equal(commit, File.ReadAllText(Path.Combine(HubCache.RepoDir(cacheDir, "Qwen/Qwen3-1.7B"), "refs", "main")));

        env["HF_HUB_OFFLINE"] = "1";
        Task<(int, string, string)> run;
        using (CliProcess serve = CliProcess.Start("serve --port 0 --ctx-size 256", env))   // disposing kills it
        {
            run = CliProcess.RunAsync("run --model Qwen/Qwen3-0.6B --no-think --max-tokens 3 --temperature 0 hi", environment: env);
            Uri address = await WaitForAddressAsync(serve);
            using (var http = new HttpClient { BaseAddress = address })
            {
                string models = await http.GetStringAsync("v1/models");
                Assert.Contains("\"Qwen3-1.7B\"", models);
                using HttpResponseMessage chat = await http.PostAsync("v1/chat/completions", new StringContent(
                    """{"model": "Qwen3-1.7B", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "chat_template_kwargs": {"enable_thinking": false}}""",
                    System.Text.Encoding.UTF8, "application/json"));
                string body = await chat.Content.ReadAsStringAsync();
                Assert.True(chat.IsSuccessStatusCode, body);
                using JsonDocument doc = JsonDocument.Parse(body);
                Assert.Equal("assistant", doc.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("role").GetString());
                Assert.Equal(3, doc.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
            }

            Assert.DoesNotContain("EMBEDDED", serve.Err);
        }

        var (runCode, runOut, runError) = await run;
        Assert.True(runCode == 0, runError);
        Assert.EndsWith("\n", runOut);
        Assert.DoesNotContain("EMBEDDED", runError);

        var (chatCode, _, chatError) = await CliProcess.RunAsync("chat --no-think --ctx-size 96", stdin: "hello there\n", environment: env);
        Assert.True(chatCode == 0, chatError);
        Assert.DoesNotContain("EMBEDDED", chatError);

        // a blob deleted by hand: the snapshot's link now dangles; the error names the file and where it pointed
        string link = Path.Combine(smallSnapshot, "model.safetensors");
        File.Delete(ModelFile.Resolve(link));
        var (danglingCode, _, danglingError) = await CliProcess.RunAsync("run --model Qwen/Qwen3-0.6B hi", environment: env);
        Assert.Equal(1, danglingCode);
        Assert.Contains("model.safetensors: is a symbolic link to '../../blobs/", danglingError);
        Assert.Contains("does not exist", danglingError);
        Assert.DoesNotContain("   at ", danglingError);   // no stack trace
    }

    [Fact]
    public async Task PullOneGgufQuantization_ThenRunItOffline_AsLlamaCppsRepoColonQuant()
    {
        using var home = new TempDir();
        string cacheDir = Path.Combine(home.Path, "hf", "hub");
        await using FakeHub hub = await FakeHub.StartAsync();
        string fixtures = Path.Combine(AppContext.BaseDirectory, "Fixtures", "gguf");
        byte[] q8 = File.ReadAllBytes(Path.Combine(fixtures, "tiny-a-q8_0.gguf"));
        byte[] q4 = File.ReadAllBytes(Path.Combine(fixtures, "tiny-a-q4_0.gguf"));
        // laid out as Qwen/Qwen3-1.7B-GGUF is: one file per quantization, a README and a params file, no config.json
        string commit = hub.AddRepo("Qwen/Qwen3-1.7B-GGUF", new Dictionary<string, byte[]>
        {
            ["Qwen3-1.7B-Q8_0.gguf"] = q8,
            ["Qwen3-1.7B-Q4_0.gguf"] = q4,
            ["README.md"] = "# Qwen3-1.7B-GGUF\n"u8.ToArray(),
            ["params"] = """{"temperature": 0.6}"""u8.ToArray(),
        }).Branches["main"];
        Dictionary<string, string> env = HubEnvironment(home, hub);

        // a tag the repository lacks: the error says which tags exist
        var (missingCode, _, missingError) = await CliProcess.RunAsync("pull Qwen/Qwen3-1.7B-GGUF:Q5_K_M", environment: env);
        Assert.Equal(1, missingCode);
        Assert.Contains("no GGUF file for 'Q5_K_M'; it offers: Q4_0, Q8_0", missingError);

        // the tag is matched without regard to case, and only that file is fetched
        hub.Requests.Clear();
        var (pullCode, pullOut, pullError) = await CliProcess.RunAsync("pull Qwen/Qwen3-1.7B-GGUF:q8_0", environment: env);
        Assert.True(pullCode == 0, pullError);
        string file = Path.Combine(HubCache.SnapshotDir(cacheDir, "Qwen/Qwen3-1.7B-GGUF", commit), "Qwen3-1.7B-Q8_0.gguf");
        Assert.Equal(file, pullOut.TrimEnd('\n').Split('\n')[^1]);
        Assert.StartsWith("../../blobs/", new FileInfo(file).LinkTarget);
        Assert.Equal(q8, File.ReadAllBytes(file));
        Assert.Single(Directory.GetFiles(Path.GetDirectoryName(file)!));
        Assert.DoesNotContain(hub.ContentRequests, r => r.Path.Contains("Q4_0", StringComparison.Ordinal));

        // offline, the same reference loads the cached file (through its link) and runs it; the other quantization is not
        // cached and says so. (bench, not run: the golden tiny model's GGUF has a placeholder vocabulary, not a tokenizer.)
        env["HF_HUB_OFFLINE"] = "1";
        var (runCode, runOut, runError) = await CliProcess.RunAsync(
            "bench --model Qwen/Qwen3-1.7B-GGUF:Q8_0 --prompt-tokens 16 --gen-tokens 3 --threads 2", environment: env);
        Assert.True(runCode == 0, runError);
        Assert.Contains("Q8_0", runOut);
        Assert.Contains("decode", runOut);
        var (offCode, _, offError) = await CliProcess.RunAsync("run --model Qwen/Qwen3-1.7B-GGUF:Q4_0 hi", environment: env);
        Assert.Equal(1, offCode);
        Assert.Contains("HF_HUB_OFFLINE is set and the Q4_0 GGUF of Qwen/Qwen3-1.7B-GGUF is not in the cache", offError);
    }

    [Fact]
    public async Task PullAGgufRepositoryWithoutATag_TakesQ4_K_M_ElseTheFirst_AndRunsItOfflineByTheSameName()
    {
        using var home = new TempDir();
        string cacheDir = Path.Combine(home.Path, "hf", "hub");
        await using FakeHub hub = await FakeHub.StartAsync();
        string fixtures = Path.Combine(AppContext.BaseDirectory, "Fixtures", "gguf");
        byte[] q8 = File.ReadAllBytes(Path.Combine(fixtures, "tiny-a-q8_0.gguf"));
        byte[] q4 = File.ReadAllBytes(Path.Combine(fixtures, "tiny-a-q4_0.gguf"));
        // as llama.cpp's -hf and Ollama's hf.co/ do without a tag: Q4_K_M where offered, else the first GGUF
        string withDefault = hub.AddRepo("org/Qwen3-1.7B-GGUF", new Dictionary<string, byte[]>
        {
            ["Qwen3-1.7B-Q4_0.gguf"] = q4,
            ["Qwen3-1.7B-Q4_K_M.gguf"] = q8,      // content does not matter for the choice; a loadable file
            ["Qwen3-1.7B-Q8_0.gguf"] = q8,
            ["config.json"] = "{}"u8.ToArray(),   // some GGUF repositories carry one; without safetensors it is no checkpoint
        }).Branches["main"];
        string withoutDefault = hub.AddRepo("org/Other-GGUF", new Dictionary<string, byte[]>
        {
            ["Other-Q8_0.gguf"] = q8,
            ["Other-Q4_0.gguf"] = q4,
        }).Branches["main"];
        Dictionary<string, string> env = HubEnvironment(home, hub);

        var (code, output, error) = await CliProcess.RunAsync("pull org/Qwen3-1.7B-GGUF", environment: env);
        Assert.True(code == 0, error);
        string snapshot = HubCache.SnapshotDir(cacheDir, "org/Qwen3-1.7B-GGUF", withDefault);
        Assert.Equal(Path.Combine(snapshot, "Qwen3-1.7B-Q4_K_M.gguf"), output.TrimEnd('\n').Split('\n')[^1]);
        Assert.Equal(["Qwen3-1.7B-Q4_K_M.gguf"], Directory.GetFiles(snapshot).Select(Path.GetFileName));

        (code, output, error) = await CliProcess.RunAsync("pull org/Other-GGUF", environment: env);
        Assert.True(code == 0, error);
        Assert.EndsWith("Other-Q4_0.gguf", output.TrimEnd('\n').Split('\n')[^1]);   // the first by name
        Assert.Single(Directory.GetFiles(HubCache.SnapshotDir(cacheDir, "org/Other-GGUF", withoutDefault)));

        env["HF_HUB_OFFLINE"] = "1";
        (code, output, error) = await CliProcess.RunAsync(
            "bench --model org/Qwen3-1.7B-GGUF --prompt-tokens 16 --gen-tokens 2 --threads 2", environment: env);
        Assert.True(code == 0, error);
        Assert.Contains("Qwen3-1.7B-Q4_K_M.gguf", output);
    }

    [Fact]
    public async Task PullASplitGgufFromAFolder_ThenBenchItOffline_LoadsEveryPart()
    {
        using var home = new TempDir();
        string cacheDir = Path.Combine(home.Path, "hf", "hub");
        await using FakeHub hub = await FakeHub.StartAsync();
        // parts written by llama.cpp's llama-gguf-split, laid out as unsloth's repositories keep large quantizations
        string split = Path.Combine(AppContext.BaseDirectory, "Fixtures", "gguf", "split");
        var files = new Dictionary<string, byte[]> { ["README.md"] = "# split\n"u8.ToArray() };
        for (int i = 1; i <= 3; i++)
        {
            files[$"Q8_0/Qwen3-1.7B-Q8_0-{i:D5}-of-00003.gguf"] = File.ReadAllBytes(Path.Combine(split, $"tiny-a-q8_0-{i:D5}-of-00003.gguf"));
        }

        string commit = hub.AddRepo("unsloth/Qwen3-1.7B-GGUF", files).Branches["main"];
        Dictionary<string, string> env = HubEnvironment(home, hub);
        var (pullCode, pullOut, pullError) = await CliProcess.RunAsync("pull unsloth/Qwen3-1.7B-GGUF:Q8_0", environment: env);
        Assert.True(pullCode == 0, pullError);
        string first = Path.Combine(HubCache.SnapshotDir(cacheDir, "unsloth/Qwen3-1.7B-GGUF", commit), "Q8_0", "Qwen3-1.7B-Q8_0-00001-of-00003.gguf");
        Assert.Equal(first, pullOut.TrimEnd('\n').Split('\n')[^1]);
        Assert.Equal(3, Directory.GetFiles(Path.GetDirectoryName(first)!).Length);

        env["HF_HUB_OFFLINE"] = "1";
        var (benchCode, benchOut, benchError) = await CliProcess.RunAsync(
            "bench --model unsloth/Qwen3-1.7B-GGUF:Q8_0 --prompt-tokens 16 --gen-tokens 3 --threads 2", environment: env);
        Assert.True(benchCode == 0, benchError);
        Assert.Contains("Q8_0", benchOut);
        Assert.Contains("decode", benchOut);
    }

    [Fact]
    public async Task Run_ModelDirectoryWithADanglingLink_ExitsOneNamingTheFileAndTarget()
    {
        using var dir = new TempDir();
        foreach (string f in Directory.GetFiles(TinyModel.Directory))
        {
            File.CreateSymbolicLink(Path.Combine(dir.Path, Path.GetFileName(f)), f);
        }

        string config = Path.Combine(dir.Path, "config.json");
        File.Delete(config);
        File.CreateSymbolicLink(config, "../blobs/deleted-config");

        var (code, output, error) = await CliProcess.RunAsync($"run --model {dir.Path} hi");
        Assert.Equal(1, code);
        Assert.Equal("", output);
        Assert.Contains($"error: {config}: is a symbolic link to '../blobs/deleted-config'", error);
        Assert.Contains("does not exist", error);
        Assert.DoesNotContain("   at ", error);
    }

    /// <summary>A user's hub settings: the cache under <paramref name="home"/>, the fake hub as endpoint, online.</summary>
    private static Dictionary<string, string> HubEnvironment(TempDir home, FakeHub hub) => new()
    {
        ["HF_HOME"] = Path.Combine(home.Path, "hf"),
        ["HF_HUB_CACHE"] = Path.Combine(home.Path, "hf", "hub"),
        ["HF_ENDPOINT"] = hub.Endpoint,
        ["QWEN3SHARP_HOME"] = Path.Combine(home.Path, "qwen3sharp"),   // the demo model would land here
        ["HF_HUB_OFFLINE"] = "0",
    };

    private static async Task<Uri> WaitForAddressAsync(CliProcess serve)
    {
        for (int i = 0; i < 1200 && !serve.HasExited; i++)
        {
            Match match = Regex.Match(serve.Out, @"on (http://127\.0\.0\.1:\d+/)v1");
            if (match.Success)
            {
                return new Uri(match.Groups[1].Value);
            }

            await Task.Delay(100);
        }

        throw new Xunit.Sdk.XunitException($"serve announced no address. stdout: {serve.Out} stderr: {serve.Err}");
    }
}
