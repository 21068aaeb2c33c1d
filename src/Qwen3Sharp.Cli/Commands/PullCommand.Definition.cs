using System.CommandLine;
using Qwen3Sharp.Hub;

namespace Qwen3Sharp.Cli.Commands;

/// <summary>The options of <c>qwen3 pull</c>.</summary>
public sealed record PullOptions
{
    public CliContext Context { get; init; } = CliContext.Console;
    /// <summary>The repository and revision (ORG/NAME, ORG/NAME@REV, or --revision).</summary>
    public ModelReference Model { get; init; }
}

public static partial class PullCommand
{
    internal static Command Create(CliContext context)
    {
        var model = new Argument<string>("model") { Description = "Hub model id ORG/NAME[@REVISION], e.g. Qwen/Qwen3-1.7B; for a GGUF repository ORG/NAME:QUANT, e.g. Qwen/Qwen3-1.7B-GGUF:Q8_0 (one file).", HelpName = "ORG/NAME" };
        var revision = new Option<string?>("--revision")
        {
            Description = "Branch, tag or commit sha to download [default: main].",
            HelpName = "REV",
        };
        revision.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string?>() is { } rev && !ModelReference.IsValidRevision(rev))
                r.AddError($"--revision '{rev}' is not a valid branch, tag or commit.");
        });
        var command = new CliCommand<PullOptions>("pull",
            "Download a model's inference files (config, tokenizer, safetensors; or the one GGUF file of ORG/NAME:QUANT) into the Hugging Face cache ($HF_HOME/hub), " +
            "shared with Python tools. Honours HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE.",
            parse =>
            {
                var reference = ModelReference.Parse(parse.GetValue(model)!);
                if (parse.GetValue(revision) is { } rev) reference = reference with { Revision = rev };
                return new PullOptions { Context = context, Model = reference };
            },
            RunAsync);
        command.Arguments.Add(model);
        command.Options.Add(revision);
        command.Validators.Add(r =>
        {
            string? text = r.GetValue(model);
            string? rev = r.GetValue(revision);
            if (text is not null && !ModelReference.TryParse(text, out _))
                r.AddError($"'{text}' is not a hub model id: expected ORG/NAME, ORG/NAME@REVISION or ORG/NAME:QUANT, e.g. Qwen/Qwen3-1.7B or Qwen/Qwen3-1.7B-GGUF:Q8_0.");
            else if (text is not null && rev is not null && ModelReference.TryParse(text, out ModelReference parsed)
                && text.Contains('@') && parsed.Revision != rev)
            {
                r.AddError($"The revision is given twice ('{text}' and --revision {rev}); give it once.");
            }
        });
        return command;
    }
}
