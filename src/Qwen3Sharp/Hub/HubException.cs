namespace Qwen3Sharp.Hub;

/// <summary>What went wrong talking to the Hugging Face hub or its local cache.</summary>
public enum HubErrorKind
{
    /// <summary>The model id or revision is not of the form ORG/NAME[@REVISION].</summary>
    InvalidReference,
    /// <summary>An environment variable such as HF_ENDPOINT holds a value that cannot be used.</summary>
    InvalidConfiguration,
    /// <summary>401/403: gated or private repository, or a missing/invalid token.</summary>
    Unauthorized,
    /// <summary>404: the repository, the revision or a file does not exist.</summary>
    NotFound,
    /// <summary>The downloaded bytes do not match the size or hash the hub published.</summary>
    ChecksumMismatch,
    /// <summary>The disk holding the cache is full.</summary>
    DiskFull,
    /// <summary>The connection dropped mid-download (after all retries); the partial file is kept for resuming.</summary>
    ConnectionInterrupted,
    /// <summary>The endpoint could not be reached at all (DNS, refused connection, TLS, timeout).</summary>
    Network,
    /// <summary>HF_HUB_OFFLINE is set and the requested snapshot is not in the cache.</summary>
    OfflineNotCached,
    /// <summary>The hub answered with something this client cannot use (5xx, malformed JSON, no ETag).</summary>
    ServerError,
}

/// <summary>A failure of <see cref="HubClient"/> or <see cref="ModelLocator"/>, with a message meant for the user.</summary>
public sealed class HubException : Exception
{
    public HubException(HubErrorKind kind, string message, string? repoId = null, string? fileName = null,
        int? statusCode = null, Exception? innerException = null)
        : base(message, innerException)
    {
        Kind = kind;
        RepoId = repoId;
        FileName = fileName;
        StatusCode = statusCode;
    }

    public HubErrorKind Kind { get; }

    /// <summary>The repository involved, e.g. <c>Qwen/Qwen3-1.7B</c>, when known.</summary>
    public string? RepoId { get; }

    /// <summary>The repository file involved, e.g. <c>model.safetensors</c>, when the failure is about one file.</summary>
    public string? FileName { get; }

    /// <summary>The HTTP status code, when the failure is an HTTP answer.</summary>
    public int? StatusCode { get; }
}
