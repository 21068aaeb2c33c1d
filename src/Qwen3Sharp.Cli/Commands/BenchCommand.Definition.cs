using System.CommandLine;

namespace Qwen3Sharp.Cli.Commands;

/// <summary>The options of <c>qwen3 bench</c>.</summary>
public sealed record BenchOptions
{
    public CliContext Context { get; init; } = CliContext.Console;
    /// <summary>--model (required): a local directory or hub id.</summary>
    public string Model { get; init; } = "";
    public int PromptTokens { get; init; } = 512;
    public int GenTokens { get; init; } = 128;
    /// <summary>--depth: context the decode passes start from (llama-bench's -d).</summary>
    public int Depth { get; init; }
    public int? Threads { get; init; }
    /// <summary>--weights: where the BF16 matrices live (mapped files, or a huge-page copy).</summary>
    public Loading.WeightPlacement Weights { get; init; }
    /// <summary>--kv-cache-dtype: how the paged KV cache stores keys and values.</summary>
    public Cache.KvCacheDType KvCacheDType { get; init; } = Cache.KvCacheDTypes.Default;
    /// <summary>--quantize: Q8_0 or Q4_0 at load, or null.</summary>
    public Tensors.DType? Quantize { get; init; }
    /// <summary>--kl-reference: measure KL(reference ‖ model) over a text instead of the speed.</summary>
    public string? KlReference { get; init; }
    /// <summary>--kl-text: the text file whose tokens are scored.</summary>
    public string? KlText { get; init; }
    /// <summary>--kl-context: tokens per chunk (llama-perplexity's -c); the second half of each chunk is scored.</summary>
    public int KlContext { get; init; } = 128;
    /// <summary>--kl-batch: tokens per forward pass of the measured model (under 32: the decode kernels).</summary>
    public int KlBatch { get; init; } = 16;
    /// <summary>--profile: time each phase of the decode steps (one more pass of GenTokens) and print the split.</summary>
    public bool Profile { get; init; }
    /// <summary>--batch-invariant: measure with the batch-invariant kernels.</summary>
    public bool BatchInvariant { get; init; }
    /// <summary>--bound-windows: decode passes measured against the bandwidth read beside each (0: none).</summary>
    public int BoundWindows { get; init; } = 3;
}

public static partial class BenchCommand
{
    internal static Command Create(CliContext context)
    {
        Option<string> model = CliOptions.Model(required: true);
        Option<int> promptTokens = CliOptions.Int("--prompt-tokens", "Prompt length for the prefill measurement.", 512, 1, 1 << 20);
        Option<int> genTokens = CliOptions.Int("--gen-tokens", "Tokens to decode for the decode measurement.", 128, 1, 1 << 20);
        Option<int> depth = CliOptions.Int("--depth", "Tokens already in the context when the decode measurement starts (llama-bench's -d; prefilled once, untimed).", 0, 0, 1 << 20);
        Option<int?> threads = CliOptions.Threads();
        Option<string> weights = CliOptions.Weights();
        Option<Cache.KvCacheDType> kvCacheDType = CliOptions.KvCacheDType();
        Option<string> quantize = CliOptions.Quantize();
        Option<string?> klReference = new("--kl-reference")
        {
            Description = "Instead of the speed: the mean KL divergence of this model's next-token distributions from this " +
                "reference model's (e.g. the BF16 directory) over --kl-text, for both quantized decode paths (int8 and float " +
                "activations), scored as llama-perplexity --kl-divergence does.",
            HelpName = "DIR|FILE",
        };
        Option<string?> klText = new("--kl-text") { Description = "Text file for --kl-reference (at least 2 × --kl-context tokens).", HelpName = "FILE" };
        Option<int> klContext = CliOptions.Int("--kl-context", "Chunk length for --kl-reference (llama-perplexity's -c); the second half of each chunk is scored.", 128, 4, 1 << 16);
        Option<int> klBatch = CliOptions.Int("--kl-batch", "Tokens per forward pass of the measured model for --kl-reference (under 32: the decode kernels).", 16, 1, 1 << 16);
        Option<bool> profile = new("--profile")
        {
            Description = "Also prefill --prompt-tokens and decode --gen-tokens more tokens with every phase of the forward pass timed " +
                "(norms, projections, attention, LM head...) and print where a prefill's and a decode step's time go.",
        };
        Option<bool> batchInvariant = CliOptions.BatchInvariant();
        Option<int> boundWindows = CliOptions.Int("--bound-windows", "Decode passes (of --gen-tokens) each measured against the " +
            "memory bandwidth read just before and after it, for decode's fraction of the bound at the same moment (the median is " +
            "printed beside the run-wide figure); 0 skips them.", 3, 0, 100);
        var command = new CliCommand<BenchOptions>("bench", "Measure prefill and decode speed (tokens/s) end to end.",
            parse => new BenchOptions
            {
                Context = context,
                Model = parse.GetValue(model)!,
                PromptTokens = parse.GetValue(promptTokens),
                GenTokens = parse.GetValue(genTokens),
                Depth = parse.GetValue(depth),
                Threads = parse.GetValue(threads),
                Weights = CliOptions.Placement(parse.GetValue(weights)!),
                KvCacheDType = parse.GetValue(kvCacheDType),
                Quantize = CliOptions.Quantization(parse.GetValue(quantize)!),
                KlReference = parse.GetValue(klReference),
                KlText = parse.GetValue(klText),
                KlContext = parse.GetValue(klContext),
                KlBatch = parse.GetValue(klBatch),
                Profile = parse.GetValue(profile),
                BatchInvariant = parse.GetValue(batchInvariant),
                BoundWindows = parse.GetValue(boundWindows),
            },
            RunAsync);
        foreach (Option option in new Option[] { model, promptTokens, genTokens, depth, threads, weights, quantize, kvCacheDType, klReference, klText, klContext, klBatch, profile, batchInvariant, boundWindows }) command.Options.Add(option);
        return command;
    }
}
