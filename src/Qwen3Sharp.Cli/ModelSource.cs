using Qwen3Sharp.Cli.Commands;
using Qwen3Sharp.Hub;
using Qwen3Sharp.Loading;

namespace Qwen3Sharp.Cli;

/// <summary>
/// Turns <c>--model</c> into a directory. The default model (<see cref="Qwen3Cli.DefaultModel"/>) is taken from the
/// Hugging Face cache when it is there and never downloaded implicitly: without it the embedded demo model is used,
/// with a loud notice, so the first command of the README works on a machine without internet. Any other hub id
/// is pulled first when missing.
/// </summary>
internal static class ModelSource
{
    public static async Task<string> ResolveAsync(string model, CliContext context, CancellationToken ct)
    {
        ModelLocator locator = ModelLocator.FromEnvironment(context.GetEnvironmentVariable);
        if (model == Qwen3Cli.DefaultModel)
        {
            if (locator.TryResolveLocal(model) is { } cached)
            {
                return cached;
            }

            string demo = DemoModel.Ensure(context);
            await context.Error.WriteLineAsync(DemoModel.Notice);
            return demo;
        }

        return await context.ResolveModelAsync(model, ct);
    }
}

/// <summary>
/// The embedded demo model: a tiny Qwen3-architecture model with the real Qwen3 tokenizer (carried inside this
/// program) and seeded random weights, written once into the user's cache. Its text is noise; it exists so that
/// serve, chat and run work out of the box.
/// </summary>
internal static class DemoModel
{
    public const string Name = "qwen3sharp-demo-tiny";
    private const ulong Seed = 0x51776E33;  // fixed: the demo model is the same bytes everywhere
    private const int Version = 1;

    public static readonly string Notice = $"""

        ==================================================================================================
          No --model given and Qwen/Qwen3-1.7B is not in the Hugging Face cache: using the EMBEDDED DEMO
          MODEL "{Name}-v{Version}" (random weights: its answers are noise; the API around it is real).
          Get the real model:  qwen3 pull Qwen/Qwen3-1.7B
          then run again:      qwen3 serve          (or: qwen3 serve --model /path/to/Qwen3-1.7B)
        ==================================================================================================

        """;

    /// <summary>The demo model's directory, written on first use.</summary>
    public static string Ensure(CliContext context)
    {
        string root = context.GetEnvironmentVariable("QWEN3SHARP_HOME")
            ?? Path.Combine(context.GetEnvironmentVariable("XDG_CACHE_HOME")
                ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "qwen3sharp");
        string directory = Path.Combine(root, $"{Name}-v{Version}");
        if (ModelFile.IsFile(Path.Combine(directory, "model.safetensors")))
        {
            return directory;
        }

        string staging = directory + ".tmp-" + Environment.ProcessId;
        string tokenizer = Path.Combine(staging, "tokenizer-source");
        EmbeddedTokenizer.WriteTo(tokenizer);

        string model = Path.Combine(staging, "model");
        ModelSynthesizer.Write(model, "tiny", new SynthesisOptions { Seed = Seed, TokenizerDirectory = tokenizer });
        try
        {
            Directory.CreateDirectory(root);
            Directory.Move(model, directory);
        }
        catch (IOException) when (ModelFile.IsFile(Path.Combine(directory, "model.safetensors")))
        {
            // another process finished first: its copy is identical
        }
        finally
        {
            Directory.Delete(staging, recursive: true);
        }

        return directory;
    }
}

/// <summary>The real Qwen3 tokenizer.json and tokenizer_config.json, carried inside this program as resources.</summary>
internal static class EmbeddedTokenizer
{
    /// <summary>Writes both files into <paramref name="directory"/> (created if needed).</summary>
    public static void WriteTo(string directory)
    {
        Directory.CreateDirectory(directory);
        foreach (string file in new[] { "tokenizer.json", "tokenizer_config.json" })
        {
            using Stream resource = typeof(EmbeddedTokenizer).Assembly.GetManifestResourceStream("qwen3-tokenizer/" + file)
                ?? throw new InvalidOperationException($"the embedded tokenizer file {file} is missing from this build");
            using FileStream output = File.Create(Path.Combine(directory, file));
            resource.CopyTo(output);
        }
    }
}
