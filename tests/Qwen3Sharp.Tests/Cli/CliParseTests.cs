using System.CommandLine;
using Qwen3Sharp.Cli;
using Qwen3Sharp.Cli.Commands;
using Qwen3Sharp.Hub;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Tests.Cli;

public sealed class CliParseTests : IDisposable
{
    private static readonly CliContext Context = new() { Out = TextWriter.Null, Error = TextWriter.Null };

    private readonly string _files = Path.Combine(Path.GetTempPath(), "qwen3sharp-parse-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_files))
        {
            Directory.Delete(_files, recursive: true);
        }
    }

    private static T Bind<T>(string commandLine)
    {
        ParseResult parse = Qwen3Cli.Parse(commandLine.Split(' ', StringSplitOptions.RemoveEmptyEntries), Context);
        Assert.Empty(parse.Errors);
        return Assert.IsType<T>(Qwen3Cli.Bind(parse));
    }

    private static IReadOnlyList<string> Errors(params string[] args) =>
        Qwen3Cli.Parse(args, Context).Errors.Select(e => e.Message).ToList();

    [Fact]
    public void Serve_NoOptions_UsesDefaults()
    {
        ServeOptions o = Bind<ServeOptions>("serve");
        Assert.Equal(Qwen3Cli.DefaultModel, o.Model);
        Assert.Equal("127.0.0.1", o.Host);
        Assert.Equal(8000, o.Port);
        Assert.Null(o.ApiKey);
        Assert.Empty(o.ServedModelNames);
        Assert.Null(o.CtxSize);
        Assert.Null(o.Threads);
        Assert.True(o.Reasoning);
        Assert.Equal(ReasoningField.ReasoningContent, o.ReasoningField);
        Assert.Null(o.ChatTemplateKwargs);
        Assert.Null(o.ThinkingBudget);
        Assert.Equal(ToolCallsInReasoning.Ignore, o.ToolCallsInReasoning);
        Assert.True(o.ConstrainToolCalls);
        Assert.Equal(64, o.MaxQueue);
        Assert.Equal(16, o.MaxNumSeqs);
        Assert.Equal(512, o.MaxNumBatchedTokens);
        Assert.Null(o.KvCacheMemory);
        Assert.False(o.NoWarmup);
        Assert.Same(Context, o.Context);
    }

    [Fact]
    public void ServeAndChat_NoWarmup_AreBound()
    {
        Assert.True(Bind<ServeOptions>("serve --no-warmup").NoWarmup);
        Assert.True(Bind<ChatOptions>("chat --no-warmup").NoWarmup);
        Assert.False(Bind<ChatOptions>("chat").NoWarmup);
    }

    [Fact]
    public void Serve_AllOptions_AreBound()
    {
        ServeOptions o = Bind<ServeOptions>(
            "serve --model /models/q --host 0.0.0.0 --port 9000 --api-key sk-1 --served-model-name a b --served-model-name c " +
            "--ctx-size 4096 --threads 8 --reasoning off --reasoning-field both --chat-template-kwargs {\"enable_thinking\":false} " +
            "--thinking-budget 256 --tool-calls-in-reasoning parse --tool-call-grammar strict --max-queue 5");
        Assert.Equal("/models/q", o.Model);
        Assert.Equal("0.0.0.0", o.Host);
        Assert.Equal(9000, o.Port);
        Assert.Equal("sk-1", o.ApiKey);
        Assert.Equal(["a", "b", "c"], o.ServedModelNames);
        Assert.Equal(4096, o.CtxSize);
        Assert.Equal(8, o.Threads);
        Assert.False(o.Reasoning);
        Assert.Equal(ReasoningField.Both, o.ReasoningField);
        Assert.False(o.ChatTemplateKwargs!["enable_thinking"]!.GetValue<bool>());
        Assert.Equal(256, o.ThinkingBudget);
        Assert.Equal(ToolCallsInReasoning.Parse, o.ToolCallsInReasoning);
        Assert.False(o.ConstrainToolCalls);
        Assert.Equal(5, o.MaxQueue);
    }

