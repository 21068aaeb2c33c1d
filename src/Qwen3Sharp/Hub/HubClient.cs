using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Qwen3Sharp.Loading;

namespace Qwen3Sharp.Hub;

/// <summary>
/// Downloads model files from the Hugging Face hub (or a mirror) into the huggingface_hub cache layout
/// (<see cref="HubCache"/>), so that snapshots fetched here and by Python tools are shared. Downloads resume from
/// <c>blobs/{etag}.incomplete</c> with Range requests, are verified against the hub's sha256 (LFS files) or git
/// blob id (other files), and run a few files at a time.
/// </summary>
public sealed class HubClient : IDisposable
{
    private const int CopyBufferBytes = 1 << 20;
    private const long ProgressStepBytes = 64 * 1024;
    private const int MaxRedirects = 10;

    private readonly HttpClient _http;
    private readonly Uri _endpoint;
    private readonly HubClientOptions _options;

    public HubClient(HubSettings settings, HubClientOptions? options = null, HttpMessageHandler? handler = null)
    {
        Settings = settings;
        _options = options ?? new HubClientOptions();
        if (_options.MaxParallelDownloads < 1) throw new ArgumentOutOfRangeException(nameof(options), "MaxParallelDownloads must be at least 1.");
        if (_options.MaxRetries < 0) throw new ArgumentOutOfRangeException(nameof(options), "MaxRetries must not be negative.");
        _endpoint = new Uri(settings.Endpoint.TrimEnd('/') + "/");
        _http = new HttpClient(handler ?? new SocketsHttpHandler
        {
            AllowAutoRedirect = false, // redirects are followed by hand: relative ones always, the CDN only for GET
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = TimeSpan.FromSeconds(30),
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
        })
        {
            Timeout = Timeout.InfiniteTimeSpan, // per-request timeouts come from Settings
        };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("qwen3sharp/0.1");
    }

    public HubSettings Settings { get; }

    /// <summary>
    /// The files inference needs: config.json, generation_config.json, tokenizer.json, tokenizer_config.json,
    /// vocab.json, merges.txt, chat_template.jinja, model.safetensors.index.json and *.safetensors, at the
    /// repository root.
    /// </summary>
    public static bool IsInferenceFile(string name) =>
        !name.Contains('/')
        && (name is "config.json" or "generation_config.json" or "tokenizer.json" or "tokenizer_config.json"
                or "vocab.json" or "merges.txt" or "chat_template.jinja" or "model.safetensors.index.json"
            || name.EndsWith(".safetensors", StringComparison.Ordinal));

    private static bool HasWeights(string name) => name.EndsWith(".safetensors", StringComparison.Ordinal);

    /// <summary><c>GET {endpoint}/api/models/{repo}/revision/{revision}?blobs=true</c>.</summary>
    public async Task<RepoInfo> GetRepoInfoAsync(ModelReference model, CancellationToken cancellationToken = default)
    {
        ThrowIfOffline(model);
        var uri = new Uri(_endpoint, $"api/models/{model.RepoId}/revision/{Uri.EscapeDataString(model.Revision)}?blobs=true");
        using HttpResponseMessage response = await SendWithTimeoutAsync(HttpMethod.Get, uri, null, followAbsoluteRedirects: true,
            Settings.EtagTimeout, model.RepoId, cancellationToken).ConfigureAwait(false);
        ThrowForStatus(response, model, fileName: null);
        try
        {
            await using Stream body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            RepoInfo? info = await JsonSerializer.DeserializeAsync(body, HubJsonContext.Default.RepoInfo, cancellationToken).ConfigureAwait(false);
            if (info?.Sha is not { Length: > 0 })
                throw new HubException(HubErrorKind.ServerError, $"{uri} answered without a commit 'sha'.", model.RepoId);
            return info;
        }
        catch (JsonException e)
        {
            throw new HubException(HubErrorKind.ServerError, $"{uri} answered with malformed JSON: {e.Message}", model.RepoId, innerException: e);
        }
        catch (HttpRequestException e)
        {
            throw NetworkError(model.RepoId, e);
        }
    }

