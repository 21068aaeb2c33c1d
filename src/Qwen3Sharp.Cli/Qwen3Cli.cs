using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Parsing;
using Qwen3Sharp.Cli.Commands;

namespace Qwen3Sharp.Cli;

/// <summary>The <c>qwen3</c> command line: serve, chat, run, pull, bench, synth. Exit codes: 0 ok, 1 error, 2 usage.</summary>
public static class Qwen3Cli
{
    public const int ExitOk = 0;
    public const int ExitError = 1;
    public const int ExitUsage = 2;

    /// <summary>The model used by serve, chat and run when --model is not given.</summary>
    public const string DefaultModel = "Qwen/Qwen3-1.7B";

    /// <summary>
    /// Parses and runs <paramref name="args"/> in-process. Null writers mean the process console; a non-null
    /// <paramref name="environment"/> replaces the process environment (HF_HOME, HF_ENDPOINT, ...).
    /// </summary>
    public static Task<int> InvokeAsync(string[] args, TextWriter? stdout = null, TextWriter? stderr = null,
        Func<string, string?>? environment = null, CancellationToken cancellationToken = default)
    {
        CliContext context = stdout is null && stderr is null && environment is null
            ? CliContext.Console
            : new CliContext
            {
                Out = stdout ?? Console.Out,
                Error = stderr ?? Console.Error,
                GetEnvironmentVariable = environment ?? Environment.GetEnvironmentVariable,
                IsOutputTerminal = stdout is null && !Console.IsOutputRedirected,
                IsErrorTerminal = stderr is null && !Console.IsErrorRedirected,
            };
        return InvokeAsync(args, context, cancellationToken);
    }

    public static async Task<int> InvokeAsync(string[] args, CliContext context, CancellationToken cancellationToken = default)
    {
        Command root = CreateRootCommand(context);
        ParseResult parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (ParseError error in parse.Errors) await context.Error.WriteLineAsync($"error: {error.Message}");
            await context.Error.WriteLineAsync();
            WriteHelp(root, parse.CommandResult, context.Error);
            return ExitUsage;
        }
        var invocation = new InvocationConfiguration
        {
            Output = context.Out,
            Error = context.Error,
            EnableDefaultExceptionHandler = false,
            ProcessTerminationTimeout = context.IsConsole ? TimeSpan.FromSeconds(2) : null,
        };
        try
        {
            return await parse.InvokeAsync(invocation, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            await context.Error.WriteLineAsync("error: cancelled");
            return ExitError;
        }
        catch (Exception e)
        {
            await context.Error.WriteLineAsync($"error: {e.Message}");
            return ExitError;
        }
    }

    /// <summary>The command tree; each subcommand's action binds its options record and calls its RunAsync.</summary>
    public static Command CreateRootCommand(CliContext context)
    {
        // a named Command rather than RootCommand, whose name is the host executable ("testhost" in tests)
        var root = new Command("qwen3", "qwen3: run Qwen3 language models in pure .NET — an OpenAI-compatible server, a chat REPL, one-shot generation, hub downloads and benchmarks.");
        root.Options.Add(new HelpOption());
        root.Options.Add(new VersionOption());
        root.Subcommands.Add(ServeCommand.Create(context));
        root.Subcommands.Add(ChatCommand.Create(context));
        root.Subcommands.Add(RunCommand.Create(context));
        root.Subcommands.Add(PullCommand.Create(context));
        root.Subcommands.Add(BenchCommand.Create(context));
        root.Subcommands.Add(BenchServeCommand.Create(context));
        root.Subcommands.Add(SynthCommand.Create(context));
        return root;
    }

    /// <summary>Parses <paramref name="args"/> against a fresh command tree (for tests and tools).</summary>
    public static ParseResult Parse(string[] args, CliContext? context = null) =>
        CreateRootCommand(context ?? CliContext.Console).Parse(args);

    /// <summary>The options record (ServeOptions, PullOptions, ...) of a successful parse; null for the root command.</summary>
    public static object? Bind(ParseResult parse) =>
        parse.CommandResult.Command is IBindableCommand command ? command.Bind(parse) : null;

    private static void WriteHelp(Command root, CommandResult commandResult, TextWriter writer)
    {
        var path = new List<string>();
        for (SymbolResult? r = commandResult; r is CommandResult c && c.Command != root; r = r.Parent)
            path.Insert(0, c.Command.Name);
        path.Add("--help");
        root.Parse(path).Invoke(new InvocationConfiguration { Output = writer, Error = writer });
    }
}