    [Theory]
    [InlineData("2GiB", 2147483648d)]
    [InlineData("512MiB", 536870912d)]
    [InlineData("1.5GB", 1.5e9)]
    [InlineData("4000000000", 4e9)]
    [InlineData("0.25", 0.25)]
    public void Serve_BatchingOptions_AreBound(string memory, double expected)
    {
        ServeOptions o = Bind<ServeOptions>($"serve --max-num-seqs 8 --max-num-batched-tokens 256 --kv-cache-memory {memory}");
        Assert.Equal(8, o.MaxNumSeqs);
        Assert.Equal(256, o.MaxNumBatchedTokens);
        Assert.Equal(expected, o.KvCacheMemory);
    }

    [Fact]
    public void BatchInvariant_OnServeRunBenchAndBenchServe_IsBoundAndOffByDefault()
    {
        Assert.True(Bind<ServeOptions>("serve --batch-invariant").BatchInvariant);
        Assert.True(Bind<RunOptions>("run --batch-invariant hi").BatchInvariant);
        Assert.True(Bind<BenchOptions>("bench --model /m --batch-invariant").BatchInvariant);
        Assert.True(Bind<BenchServeOptions>("bench-serve --model /m --batch-invariant").BatchInvariant);
        Assert.False(Bind<ServeOptions>("serve").BatchInvariant);
        Assert.False(Bind<RunOptions>("run hi").BatchInvariant);
        Assert.False(Bind<BenchOptions>("bench --model /m").BatchInvariant);
        Assert.False(Bind<BenchServeOptions>("bench-serve --model /m").BatchInvariant);
        Assert.False(new Qwen3Sharp.Engine.HostOptions().BatchInvariant);
    }

    [Fact]
    public void StepPolicy_OnServeAndBenchServe_IsPrefillFirstByDefault_AndMixedOnRequest()
    {
        Assert.True(Bind<ServeOptions>("serve").PrefillFirst);
        Assert.True(Bind<BenchServeOptions>("bench-serve --model /m").PrefillFirst);
        Assert.True(new Qwen3Sharp.Engine.HostOptions().PrefillFirst);
        Assert.True(new Qwen3Sharp.Engine.EngineOptions().PrefillFirst);
        Assert.False(Bind<ServeOptions>("serve --step-policy mixed").PrefillFirst);
        Assert.False(Bind<BenchServeOptions>("bench-serve --model /m --step-policy mixed").PrefillFirst);
        Assert.True(Bind<ServeOptions>("serve --step-policy prefill-first").PrefillFirst);
        Assert.NotEmpty(Errors("serve", "--step-policy", "fifo"));
    }

    [Fact]
    public void Serve_ReasoningFieldReasoning_IsBound() =>
        Assert.Equal(ReasoningField.Reasoning, Bind<ServeOptions>("serve --reasoning-field reasoning").ReasoningField);

    [Fact]
    public void Chat_AllOptions_AreBound()
    {
        ChatOptions o = Bind<ChatOptions>("chat -m Qwen/Qwen3-0.6B --no-think --system be-brief --threads 2 --ctx-size 2048");
        Assert.Equal("Qwen/Qwen3-0.6B", o.Model);
        Assert.True(o.NoThink);
        Assert.Equal("be-brief", o.System);
        Assert.Equal(2, o.Threads);
        Assert.Equal(2048, o.CtxSize);
        Assert.False(Bind<ChatOptions>("chat").NoThink);
    }

    [Fact]
    public void Run_AllOptions_AreBound()
    {
        RunOptions o = Bind<RunOptions>("run --model dir --json --no-think --max-tokens 32 --temperature 0.5 --seed 42 hello");
        Assert.Equal("dir", o.Model);
        Assert.Equal("hello", o.Prompt);
        Assert.True(o.Json);
        Assert.True(o.NoThink);
        Assert.Equal(32, o.MaxTokens);
        Assert.Equal(0.5f, o.Temperature);
        Assert.Equal(42UL, o.Seed);

        RunOptions d = Bind<RunOptions>("run hi");
        Assert.Null(d.MaxTokens);
        Assert.Null(d.Temperature);
        Assert.Null(d.Seed);
        Assert.False(d.Json);
    }