    /// <summary>Pulls <paramref name="repoId"/> at <paramref name="revision"/>; see <see cref="PullAsync(ModelReference, IPullProgress?, CancellationToken)"/>.</summary>
    public Task<PullResult> PullAsync(string repoId, string revision = ModelReference.DefaultRevision,
        IPullProgress? progress = null, CancellationToken cancellationToken = default) =>
        PullAsync(ModelReference.Parse(repoId + "@" + revision), progress, cancellationToken);

    /// <summary>
    /// Makes sure the snapshot of <paramref name="model"/> holds every file selected by the filter, downloading the
    /// missing ones, writes <c>refs/{revision}</c>, and returns the snapshot directory. A second pull of a complete
    /// snapshot downloads nothing. With <see cref="HubSettings.Offline"/> the cached snapshot is returned as is.
    /// </summary>
    public async Task<PullResult> PullAsync(ModelReference model, IPullProgress? progress = null,
        CancellationToken cancellationToken = default)
    {
        if (Settings.Offline) return PullFromCacheOnly(model, progress);

        RepoInfo info = await GetRepoInfoAsync(model, cancellationToken).ConfigureAwait(false);
        string commit = info.Sha!;
        if (!ModelReference.IsCommitHash(commit))
            throw new HubException(HubErrorKind.ServerError, $"The hub returned '{commit}' as the commit of {model}, which is not a 40-hex sha.", model.RepoId);
        if (model.Revision != commit) WriteRef(model, commit);

        IEnumerable<string> repoFiles = info.Siblings.Select(s => s.RFileName);
        Func<string, bool> checkpointFiles = _options.FileFilter ?? IsInferenceFile;
        // no tag on a repository without safetensors weights: its GGUF Q4_K_M, else the first, as llama.cpp's -hf and Ollama pick
        string? quant = model.Quant ?? (repoFiles.Any(HasWeights) ? null : GgufQuantSelector.DefaultQuant(repoFiles));
        IReadOnlyList<string>? gguf = quant is null ? null : GgufQuantSelector.Select(model.RepoId, repoFiles, quant);
        Func<string, bool> filter = gguf is not null ? gguf.Contains : checkpointFiles;
        List<RepoSibling> wanted = info.Siblings.Where(s => filter(s.RFileName)).ToList();
        if (wanted.Count == 0)
        {
            IEnumerable<string> names = info.Siblings.Select(s => s.RFileName);
            throw new HubException(HubErrorKind.NotFound, GgufQuantSelector.HasGguf(names)
                ? $"{model} holds GGUF files, not a transformers checkpoint: name the quantization, e.g. `qwen3 pull {model.RepoId}:" +
                  $"{GgufQuantSelector.Offered(names)[0]}` (it offers: {string.Join(", ", GgufQuantSelector.Offered(names))})."
                : $"{model} has no files to pull (config.json, tokenizer.json, *.safetensors...): it is not a transformers checkpoint.", model.RepoId);
        }
        // small files first so config and tokenizer are ready early; then shards in name order
        wanted.Sort((a, b) => (a.Lfs is null ? 0 : 1).CompareTo(b.Lfs is null ? 0 : 1) is var c and not 0
            ? c : string.CompareOrdinal(a.RFileName, b.RFileName));

        string snapshotDir = HubCache.SnapshotDir(Settings.CacheDir, model.RepoId, commit);
        Directory.CreateDirectory(snapshotDir);
        progress?.OnPlan(model.RepoId, commit, wanted.Select(s => new PullFile(s.RFileName, s.Lfs?.Size ?? s.Size)).ToList());

        var results = new PulledFile[wanted.Count];
        using var failFast = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var gate = new SemaphoreSlim(_options.MaxParallelDownloads);
        Exception? firstError = null;
        Task[] tasks = wanted.Select(async (sibling, i) =>
        {
            await gate.WaitAsync(failFast.Token).ConfigureAwait(false);
            try
            {
                results[i] = await EnsureFileAsync(model, commit, sibling, snapshotDir, progress, failFast.Token).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                if (!(e is OperationCanceledException && failFast.IsCancellationRequested && firstError is not null))
                    Interlocked.CompareExchange(ref firstError, e, null);
                await failFast.CancelAsync().ConfigureAwait(false);
            }
            finally
            {
                gate.Release();
            }
        }).ToArray();
        try
        {
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (firstError is not null)
        {
            // a task cancelled while waiting on the gate: the real failure is firstError
        }
        cancellationToken.ThrowIfCancellationRequested();
        if (firstError is not null) ExceptionDispatchInfo.Capture(firstError).Throw();
        return new PullResult(model.RepoId, model.Revision, commit, snapshotDir, results)
        {
            ModelPath = gguf is null ? snapshotDir : Path.Combine(snapshotDir, gguf[0].Replace('/', Path.DirectorySeparatorChar)),
        };
    }

    public void Dispose() => _http.Dispose();

    private PullResult PullFromCacheOnly(ModelReference model, IPullProgress? progress)
    {
        string? dir = HubCache.TryGetSnapshotDir(Settings.CacheDir, model);
        if (dir is null) throw OfflineNotCached(model);
        string commit = Path.GetFileName(dir);
        var files = new List<PulledFile>();
        foreach (string path in Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories))
        {
            string name = Path.GetRelativePath(dir, path).Replace(Path.DirectorySeparatorChar, '/');
            if (!ModelFile.IsFile(path)) continue; // dangling link, loop
            files.Add(new PulledFile(name, LengthOf(path), PulledFileSource.Cached, 0));
        }
        string modelPath = dir;
        string? quant = model.Quant
            ?? (files.Any(f => HasWeights(f.Name)) ? null : GgufQuantSelector.DefaultQuant(files.Select(f => f.Name)));   // as online
        if (quant is not null)
        {
            IReadOnlyList<string> gguf = GgufQuantSelector.Select(model.RepoId, files.Select(f => f.Name), quant);
            files = files.Where(f => gguf.Contains(f.Name)).ToList();
            modelPath = Path.Combine(dir, gguf[0].Replace('/', Path.DirectorySeparatorChar));
        }
        progress?.OnPlan(model.RepoId, commit, files.Select(f => new PullFile(f.Name, f.Size)).ToList());
        foreach (PulledFile f in files) progress?.OnFileCompleted(f.Name, f.Size, PulledFileSource.Cached);
        return new PullResult(model.RepoId, model.Revision, commit, dir, files) { ModelPath = modelPath };
    }

