using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Qwen3Sharp.Chat;
using Qwen3Sharp.Engine;
using Qwen3Sharp.Loading;
using Qwen3Sharp.Sampling;
using Qwen3Sharp.Server;

namespace Qwen3Sharp.Tests.Server;

/// <summary>The synthesized tiny Qwen3 (real vocabulary, random weights) served over HTTP.</summary>
public sealed class TinyModelFixture : IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "qwen3sharp-server-tiny-" + Guid.NewGuid().ToString("N"));
    private WebApplication? _app;

    public Qwen3Host Host { get; private set; } = null!;

    public HttpClient Http { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        ModelSynthesizer.Write(_directory, "tiny", new SynthesisOptions
        {
            Seed = 7,
            TokenizerDirectory = Path.Combine(AppContext.BaseDirectory, "Fixtures", "qwen3-tokenizer"),
        });
        Host = Qwen3Host.Load(_directory, new HostOptions { ThreadCount = 2, ContextSize = 512, MaxSequences = 4 });
        _app = Qwen3Server.Build(new ServerOptions { Port = 0, ServedModelNames = ["tiny"] }, Host.Chat,
            ["--Logging:LogLevel:Default=Warning"]);
        await _app.StartAsync();
        Http = new HttpClient { BaseAddress = _app.GetBoundAddress(), Timeout = TimeSpan.FromSeconds(60) };
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        Host.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}

public sealed class TinyModelServerTests(TinyModelFixture fixture) : IClassFixture<TinyModelFixture>
{
    private const int MaxTokens = 12;
    private readonly TinyModelFixture _f = fixture;

    private async Task<JsonNode> PostOk(string path, JsonNode body)
    {
        using HttpResponseMessage r = await _f.Http.PostAsync(path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, text);
        return JsonNode.Parse(text)!;
    }

    private static JsonObject GreedyChat(bool thinking, bool stream = false) => new()
    {
        ["model"] = "tiny",
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Tell me about the sea." }),
        ["temperature"] = 0,
        ["max_tokens"] = MaxTokens,
        ["enable_thinking"] = thinking,
        ["stream"] = stream,
    };

    private static ChatRequest DirectRequest(bool thinking) => new()
    {
        Messages = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Tell me about the sea." }),
        EnableThinking = thinking,
        Sampling = new SamplingOverrides { Temperature = 0 },
        MaxTokens = MaxTokens,
    };

    [Theory, InlineData(true), InlineData(false)]
    public async Task Greedy_ServerEqualsChatServiceDirect(bool thinking)
    {
        ChatResult direct = await _f.Host.Chat.CompleteAsync(DirectRequest(thinking));
        Assert.True(direct.Usage.CompletionTokens > 0);
        Assert.NotEqual("", direct.Content + direct.Reasoning + string.Concat(direct.ToolCalls.Select(c => c.Arguments)));
        JsonNode r = await PostOk("/v1/chat/completions", GreedyChat(thinking));
        JsonNode choice = r["choices"]![0]!;
        JsonNode message = choice["message"]!;
        Assert.Equal(direct.ToolCalls.Count == 0 || direct.Content.Length > 0 ? direct.Content : null, (string?)message["content"]);
        Assert.Equal(string.IsNullOrEmpty(direct.Reasoning) ? null : direct.Reasoning, (string?)message["reasoning_content"]);
        Assert.Equal(direct.Usage.PromptTokens, (int)r["usage"]!["prompt_tokens"]!);
        Assert.Equal(direct.Usage.CompletionTokens, (int)r["usage"]!["completion_tokens"]!);
        Assert.Equal(ChatCompletionsEndpoint.FinishReasonText(direct.FinishReason), (string)choice["finish_reason"]!);
    }

    [Theory, InlineData(true), InlineData(false)]
    public async Task GreedyStream_EqualsGreedyWhole(bool thinking)
    {
        JsonNode whole = (await PostOk("/v1/chat/completions", GreedyChat(thinking)))["choices"]![0]!["message"]!;
        using HttpResponseMessage response = await _f.Http.PostAsync("/v1/chat/completions",
            new StringContent(GreedyChat(thinking, stream: true).ToJsonString(), Encoding.UTF8, "application/json"));
        SseResult sse = await SseResult.ReadAsync(await response.Content.ReadAsStreamAsync());
        Assert.True(sse.EndedWithDone);
        Assert.Equal((string?)whole["content"] ?? "", sse.Delta("content"));
        Assert.Equal((string?)whole["reasoning_content"] ?? "", sse.Delta("reasoning_content"));
    }

    [Fact]
    public async Task GreedyCompletions_EqualEngineDirect()
    {
        const string prompt = "The sea is";
        int[] tokens = _f.Host.Tokenizer.Encode(prompt);
        var request = new GenerationRequest
        {
            PromptTokens = tokens,
            Sampling = _f.Host.Chat.SamplingFor(new SamplingOverrides { Temperature = 0 }, thinking: false),
            MaxTokens = MaxTokens,
            StopTokenIds = _f.Host.Chat.StopTokenIds.ToArray(),
        };
        var direct = new StringBuilder();
        await foreach (GenerationEvent e in _f.Host.Engine.GenerateAsync(request))
        {
            direct.Append(e switch { TokenGenerated t => t.TextDelta, GenerationFinished f => f.TextDelta, _ => "" });
        }

        JsonNode r = await PostOk("/v1/completions", new JsonObject
        {
            ["model"] = "tiny",
            ["prompt"] = prompt,
            ["temperature"] = 0,
            ["max_tokens"] = MaxTokens,
        });
        Assert.Equal(direct.ToString(), (string)r["choices"]![0]!["text"]!);
        Assert.Equal(tokens.Length, (int)r["usage"]!["prompt_tokens"]!);
    }

    [Fact]
    public async Task GreedyN2_ChoicesIdentical()
    {
        JsonObject body = GreedyChat(thinking: false);
        body["n"] = 2;
        var choices = (await PostOk("/v1/chat/completions", body))["choices"]!.AsArray();
        Assert.Equal(2, choices.Count);
        Assert.Equal(choices[0]!["message"]!.ToJsonString(), choices[1]!["message"]!.ToJsonString());
    }
}
