namespace Qwen3Sharp.Hub;

/// <summary>
/// Turns a <c>--model</c> value into a local directory or GGUF file: an existing directory or GGUF file as is; otherwise
/// a hub id (<c>Qwen/Qwen3-1.7B</c>, <c>Qwen/Qwen3-1.7B@REVISION</c>, or <c>Qwen/Qwen3-1.7B-GGUF:Q8_0</c> for one GGUF
/// file of the repository) served from the complete cached snapshot
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
        if (Loading.GgufModel.IsGguf(model)) return Path.GetFullPath(model);   // a local GGUF file
        ModelReference reference = ParseHubId(model);
        string? snapshot = HubCache.TryGetSnapshotDir(_settings.CacheDir, reference);
        if (snapshot is null) return null;
        if (reference.Quant is not null) return CachedGguf(snapshot, reference);
        if (HubCache.IsCompleteSnapshot(snapshot)) return snapshot;
        // a GGUF repository named without a tag: the model the pull chose by the same rule (Q4_K_M, else the first)
        if (Directory.EnumerateFiles(snapshot, "*.safetensors", SearchOption.AllDirectories).Any()) return null;
        string? quant = GgufQuantSelector.DefaultQuant(Directory.EnumerateFiles(snapshot, "*.gguf", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(snapshot, f).Replace(Path.DirectorySeparatorChar, '/')));
        return quant is null ? null : CachedGguf(snapshot, reference with { Quant = quant });
    }

    /// <summary>The cached GGUF file of a quantization reference when every part of it is in the snapshot, else null.</summary>
    private static string? CachedGguf(string snapshot, ModelReference reference)
    {
        var files = Directory.EnumerateFiles(snapshot, "*.gguf", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(snapshot, f).Replace(Path.DirectorySeparatorChar, '/'))
            .ToList();
        IReadOnlyList<string> parts;
        try
        {
            parts = GgufQuantSelector.Select(reference.RepoId, files, reference.Quant!);
        }
        catch (HubException)
        {
            return null;   // not pulled yet (or ambiguous): the pull decides with the repository's full file list
        }

        string[] paths = parts.Select(p => Path.Combine(snapshot, p.Replace('/', Path.DirectorySeparatorChar))).ToArray();
        return paths.All(Loading.ModelFile.IsFile) ? paths[0] : null;
    }

    /// <summary>
    /// The local directory of <paramref name="model"/>, pulling it from the hub first when needed (progress goes to
    /// <paramref name="progress"/>).
    /// </summary>
    public async Task<string> ResolveAsync(string model, IPullProgress? progress = null, CancellationToken cancellationToken = default)
    {
        if (TryResolveLocal(model) is { } local) return local;
        ModelReference reference = ParseHubId(model);
        if (_settings.Offline && reference.Quant is not null)
        {
            throw new HubException(HubErrorKind.OfflineNotCached,
                $"HF_HUB_OFFLINE is set and the {reference.Quant} GGUF of {reference.RepoId} is not in the cache " +
                $"({HubCache.RepoDir(_settings.CacheDir, reference.RepoId)}). Unset HF_HUB_OFFLINE and run `qwen3 pull {reference}`.",
                reference.RepoId);
        }
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
        return result.ModelPath;
    }

    private static ModelReference ParseHubId(string model)
    {
        if (ModelReference.TryParse(model, out ModelReference reference)) return reference;
        throw new HubException(HubErrorKind.InvalidReference,
            $"--model '{model}' is neither an existing directory or GGUF file nor a hub model id (ORG/NAME, ORG/NAME@REVISION or ORG/NAME-GGUF:QUANT, e.g. Qwen/Qwen3-1.7B or Qwen/Qwen3-1.7B-GGUF:Q8_0).");
    }
}
