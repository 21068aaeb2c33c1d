using System.Diagnostics;
using Qwen3Sharp.Loading;

namespace Qwen3Sharp.Cli.Commands;

/// <summary><c>qwen3 synth</c>: a random-weight checkpoint in Hugging Face layout, with the real Qwen3 tokenizer.</summary>
public static partial class SynthCommand
{
    public static Task<int> RunAsync(SynthOptions o, CancellationToken ct)
    {
        string preset = o.Preset switch
        {
            SynthPreset.Qwen3_0_6B => "qwen3-0.6b",
            SynthPreset.Qwen3_4B => "qwen3-4b",
            SynthPreset.Tiny => "tiny",
            _ => "qwen3-1.7b",
        };
        string tokenizer = Path.Combine(Path.GetTempPath(), "qwen3sharp-tokenizer-" + Environment.ProcessId);
        try
        {
            EmbeddedTokenizer.WriteTo(tokenizer);
            var clock = Stopwatch.StartNew();
            Qwen3Config config = ModelSynthesizer.Write(o.Out, preset, new SynthesisOptions
            {
                DType = o.DType,
                Seed = (ulong)o.Seed,
                TokenizerDirectory = tokenizer,
            });
            long bytes = Directory.EnumerateFiles(o.Out, "*.safetensors").Sum(ModelFile.Length);
            o.Context.Out.WriteLine(
                $"{preset} ({config.NumHiddenLayers} layers, hidden {config.HiddenSize}, vocab {config.VocabSize}, {o.DType}): " +
                $"{bytes / 1e9:F2} GB of weights written to {Path.GetFullPath(o.Out)} in {clock.Elapsed.TotalSeconds:F1} s");
            return Task.FromResult(Qwen3Cli.ExitOk);
        }
        finally
        {
            Directory.Delete(tokenizer, recursive: true);
        }
    }
}
