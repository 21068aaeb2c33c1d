using Qwen3Sharp.Kernels;
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
        var (code, output, error) = await CliProcess.RunAsync($"bench --model {gguf} --prompt-tokens 40 --gen-tokens 4 --threads 2 --bound-windows 2");
        Assert.True(code == 0, error);
        Assert.Contains("Q4_0", output);
        Assert.Contains("decode", output);
        Assert.Matches(@"\npaired +\d+ ?% median of 2 \(range \d+ ?%–\d+ ?%\)", output);   // decode against the bandwidth beside each pass

        using var dir = new TempDir();
        byte[] bytes = File.ReadAllBytes(gguf);
        File.WriteAllBytes(dir.File("cut.gguf"), bytes[..(bytes.Length / 2)]);
        (code, _, error) = await CliProcess.RunAsync($"bench --model {dir.File("cut.gguf")}");
        Assert.Equal(1, code);
        Assert.Contains("outside the data section", error);
        Assert.DoesNotContain("   at ", error);
    }

    [Fact]
    public async Task Run_answers_from_an_mlx_quantized_directory_and_a_bad_one_is_a_clear_error()
    {
        using var dir = new TempDir();
        string mlx = dir.File("tiny-4bit");
        Loading.MlxTestModels.Write(Tiny, mlx, bits: 4, groupSize: 64);   // config.json "quantization": {"group_size": 64, "bits": 4}
        var (code, output, error) = await CliProcess.RunAsync($"run --model {mlx} --no-think --max-tokens 6 --temperature 0 hello");
        Assert.True(code == 0, error);
        Assert.EndsWith("\n", output);
        Assert.DoesNotContain("<think>", output);

        // bench names the affine kernels, not the bf16 one: the int8 groups by default, the float kernel in rows
        (code, output, error) = await CliProcess.RunAsync($"bench --model {mlx} --prompt-tokens 8 --gen-tokens 2 --threads 2");
        Assert.True(code == 0, error);
        Assert.Matches(@"kernels +decode Affine4x8 int8 activations against 8-row interleaved groups, repacked at load \(QWEN3_QUANT_LAYOUT=x8\)", output);
        (code, output, error) = await CliProcess.RunAsync($"bench --model {mlx} --prompt-tokens 8 --gen-tokens 2 --threads 2",
            environment: new Dictionary<string, string> { [KernelSelection.QuantLayoutVariable] = "rows" });
        Assert.True(code == 0, error);
        Assert.Matches(@"kernels +decode MLX affine float activations \(AffineMatMul\), \d+-bit vectors", output);

        string mxfp4 = Loading.MlxTestModels.EditedCopy(mlx, dir.File("mxfp4"), config: c => c["quantization"]!["mode"] = "mxfp4");
        (code, _, error) = await CliProcess.RunAsync($"run --model {mxfp4} hello");
        Assert.Equal(1, code);
        Assert.Contains("'mxfp4' is not supported", error);
        Assert.DoesNotContain("   at ", error);
    }

    [Fact]
    public async Task Bench_CopiesTheWeightsByDefault_AndMapsThemOnRequest()
    {
        string model = Path.Combine(AppContext.BaseDirectory, "Fixtures", "golden", "tiny-a");   // BF16 safetensors
        var (code, output, error) = await CliProcess.RunAsync($"bench --model {model} --prompt-tokens 8 --gen-tokens 2 --threads 2");
        Assert.True(code == 0, error);
        Assert.Matches(@"threads +2, weights copied into private memory", output);
        Assert.Matches(@"decode +[\d.]+ tok/s", output);
        (code, output, error) = await CliProcess.RunAsync($"bench --model {model} --prompt-tokens 8 --gen-tokens 2 --threads 2 --weights mapped");
        Assert.True(code == 0, error);
        Assert.Matches(@"threads +2, weights memory-mapped in place", output);
    }

    [Fact]
    public async Task Bench_Bf16Model_NamesThePrefillKernel_AndComparesBothWhereTheJitRuns()
    {
        string model = Path.Combine(AppContext.BaseDirectory, "Fixtures", "golden", "tiny-a");   // BF16
        var (code, output, error) = await CliProcess.RunAsync($"bench --model {model} --prompt-tokens 40 --gen-tokens 2 --threads 2");
        Assert.True(code == 0, error);
        if (KernelSelection.FloatLayout == QuantLayout.Interleaved8)
        {
            // copied into the 8-row groups (the default on AVX2 machines), and decode A/B'd against the rows in the same run
            Assert.Matches(@"model +tiny-a: .*BF16x8", output);
            Assert.Matches(@"kernels +decode BF16x8 8-row interleaved groups, repacked at load, .*\(QWEN3_FLOAT_LAYOUT=x8\), \d+-bit vectors, prefill the same 8-row groups", output);
            Assert.Matches(@"prefill +[\d.]+ tok/s +\(40 tokens in [\d.]+ s, 8-row float groups\)", output);
            Assert.Matches(@"layout A/B +x8 [\d.]+ tok/s, rows [\d.]+ tok/s", output);
        }
        else
        {
            Assert.Matches(@"kernels +decode bf16 [a-z-]+ \(QWEN3_DECODE_KERNEL\), \d+-bit vectors, prefill bf16 managed \(QWEN3_PREFILL_KERNEL", output);
            Assert.Matches(@"prefill +[\d.]+ tok/s +\(40 tokens in [\d.]+ s, managed\)", output);
        }
        if (KernelSelection.JitBf16Supported)
        {
            Assert.Matches(@"prefill A/B +managed [\d.]+ tok/s, jit-bf16 [\d.]+ tok/s \([\d.]+x; same run", output);
            Assert.Matches(@"per CPU-second: managed [\d.]+ tok, jit-bf16 [\d.]+ tok \([\d.]+x\)", output);
        }
        else
        {
            Assert.Contains("JIT AVX512_BF16 kernel not available on this CPU", output);
            Assert.DoesNotContain("prefill A/B", output);
        }

        (code, output, error) = await CliProcess.RunAsync($"bench --model {model} --prompt-tokens 40 --gen-tokens 2 --threads 2",
            environment: new Dictionary<string, string> { ["QWEN3_PREFILL_KERNEL"] = "jit-bf16" });
        if (KernelSelection.JitBf16Supported)
        {
            Assert.True(code == 0, error);
            Assert.Contains("prefill bf16 jit-bf16 (QWEN3_PREFILL_KERNEL; generated AVX512_BF16 vdpbf16ps code", output);
            Assert.Matches(@"prefill +[\d.]+ tok/s +\(40 tokens in [\d.]+ s, jit-bf16\)", output);
        }
        else
        {
            Assert.NotEqual(0, code);
            Assert.Contains("QWEN3_PREFILL_KERNEL=jit-bf16", error);
            Assert.DoesNotContain("   at ", error);
        }

        (code, _, error) = await CliProcess.RunAsync($"bench --model {model} --prompt-tokens 40 --gen-tokens 2",
            environment: new Dictionary<string, string> { ["QWEN3_PREFILL_KERNEL"] = "fast" });
        Assert.NotEqual(0, code);
        Assert.Contains("QWEN3_PREFILL_KERNEL='fast' is not one of auto, managed, jit-bf16", error);
    }

    [Fact]
    public async Task Bench_DecodesAtTheDepth_AndProfilesEveryPhase()
    {
        // --depth 37: every decode pass starts at position 37 (llama-bench -d); the depth's 2 full blocks come from the
        // prefix cache, so a pass must also fit beside the holder of the depth; --profile splits one more pass by phase.
        string model = Path.Combine(AppContext.BaseDirectory, "Fixtures", "golden", "tiny-a");
        var (code, output, error) = await CliProcess.RunAsync($"bench --model {model} --prompt-tokens 8 --gen-tokens 3 --depth 37 --profile --threads 2");
        Assert.True(code == 0, error);
        Assert.Matches(@"decode +[\d.]+ tok/s +\(3 tokens in [\d.]+ s, [\d.]+ ms/token, positions 37\.\.39: llama-bench -n 3 -d 37\)", output);
        // the prefill's split, then the decode step's: every phase in each
        int prefillAt = output.IndexOf("prefill profile ", StringComparison.Ordinal), decodeAt = output.IndexOf("\nprofile ", StringComparison.Ordinal);
        Assert.True(prefillAt >= 0 && decodeAt > prefillAt, output);
        Assert.Matches(@"prefill profile +[\d.]+ tok/s with timing on, [\d.]+ ms for 8 tokens", output);
        Assert.Matches(@"\nprofile +[\d.]+ tok/s with timing on", output);
        foreach (string split in new[] { output[prefillAt..decodeAt], output[decodeAt..] })
        {
            foreach (global::Qwen3Sharp.Model.ForwardPhase phase in Enum.GetValues<global::Qwen3Sharp.Model.ForwardPhase>())
            {
                Assert.Matches($@"\n  {phase} +[\d.]+ +[\d.]+ ?%", split);
            }

            Assert.Matches(@"\n  outside forward +-?[\d.]+ +-?[\d.]+ ?%", split);
        }

        // a quantized model's A/B passes run at the depth too: the 8-row layout against rows (each with the depth cached),
        // and in rows the int8 against the float activation path
        string gguf = Path.Combine(AppContext.BaseDirectory, "Fixtures", "gguf", "tiny-a-q4_0.gguf");
        (code, output, error) = await CliProcess.RunAsync($"bench --model {gguf} --prompt-tokens 8 --gen-tokens 2 --depth 20 --threads 2");
        Assert.True(code == 0, error);
        Assert.Contains("positions 20..21", output);
        Assert.Matches(@"layout A/B +x8 [\d.]+ tok/s, rows [\d.]+ tok/s", output);
        (code, output, error) = await CliProcess.RunAsync($"bench --model {gguf} --prompt-tokens 8 --gen-tokens 2 --depth 20 --threads 2",
            environment: new Dictionary<string, string> { [KernelSelection.QuantLayoutVariable] = "rows" });
        Assert.True(code == 0, error);
        Assert.Contains("positions 20..21", output);
        Assert.Matches(@"decode A/B +int8 [\d.]+ tok/s", output);
    }

    [Fact]
    public async Task Bench_runs_a_q4_k_m_gguf_file()
    {
        // Q4_K + Q6_K + Q5_K + Q8_0 + F32, as llama-quantize's Q4_K_M recipe mixes them (see GgufTests.KQuantFile);
        // Q4_K, Q5_K, Q6_K and Q8_0 repacked into 8-row groups at load (the default layout), and bench A/Bs them against the row layout
        string gguf = Path.Combine(AppContext.BaseDirectory, "Fixtures", "gguf", "tiny-k-q4_k_m.gguf");
        var (code, output, error) = await CliProcess.RunAsync($"bench --model {gguf} --prompt-tokens 37 --gen-tokens 5 --threads 2");
        Assert.True(code == 0, error);
        Assert.Contains("Q6_Kx8+Q4_Kx8+Q5_Kx8+Q8_0x8", output);   // every block format repacked into 8-row groups at load
        Assert.Contains("Q6_Kx8+Q4_Kx8+Q5_Kx8+Q8_0x8 int8 activations against 8-row interleaved groups, repacked at load (QWEN3_QUANT_LAYOUT=x8)", output);
        Assert.Matches(@"layout A/B +x8 [0-9.]+ tok/s, rows [0-9.]+ tok/s", output);
        // the 37-token prefill: int8 activations against the groups in token tiles where AVX2 runs, else the float panels
        // (per format the tiles this CPU runs: 256-bit, 512-bit pair tiles, or generated ones)
        string[] formats = ["Q6_Kx8", "Q4_Kx8", "Q5_Kx8", "Q8_0x8"];
        var tiles = formats.Select(f => Qwen3Sharp.Kernels.QuantMatMul.ProductTiles(Enum.Parse<Qwen3Sharp.Tensors.DType>(f))).ToArray();
        string int8 = "int8 activations in " + string.Join(", ", formats.Select((f, i) => (f, tiles[i])).GroupBy(x => x.Item2)
            .Select(g => g.Count() == formats.Length ? g.Key : $"{string.Join("+", g.Select(x => x.f))} {g.Key}"));
        Assert.Contains("prefill Q6_Kx8+Q4_Kx8+Q5_Kx8+Q8_0x8 " + (Qwen3Sharp.Kernels.MatMul.PrefillsInt8(Qwen3Sharp.Tensors.DType.Q4_Kx8)
            ? int8 : "dequantized to float32 panels") + " (QWEN3_QUANT_PREFILL=int8)", output);

        (code, output, error) = await CliProcess.RunAsync($"bench --model {gguf} --prompt-tokens 37 --gen-tokens 5 --threads 2",
            environment: new Dictionary<string, string> { [Qwen3Sharp.Kernels.KernelSelection.QuantLayoutVariable] = "rows" });
        Assert.True(code == 0, error);
        Assert.Contains("Q6_K+Q4_K+Q5_K+Q8_0", output);
        Assert.Contains("Q6_K+Q4_K+Q5_K+Q8_0 row layout (QWEN3_QUANT_LAYOUT=rows)", output);   // every format with a group layout
        Assert.DoesNotContain("layout A/B", output);
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

    [Theory]
    [InlineData("f16")]
    [InlineData("f32")]
    [InlineData("q8_0")]
    public async Task Run_KvCacheDType_AnswersAndExitsZero(string dtype)
    {
        var (code, output, error) = await CliProcess.RunAsync($"run --model {Tiny} --no-think --max-tokens 6 --temperature 0 --kv-cache-dtype {dtype} hello");
        Assert.True(code == 0, error);
        Assert.EndsWith("\n", output);
    }

    [Fact]
    public async Task Run_UnknownKvCacheDType_ExitsTwoNamingTheChoices()
    {
        var (code, _, error) = await CliProcess.RunAsync($"run --model {Tiny} --kv-cache-dtype q4 hello");
        Assert.Equal(2, code);
        Assert.Contains("--kv-cache-dtype must be f32, bf16, f16 or q8_0 (got 'q4')", error);
    }

    [Fact]
    public async Task Bench_Q8_0KvCache_OnHeadsOf16_IsAClearError()
    {
        string model = Path.Combine(AppContext.BaseDirectory, "Fixtures", "golden", "tiny-b");   // head_dim 16
        var (code, _, error) = await CliProcess.RunAsync($"bench --model {model} --kv-cache-dtype q8_0 --prompt-tokens 8 --gen-tokens 2");
        Assert.Equal(1, code);
        Assert.Contains("--kv-cache-dtype q8_0 needs head_dim to be a multiple of 32; this model's is 16", error);
        Assert.DoesNotContain("   at ", error);
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
            Assert.True(File.Exists(Path.Combine(home, "qwen3sharp-demo-tiny-v7", "model.safetensors")));
            // the trained demo model says what it is, not noise
            Assert.StartsWith("Hello! I am a tiny demonstration model of Qwen3Sharp", output.Trim());
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    [Fact]
    public async Task Run_WithTools_PrintsTheCallAsNameAndArguments()
    {
        string home = Path.Combine(Path.GetTempPath(), "qwen3sharp-demo-tools-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(home);
        try
        {
            string tools = Path.Combine(home, "tools.json");
            File.WriteAllText(tools, """
                [{"type": "function", "function": {"name": "get_weather", "description": "Get the current weather for a city.",
                  "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
                """);
            var env = new Dictionary<string, string> { ["HF_HOME"] = Path.Combine(home, "hf"), ["QWEN3SHARP_HOME"] = home };
            var (code, output, error) = await CliProcess.RunAsync(
                $"run --tools {tools} --no-think --temperature 0 --max-tokens 60 北京和上海的天气怎么样？", environment: env);
            Assert.True(code == 0, error);
            Assert.Equal(["get_weather({\"city\":\"北京\"})", "get_weather({\"city\":\"上海\"})"],
                output.Trim().Split('\n').Select(l => l.Trim()));

            // piped chat: the answer, then the calls one per line
            (code, output, error) = await CliProcess.RunAsync($"chat --tools {tools} --no-think --temperature 0", stdin: "北京天气怎么样？\n", environment: env);
            Assert.True(code == 0, error);
            Assert.Equal("get_weather({\"city\":\"北京\"})", output.Trim());

            // --json: the chat.completion the server would send, calls in tool_calls and no content beside them
            (code, output, error) = await CliProcess.RunAsync(
                $"run --json --tools {tools} --no-think --temperature 0 --max-tokens 60 北京天气怎么样？", environment: env);
            Assert.True(code == 0, error);
            JsonElement message = JsonDocument.Parse(output).RootElement.GetProperty("choices")[0].GetProperty("message");
            Assert.Equal(JsonValueKind.Null, message.GetProperty("content").ValueKind);
            JsonElement call = message.GetProperty("tool_calls")[0].GetProperty("function");
            Assert.Equal("get_weather", call.GetProperty("name").GetString());
            Assert.Equal("北京", JsonDocument.Parse(call.GetProperty("arguments").GetString()!).RootElement.GetProperty("city").GetString());
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
        using CliProcess serve = CliProcess.Start($"serve --model {TinyModel.Directory} --port 0 --ctx-size 256 --served-model-name tiny-alias --no-warmup");
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
        Assert.DoesNotContain("warmed up", serve.Out);
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

    [Fact]
    public async Task Serve_Bf16KvCache_WarmsUpByDefault_TwiceTheBlocksOfF32InTheBannerAndMetrics_Answers()
    {
        // The same --kv-cache-memory (1.25 MiB; byte counts start at 1 MiB) holds 80 float32 blocks of the tiny model or
        // 160 bf16 ones; the banner and /metrics say so.
        long memory = 80 * Qwen3Sharp.Cache.KvBlockPool.BytesPerBlock(Qwen3Sharp.Loading.Qwen3Config.Load(TinyModel.Directory), Qwen3Sharp.Cache.KvCacheDType.F32);
        using CliProcess serve = CliProcess.Start(
            $"serve --model {TinyModel.Directory} --port 0 --ctx-size 256 --kv-cache-dtype bf16 --kv-cache-memory {memory}");
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
        Assert.Contains("KV cache bf16: 160 blocks of 16 = 2560 tokens", serve.Out);
        Assert.Matches($@"warmed up in [0-9.]+ s \(\d+-token prefill, {Qwen3Sharp.Engine.EngineWarmUp.PairSteps + Qwen3Sharp.Engine.EngineWarmUp.DecodeSteps} decode steps", serve.Out);   // on by default, before the address
        using var http = new HttpClient { BaseAddress = address };
        string atStart = await http.GetStringAsync("metrics");   // the warm-up left no requests, tokens or blocks behind
        Assert.Matches(@"(?m)^qwen3sharp:kv_cache_blocks_used\{model_name=""[^""]+""\} 0$", atStart);
        Assert.Matches(@"(?m)^qwen3sharp:generation_tokens_total\{model_name=""[^""]+""\} 0$", atStart);
        Assert.Matches(@"(?m)^qwen3sharp:time_to_first_token_seconds_count\{model_name=""[^""]+""\} 0$", atStart);
        Assert.DoesNotMatch(@"(?m)^qwen3sharp:request_success_total\{.*\} [1-9]", atStart);
        string body = new System.Text.Json.Nodes.JsonObject
        {
            ["model"] = Path.GetFileName(TinyModel.Directory),
            ["messages"] = new System.Text.Json.Nodes.JsonArray(new System.Text.Json.Nodes.JsonObject { ["role"] = "user", ["content"] = "hi" }),
            ["max_tokens"] = 4,
            ["temperature"] = 0,
        }.ToJsonString();
        using var answer = await http.PostAsync("v1/chat/completions", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        Assert.True(answer.StatusCode == System.Net.HttpStatusCode.OK, await answer.Content.ReadAsStringAsync());
        string metrics = await http.GetStringAsync("metrics");
        Assert.Matches(@"(?m)^qwen3sharp:kv_cache_blocks_total\{model_name=""[^""]+""\} 160$", metrics);

        using (var kill = System.Diagnostics.Process.Start("kill", $"-INT {serve.Id}"))
        {
            await kill.WaitForExitAsync();
        }

        Assert.Equal(0, await serve.WaitAsync(TimeSpan.FromSeconds(30)));
    }
}