    [Fact]
    public void Bench_AllOptions_AreBound()
    {
        BenchOptions o = Bind<BenchOptions>("bench --model /m --prompt-tokens 64 --gen-tokens 16 --threads 3 --weights hugepage-copy");
        Assert.Equal("/m", o.Model);
        Assert.Equal(64, o.PromptTokens);
        Assert.Equal(16, o.GenTokens);
        Assert.Equal(3, o.Threads);
        Assert.Equal(Qwen3Sharp.Loading.WeightPlacement.HugePageCopy, o.Weights);

        BenchOptions p = Bind<BenchOptions>("bench --model /m --depth 4096 --profile --bound-windows 5");
        Assert.Equal(4096, p.Depth);
        Assert.True(p.Profile);
        Assert.Equal(5, p.BoundWindows);

        BenchOptions d = Bind<BenchOptions>("bench --model /m");
        Assert.Equal(0, d.Depth);
        Assert.False(d.Profile);
        Assert.Equal(512, d.PromptTokens);
        Assert.Equal(128, d.GenTokens);
        Assert.Equal(3, d.BoundWindows);
        Assert.Equal(Qwen3Sharp.Loading.WeightPlacement.Copy, d.Weights);
        Assert.Equal(Qwen3Sharp.Loading.WeightPlacement.Copy, Bind<ServeOptions>("serve").Weights);
        Assert.Equal(Qwen3Sharp.Loading.WeightPlacement.Mapped, Bind<ServeOptions>("serve --weights mapped").Weights);
        Assert.Equal(Qwen3Sharp.Loading.WeightPlacement.HugePageCopy, Bind<ServeOptions>("serve --weights hugepage-copy").Weights);
        Assert.NotEmpty(Errors("serve", "--weights", "private"));
    }

    [Theory]
    [InlineData("qwen3-1.7b", SynthPreset.Qwen3_1_7B)]
    [InlineData("qwen3-0.6b", SynthPreset.Qwen3_0_6B)]
    [InlineData("qwen3-4b", SynthPreset.Qwen3_4B)]
    [InlineData("tiny", SynthPreset.Tiny)]
    public void Synth_Presets_AreBound(string name, SynthPreset preset)
    {
        SynthOptions o = Bind<SynthOptions>($"synth --preset {name} --out /tmp/x");
        Assert.Equal(preset, o.Preset);
        Assert.Equal("/tmp/x", o.Out);
        Assert.Equal(DType.BF16, o.DType);
        Assert.Equal(0, o.Seed);
    }

    [Fact]
    public void Synth_DTypeAndSeed_AreBound()
    {
        SynthOptions o = Bind<SynthOptions>("synth --preset tiny --out o --dtype f32 --seed 7");
        Assert.Equal(DType.F32, o.DType);
        Assert.Equal(7, o.Seed);
        Assert.Equal(DType.F16, Bind<SynthOptions>("synth --preset tiny --out o --dtype f16").DType);
    }

    [Fact]
    public void Pull_RevisionOptionOrSuffix_IsBound()
    {
        Assert.Equal(new ModelReference("Qwen/Qwen3-1.7B", "main"), Bind<PullOptions>("pull Qwen/Qwen3-1.7B").Model);
        Assert.Equal(new ModelReference("Qwen/Qwen3-1.7B", "v2"), Bind<PullOptions>("pull Qwen/Qwen3-1.7B --revision v2").Model);
        Assert.Equal(new ModelReference("Qwen/Qwen3-1.7B", "v3"), Bind<PullOptions>("pull Qwen/Qwen3-1.7B@v3").Model);
    }

    [Fact]
    public void RunAndChat_Tools_AreReadFromTheFile_InTheOpenAIShape()
    {
        // one tool as the API sends it, one bare function object (how many examples write them)
        string path = ToolsFile("""
            [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
             {"name": "get_time", "description": "Time in a timezone"}]
            """);
        foreach (System.Text.Json.Nodes.JsonArray? tools in new[] { Bind<RunOptions>($"run --tools {path} hi").Tools, Bind<ChatOptions>($"chat --tools {path}").Tools })
        {
            Assert.NotNull(tools);
            Assert.Equal(["get_weather", "get_time"], tools.Select(t => (string)t!["function"]!["name"]!));
            Assert.All(tools, t => Assert.Equal("function", (string)t!["type"]!));
            Assert.Equal("Time in a timezone", (string)tools[1]!["function"]!["description"]!);
        }

        ChatOptions sampled = Bind<ChatOptions>("chat --temperature 0 --seed 7");
        Assert.Equal(0f, sampled.Temperature);
        Assert.Equal(7UL, sampled.Seed);
        Assert.Null(Bind<ChatOptions>("chat").Temperature);
        Assert.Null(Bind<RunOptions>("run hi").Tools);
        Assert.Null(Bind<ChatOptions>("chat").Tools);
    }

