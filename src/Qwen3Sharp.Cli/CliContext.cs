namespace Qwen3Sharp.Cli;

/// <summary>Where a command writes and what it reads from its environment; the console, or writers in tests.</summary>
public sealed class CliContext
{
    private static readonly Lazy<CliContext> ConsoleContext = new(() => new CliContext
    {
        Out = System.Console.Out,
        Error = System.Console.Error,
        GetEnvironmentVariable = Environment.GetEnvironmentVariable,
        IsOutputTerminal = !System.Console.IsOutputRedirected,
        IsErrorTerminal = !System.Console.IsErrorRedirected,
        IsConsole = true,
    });

    /// <summary>Standard output: results and, when not a terminal, one log line per event.</summary>
    public required TextWriter Out { get; init; }

    /// <summary>Standard error: errors and usage messages.</summary>
    public required TextWriter Error { get; init; }

    /// <summary>Reads an environment variable (HF_HOME, HF_ENDPOINT...); tests pass a dictionary lookup.</summary>
    public Func<string, string?> GetEnvironmentVariable { get; init; } = Environment.GetEnvironmentVariable;

    /// <summary>True when <see cref="Out"/> is an interactive terminal: progress bars instead of log lines.</summary>
    public bool IsOutputTerminal { get; init; }

    /// <summary>True when <see cref="Error"/> is an interactive terminal (download progress of serve/chat/run goes there).</summary>
    public bool IsErrorTerminal { get; init; }

    /// <summary>True for the real process console (Ctrl+C handling, Spectre's own console).</summary>
    public bool IsConsole { get; init; }

    /// <summary>The process console.</summary>
    public static CliContext Console => ConsoleContext.Value;
}
