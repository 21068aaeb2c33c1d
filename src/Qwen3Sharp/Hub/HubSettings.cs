namespace Qwen3Sharp.Hub;

/// <summary>
/// Where the Hugging Face cache lives and how to reach the hub, read from the same environment variables as
/// huggingface_hub so that both share one cache: HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN (or the token
/// file), HF_HUB_OFFLINE, HF_HUB_ETAG_TIMEOUT and HF_HUB_DOWNLOAD_TIMEOUT.
/// </summary>
public sealed record HubSettings
{
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>The hub cache directory that holds <c>models--ORG--NAME</c> folders ($HF_HUB_CACHE, default $HF_HOME/hub).</summary>
    public required string CacheDir { get; init; }

    /// <summary>The hub or mirror base URL without a trailing slash ($HF_ENDPOINT, default https://huggingface.co).</summary>
    public string Endpoint { get; init; } = DefaultEndpoint;

    /// <summary>The bearer token, or null for anonymous access.</summary>
    public string? Token { get; init; }

    /// <summary>When true, no network access: only the cache is used ($HF_HUB_OFFLINE=1).</summary>
    public bool Offline { get; init; }

    /// <summary>Time allowed for metadata requests (repo info, HEAD of a file).</summary>
    public TimeSpan EtagTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Longest time a download may go without receiving a byte before it counts as interrupted.</summary>
    public TimeSpan DownloadTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Reads the settings from the process environment (or from <paramref name="getEnvironmentVariable"/>).</summary>
    public static HubSettings FromEnvironment(Func<string, string?>? getEnvironmentVariable = null)
    {
        Func<string, string?> env = getEnvironmentVariable ?? Environment.GetEnvironmentVariable;
        string? Get(string name) => env(name) is { Length: > 0 } v ? v : null;

        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        string hfHome = ExpandUser(Get("HF_HOME"), home)
            ?? Path.Combine(ExpandUser(Get("XDG_CACHE_HOME"), home) ?? Path.Combine(home, ".cache"), "huggingface");
        string cacheDir = ExpandUser(Get("HF_HUB_CACHE"), home)
            ?? ExpandUser(Get("HUGGINGFACE_HUB_CACHE"), home)
            ?? Path.Combine(hfHome, "hub");

        string endpoint = (Get("HF_ENDPOINT") ?? DefaultEndpoint).TrimEnd('/');
        if (!Uri.TryCreate(endpoint, UriKind.Absolute, out Uri? endpointUri)
            || (endpointUri.Scheme != Uri.UriSchemeHttp && endpointUri.Scheme != Uri.UriSchemeHttps))
        {
            throw new HubException(HubErrorKind.InvalidConfiguration,
                $"HF_ENDPOINT '{endpoint}' is not an http(s) URL.");
        }

        string? token = Get("HF_TOKEN") ?? Get("HUGGING_FACE_HUB_TOKEN");
        if (token is null)
        {
            string tokenPath = ExpandUser(Get("HF_TOKEN_PATH"), home) ?? Path.Combine(hfHome, "token");
            token = ReadTokenFile(tokenPath);
        }

        return new HubSettings
        {
            CacheDir = Path.GetFullPath(cacheDir),
            Endpoint = endpoint,
            Token = string.IsNullOrWhiteSpace(token) ? null : token.Trim(),
            Offline = IsTrue(Get("HF_HUB_OFFLINE")),
            EtagTimeout = ReadSeconds(Get("HF_HUB_ETAG_TIMEOUT"), "HF_HUB_ETAG_TIMEOUT") ?? TimeSpan.FromSeconds(10),
            DownloadTimeout = ReadSeconds(Get("HF_HUB_DOWNLOAD_TIMEOUT"), "HF_HUB_DOWNLOAD_TIMEOUT") ?? TimeSpan.FromSeconds(10),
        };
    }

    // huggingface_hub's _is_true: "1", "ON", "YES", "TRUE" in any case.
    private static bool IsTrue(string? value) =>
        value is not null && value.Trim().ToUpperInvariant() is "1" or "ON" or "YES" or "TRUE";

    private static string? ExpandUser(string? path, string home)
    {
        if (path is null) return null;
        if (path == "~") return home;
        if (path.StartsWith("~/", StringComparison.Ordinal) || path.StartsWith("~\\", StringComparison.Ordinal))
            return Path.Combine(home, path[2..]);
        return path;
    }

    private static string? ReadTokenFile(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadAllText(path).Trim() : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // an unreadable token file means anonymous access, as in huggingface_hub
        }
    }

    private static TimeSpan? ReadSeconds(string? value, string name)
    {
        if (value is null) return null;
        if (double.TryParse(value, System.Globalization.NumberStyles.Float,
                System.Globalization.CultureInfo.InvariantCulture, out double s) && s > 0 && s < 86_400)
        {
            return TimeSpan.FromSeconds(s);
        }
        throw new HubException(HubErrorKind.InvalidConfiguration, $"{name}='{value}' is not a number of seconds.");
    }
}
