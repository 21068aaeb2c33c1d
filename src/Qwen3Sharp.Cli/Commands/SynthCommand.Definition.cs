using System.CommandLine;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Cli.Commands;

/// <summary>The architecture <c>qwen3 synth</c> writes random weights for.</summary>
public enum SynthPreset
{
    /// <summary>Qwen3-1.7B shapes.</summary>
    Qwen3_1_7B,
    /// <summary>Qwen3-0.6B shapes.</summary>
    Qwen3_0_6B,
    /// <summary>Qwen3-4B shapes.</summary>
    Qwen3_4B,
    /// <summary>A few-layer model for tests.</summary>
    Tiny,
}

/// <summary>The options of <c>qwen3 synth</c>.</summary>
public sealed record SynthOptions
{
    public CliContext Context { get; init; } = CliContext.Console;
    public SynthPreset Preset { get; init; }
    /// <summary>--out: the directory to write config.json, tokenizer files and model.safetensors into.</summary>
    public string Out { get; init; } = "";
    public DType DType { get; init; } = DType.BF16;
    public int Seed { get; init; }
}

public static partial class SynthCommand
{
    internal static Command Create(CliContext context)
    {
        var preset = new Option<string>("--preset") { Description = "Architecture to synthesize.", Required = true };
        preset.AcceptOnlyFromAmong("qwen3-1.7b", "qwen3-0.6b", "qwen3-4b", "tiny");
        var output = new Option<string>("--out") { Description = "Directory to write the checkpoint into.", Required = true, HelpName = "DIR" };
        output.Validators.Add(r =>
        {
            if (string.IsNullOrWhiteSpace(r.GetValueOrDefault<string>())) r.AddError("--out must not be empty.");
        });
        Option<string> dtype = CliOptions.Choice("--dtype", "Weight element type.", "bf16", "bf16", "f16", "f32");
        var seed = new Option<int>("--seed") { Description = "Random seed of the weights.", DefaultValueFactory = _ => 0, HelpName = "N" };
        var command = new CliCommand<SynthOptions>("synth", "Write a random-weight Qwen3 checkpoint (for benchmarks and tests without downloads).",
            parse => new SynthOptions
            {
                Context = context,
                Preset = parse.GetValue(preset) switch
                {
                    "qwen3-0.6b" => SynthPreset.Qwen3_0_6B,
                    "qwen3-4b" => SynthPreset.Qwen3_4B,
                    "tiny" => SynthPreset.Tiny,
                    _ => SynthPreset.Qwen3_1_7B,
                },
                Out = parse.GetValue(output)!,
                DType = parse.GetValue(dtype) switch
                {
                    "f16" => DType.F16,
                    "f32" => DType.F32,
                    _ => DType.BF16,
                },
                Seed = parse.GetValue(seed),
            },
            RunAsync);
        foreach (Option option in new Option[] { preset, output, dtype, seed }) command.Options.Add(option);
        return command;
    }
}
