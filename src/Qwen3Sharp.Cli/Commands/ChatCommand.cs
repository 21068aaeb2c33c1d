namespace Qwen3Sharp.Cli.Commands;

/// <summary><c>qwen3 chat</c>: the interactive chat REPL.</summary>
public static partial class ChatCommand
{
    // ===== ENGINE WIRING POINT (coordinator): replace this body with the interactive chat REPL. =====
    public static Task<int> RunAsync(ChatOptions o, CancellationToken ct)
    {
        o.Context.Error.WriteLine("qwen3 chat: not yet wired");
        return Task.FromResult(Qwen3Cli.ExitError);
    }
}
