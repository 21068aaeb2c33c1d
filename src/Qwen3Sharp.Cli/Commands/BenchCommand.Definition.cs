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
    public int? Threads { get; init; }
    /// <summary>--weights: where the BF16 matrices live (mapped files, or a huge-page copy).</summary>
    public Loading.WeightPlacement Weights { get; init; }
    /// <summary>--quantize: Q8_0 or Q4_0 at load, or null.</summary>
    public Tensors.DType? Quantize { get; init; }
}

public static partial class BenchCommand
{
    internal static Command Create(CliContext context)
    {
        Option<string> model = CliOptions.Model(required: true);
        Option<int> promptTokens = CliOptions.Int("--prompt-tokens", "Prompt length for the prefill measurement.", 512, 1, 1 << 20);
        Option<int> genTokens = CliOptions.Int("--gen-tokens", "Tokens to decode for the decode measurement.", 128, 1, 1 << 20);
        Option<int?> threads = CliOptions.Threads();
        Option<string> weights = CliOptions.Weights();
        Option<string> quantize = CliOptions.Quantize();
        var command = new CliCommand<BenchOptions>("bench", "Measure prefill and decode speed (tokens/s) end to end.",
            parse => new BenchOptions
            {
                Context = context,
                Model = parse.GetValue(model)!,
                PromptTokens = parse.GetValue(promptTokens),
                GenTokens = parse.GetValue(genTokens),
                Threads = parse.GetValue(threads),
                Weights = CliOptions.Placement(parse.GetValue(weights)!),
                Quantize = CliOptions.Quantization(parse.GetValue(quantize)!),
            },
            RunAsync);
        foreach (Option option in new Option[] { model, promptTokens, genTokens, threads, weights, quantize }) command.Options.Add(option);
        return command;
    }
}
