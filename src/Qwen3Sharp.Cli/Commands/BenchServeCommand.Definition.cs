using System.CommandLine;

namespace Qwen3Sharp.Cli.Commands;

/// <summary>The options of <c>qwen3 bench-serve</c>.</summary>
public sealed record BenchServeOptions
{
    public CliContext Context { get; init; } = CliContext.Console;
    /// <summary>--model: served in-process on a free loopback port (unless --url is given).</summary>
    public string? Model { get; init; }
    /// <summary>--url: a running server's base address (http://127.0.0.1:8000), loopback only.</summary>
    public string? Url { get; init; }
    public IReadOnlyList<int> Concurrency { get; init; } = [1, 2, 4, 8, 16, 32];
    public int PromptTokens { get; init; } = 64;
    public int GenTokens { get; init; } = 24;
    public int? Threads { get; init; }
    public int? MaxSeqs { get; init; }
    /// <summary>--max-num-batched-tokens: the in-process engine's step token budget (decode tokens plus prompt chunks).</summary>
    public int? MaxNumBatchedTokens { get; init; }
    /// <summary>--probe N: a short request's time to first token idle and while N streams decode (0: skip).</summary>
    public int Probe { get; init; }
    /// <summary>--multi-turn: a 5-turn chat over a ~1,500-token tools prompt, cached_tokens per turn.</summary>
    public bool MultiTurn { get; init; }
    public Loading.WeightPlacement Weights { get; init; }
    /// <summary>--quantize: Q8_0 or Q4_0 at load, or null.</summary>
    public Tensors.DType? Quantize { get; init; }
    /// <summary>--kv-cache-dtype: how the in-process engine's KV cache stores keys and values.</summary>
    public Cache.KvCacheDType KvCacheDType { get; init; } = Cache.KvCacheDTypes.Default;
    /// <summary>--batch-invariant: the in-process server runs the batch-invariant kernels.</summary>
    public bool BatchInvariant { get; init; }

    /// <summary>--step-policy: false for mixed steps.</summary>
    public bool PrefillFirst { get; init; } = true;
}

public static partial class BenchServeCommand
{
    internal static Command Create(CliContext context)
    {
        var model = new Option<string?>("--model", "-m")
        {
            Description = "Model directory or hub id, served in-process on a free 127.0.0.1 port for the run.",
            HelpName = "DIR|ORG/NAME",
        };
        var url = new Option<string?>("--url")
        {
            Description = "Drive a running server instead (loopback only), e.g. http://127.0.0.1:8000.",
        };
        var concurrency = new Option<string>("--concurrency")
        {
            Description = "Comma-separated numbers of concurrent streams, one level each.",
            DefaultValueFactory = _ => "1,2,4,8,16,32",
        };
        concurrency.Validators.Add(r =>
        {
            if (ParseLevels(r.GetValueOrDefault<string>()) is null) r.AddError("--concurrency must be a comma-separated list of numbers from 1 to 256.");
        });
        Option<int> promptTokens = CliOptions.Int("--prompt-tokens", "Prompt length of each stream, in tokens (exact: token-id prompts).", 64, 1, 1 << 16);
        Option<int> genTokens = CliOptions.Int("--gen-tokens", "Tokens each stream generates.", 24, 2, 1 << 16);
        Option<int?> threads = CliOptions.Threads();
        Option<int?> maxSeqs = CliOptions.OptionalInt("--max-seqs", "Sequences the in-process engine runs at once [default: the engine's].", 1, 1024);
        Option<int?> maxNumBatchedTokens = CliOptions.OptionalInt("--max-num-batched-tokens",
            "Most tokens the in-process engine computes in one step (decode tokens plus prompt chunks) [default: the engine's].", 1, 1 << 20);
        Option<int> probe = CliOptions.Int("--probe", "Also time a short request arriving while this many streams decode (0: skip).", 0, 0, 256);
        var multiTurn = new Option<bool>("--multi-turn") { Description = "Also run a 5-turn chat over a ~1,500-token tools prompt and report cached_tokens per turn." };
        Option<string> weights = CliOptions.Weights();
        Option<string> quantize = CliOptions.Quantize();
        Option<Cache.KvCacheDType> kvCacheDType = CliOptions.KvCacheDType();
        Option<bool> batchInvariant = CliOptions.BatchInvariant();
        Option<string> stepPolicy = CliOptions.StepPolicy();
        var command = new CliCommand<BenchServeOptions>("bench-serve",
            "Load benchmark through the OpenAI server (like `vllm bench serve`): concurrent streamed completions per level; aggregate and per-stream decode tok/s, TTFT p50/p99.",
            parse => new BenchServeOptions
            {
                Context = context,
                Model = parse.GetValue(model),
                Url = parse.GetValue(url),
                Concurrency = ParseLevels(parse.GetValue(concurrency))!,
                PromptTokens = parse.GetValue(promptTokens),
                GenTokens = parse.GetValue(genTokens),
                Threads = parse.GetValue(threads),
                MaxSeqs = parse.GetValue(maxSeqs),
                MaxNumBatchedTokens = parse.GetValue(maxNumBatchedTokens),
                Probe = parse.GetValue(probe),
                MultiTurn = parse.GetValue(multiTurn),
                Weights = CliOptions.Placement(parse.GetValue(weights)!),
                Quantize = CliOptions.Quantization(parse.GetValue(quantize)!),
                KvCacheDType = parse.GetValue(kvCacheDType),
                BatchInvariant = parse.GetValue(batchInvariant),
                PrefillFirst = parse.GetValue(stepPolicy) != "mixed",
            },
            RunAsync);
        foreach (Option option in new Option[] { model, url, concurrency, promptTokens, genTokens, threads, maxSeqs, maxNumBatchedTokens, probe, multiTurn, weights, quantize, kvCacheDType, batchInvariant, stepPolicy }) command.Options.Add(option);
        command.Validators.Add(r =>
        {
            bool hasModel = r.GetValue(model) is not null, hasUrl = r.GetValue(url) is not null;
            if (hasModel == hasUrl) r.AddError("Give exactly one of --model (serve it in-process) and --url (a running server).");
            if (r.GetValue(url) is { } u && !IsLoopback(u)) r.AddError("--url must be an http address on this machine (127.0.0.1, ::1 or localhost).");
        });
        return command;
    }

    internal static int[]? ParseLevels(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        var levels = new List<int>();
        foreach (string part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n) || n < 1 || n > 256) return null;
            levels.Add(n);
        }
        return [.. levels];
    }

    internal static bool IsLoopback(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out Uri? u) && u.Scheme == Uri.UriSchemeHttp
        && (u.IsLoopback || (System.Net.IPAddress.TryParse(u.Host.Trim('[', ']'), out var ip) && System.Net.IPAddress.IsLoopback(ip)));
}
