namespace Qwen3Sharp.Hub;

/// <summary>
/// Turns a <c>--model</c> value into a local directory: an existing directory as is; otherwise a hub id
/// (<c>Qwen/Qwen3-1.7B</c> or <c>Qwen/Qwen3-1.7B@REVISION</c>) served from the complete cached snapshot
/// (refs/{revision} → snapshots/{commit}) without touching the network, pulled first when it is missing or
/// incomplete and the hub is reachable, and a clear <see cref="HubException"/> when offline and not cached.
/// </summary>
public sealed class ModelLocator
{
    private readonly HubSettings _settings;
    private readonly Func<HubClient> _clientFactory;

    public ModelLocator(HubSettings settings, Func<HubClient>? clientFactory = null)
    {
        _settings = settings;
        _clientFactory = clientFactory ?? (() => new HubClient(settings));
    }

    /// <summary>A locator with <see cref="HubSettings.FromEnvironment"/>.</summary>
    public static ModelLocator FromEnvironment(Func<string, string?>? getEnvironmentVariable = null) =>
        new(HubSettings.FromEnvironment(getEnvironmentVariable));

    /// <summary>Resolves without downloading: the directory, or null when a pull is needed (hub id not cached).</summary>
    public string? TryResolveLocal(string model)
    {
        if (Directory.Exists(model)) return Path.GetFullPath(model);
        ModelReference reference = ParseHubId(model);
        string? snapshot = HubCache.TryGetSnapshotDir(_settings.CacheDir, reference);
        return snapshot is not null && HubCache.IsCompleteSnapshot(snapshot) ? snapshot : null;
    }

    /// <summary>
    /// The local directory of <paramref name="model"/>, pulling it from the hub first when needed (progress goes to
    /// <paramref name="progress"/>).
    /// </summary>
    public async Task<string> ResolveAsync(string model, IPullProgress? progress = null, CancellationToken cancellationToken = default)
    {
        if (TryResolveLocal(model) is { } local) return local;
        ModelReference reference = ParseHubId(model);
        if (_settings.Offline)
        {
            string? partial = HubCache.TryGetSnapshotDir(_settings.CacheDir, reference);
            throw new HubException(HubErrorKind.OfflineNotCached,
                partial is null
                    ? $"HF_HUB_OFFLINE is set and {reference} is not in the cache ({HubCache.RepoDir(_settings.CacheDir, reference.RepoId)}). " +
                      $"Unset HF_HUB_OFFLINE and run `qwen3 pull {reference}`, or pass a local model directory."
                    : $"HF_HUB_OFFLINE is set and the cached snapshot {partial} of {reference} is incomplete: " +
                      string.Join("; ", HubCache.MissingFiles(partial)) +
                      $". Unset HF_HUB_OFFLINE and run `qwen3 pull {reference}` to finish it.",
                reference.RepoId);
        }
        using HubClient client = _clientFactory();
        PullResult result = await client.PullAsync(reference, progress, cancellationToken).ConfigureAwait(false);
        return result.SnapshotDir;
    }

    private static ModelReference ParseHubId(string model)
    {
        if (ModelReference.TryParse(model, out ModelReference reference)) return reference;
        throw new HubException(HubErrorKind.InvalidReference,
            $"--model '{model}' is neither an existing directory nor a hub model id (ORG/NAME or ORG/NAME@REVISION, e.g. Qwen/Qwen3-1.7B).");
    }
}
