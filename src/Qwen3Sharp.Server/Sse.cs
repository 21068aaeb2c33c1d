using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using System.Threading.Channels;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Qwen3Sharp.Server;

/// <summary>Server-sent events as OpenAI writes them: <c>data: {json}\n\n</c> per event, flushed at once, <c>data: [DONE]</c> last.</summary>
internal sealed class SseWriter
{
    private static readonly byte[] DataPrefix = "data: "u8.ToArray();
    private static readonly byte[] EventEnd = "\n\n"u8.ToArray();
    private static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();

    private readonly HttpContext _context;
    private readonly PipeWriter _body;
    private readonly Utf8JsonWriter _json;

    public SseWriter(HttpContext context)
    {
        _context = context;
        _body = context.Response.BodyWriter;
        _json = new Utf8JsonWriter(_body, new JsonWriterOptions { Encoder = ServerJson.Context.Options.Encoder });
    }

    public Task StartAsync()
    {
        HttpResponse response = _context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        _context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        return response.StartAsync(_context.RequestAborted);
    }

    public async ValueTask WriteAsync<T>(T value, JsonTypeInfo<T> typeInfo)
    {
        _body.Write(DataPrefix);
        _json.Reset(_body);
        JsonSerializer.Serialize(_json, value, typeInfo);
        _json.Flush();
        _body.Write(EventEnd);
        await _body.FlushAsync(_context.RequestAborted);
    }

    public async ValueTask WriteDoneAsync()
    {
        _body.Write(Done);
        await _body.FlushAsync(_context.RequestAborted);
    }
}

/// <summary>
/// Runs several generations at once and merges their items into one ordered-per-source stream (n &gt; 1 choices).
/// <see cref="StartAsync"/> returns once every source has produced its first item, so request errors (a prompt
/// too long, a full queue) surface before any response byte is written.
/// </summary>
internal sealed class StreamMerger<T> : IAsyncDisposable
{
    private readonly Channel<(int Source, T Item)> _channel =
        Channel.CreateUnbounded<(int, T)>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _cancel;
    private readonly Task[] _pumps;
    private readonly Task[] _started;

    public StreamMerger(IReadOnlyList<Func<CancellationToken, IAsyncEnumerable<T>>> sources, CancellationToken cancellationToken)
    {
        _cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _pumps = new Task[sources.Count];
        _started = new Task[sources.Count];
        for (int i = 0; i < sources.Count; i++)
        {
            var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _started[i] = started.Task;
            _pumps[i] = PumpAsync(i, sources[i](_cancel.Token), started);
        }

        _ = Task.WhenAll(_pumps).ContinueWith(
            t => _channel.Writer.TryComplete(t.Exception?.InnerException),
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    public async Task StartAsync()
    {
        try
        {
            await Task.WhenAll(_started);
        }
        catch
        {
            await _cancel.CancelAsync();
            throw;
        }
    }

    public IAsyncEnumerable<(int Source, T Item)> ReadAllAsync() => _channel.Reader.ReadAllAsync(_cancel.Token);

    private async Task PumpAsync(int index, IAsyncEnumerable<T> source, TaskCompletionSource started)
    {
        await Task.Yield();
        await using IAsyncEnumerator<T> e = source.GetAsyncEnumerator(_cancel.Token);
        bool more;
        try
        {
            more = await e.MoveNextAsync();
        }
        catch (Exception ex)
        {
            started.TrySetException(ex);
            throw;
        }

        started.TrySetResult();
        while (more)
        {
            _channel.Writer.TryWrite((index, e.Current));
            more = await e.MoveNextAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _cancel.CancelAsync();
        try
        {
            await Task.WhenAll(_pumps);
        }
        catch
        {
            // Reported through StartAsync or the channel already.
        }

        _cancel.Dispose();
    }
}
