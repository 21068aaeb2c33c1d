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
    public async Task Bench_runs_a_quantized_gguf_file_and_a_bad_one_is_a_clear_error()
    {
        string gguf = Path.Combine(AppContext.BaseDirectory, "Fixtures", "gguf", "tiny-a-q4_0.gguf");
        var (code, output, error) = await CliProcess.RunAsync($"bench --model {gguf} --prompt-tokens 40 --gen-tokens 4 --threads 2");
        Assert.True(code == 0, error);
        Assert.Contains("Q4_0", output);
        Assert.Contains("decode", output);

        using var dir = new TempDir();
        byte[] bytes = File.ReadAllBytes(gguf);
        File.WriteAllBytes(dir.File("cut.gguf"), bytes[..(bytes.Length / 2)]);
        (code, _, error) = await CliProcess.RunAsync($"bench --model {dir.File("cut.gguf")}");
        Assert.Equal(1, code);
        Assert.Contains("outside the data section", error);
        Assert.DoesNotContain("   at ", error);
    }

    [Fact]
    public async Task Bench_runs_a_q4_k_m_gguf_file()
    {
        // Q4_K + Q6_K + Q5_K + Q8_0 + F32, as llama-quantize's Q4_K_M recipe mixes them (see GgufTests.KQuantFile)
        string gguf = Path.Combine(AppContext.BaseDirectory, "Fixtures", "gguf", "tiny-k-q4_k_m.gguf");
        var (code, output, error) = await CliProcess.RunAsync($"bench --model {gguf} --prompt-tokens 37 --gen-tokens 5 --threads 2");
        Assert.True(code == 0, error);
        Assert.Contains("Q6_K+Q4_K+Q5_K+Q8_0", output);
        Assert.Matches(@"decode +[0-9.]+ tok/s", output);
        Assert.Matches(@"prefill +[0-9.]+ tok/s", output);
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
            var (code, output, error) = await CliProcess.RunAsync("run --no-think --temperature 0 --max-tokens 80 hi", environment: env);
            Assert.True(code == 0, error);
            Assert.Contains("EMBEDDED", error);
            Assert.Contains("qwen3 pull Qwen/Qwen3-1.7B", error);
            Assert.True(File.Exists(Path.Combine(home, "qwen3sharp-demo-tiny-v2", "model.safetensors")));
            // the trained demo model says what it is, not noise
            Assert.StartsWith("Hello! I am a tiny demonstration model of Qwen3Sharp", output.Trim());
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

/// <summary><c>qwen3 serve</c> as a process: answers on a free port, stops cleanly on SIGINT and SIGTERM.</summary>
public sealed class ServeProcessTests
{
    [Theory]
    [InlineData("INT")]
    [InlineData("TERM")]
    public async Task Serve_AnswersThenStopsOnSignal(string signal)
    {
        using CliProcess serve = CliProcess.Start($"serve --model {TinyModel.Directory} --port 0 --ctx-size 256 --served-model-name tiny-alias");
        Uri? address = null;
        for (int i = 0; i < 600 && address is null && !serve.HasExited; i++)
        {
            await Task.Delay(100);
            var match = System.Text.RegularExpressions.Regex.Match(serve.Out, @"on (http://127\.0\.0\.1:\d+/)v1");
            if (match.Success)
            {
                address = new Uri(match.Groups[1].Value);
            }
        }

        Assert.True(address is not null, $"no address announced. stdout: {serve.Out} stderr: {serve.Err}");
        using var http = new HttpClient { BaseAddress = address };
        Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync("health")).StatusCode);
        string models = await http.GetStringAsync("v1/models");
        Assert.Contains(Path.GetFileName(TinyModel.Directory), models);
        using var alias = await http.PostAsync("v1/chat/completions", new StringContent(
            """{"model": "tiny-alias", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}""",
            System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(System.Net.HttpStatusCode.OK, alias.StatusCode);

        using (var kill = System.Diagnostics.Process.Start("kill", $"-{signal} {serve.Id}"))
        {
            await kill.WaitForExitAsync();
        }

        var clock = System.Diagnostics.Stopwatch.StartNew();
        int code = await serve.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0, code);
        Assert.Contains("stopped", serve.Out);
        Console.WriteLine($"serve stopped {clock.ElapsedMilliseconds} ms after SIG{signal}");
    }
}
