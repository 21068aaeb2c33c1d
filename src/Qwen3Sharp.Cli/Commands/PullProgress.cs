using System.Collections.Concurrent;
using System.Globalization;
using Qwen3Sharp.Hub;
using Spectre.Console;

namespace Qwen3Sharp.Cli.Commands;

/// <summary>Byte counts for people: 1.5 KiB, 3.2 GiB.</summary>
internal static class ByteSize
{
    public static string Format(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes;
        int unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return unit == 0 ? $"{bytes} B" : value.ToString("0.0", CultureInfo.InvariantCulture) + " " + units[unit];
    }
}

/// <summary>One line per finished file, for logs and pipes (stdout is not a terminal).</summary>
internal sealed class LogPullProgress(TextWriter writer) : IPullProgress
{
    private readonly ConcurrentDictionary<string, long> _started = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    public void OnPlan(string repoId, string commit, IReadOnlyList<PullFile> files)
    {
        long? total = files.All(f => f.Size is not null) ? files.Sum(f => f.Size!.Value) : null;
        WriteLine($"{repoId}@{commit[..Math.Min(12, commit.Length)]}: {files.Count} files" + (total is long t ? $", {ByteSize.Format(t)}" : ""));
    }

    public void OnFileStarted(string fileName, long? totalBytes, long resumedBytes)
    {
        _started[fileName] = Environment.TickCount64;
        if (resumedBytes > 0) WriteLine($"{fileName}: resuming at {ByteSize.Format(resumedBytes)}");
    }

    public void OnFileProgress(string fileName, long bytesDone, long? totalBytes)
    {
    }

    public void OnFileCompleted(string fileName, long bytes, PulledFileSource source)
    {
        string how = source switch
        {
            PulledFileSource.Cached => "cached",
            PulledFileSource.LinkedExistingBlob => "linked from cache",
            _ => Rate(fileName, bytes),
        };
        WriteLine($"{fileName}: {ByteSize.Format(bytes)} {how}");
    }

    private string Rate(string fileName, long bytes)
    {
        if (!_started.TryGetValue(fileName, out long start)) return "downloaded";
        double seconds = Math.Max(0.001, (Environment.TickCount64 - start) / 1000.0);
        return $"downloaded in {seconds.ToString("0.0", CultureInfo.InvariantCulture)} s ({ByteSize.Format((long)(bytes / seconds))}/s)";
    }

    private void WriteLine(string line)
    {
        lock (_lock) writer.WriteLine(line);
    }
}

/// <summary>A Spectre.Console progress bar per file with bytes, speed and time left (stdout is a terminal).</summary>
internal sealed class SpectrePullProgress : IPullProgress
{
    private readonly ProgressContext _context;
    private readonly ConcurrentDictionary<string, ProgressTask> _tasks = new(StringComparer.Ordinal);

    private SpectrePullProgress(ProgressContext context) => _context = context;

    public static async Task<T> RunAsync<T>(IAnsiConsole console, Func<IPullProgress, Task<T>> pull)
    {
        return await console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .StartAsync(context => pull(new SpectrePullProgress(context)));
    }

    public void OnPlan(string repoId, string commit, IReadOnlyList<PullFile> files)
    {
        foreach (PullFile file in files)
            _tasks[file.Name] = _context.AddTask(Markup.Escape(file.Name), autoStart: false, maxValue: Math.Max(1, file.Size ?? 1));
    }

    public void OnFileStarted(string fileName, long? totalBytes, long resumedBytes)
    {
        ProgressTask task = Task(fileName);
        if (totalBytes is long total) task.MaxValue = Math.Max(1, total);
        task.StartTask();
        task.Value = resumedBytes;
    }

    public void OnFileProgress(string fileName, long bytesDone, long? totalBytes) => Task(fileName).Value = bytesDone;

    public void OnFileCompleted(string fileName, long bytes, PulledFileSource source)
    {
        ProgressTask task = Task(fileName);
        if (!task.IsStarted) task.StartTask();
        task.MaxValue = Math.Max(1, bytes);
        task.Value = task.MaxValue;
        task.StopTask();
    }

    private ProgressTask Task(string fileName) =>
        _tasks.GetOrAdd(fileName, name => _context.AddTask(Markup.Escape(name), autoStart: false));
}
