using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Qwen3Sharp.Chat;
using Qwen3Sharp.Engine;
using Qwen3Sharp.Server;
using Qwen3Sharp.Tokenization;

namespace Qwen3Sharp.Tests.Server;

/// <summary>
/// A real server on 127.0.0.1 (port 0) over the real tokenizer and chat template and a <see cref="ScriptedRunner"/>.
/// </summary>
public sealed class ServerHarness : IAsyncDisposable
{
    public const string ModelName = "Qwen3-1.7B";
    public const string Alias = "qwen3";

    private static readonly Lazy<(Qwen3Tokenizer Tokenizer, ChatTemplate Template)> Assets = new(() =>
    {
        string dir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "qwen3-tokenizer");
        return (Qwen3Tokenizer.Load(dir), ChatTemplate.Load(dir) ?? throw new InvalidOperationException("no chat template in " + dir));
    });

    private readonly WebApplication _app;

    private ServerHarness(WebApplication app, InferenceEngine engine, ChatService chat, ScriptedRunner runner)
    {
        _app = app;
        Engine = engine;
        Chat = chat;
        Runner = runner;
        BaseAddress = app.GetBoundAddress();
        Http = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    public static Qwen3Tokenizer Tokenizer => Assets.Value.Tokenizer;

    public Uri BaseAddress { get; }

    public HttpClient Http { get; }

    public InferenceEngine Engine { get; }

    public ChatService Chat { get; }

    internal ScriptedRunner Runner { get; }

    public static async Task<ServerHarness> StartAsync(ServerOptions? options = null, int maxSequences = 4,
        int maxQueued = 64, int contextSize = 4096)
    {
        options ??= new ServerOptions();
        options = options with { Port = 0, ServedModelNames = options.ServedModelNames is ["qwen3"] ? [ModelName, Alias] : options.ServedModelNames };
        (Qwen3Tokenizer tokenizer, ChatTemplate template) = Assets.Value;
        var runner = new ScriptedRunner(tokenizer, Scripts.Choose, contextSize, maxSequences);
        var engine = new InferenceEngine(runner, r => SamplerAdapter.Create(r, runner.VocabSize),
            skip => new TokenizerTextDecoder(tokenizer.CreateIncrementalDecoder(skip)),
            new EngineOptions
            {
                MaxQueuedRequests = maxQueued,
                StepTokenBudget = 1 << 16,
                ThinkStartTokenId = tokenizer.ThinkStart,
                ThinkEndTokenId = tokenizer.ThinkEnd,
            });
        var chat = new ChatService(engine, tokenizer, template, null, options.ToChatServiceOptions());
        WebApplication app = Qwen3Server.Build(options, chat, ["--Logging:LogLevel:Default=Warning", "--Logging:LogLevel:Microsoft.AspNetCore=Error"]);
        await app.StartAsync();
        return new ServerHarness(app, engine, chat, runner);
    }

    /// <summary>POSTs JSON text as it is.</summary>
    public Task<HttpResponseMessage> PostAsync(string path, string json, HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead,
        CancellationToken cancellationToken = default)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        return Http.SendAsync(request, completion, cancellationToken);
    }

    public Task<HttpResponseMessage> PostAsync(string path, JsonNode body, HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead,
        CancellationToken cancellationToken = default) =>
        PostAsync(path, body.ToJsonString(), completion, cancellationToken);

    /// <summary>POSTs and parses a 200 JSON answer.</summary>
    public async Task<JsonNode> PostOkAsync(string path, JsonNode body)
    {
        using HttpResponseMessage response = await PostAsync(path, body);
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {text}");
        return JsonNode.Parse(text)!;
    }

    /// <summary>POSTs a streaming request and reads every SSE event up to and including [DONE].</summary>
    public async Task<SseResult> StreamAsync(string path, JsonNode body)
    {
        using HttpResponseMessage response = await PostAsync(path, body, HttpCompletionOption.ResponseHeadersRead);
        if (!response.IsSuccessStatusCode)
        {
            Assert.Fail($"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }

        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        return await SseResult.ReadAsync(await response.Content.ReadAsStreamAsync());
    }

    /// <summary>Waits until the engine has no request left (a cancelled one finishes within a step).</summary>
    public async Task WaitForIdleAsync()
    {
        for (int i = 0; i < 500 && (Engine.PendingRequestCount != 0 || Volatile.Read(ref Runner.LiveSequences) != 0); i++)
        {
            await Task.Delay(10);
        }

        Assert.Equal(0, Engine.PendingRequestCount);
        Assert.Equal(0, Volatile.Read(ref Runner.LiveSequences));
    }

    public static JsonObject ChatBody(string user, bool? stream = null, string model = ModelName)
    {
        var body = new JsonObject
        {
            ["model"] = model,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = user }),
        };
        if (stream is { } s)
        {
            body["stream"] = s;
        }

        return body;
    }

    public static AuthenticationHeaderValue Bearer(string key) => new("Bearer", key);

    public async ValueTask DisposeAsync()
    {
        Runner.Gate.Set();
        Http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        Engine.Dispose();
    }
}

/// <summary>The SSE events of one streamed answer.</summary>
public sealed record SseResult(IReadOnlyList<JsonNode> Events, bool EndedWithDone, int EventsAfterDone)
{
    public static async Task<SseResult> ReadAsync(Stream stream)
    {
        using var reader = new StreamReader(stream);
        var events = new List<JsonNode>();
        bool done = false;
        int after = 0;
        string? line;
        while ((line = await reader.ReadLineAsync()) is not null)
        {
            if (line.Length == 0)
            {
                continue;
            }

            Assert.StartsWith("data: ", line);
            string data = line["data: ".Length..];
            if (done)
            {
                after++;
            }
            else if (data == "[DONE]")
            {
                done = true;
            }
            else
            {
                events.Add(JsonNode.Parse(data)!);
            }
        }

        return new SseResult(events, done, after);
    }

    /// <summary>Chunks that carry choices (not the usage chunk).</summary>
    public IEnumerable<JsonNode> ChoiceChunks => Events.Where(e => e["choices"] is JsonArray { Count: > 0 });

    /// <summary>The concatenated text of a delta field of one choice.</summary>
    public string Delta(string field, int choice = 0) => string.Concat(ChoiceChunks
        .Select(e => e["choices"]![0]!)
        .Where(c => (int)c["index"]! == choice)
        .Select(c => (string?)c["delta"]?[field] ?? ""));

    /// <summary>The concatenated text of a completions stream choice.</summary>
    public string Text(int choice = 0) => string.Concat(ChoiceChunks
        .Select(e => e["choices"]![0]!)
        .Where(c => (int)c["index"]! == choice)
        .Select(c => (string?)c["text"] ?? ""));

    public IEnumerable<JsonNode> ChoicesOf(int choice) => ChoiceChunks
        .Select(e => e["choices"]![0]!)
        .Where(c => (int)c["index"]! == choice);

    public static JsonElement Parse(string json) => JsonDocument.Parse(json).RootElement;
}
