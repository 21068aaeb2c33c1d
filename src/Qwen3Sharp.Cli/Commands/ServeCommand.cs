namespace Qwen3Sharp.Cli.Commands;

/// <summary><c>qwen3 serve</c>: the OpenAI-compatible HTTP server.</summary>
public static partial class ServeCommand
{
    // ===== ENGINE WIRING POINT (coordinator): replace this body with the server start-up. =====
    public static Task<int> RunAsync(ServeOptions o, CancellationToken ct)
    {
        o.Context.Error.WriteLine("qwen3 serve: not yet wired");
        return Task.FromResult(Qwen3Cli.ExitError);
    }
}
