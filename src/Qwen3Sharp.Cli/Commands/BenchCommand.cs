namespace Qwen3Sharp.Cli.Commands;

/// <summary><c>qwen3 bench</c>: the end-to-end prefill/decode benchmark.</summary>
public static partial class BenchCommand
{
    // ===== ENGINE WIRING POINT (coordinator): replace this body with the end-to-end prefill/decode benchmark. =====
    public static Task<int> RunAsync(BenchOptions o, CancellationToken ct)
    {
        o.Context.Error.WriteLine("qwen3 bench: not yet wired");
        return Task.FromResult(Qwen3Cli.ExitError);
    }
}
