using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Qwen3Sharp.Engine;
using Qwen3Sharp.Loading;
using Qwen3Sharp.Server;

namespace Qwen3Sharp.Tests.Server;

/// <summary>
/// The tiny synthesized model behind two servers, one warmed up at load (<see cref="HostOptions.WarmUp"/>, as
/// <c>qwen3 serve</c> does) and one not, to show that the warm-up leaves no trace.
/// </summary>
public sealed class WarmUpServerFixture : IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "qwen3sharp-warmup-" + Guid.NewGuid().ToString("N"));
    private readonly List<WebApplication> _apps = [];

    public Qwen3Host Warm { get; private set; } = null!;

    public Qwen3Host Cold { get; private set; } = null!;

    public HttpClient WarmHttp { get; private set; } = null!;

    public HttpClient ColdHttp { get; private set; } = null!;

    /// <summary>The warm server's /metrics before any test's request.</summary>
    public string WarmMetricsAtStart { get; private set; } = "";

    public async Task InitializeAsync()
    {
        ModelSynthesizer.Write(_directory, "tiny", new SynthesisOptions
        {
            Seed = 17,
            TokenizerDirectory = Path.Combine(AppContext.BaseDirectory, "Fixtures", "qwen3-tokenizer"),
        });
        Warm = Qwen3Host.Load(_directory, new HostOptions { ThreadCount = 2, ContextSize = 256, MaxSequences = 4, WarmUp = true });
        Cold = Qwen3Host.Load(_directory, new HostOptions { ThreadCount = 2, ContextSize = 256, MaxSequences = 4 });
        WarmHttp = await StartAsync(Warm);
        ColdHttp = await StartAsync(Cold);
        WarmMetricsAtStart = await WarmHttp.GetStringAsync("/metrics");
    }

    private async Task<HttpClient> StartAsync(Qwen3Host host)
    {
        WebApplication app = Qwen3Server.Build(new ServerOptions { Port = 0, ServedModelNames = ["tiny"] }, host.Chat,
            ["--Logging:LogLevel:Default=Warning"]);
        _apps.Add(app);
        await app.StartAsync();
        return new HttpClient { BaseAddress = app.GetBoundAddress(), Timeout = TimeSpan.FromSeconds(60) };
    }

    public async Task DisposeAsync()
    {
        WarmHttp.Dispose();
        ColdHttp.Dispose();
        foreach (WebApplication app in _apps)
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }

        Warm.Dispose();
        Cold.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}

public sealed class WarmUpServerTests(WarmUpServerFixture fixture) : IClassFixture<WarmUpServerFixture>
{
    private const string P = "qwen3sharp:";
    private readonly WarmUpServerFixture _f = fixture;

    private static async Task<JsonNode> ChatAsync(HttpClient http, string content, int maxTokens)
    {
        var body = new JsonObject
        {
            ["model"] = "tiny",
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = content }),
            ["max_tokens"] = maxTokens,
            ["temperature"] = 0,
        };
        using HttpResponseMessage r = await http.PostAsync("/v1/chat/completions", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, text);
        return JsonNode.Parse(text)!;
    }

    [Fact]
    public void WarmUp_AtLoad_RanItsStepsAndLeftNoRequestsTokensOrBlocksInMetrics()
    {
        WarmUpReport report = Assert.IsType<WarmUpReport>(_f.Warm.WarmUp);
        Assert.Equal(EngineWarmUp.DecodeSteps + EngineWarmUp.PairSteps, report.DecodeSteps);
        Assert.True(report.PromptTokens >= 32, $"a {report.PromptTokens}-token prompt does not reach the prefill kernels");
        Assert.Null(_f.Cold.WarmUp);
        // the structured-output part: the vocabulary's byte trie is built before the first tools request
        Assert.True(_f.Warm.Chat.TokenTrieBuilt);
        Assert.False(_f.Cold.Chat.TokenTrieBuilt);

        Dictionary<string, PromFamily> m = PrometheusText.Parse(_f.WarmMetricsAtStart);
        double Sum(string family) => m[P + family].Samples.Where(s => s.Name == P + family).Sum(s => s.Value);
        double Part(string family, string part) => m[P + family].Samples.Single(s => s.Name == P + family + part).Value;
        foreach (string counter in new[] { "request_success_total", "prompt_tokens_total", "generation_tokens_total", "prefix_cache_queries_total",
                     "prefix_cache_hits_total", "num_preemptions_total", "num_requests_running", "num_requests_waiting", "kv_cache_blocks_used", "kv_cache_usage_perc" })
        {
            Assert.True(Sum(counter) == 0, $"{counter} is {Sum(counter)} after the warm-up");
        }

        foreach (string histogram in new[] { "time_to_first_token_seconds", "inter_token_latency_seconds", "e2e_request_latency_seconds" })
        {
            Assert.Equal(0, Part(histogram, "_count"));
        }

        Assert.Equal(_f.Warm.Engine.Stats.KvBlocksTotal, Sum("kv_cache_blocks_total"));
    }

    [Fact]
    public async Task WarmUp_ItsOwnPromptAgain_FindsNoCachedPrefix()
    {
        // The warm-up filled blocks of this very prompt; they were dropped from the prefix cache, so nothing hits.
        JsonNode answer = await ChatAsync(_f.WarmHttp, EngineWarmUp.Text, 2);
        Assert.True(answer["usage"]!["prompt_tokens"]!.GetValue<int>() > 32);
        Assert.Equal(0, answer["usage"]!["prompt_tokens_details"]?["cached_tokens"]?.GetValue<int>() ?? 0);
    }

    [Theory]
    [InlineData("Name three rivers.")]
    [InlineData("Say hello.")]
    public async Task WarmUp_GreedyCompletion_EqualsTheColdServers(string content)
    {
        JsonNode warm = await ChatAsync(_f.WarmHttp, content, 24);
        JsonNode cold = await ChatAsync(_f.ColdHttp, content, 24);
        JsonNode w = warm["choices"]![0]!["message"]!, c = cold["choices"]![0]!["message"]!;
        Assert.Equal(c["content"]?.ToJsonString(), w["content"]?.ToJsonString());
        Assert.Equal(c["reasoning_content"]?.ToJsonString(), w["reasoning_content"]?.ToJsonString());
        Assert.Equal(cold["usage"]!["completion_tokens"]!.GetValue<int>(), warm["usage"]!["completion_tokens"]!.GetValue<int>());
    }
}