    [Theory]
    [InlineData("{\"name\": \"f\"}", "must be a JSON array of tools")]
    [InlineData("[1]", "entry 0 is not a JSON object")]
    [InlineData("[{\"type\": \"function\"}]", "entry 0 has no \"function\" object")]
    [InlineData("[{\"function\": {\"name\": \"f\"}}, {\"function\": {\"description\": \"d\"}}]", "entry 1's function has no \"name\"")]
    [InlineData("[{\"type\": \"code_interpreter\", \"function\": {\"name\": \"f\"}}]", "only \"function\" tools")]
    [InlineData("[{\"name\": ", "--tools")]
    public void RunAndChat_BadToolsFile_IsAUsageErrorNamingTheProblem(string contents, string expected)
    {
        string path = ToolsFile(contents);
        foreach (string[] args in new[] { new[] { "run", "--tools", path, "hi" }, new[] { "chat", "--tools", path } })
        {
            IReadOnlyList<string> errors = Errors(args);
            Assert.Contains(errors, e => e.Contains(expected, StringComparison.Ordinal) && e.Contains(path, StringComparison.Ordinal));
        }

        File.Delete(path);
        Assert.Contains(Errors("run", "--tools", path, "hi"), e => e.Contains("Could not find file", StringComparison.Ordinal));
    }

    /// <summary>A --tools file in this class's temporary directory (removed with the class).</summary>
    private string ToolsFile(string contents)
    {
        Directory.CreateDirectory(_files);
        string path = Path.Combine(_files, Guid.NewGuid().ToString("N") + ".json");
        File.WriteAllText(path, contents);
        return path;
    }

    [Theory]
    [InlineData("serve --port -1", "--port must be between 0 and 65535")]
    [InlineData("serve --port 70000", "--port must be between 0 and 65535")]
    [InlineData("serve --port http", "--port must be an integer (got 'http')")]
    [InlineData("serve --reasoning maybe", "maybe")]
    [InlineData("serve --reasoning-field thoughts", "thoughts")]
    [InlineData("serve --tool-calls-in-reasoning always", "always")]
    [InlineData("serve --tool-call-grammar none", "none")]
    [InlineData("serve --chat-template-kwargs [1]", "must be a JSON object")]
    [InlineData("serve --chat-template-kwargs {bad", "not valid JSON")]
    [InlineData("serve --thinking-budget -1", "--thinking-budget must be between")]
    [InlineData("serve --max-queue 0", "--max-queue must be between")]
    [InlineData("serve --max-num-seqs 0", "--max-num-seqs must be between")]
    [InlineData("serve --max-num-batched-tokens 0", "--max-num-batched-tokens must be between")]
    [InlineData("serve --kv-cache-memory lots", "--kv-cache-memory must be a size")]
    [InlineData("serve --kv-cache-memory 12", "--kv-cache-memory must be a size")]
    [InlineData("serve --kv-cache-memory 0", "--kv-cache-memory must be a size")]
    [InlineData("serve --threads 0", "--threads must be between")]
    [InlineData("chat --ctx-size 1", "--ctx-size must be between")]
    [InlineData("run", "Required argument missing")]
    [InlineData("run --temperature 3 hi", "--temperature must be between 0 and 2")]
    [InlineData("run --temperature warm hi", "--temperature must be between 0 and 2 (got 'warm')")]
    [InlineData("run --seed -1 hi", "-1")]
    [InlineData("run --max-tokens 0 hi", "--max-tokens must be between")]
    [InlineData("chat --temperature 3", "--temperature must be between 0 and 2")]
    [InlineData("bench", "--model")]
    [InlineData("bench --model m --gen-tokens 0", "--gen-tokens must be between")]
    [InlineData("synth --out x", "--preset")]
    [InlineData("synth --preset qwen3-70b --out x", "qwen3-70b")]
    [InlineData("synth --preset tiny --out x --dtype int8", "int8")]
    [InlineData("pull qwen3", "is not a hub model id")]
    [InlineData("pull Qwen/Qwen3-1.7B@v1 --revision v2", "revision is given twice")]
    [InlineData("serve --frobnicate", "--frobnicate")]
    public void Parse_InvalidOptions_ReportsError(string commandLine, string expected)
    {
        IReadOnlyList<string> errors = Errors(commandLine.Split(' '));
        Assert.NotEmpty(errors);
        Assert.Contains(errors, e => e.Contains(expected, StringComparison.Ordinal));
    }
}
