using Qwen3Sharp.Hub;
using Spectre.Console;

namespace Qwen3Sharp.Cli.Commands;

/// <summary>Turns a --model value into a local directory for serve, chat, run and bench.</summary>
public static class ModelResolution
{
    /// <summary>
    /// A local directory as is; a hub id (ORG/NAME[@REV]) from the Hugging Face cache, pulled first when missing
    /// (progress on stderr, so stdout stays clean for <c>run --json</c>). Throws <see cref="HubException"/> with a
    /// user-facing message (offline and not cached, 401/404, ...), which the CLI prints as "error: ..." with exit 1.
    /// </summary>
    public static async Task<string> ResolveModelAsync(this CliContext context, string model, CancellationToken ct)
    {
        var locator = new ModelLocator(HubSettings.FromEnvironment(context.GetEnvironmentVariable));
        if (locator.TryResolveLocal(model) is { } local) return local;
        if (context.IsErrorTerminal)
        {
            IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(context.Error) });
            string? dir = null;
            await SpectrePullProgress.RunAsync(console, async progress =>
            {
                dir = await locator.ResolveAsync(model, progress, ct);
                return dir;
            });
            return dir!;
        }
        return await locator.ResolveAsync(model, new LogPullProgress(context.Error), ct);
    }
}
