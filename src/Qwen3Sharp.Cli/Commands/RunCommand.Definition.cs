using System.CommandLine;

namespace Qwen3Sharp.Cli.Commands;

/// <summary>The options of <c>qwen3 run</c>.</summary>
public sealed record RunOptions
{
    public CliContext Context { get; init; } = CliContext.Console;
    /// <summary>--model: a local directory or hub id ORG/NAME[@REVISION] (resolve with Qwen3Sharp.Hub.ModelLocator).</summary>
    public string Model { get; init; } = Qwen3Cli.DefaultModel;
    /// <summary>The user message; "-" means read it from standard input.</summary>
    public string Prompt { get; init; } = "";
    /// <summary>--json: print one JSON object (content, reasoning_content, usage, timings) instead of plain text.</summary>
    public bool Json { get; init; }
    public bool NoThink { get; init; }
    /// <summary>--max-tokens; null means until end of sequence or the context is full.</summary>
    public int? MaxTokens { get; init; }
    /// <summary>--temperature; null means the mode's recommended default (0.6 thinking, 0.7 non-thinking).</summary>
    public float? Temperature { get; init; }
    /// <summary>--seed; null means a random seed.</summary>
    public ulong? Seed { get; init; }
    /// <summary>--kv-cache-dtype: how the KV cache stores keys and values.</summary>
    public Cache.KvCacheDType KvCacheDType { get; init; } = Cache.KvCacheDTypes.Default;
    /// <summary>--quantize: Q8_0 or Q4_0 at load, or null.</summary>
    public Tensors.DType? Quantize { get; init; }
    /// <summary>--batch-invariant: the batch-invariant kernels (the same answer as the same request beside others under serve --batch-invariant).</summary>
    public bool BatchInvariant { get; init; }
    /// <summary>--tools: the functions the model may call (OpenAI's tools array), or null for none.</summary>
    public System.Text.Json.Nodes.JsonArray? Tools { get; init; }
}

public static partial class RunCommand
{
    internal static Command Create(CliContext context)
    {
        Option<string> model = CliOptions.Model();
        var prompt = new Argument<string>("prompt") { Description = "The user message (\"-\" reads standard input)." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object with content, reasoning and usage." };
        var noThink = new Option<bool>("--no-think") { Description = "Disable thinking (enable_thinking=false)." };
        Option<int?> maxTokens = CliOptions.OptionalInt("--max-tokens", "Most tokens to generate [default: until end of sequence].", 1, 1 << 20);
        Option<float?> temperature = CliOptions.Temperature();
        Option<string> quantize = CliOptions.Quantize();
        var seed = new Option<ulong?>("--seed") { Description = "Random seed for reproducible sampling.", HelpName = "N" };
        Option<Cache.KvCacheDType> kvCacheDType = CliOptions.KvCacheDType();
        Option<bool> batchInvariant = CliOptions.BatchInvariant();
        Option<System.Text.Json.Nodes.JsonArray?> tools = CliOptions.Tools("a call is printed as NAME(ARGUMENTS), one per line");
        var command = new CliCommand<RunOptions>("run", "Generate one answer to a prompt and exit.",
            parse => new RunOptions
            {
                Context = context,
                Model = parse.GetValue(model)!,
                Prompt = parse.GetValue(prompt)!,
                Json = parse.GetValue(json),
                NoThink = parse.GetValue(noThink),
                MaxTokens = parse.GetValue(maxTokens),
                Temperature = parse.GetValue(temperature),
                Seed = parse.GetValue(seed),
                KvCacheDType = parse.GetValue(kvCacheDType),
                Quantize = CliOptions.Quantization(parse.GetValue(quantize)!),
                BatchInvariant = parse.GetValue(batchInvariant),
                Tools = parse.GetValue(tools),
            },
            RunAsync);
        foreach (Option option in new Option[] { model, json, noThink, maxTokens, temperature, seed, quantize, kvCacheDType, batchInvariant, tools }) command.Options.Add(option);
        command.Arguments.Add(prompt);
        return command;
    }
}
