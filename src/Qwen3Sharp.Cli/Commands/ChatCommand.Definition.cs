using System.CommandLine;

namespace Qwen3Sharp.Cli.Commands;

/// <summary>The options of <c>qwen3 chat</c>.</summary>
public sealed record ChatOptions
{
    public CliContext Context { get; init; } = CliContext.Console;
    /// <summary>--model: a local directory or hub id ORG/NAME[@REVISION] (resolve with Qwen3Sharp.Hub.ModelLocator).</summary>
    public string Model { get; init; } = Qwen3Cli.DefaultModel;
    /// <summary>--no-think: start with thinking disabled (enable_thinking=false).</summary>
    public bool NoThink { get; init; }
    /// <summary>--system: the system message of the conversation.</summary>
    public string? System { get; init; }
    public int? Threads { get; init; }
    public int? CtxSize { get; init; }
    /// <summary>--kv-cache-dtype: how the KV cache stores keys and values.</summary>
    public Cache.KvCacheDType KvCacheDType { get; init; } = Cache.KvCacheDTypes.Default;
    /// <summary>--quantize: Q8_0 or Q4_0 at load, or null.</summary>
    public Tensors.DType? Quantize { get; init; }
    /// <summary>--no-warmup: skip the warm-up of an interactive chat (a piped prompt never warms up).</summary>
    public bool NoWarmup { get; init; }
    /// <summary>--tools: the functions the model may call (OpenAI's tools array), or null for none.</summary>
    public System.Text.Json.Nodes.JsonArray? Tools { get; init; }
    /// <summary>--temperature; null means the mode's recommended default (0.6 thinking, 0.7 non-thinking).</summary>
    public float? Temperature { get; init; }
    /// <summary>--seed; null means a random seed.</summary>
    public ulong? Seed { get; init; }
}

public static partial class ChatCommand
{
    internal static Command Create(CliContext context)
    {
        Option<string> model = CliOptions.Model();
        var noThink = new Option<bool>("--no-think") { Description = "Disable thinking (enable_thinking=false)." };
        var system = new Option<string?>("--system") { Description = "System message for the conversation.", HelpName = "TEXT" };
        Option<int?> threads = CliOptions.Threads();
        Option<int?> ctxSize = CliOptions.CtxSize();
        Option<Cache.KvCacheDType> kvCacheDType = CliOptions.KvCacheDType();
        Option<string> quantize = CliOptions.Quantize();
        var noWarmup = new Option<bool>("--no-warmup")
        {
            Description = "Skip the warm-up after load (a short chat through the model so the first answer runs the JIT's optimized kernels; interactive sessions only).",
        };
        Option<System.Text.Json.Nodes.JsonArray?> tools = CliOptions.Tools(
            "each call is shown as → NAME(ARGUMENTS) and its result is asked for (type what the function returned), then the model answers from it");
        Option<float?> temperature = CliOptions.Temperature();
        var seed = new Option<ulong?>("--seed") { Description = "Random seed for reproducible sampling.", HelpName = "N" };
        var command = new CliCommand<ChatOptions>("chat", "Chat with the model in the terminal.",
            parse => new ChatOptions
            {
                Context = context,
                Model = parse.GetValue(model)!,
                NoThink = parse.GetValue(noThink),
                System = parse.GetValue(system),
                Threads = parse.GetValue(threads),
                CtxSize = parse.GetValue(ctxSize),
                KvCacheDType = parse.GetValue(kvCacheDType),
                Quantize = CliOptions.Quantization(parse.GetValue(quantize)!),
                NoWarmup = parse.GetValue(noWarmup),
                Tools = parse.GetValue(tools),
                Temperature = parse.GetValue(temperature),
                Seed = parse.GetValue(seed),
            },
            RunAsync);
        foreach (Option option in new Option[] { model, noThink, system, threads, ctxSize, quantize, kvCacheDType, noWarmup, tools, temperature, seed }) command.Options.Add(option);
        return command;
    }
}
