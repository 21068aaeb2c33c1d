namespace Qwen3Sharp.Hub;

/// <summary>Tuning of <see cref="HubClient"/> downloads; the defaults suit interactive use.</summary>
public sealed record HubClientOptions
{
    /// <summary>How many files download at the same time.</summary>
    public int MaxParallelDownloads { get; init; } = 4;

    /// <summary>How many times a dropped connection is retried (resuming with a Range request) before failing.</summary>
    public int MaxRetries { get; init; } = 5;

    /// <summary>Pause before each retry.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Which repository files a pull fetches; null means <see cref="HubClient.IsInferenceFile"/>.</summary>
    public Func<string, bool>? FileFilter { get; init; }
}
