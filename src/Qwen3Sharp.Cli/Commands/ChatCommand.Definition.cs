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
    /// <summary>--quantize: Q8_0 or Q4_0 at load, or null.</summary>
    public Tensors.DType? Quantize { get; init; }
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
        Option<string> quantize = CliOptions.Quantize();
        var command = new CliCommand<ChatOptions>("chat", "Chat with the model in the terminal.",
            parse => new ChatOptions
            {
                Context = context,
                Model = parse.GetValue(model)!,
                NoThink = parse.GetValue(noThink),
                System = parse.GetValue(system),
                Threads = parse.GetValue(threads),
                CtxSize = parse.GetValue(ctxSize),
                Quantize = CliOptions.Quantization(parse.GetValue(quantize)!),
            },
            RunAsync);
        foreach (Option option in new Option[] { model, noThink, system, threads, ctxSize, quantize }) command.Options.Add(option);
        return command;
    }
}
