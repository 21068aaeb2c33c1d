using System.Diagnostics;

namespace Qwen3Sharp.Tests.Cli;

/// <summary>Runs the built <c>qwen3</c> program as a child process, as a person would.</summary>
internal sealed class CliProcess : IDisposable
{
    private readonly Process _process;
    private readonly System.Text.StringBuilder _out = new();
    private readonly System.Text.StringBuilder _err = new();

    private const string EnvProgram = "/usr/bin/env";

    /// <summary>Whether this machine's env has --default-signal (GNU coreutils 8.31 and later).</summary>
    private static readonly Lazy<bool> EnvResetsSignals = new(() =>
    {
        if (!OperatingSystem.IsLinux() || !File.Exists(EnvProgram))
        {
            return false;
        }

        var probe = new ProcessStartInfo(EnvProgram) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        probe.ArgumentList.Add("--default-signal=INT,QUIT");
        probe.ArgumentList.Add("true");
        using Process p = Process.Start(probe)!;
        p.WaitForExit();
        return p.ExitCode == 0;
    });

    private CliProcess(Process process)
    {
        _process = process;
    }

    public static CliProcess Start(string arguments, IReadOnlyDictionary<string, string>? environment = null, bool redirectInput = true)
    {
        // A test run started in the background (`dotnet test ... &`, nohup) inherits SIGINT and SIGQUIT ignored, children
        // inherit that, and the runtime keeps an inherited ignore: `kill -INT` would then never reach qwen3 (as for any
        // program in a background job). GNU env's --default-signal puts them back to default before exec, so the signal
        // tests see what a user's terminal gives; same pid, as env execs dotnet.
        bool resetSignals = EnvResetsSignals.Value;
        var info = new ProcessStartInfo(resetSignals ? EnvProgram : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = redirectInput,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        if (resetSignals)
        {
            info.ArgumentList.Add("--default-signal=INT,QUIT");
            info.ArgumentList.Add("dotnet");
        }

        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "qwen3.dll"));
        foreach (string a in SplitArgs(arguments))
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["HF_HUB_OFFLINE"] = "1";
        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[k] = v;
        }

        var process = new Process { StartInfo = info };
        var cli = new CliProcess(process);
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (cli._out) cli._out.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (cli._err) cli._err.AppendLine(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return cli;
    }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public string Out { get { lock (_out) return _out.ToString(); } }

    public string Err { get { lock (_err) return _err.ToString(); } }

    public StreamWriter Input => _process.StandardInput;

    public async Task<int> WaitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
            throw new TimeoutException($"qwen3 did not exit within {timeout}. stdout: {Out} stderr: {Err}");
        }

        _process.WaitForExit();  // drains the output readers
        return _process.ExitCode;
    }

    /// <summary>Runs to completion and returns the exit code with both outputs.</summary>
    public static async Task<(int Code, string Out, string Err)> RunAsync(string arguments, string? stdin = null,
        IReadOnlyDictionary<string, string>? environment = null, int timeoutSeconds = 120)
    {
        using CliProcess p = Start(arguments, environment);
        if (stdin is not null)
        {
            await p.Input.WriteAsync(stdin);
        }

        p.Input.Close();
        int code = await p.WaitAsync(TimeSpan.FromSeconds(timeoutSeconds));
        return (code, p.Out, p.Err);
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        _process.Dispose();
    }

    private static IEnumerable<string> SplitArgs(string commandLine)
    {
        var current = new System.Text.StringBuilder();
        bool quoted = false;
        foreach (char c in commandLine)
        {
            if (c == '"')
            {
                quoted = !quoted;
            }
            else if (c == ' ' && !quoted)
            {
                if (current.Length > 0)
                {
                    yield return current.ToString();
                    current.Clear();
                }
            }
            else
            {
                current.Append(c);
            }
        }

        if (current.Length > 0)
        {
            yield return current.ToString();
        }
    }
}
