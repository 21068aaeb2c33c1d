using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Qwen3Sharp.Tests.Hub;

/// <summary>
/// A Hugging Face hub on 127.0.0.1 with the routes huggingface_hub uses: repo info
/// (<c>/api/models/{repo}/revision/{rev}?blobs=true</c>), <c>/{repo}/resolve/{rev}/{file}</c> (HEAD and GET, ETag /
/// X-Linked-Etag / X-Linked-Size / X-Repo-Commit, 302 to a "CDN" on http://localhost for LFS files, Range requests),
/// plus knobs to drop connections, corrupt bytes, require a token and rename repositories.
/// </summary>
internal sealed class FakeHub : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, FakeRepo> _repos = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _renamed = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (int AfterBytes, int Times)> _drops = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, bool> _corrupt = new(StringComparer.Ordinal);

    private FakeHub(WebApplication app) => _app = app;

    /// <summary>http://127.0.0.1:{port}: the hub; LFS downloads redirect to http://localhost:{port}/cdn/…</summary>
    public string Endpoint { get; private set; } = "";

    public int Port { get; private set; }

    /// <summary>When set, the api and resolve routes answer 401 to requests without "Bearer {RequiredToken}".</summary>
    public string? RequiredToken { get; set; }

    /// <summary>Every request: method, path, Range header, Authorization header, host.</summary>
    public ConcurrentQueue<FakeRequest> Requests { get; } = new();

    /// <summary>Requests that transferred file content (GET of a non-LFS file or of the CDN).</summary>
    public IEnumerable<FakeRequest> ContentRequests => Requests.Where(r => r.Method == "GET" && r.IsContent);

    public static async Task<FakeHub> StartAsync()
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(o => o.Listen(IPAddress.Loopback, 0));
        WebApplication app = builder.Build();
        var hub = new FakeHub(app);
        app.Run(hub.HandleAsync);
        await app.StartAsync();
        var address = new Uri(app.Urls.First());
        hub.Port = address.Port;
        hub.Endpoint = $"http://127.0.0.1:{address.Port}";
        return hub;
    }

    public FakeRepo AddRepo(string repoId, IReadOnlyDictionary<string, byte[]> files, string? commit = null)
    {
        var repo = new FakeRepo(repoId);
        repo.AddCommit(commit ?? RandomCommit(), files, branch: "main");
        _repos[repoId] = repo;
        return repo;
    }

    /// <summary>Requests for <paramref name="oldId"/> answer a relative 307 to <paramref name="newId"/>, as the hub does for renamed repos.</summary>
    public void Rename(string oldId, string newId) => _renamed[oldId] = newId;

    /// <summary>The next <paramref name="times"/> content GETs of <paramref name="file"/> send <paramref name="afterBytes"/> bytes and cut the connection.</summary>
    public void DropConnection(string file, int afterBytes, int times = 1) => _drops[file] = (afterBytes, times);

    /// <summary>Content GETs of <paramref name="file"/> send bytes of the right length but the wrong content.</summary>
    public void Corrupt(string file) => _corrupt[file] = true;

    public static string RandomCommit() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(20));

    public static string Sha256(byte[] data) => Convert.ToHexStringLower(SHA256.HashData(data));

    public static string GitBlobId(byte[] data) =>
        Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {data.Length}\0"), .. data]));

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();

    private async Task HandleAsync(HttpContext ctx)
    {
        string path = ctx.Request.Path.Value ?? "";
        string? auth = ctx.Request.Headers.Authorization.FirstOrDefault();
        string? range = ctx.Request.Headers.Range.FirstOrDefault();
        bool isCdn = path.StartsWith("/cdn/", StringComparison.Ordinal);
        var log = new FakeRequest(ctx.Request.Method, path, range, auth, ctx.Request.Host.Host, IsContent: isCdn);

        if (isCdn)
        {
            Requests.Enqueue(log);
            // /cdn/{repo}/{commit}/{file}
            string[] parts = path["/cdn/".Length..].Split('/', 4);
            FakeRepo repo = _repos[parts[0] + "/" + parts[1]];
            string file = Uri.UnescapeDataString(parts[3]);
            await ServeContentAsync(ctx, file, repo.Commits[parts[2]][file]);
            return;
        }

        if (path.StartsWith("/api/models/", StringComparison.Ordinal))
        {
            Requests.Enqueue(log);
            // /api/models/{org}/{name}/revision/{revision}
            string[] parts = path["/api/models/".Length..].Split('/', 4);
            string repoId = parts[0] + "/" + parts[1];
            if (_renamed.TryGetValue(repoId, out string? newId))
            {
                Redirect(ctx, 307, $"/api/models/{newId}/revision/{parts[3]}{ctx.Request.QueryString}");
                return;
            }
            if (!Authorize(ctx, auth) || !TryFindRevision(ctx, repoId, Uri.UnescapeDataString(parts[3]), out FakeRepo? repo, out string? commit))
                return;
            await WriteRepoInfoAsync(ctx, repo, commit, ctx.Request.Query["blobs"] == "true");
            return;
        }

        // /{org}/{name}/resolve/{revision}/{file}
        string[] seg = path.TrimStart('/').Split('/', 5);
        if (seg.Length == 5 && seg[2] == "resolve")
        {
            string repoId = seg[0] + "/" + seg[1];
            string file = Uri.UnescapeDataString(seg[4]);
            Requests.Enqueue(log with { IsContent = false });
            if (_renamed.TryGetValue(repoId, out string? newId))
            {
                Redirect(ctx, 307, $"/{newId}/resolve/{seg[3]}/{seg[4]}");
                return;
            }
            if (!Authorize(ctx, auth) || !TryFindRevision(ctx, repoId, Uri.UnescapeDataString(seg[3]), out FakeRepo? repo, out string? commit))
                return;
            if (!repo.Commits[commit].TryGetValue(file, out byte[]? data))
            {
                Error(ctx, 404, "EntryNotFound", $"{file} does not exist on \"{seg[3]}\"");
                return;
            }
            ctx.Response.Headers["X-Repo-Commit"] = commit;
            if (FakeRepo.IsLfs(file))
            {
                ctx.Response.Headers["X-Linked-Etag"] = $"\"{Sha256(data)}\"";
                ctx.Response.Headers["X-Linked-Size"] = data.Length.ToString();
                ctx.Response.Headers.ETag = $"\"{GitBlobId(Encoding.ASCII.GetBytes("lfs pointer " + Sha256(data)))}\"";
                Redirect(ctx, 302, $"http://localhost:{Port}/cdn/{repoId}/{commit}/{Uri.EscapeDataString(file)}?X-Amz-Signature=abc");
                return;
            }
            ctx.Response.Headers.ETag = $"\"{GitBlobId(data)}\"";
            if (ctx.Request.Method == "HEAD")
            {
                ctx.Response.ContentLength = data.Length;
                return;
            }
            Requests.Enqueue(log with { IsContent = true });
            await ServeContentAsync(ctx, file, data);
            return;
        }
        Requests.Enqueue(log);
        ctx.Response.StatusCode = 404;
    }

    private bool Authorize(HttpContext ctx, string? auth)
    {
        if (RequiredToken is null || auth == "Bearer " + RequiredToken) return true;
        Error(ctx, 401, "RepoNotFound", "Invalid username or password.");
        return false;
    }

    private bool TryFindRevision(HttpContext ctx, string repoId, string revision,
        [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out FakeRepo? repo,
        [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? commit)
    {
        commit = null;
        if (!_repos.TryGetValue(repoId, out repo))
        {
            Error(ctx, 404, "RepoNotFound", "Repository not found");
            return false;
        }
        if (repo.Commits.ContainsKey(revision)) commit = revision;
        else if (repo.Branches.TryGetValue(revision, out string? c)) commit = c;
        if (commit is null)
        {
            Error(ctx, 404, "RevisionNotFound", $"Invalid rev id: {revision}");
            return false;
        }
        return true;
    }

    private static void Error(HttpContext ctx, int status, string code, string message)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.Headers["X-Error-Code"] = code;
        ctx.Response.Headers["X-Error-Message"] = message;
    }

    private static void Redirect(HttpContext ctx, int status, string location)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.Headers.Location = location;
    }

    private static async Task WriteRepoInfoAsync(HttpContext ctx, FakeRepo repo, string commit, bool blobs)
    {
        ctx.Response.ContentType = "application/json";
        await using var json = new Utf8JsonWriter(ctx.Response.Body);
        json.WriteStartObject();
        json.WriteString("id", repo.RepoId);
        json.WriteString("sha", commit);
        json.WriteStartArray("siblings");
        foreach ((string name, byte[] data) in repo.Commits[commit].OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            json.WriteStartObject();
            json.WriteString("rfilename", name);
            if (blobs)
            {
                bool lfs = FakeRepo.IsLfs(name);
                json.WriteString("blobId", lfs ? GitBlobId(Encoding.ASCII.GetBytes("lfs pointer " + Sha256(data))) : GitBlobId(data));
                json.WriteNumber("size", data.Length);
                if (lfs)
                {
                    json.WriteStartObject("lfs");
                    json.WriteString("sha256", Sha256(data));
                    json.WriteNumber("size", data.Length);
                    json.WriteNumber("pointerSize", 134);
                    json.WriteEndObject();
                }
            }
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteEndObject();
    }

    private async Task ServeContentAsync(HttpContext ctx, string file, byte[] data)
    {
        if (_corrupt.ContainsKey(file))
        {
            data = (byte[])data.Clone();
            for (int i = 0; i < data.Length; i += 997) data[i] ^= 0x5A;
        }
        long start = 0;
        string? range = ctx.Request.Headers.Range.FirstOrDefault();
        if (range is not null && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
        {
            start = long.Parse(range["bytes=".Length..^1]);
            if (start >= data.Length)
            {
                ctx.Response.StatusCode = 416;
                ctx.Response.Headers.ContentRange = $"bytes */{data.Length}";
                return;
            }
            ctx.Response.StatusCode = 206;
            ctx.Response.Headers.ContentRange = $"bytes {start}-{data.Length - 1}/{data.Length}";
        }
        ctx.Response.ContentLength = data.Length - start;
        ctx.Response.ContentType = "application/octet-stream";
        if (ctx.Request.Method == "HEAD") return;

        int count = data.Length - (int)start;
        if (_drops.TryGetValue(file, out var drop) && drop.Times > 0)
        {
            _drops[file] = (drop.AfterBytes, drop.Times - 1);
            await ctx.Response.Body.WriteAsync(data.AsMemory((int)start, Math.Min(drop.AfterBytes, count)));
            await ctx.Response.Body.FlushAsync();
            await Task.Delay(50);
            ctx.Abort();
            return;
        }
        await ctx.Response.Body.WriteAsync(data.AsMemory((int)start, count));
    }
}

internal sealed record FakeRequest(string Method, string Path, string? Range, string? Authorization, string Host, bool IsContent);

internal sealed class FakeRepo(string repoId)
{
    public string RepoId { get; } = repoId;

    public ConcurrentDictionary<string, IReadOnlyDictionary<string, byte[]>> Commits { get; } = new(StringComparer.Ordinal);

    public ConcurrentDictionary<string, string> Branches { get; } = new(StringComparer.Ordinal);

    public static bool IsLfs(string file) => file.EndsWith(".safetensors", StringComparison.Ordinal);

    public string AddCommit(string commit, IReadOnlyDictionary<string, byte[]> files, string branch)
    {
        Commits[commit] = files;
        Branches[branch] = commit;
        return commit;
    }
}