    private void ThrowIfOffline(ModelReference model)
    {
        if (Settings.Offline) throw OfflineNotCached(model);
    }

    private HubException OfflineNotCached(ModelReference model) =>
        new(HubErrorKind.OfflineNotCached,
            $"HF_HUB_OFFLINE is set and {model} is not in the cache ({HubCache.RepoDir(Settings.CacheDir, model.RepoId)}). " +
            $"Unset HF_HUB_OFFLINE and run `qwen3 pull {model}` while online, or pass a local model directory.",
            model.RepoId);

    private void WriteRef(ModelReference model, string commit)
    {
        string refPath = HubCache.RefPath(Settings.CacheDir, model.RepoId, model.Revision);
        Directory.CreateDirectory(Path.GetDirectoryName(refPath)!);
        if (File.Exists(refPath) && File.ReadAllText(refPath).Trim() == commit) return;
        string temp = refPath + "." + Environment.ProcessId + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp";
        File.WriteAllText(temp, commit); // no newline, as huggingface_hub writes it
        File.Move(temp, refPath, overwrite: true);
    }

    private async Task<PulledFile> EnsureFileAsync(ModelReference model, string commit, RepoSibling sibling,
        string snapshotDir, IPullProgress? progress, CancellationToken ct)
    {
        string name = sibling.RFileName;
        string pointerPath = Path.Combine(snapshotDir, name.Replace('/', Path.DirectorySeparatorChar));
        if (ModelFile.IsFile(pointerPath)) // follows the link: a dangling link is re-made below
        {
            long size = LengthOf(pointerPath);
            progress?.OnFileCompleted(name, size, PulledFileSource.Cached);
            return new PulledFile(name, size, PulledFileSource.Cached, 0);
        }

        var resolveUri = new Uri(_endpoint, $"{model.RepoId}/resolve/{commit}/{EscapePath(name)}");
        FileMetadata meta = await HeadAsync(model, resolveUri, name, ct).ConfigureAwait(false);
        string etag = meta.Etag ?? sibling.Lfs?.Sha256 ?? sibling.BlobId
            ?? throw new HubException(HubErrorKind.ServerError,
                $"{resolveUri} answered without an ETag, so the file cannot be stored in the cache.", model.RepoId, name);
        if (etag.IndexOfAny(['/', '\\']) >= 0 || etag.Contains("..", StringComparison.Ordinal))
            throw new HubException(HubErrorKind.ServerError, $"{resolveUri} answered with an unusable ETag '{etag}'.", model.RepoId, name);

        string blobPath = HubCache.BlobPath(Settings.CacheDir, model.RepoId, etag);
        Directory.CreateDirectory(Path.GetDirectoryName(blobPath)!);
        using FileStream blobLock = await AcquireLockAsync(HubCache.LockPath(Settings.CacheDir, model.RepoId, etag), ct).ConfigureAwait(false);

        PulledFileSource source;
        long downloaded = 0;
        if (ModelFile.IsFile(pointerPath)) // another pull of the same snapshot finished it while we waited for the lock
        {
            source = PulledFileSource.Cached;
        }
        else if (File.Exists(blobPath))
        {
            source = PulledFileSource.LinkedExistingBlob;
        }
        else
        {
            long? expectedSize = meta.Size ?? sibling.Lfs?.Size ?? sibling.Size;
            string? expectedSha256 = sibling.Lfs?.Sha256 is { Length: 64 } lfsSha ? lfsSha
                : meta.IsLfs && meta.Etag is { Length: 64 } e && IsHex(e) ? e : null;
            string? expectedGitSha1 = expectedSha256 is null && sibling.BlobId is { Length: 40 } blobId ? blobId : null;
            downloaded = await DownloadAsync(model, name, resolveUri, blobPath, expectedSize, expectedSha256, expectedGitSha1,
                progress, ct).ConfigureAwait(false);
            source = PulledFileSource.Downloaded;
        }

        if (source != PulledFileSource.Cached) CreatePointer(blobPath, pointerPath);
        long length = LengthOf(blobPath);
        progress?.OnFileCompleted(name, length, source);
        return new PulledFile(name, length, source, downloaded);
    }

