using Qwen3Sharp.Hub;
using Spectre.Console;

namespace Qwen3Sharp.Cli.Commands;

/// <summary><c>qwen3 pull</c>: downloads a model into the Hugging Face cache and prints the snapshot directory.</summary>
public static partial class PullCommand
{
    public static async Task<int> RunAsync(PullOptions o, CancellationToken ct)
    {
        try
        {
            HubSettings settings = HubSettings.FromEnvironment(o.Context.GetEnvironmentVariable);
            using var client = new HubClient(settings);
            PullResult result;
            if (o.Context.IsOutputTerminal && !settings.Offline)
            {
                IAnsiConsole console = o.Context.IsConsole
                    ? AnsiConsole.Console
                    : AnsiConsole.Create(new AnsiConsoleSettings
                    {
                        Out = new AnsiConsoleOutput(o.Context.Out),
                        Interactive = InteractionSupport.Yes,
                        Ansi = AnsiSupport.Yes,
                    });
                result = await SpectrePullProgress.RunAsync(console, progress => client.PullAsync(o.Model, progress, ct));
            }
            else
            {
                result = await client.PullAsync(o.Model, new LogPullProgress(o.Context.Out), ct);
            }
            long total = result.Files.Sum(f => f.Size);
            await o.Context.Out.WriteLineAsync(
                $"{result.RepoId}@{result.Commit[..12]}: {result.Files.Count} files, {ByteSize.Format(total)} " +
                $"({ByteSize.Format(result.DownloadedBytes)} downloaded)");
            await o.Context.Out.WriteLineAsync(result.ModelPath);
            return Qwen3Cli.ExitOk;
        }
        catch (HubException e)
        {
            await o.Context.Error.WriteLineAsync($"error: {e.Message}");
            return Qwen3Cli.ExitError;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            await o.Context.Error.WriteLineAsync($"error: pull of {o.Model} interrupted; run the same command again to resume.");
            return Qwen3Cli.ExitError;
        }
    }
}
