namespace Qwen3Sharp.Cli.Commands;

/// <summary><c>qwen3 synth</c>: writing a random-weight checkpoint.</summary>
public static partial class SynthCommand
{
    // ===== ENGINE WIRING POINT (coordinator): replace this body with writing a random-weight checkpoint. =====
    public static Task<int> RunAsync(SynthOptions o, CancellationToken ct)
    {
        o.Context.Error.WriteLine("qwen3 synth: not yet wired");
        return Task.FromResult(Qwen3Cli.ExitError);
    }
}
