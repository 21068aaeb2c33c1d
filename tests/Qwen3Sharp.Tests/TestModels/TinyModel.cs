using Qwen3Sharp.Engine;
using Qwen3Sharp.Loading;

namespace Qwen3Sharp.Tests.TestModels;

/// <summary>
/// The synthesized <c>tiny</c> Qwen3 model (random weights, the real Qwen3 tokenizer and chat template), written
/// once per test run into a temporary directory. Tests that need the whole stack (engine, chat layer, server)
/// load it; its text is noise, so they check structure and exact agreement, not meaning.
/// </summary>
internal static class TinyModel
{
    private static readonly Lazy<string> LazyDirectory = new(Write);

    public static string Directory => LazyDirectory.Value;

    public static string TokenizerDirectory => Path.Combine(AppContext.BaseDirectory, "Fixtures", "qwen3-tokenizer");

    /// <summary>A host over the tiny model; dispose it.</summary>
    public static Qwen3Host Load(HostOptions? options = null) =>
        Qwen3Host.Load(Directory, options ?? new HostOptions { ThreadCount = 2, ContextSize = 1024 });

    private static string Write()
    {
        string directory = Path.Combine(Path.GetTempPath(), $"qwen3sharp-tests-tiny-{Environment.ProcessId}");
        if (!File.Exists(Path.Combine(directory, "model.safetensors")))
        {
            ModelSynthesizer.Write(directory, "tiny", new SynthesisOptions { Seed = 7, TokenizerDirectory = TokenizerDirectory });
        }

        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                System.IO.Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
                // still mapped on some platforms; the temp folder is cleaned by the OS
            }
        };
        return directory;
    }
}
