using Qwen3Sharp.Cli;
using Qwen3Sharp.Engine;

namespace Qwen3Sharp.Tests.TestModels;

/// <summary>The embedded demo model expanded into a temporary directory, as the program does on first use, and loaded in process.</summary>
internal sealed class DemoModelHost : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "qwen3sharp-demo-" + Guid.NewGuid().ToString("N"));

    public DemoModelHost(int maxSequences)
    {
        DemoModel.Write(_directory);
        Host = Qwen3Host.Load(_directory, new HostOptions { ThreadCount = 2, ContextSize = 2048, MaxSequences = maxSequences });
    }

    public Qwen3Host Host { get; }

    public void Dispose()
    {
        Host.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}