    private readonly record struct FileMetadata(string? Commit, string? Etag, long? Size, bool IsLfs);

    // HEAD {endpoint}/{repo}/resolve/{commit}/{file}: relative redirects (renamed repos) are followed, the CDN
    // redirect of LFS files is not: X-Linked-Etag (sha256) and X-Linked-Size come on the 302 itself.
    private async Task<FileMetadata> HeadAsync(ModelReference model, Uri resolveUri, string name, CancellationToken ct)
    {
        using HttpResponseMessage response = await SendWithTimeoutAsync(HttpMethod.Head, resolveUri, null,
            followAbsoluteRedirects: false, Settings.EtagTimeout, model.RepoId, ct).ConfigureAwait(false);
        if ((int)response.StatusCode is < 300 or >= 400) ThrowForStatus(response, model, name);
        string? linkedEtag = Header(response, "X-Linked-Etag");
        string? etag = NormalizeEtag(linkedEtag ?? Header(response, "ETag"));
        long? size = long.TryParse(Header(response, "X-Linked-Size"), out long linked) ? linked
            : (int)response.StatusCode < 300 ? response.Content.Headers.ContentLength : null;
        return new FileMetadata(Header(response, "X-Repo-Commit"), etag, size, linkedEtag is not null);
    }

    private async Task<long> DownloadAsync(ModelReference model, string name, Uri resolveUri, string blobPath,
        long? expectedSize, string? expectedSha256, string? expectedGitSha1, IPullProgress? progress, CancellationToken ct)
    {
        string partialPath = blobPath + ".incomplete";
        using var state = new PartialFileHash();
        long fetchedBytes = 0;
        long have = File.Exists(partialPath) ? new FileInfo(partialPath).Length : 0;
        if (expectedSize is long max && have > max)
        {
            File.Delete(partialPath);
            have = 0;
        }
        progress?.OnFileStarted(name, expectedSize, have);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(CopyBufferBytes);
        try
        {
            for (int attempt = 0; ; attempt++)
            {
                have = File.Exists(partialPath) ? new FileInfo(partialPath).Length : 0;
                if (expectedSize is long total && have == total) break;
                try
                {
                    long got = await FetchIntoAsync(model, name, resolveUri, partialPath, have, expectedSize, buffer,
                        state, progress, ct).ConfigureAwait(false);
                    fetchedBytes += got;
                    break;
                }
                catch (TransientDownloadException e)
                {
                    fetchedBytes += e.BytesWritten;
                    if (attempt >= _options.MaxRetries)
                    {
                        long now = File.Exists(partialPath) ? new FileInfo(partialPath).Length : 0;
                        throw new HubException(HubErrorKind.ConnectionInterrupted,
                            $"Download of {name} from {model} was interrupted after {now:N0} of {FormatSize(expectedSize)} bytes " +
                            $"({e.Message}). The partial file is kept in {partialPath}; run the same command again to resume.",
                            model.RepoId, name, innerException: e.InnerException ?? e);
                    }
                    await Task.Delay(_options.RetryDelay, ct).ConfigureAwait(false);
                }
            }

            long length = new FileInfo(partialPath).Length;
            if (expectedSize is long size && length != size)
                throw Corrupt(model, name, partialPath, $"it has {length:N0} bytes but the hub published {size:N0}");
            if (expectedSha256 is not null)
            {
                if (state.HashedBytes != length) state.Restart(partialPath, length);
                string actual = Convert.ToHexStringLower(state.Hash.GetHashAndReset());
                if (!actual.Equals(expectedSha256, StringComparison.OrdinalIgnoreCase))
                    throw Corrupt(model, name, partialPath, $"its sha256 is {actual} but the hub published {expectedSha256}");
            }
            else if (expectedGitSha1 is not null)
            {
                string actual = GitBlobSha1(partialPath, length);
                if (!actual.Equals(expectedGitSha1, StringComparison.OrdinalIgnoreCase))
                    throw Corrupt(model, name, partialPath, $"its git blob id is {actual} but the hub published {expectedGitSha1}");
            }
            File.Move(partialPath, blobPath, overwrite: true);
            return fetchedBytes;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    // One GET: appends to the partial file from `have` (206) or rewrites it (200). Throws TransientDownloadException
    // for anything a retry can fix; the running sha256 always covers exactly the bytes in the partial file.
    private async Task<long> FetchIntoAsync(ModelReference model, string name, Uri resolveUri, string partialPath,
        long have, long? expectedSize, byte[] buffer, PartialFileHash state, IPullProgress? progress, CancellationToken ct)
    {
        long written = 0;
        HttpResponseMessage response;
        try
        {
            response = await SendWithTimeoutAsync(HttpMethod.Get, resolveUri,
                have > 0 ? request => request.Headers.Range = new RangeHeaderValue(have, null) : null,
                followAbsoluteRedirects: true, Settings.DownloadTimeout, model.RepoId, ct).ConfigureAwait(false);
        }
        catch (HubException e) when (e.Kind == HubErrorKind.Network)
        {
            throw new TransientDownloadException(e.Message, 0, e.InnerException);
        }
        using (response)
        {
            if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            {
                File.Delete(partialPath); // the partial file does not fit the server's; start over
                throw new TransientDownloadException("the server refused to resume; restarting the file", 0, null);
            }
            if ((int)response.StatusCode >= 500) throw new TransientDownloadException($"HTTP {(int)response.StatusCode}", 0, null);
            ThrowForStatus(response, model, name);

            bool append = have > 0 && response.StatusCode == HttpStatusCode.PartialContent
                && response.Content.Headers.ContentRange?.From == have;
            long position = append ? have : 0;
            if (!append) state.Restart(null, 0);
            else if (state.HashedBytes != position) state.Restart(partialPath, position);
            if (!append) progress?.OnFileProgress(name, 0, expectedSize);

            FileStream file;
            try
            {
                file = new FileStream(partialPath, append ? FileMode.Append : FileMode.Create, FileAccess.Write,
                    FileShare.Read, bufferSize: 0);
            }
            catch (IOException e) when (IsDiskFull(e))
            {
                throw DiskFull(model, name, partialPath, e);
            }
            await using (file.ConfigureAwait(false))
            {
                Stream body;
                try
                {
                    body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or HttpRequestException)
                {
                    throw new TransientDownloadException(e.Message, 0, e);
                }
                await using (body.ConfigureAwait(false))
                {
                    using var stall = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    long reported = position;
                    while (true)
                    {
                        int n;
                        stall.CancelAfter(Settings.DownloadTimeout);
                        try
                        {
                            n = await body.ReadAsync(buffer, stall.Token).ConfigureAwait(false);
                        }
                        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                        {
                            throw new TransientDownloadException(
                                $"no data for {Settings.DownloadTimeout.TotalSeconds:0.#} s", written, null);
                        }
                        catch (Exception e) when (e is IOException or HttpRequestException)
                        {
                            throw new TransientDownloadException(e.Message, written, e);
                        }
                        if (n == 0) break;
                        try
                        {
                            await file.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                        }
                        catch (IOException e) when (IsDiskFull(e))
                        {
                            throw DiskFull(model, name, partialPath, e);
                        }
                        state.Append(buffer.AsSpan(0, n));
                        position += n;
                        written += n;
                        if (position - reported >= ProgressStepBytes)
                        {
                            progress?.OnFileProgress(name, position, expectedSize);
                            reported = position;
                        }
                    }
                    progress?.OnFileProgress(name, position, expectedSize);
                    if (expectedSize is long size && position < size)
                        throw new TransientDownloadException($"the connection closed after {position:N0} of {size:N0} bytes", written, null);
                }
            }
        }
        return written;
    }

    private sealed class TransientDownloadException(string message, long bytesWritten, Exception? inner)
        : Exception(message, inner)
    {
        public long BytesWritten { get; } = bytesWritten;
    }

    // The running sha256 of a partial download; it always covers exactly HashedBytes bytes of the partial file,
    // so a resumed download hashes the old bytes once and then only the new ones.
    private sealed class PartialFileHash : IDisposable
    {
        public IncrementalHash Hash { get; private set; } = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        public long HashedBytes { get; private set; }

        public void Append(ReadOnlySpan<byte> data)
        {
            Hash.AppendData(data);
            HashedBytes += data.Length;
        }

        /// <summary>Starts over, hashing the first <paramref name="bytes"/> bytes of <paramref name="partialPath"/> when given.</summary>
        public void Restart(string? partialPath, long bytes)
        {
            Hash.Dispose();
            Hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            HashedBytes = 0;
            if (partialPath is null || bytes == 0) return;
            byte[] buffer = ArrayPool<byte>.Shared.Rent(CopyBufferBytes);
            try
            {
                using FileStream stream = File.OpenRead(partialPath);
                int n;
                while (HashedBytes < bytes
                       && (n = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, bytes - HashedBytes))) > 0)
                {
                    Append(buffer.AsSpan(0, n));
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        public void Dispose() => Hash.Dispose();
    }

    // git's blob id: sha1("blob {size}\0" + content), which the hub uses as ETag and blobId for non-LFS files.
    private static string GitBlobSha1(string path, long length)
    {
        using var sha1 = IncrementalHash.CreateHash(HashAlgorithmName.SHA1);
        sha1.AppendData(Encoding.ASCII.GetBytes($"blob {length}\0"));
        byte[] buffer = ArrayPool<byte>.Shared.Rent(CopyBufferBytes);
        try
        {
            using FileStream stream = File.OpenRead(path);
            int n;
            while ((n = stream.Read(buffer, 0, buffer.Length)) > 0) sha1.AppendData(buffer, 0, n);
            return Convert.ToHexStringLower(sha1.GetHashAndReset());
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private HubException Corrupt(ModelReference model, string name, string partialPath, string detail)
    {
        TryDelete(partialPath);
        return new HubException(HubErrorKind.ChecksumMismatch,
            $"Downloaded {name} of {model} is corrupt: {detail}. The partial file was deleted; run the command again. " +
            $"If it fails again, {Settings.Endpoint} or a proxy on the way is serving damaged data.",
            model.RepoId, name);
    }

    private static HubException DiskFull(ModelReference model, string name, string partialPath, IOException e) =>
        new(HubErrorKind.DiskFull,
            $"The disk is full while downloading {name} of {model} to {partialPath}. Free some space (or point HF_HOME / " +
            "HF_HUB_CACHE at a bigger disk) and run the command again: the download resumes where it stopped.",
            model.RepoId, name, innerException: e);

    /// <summary>True for "no space left on device" (ENOSPC on Unix, ERROR_DISK_FULL / ERROR_HANDLE_DISK_FULL on Windows).</summary>
    public static bool IsDiskFull(IOException e)
    {
        const int ENOSPC = 28, EDQUOT = 122, ErrorHandleDiskFull = 39, ErrorDiskFull = 112;
        int code = e.HResult & 0xFFFF;
        return OperatingSystem.IsWindows()
            ? code is ErrorDiskFull or ErrorHandleDiskFull
            : e.HResult is ENOSPC or EDQUOT || e.Message.Contains("No space left on device", StringComparison.OrdinalIgnoreCase);
    }

    private static void CreatePointer(string blobPath, string pointerPath)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(pointerPath)!);
        File.Delete(pointerPath); // a dangling link left by a deleted blob
        string target = Path.GetRelativePath(Path.GetDirectoryName(pointerPath)!, blobPath);
        try
        {
            File.CreateSymbolicLink(pointerPath, target);
        }
        catch (Exception e) when (OperatingSystem.IsWindows() && e is IOException or UnauthorizedAccessException)
        {
            File.Copy(blobPath, pointerPath, overwrite: true); // no symlink privilege: huggingface_hub also falls back
        }
    }

    // huggingface_hub locks {cache}/.locks/models--X/{etag}.lock with filelock (flock on Unix); .NET's FileShare.None
    // takes the same flock, so Python and .NET processes never write one blob at the same time.
    private static async Task<FileStream> AcquireLockAsync(string lockPath, CancellationToken ct)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(lockPath)!);
        while (true)
        {
            try
            {
                return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (File.Exists(lockPath))
            {
                await Task.Delay(100, ct).ConfigureAwait(false); // held by another download of the same blob
            }
        }
    }

    private async Task<HttpResponseMessage> SendWithTimeoutAsync(HttpMethod method, Uri uri,
        Action<HttpRequestMessage>? configure, bool followAbsoluteRedirects, TimeSpan timeout, string repoId,
        CancellationToken ct)
    {
        using var timeoutCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeoutCts.CancelAfter(timeout);
        try
        {
            for (int hop = 0; ; hop++)
            {
                using var request = new HttpRequestMessage(method, uri);
                request.Headers.AcceptEncoding.ParseAdd("identity");
                // the token goes to the hub only, never to the CDN a download redirects to
                if (Settings.Token is not null && SameOrigin(uri, _endpoint))
                    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Settings.Token);
                configure?.Invoke(request);
                HttpResponseMessage response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeoutCts.Token)
                    .ConfigureAwait(false);
                int status = (int)response.StatusCode;
                if (status is < 300 or >= 400 || Header(response, "Location") is not { } location) return response;
                bool absolute = Uri.TryCreate(location, UriKind.Absolute, out Uri? abs) && (abs.Scheme == Uri.UriSchemeHttp || abs.Scheme == Uri.UriSchemeHttps);
                if (absolute && !followAbsoluteRedirects) return response;
                response.Dispose();
                if (hop >= MaxRedirects)
                    throw new HubException(HubErrorKind.ServerError, $"Too many redirects from {uri}.", repoId);
                uri = absolute ? abs! : new Uri(uri, location);
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new HubException(HubErrorKind.Network,
                $"{uri} did not answer within {timeout.TotalSeconds:0.#} s. Check your connection or HF_ENDPOINT, " +
                "or set HF_HUB_OFFLINE=1 to use the cache only.", repoId);
        }
        catch (HttpRequestException e)
        {
            throw NetworkError(repoId, e, uri);
        }
    }

    private HubException NetworkError(string repoId, Exception e, Uri? uri = null) =>
        new(HubErrorKind.Network,
            $"Could not reach {uri?.GetLeftPart(UriPartial.Authority) ?? Settings.Endpoint}: {e.Message} Check your connection " +
            "or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use the cache only.", repoId, innerException: e);

    private void ThrowForStatus(HttpResponseMessage response, ModelReference model, string? fileName)
    {
        int status = (int)response.StatusCode;
        if (status is >= 200 and < 300) return;
        string? errorCode = Header(response, "X-Error-Code");
        string serverMessage = Header(response, "X-Error-Message") is { Length: > 0 } m ? $" The hub says: \"{m}\"" : "";
        string what = fileName is null ? model.ToString() : $"{fileName} of {model}";
        switch (status)
        {
            case 401:
            case 403:
                string tokenHint = Settings.Token is null
                    ? "No token is set: set HF_TOKEN (or log in with `huggingface-cli login`, which writes ~/.cache/huggingface/token) to a token whose account has access."
                    : "The token from HF_TOKEN or the token file was rejected or its account has no access: check it, and accept the model's conditions on its hub page.";
                string reason = status == 401
                    ? $"Access to {what} was refused (401 Unauthorized): the repository is private or gated, or does not exist."
                    : $"Access to {what} is forbidden (403): the model is gated or private.";
                throw new HubException(HubErrorKind.Unauthorized, $"{reason}{serverMessage} {tokenHint}", model.RepoId, fileName, status);
            case 404:
                string message = errorCode switch
                {
                    "RevisionNotFound" => $"Revision '{model.Revision}' of {model.RepoId} was not found (404) at {Settings.Endpoint}.",
                    "EntryNotFound" => $"File {fileName} was not found (404) in {model}.",
                    "RepoNotFound" => $"Repository {model.RepoId} was not found (404) at {Settings.Endpoint}.",
                    _ when fileName is not null => $"File {fileName} of {model} was not found (404) at {Settings.Endpoint}.",
                    _ => $"Repository {model.RepoId} or revision '{model.Revision}' was not found (404) at {Settings.Endpoint}.",
                };
                throw new HubException(HubErrorKind.NotFound, message + serverMessage + " Check the spelling of the model id and revision.",
                    model.RepoId, fileName, status);
            default:
                throw new HubException(HubErrorKind.ServerError,
                    $"{Settings.Endpoint} answered {status} {response.ReasonPhrase} for {what}.{serverMessage}", model.RepoId, fileName, status);
        }
    }

    private static string? Header(HttpResponseMessage response, string name)
    {
        if (response.Headers.NonValidated.TryGetValues(name, out HeaderStringValues values)
            || response.Content.Headers.NonValidated.TryGetValues(name, out values))
        {
            foreach (string v in values) return v;
        }
        return null;
    }

    // huggingface_hub's _normalize_etag: drop the weak marker and the quotes.
    private static string? NormalizeEtag(string? etag)
    {
        if (etag is null) return null;
        string e = etag.Trim();
        if (e.StartsWith("W/", StringComparison.Ordinal)) e = e[2..];
        e = e.Trim('"');
        return e.Length > 0 ? e : null;
    }

    private static bool SameOrigin(Uri a, Uri b) =>
        string.Equals(a.Scheme, b.Scheme, StringComparison.OrdinalIgnoreCase)
        && string.Equals(a.Host, b.Host, StringComparison.OrdinalIgnoreCase) && a.Port == b.Port;

    private static string EscapePath(string name) => string.Join('/', name.Split('/').Select(Uri.EscapeDataString));

    private static bool IsHex(string s) => s.All(char.IsAsciiHexDigit);

    private static string FormatSize(long? size) => size is long s ? s.ToString("N0") : "?";

    private static long LengthOf(string path)
    {
        return ModelFile.Length(path); // of the blob the snapshot link leads to
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
    }
}
