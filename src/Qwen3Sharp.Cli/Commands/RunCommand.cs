namespace Qwen3Sharp.Cli.Commands;

/// <summary><c>qwen3 run</c>: one-shot generation.</summary>
public static partial class RunCommand
{
    // ===== ENGINE WIRING POINT (coordinator): replace this body with one-shot generation. =====
    public static Task<int> RunAsync(RunOptions o, CancellationToken ct)
    {
        o.Context.Error.WriteLine("qwen3 run: not yet wired");
        return Task.FromResult(Qwen3Cli.ExitError);
    }
}
