using System.Text.Json;
using Qwen3Sharp.Tests.TestModels;

namespace Qwen3Sharp.Tests.Cli;

/// <summary>The <c>qwen3</c> program run as a process: exit codes, stdout and stdin as a person meets them.</summary>
public sealed class CliProcessTests
{
    private static string Tiny => TinyModel.Directory;

    [Fact]
    public async Task Help_ExitsZeroAndListsCommands()
    {
        var (code, output, _) = await CliProcess.RunAsync("--help");
        Assert.Equal(0, code);
        foreach (string command in new[] { "serve", "chat", "run", "pull", "bench", "synth" })
        {
            Assert.Contains(command, output);
        }
    }

    [Fact]
    public async Task BadFlag_ExitsTwoWithUsage()
    {
        var (code, output, error) = await CliProcess.RunAsync("run --temperature 5 hello");
        Assert.Equal(2, code);
        Assert.Contains("--temperature", error);
        Assert.Contains("Usage:", error);
        Assert.Equal("", output);
    }

    [Fact]
    public async Task Run_PrintsAnswerAndExitsZero()
    {
        var (code, output, error) = await CliProcess.RunAsync($"run --model {Tiny} --no-think --max-tokens 6 --temperature 0 hello");
        Assert.True(code == 0, error);
        Assert.EndsWith("\n", output);
        Assert.DoesNotContain("<think>", output);
    }

    [Fact]
    public async Task RunJson_PrintsAnOpenAIChatCompletion()
    {
        var (code, output, error) = await CliProcess.RunAsync($"run --model {Tiny} --json --max-tokens 4 --seed 9 hello");
        Assert.True(code == 0, error);
        using JsonDocument doc = JsonDocument.Parse(output);
        JsonElement root = doc.RootElement;
        Assert.Equal("chat.completion", root.GetProperty("object").GetString());
        Assert.Equal("assistant", root.GetProperty("choices")[0].GetProperty("message").GetProperty("role").GetString());
        Assert.Equal("length", root.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(4, root.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Chat_PipedInput_AnswersAndExitsZero()
    {
        var (code, _, error) = await CliProcess.RunAsync($"chat --model {Tiny} --no-think --ctx-size 96", stdin: "hello there\n");
        Assert.True(code == 0, error);
    }

    [Fact]
    public async Task Run_NoModelAndNothingCached_UsesTheEmbeddedDemoModelLoudly()
    {
        string home = Path.Combine(Path.GetTempPath(), "qwen3sharp-demo-test-" + Guid.NewGuid().ToString("N"));
        try
        {
            var env = new Dictionary<string, string> { ["HF_HOME"] = Path.Combine(home, "hf"), ["QWEN3SHARP_HOME"] = home };
            var (code, _, error) = await CliProcess.RunAsync("run --no-think --max-tokens 3 hi", environment: env);
            Assert.True(code == 0, error);
            Assert.Contains("EMBEDDED", error);
            Assert.Contains("qwen3 pull Qwen/Qwen3-1.7B", error);
            Assert.True(File.Exists(Path.Combine(home, "qwen3sharp-demo-tiny-v1", "model.safetensors")));
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    [Fact]
    public async Task Run_MissingModelDirectoryOffline_ExitsOneWithAClearError()
    {
        var (code, _, error) = await CliProcess.RunAsync("run --model Nobody/Nothing hi",
            environment: new Dictionary<string, string> { ["HF_HOME"] = Path.Combine(Path.GetTempPath(), "qwen3sharp-empty-hf") });
        Assert.Equal(1, code);
        Assert.Contains("HF_HUB_OFFLINE", error);
    }
}
