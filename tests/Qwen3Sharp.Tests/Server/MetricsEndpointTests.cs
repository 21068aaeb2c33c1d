using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Qwen3Sharp.Engine;
using Qwen3Sharp.Loading;
using Qwen3Sharp.Server;

namespace Qwen3Sharp.Tests.Server;

/// <summary>The tiny synthesized model behind a server with an API key, for <c>GET /metrics</c> (its own, so counters are ours).</summary>
public sealed class MetricsServerFixture : IAsyncLifetime
{
    public const string Key = "sk-metrics-test";
    public const int MaxSequences = 3;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "qwen3sharp-metrics-" + Guid.NewGuid().ToString("N"));
    private WebApplication? _app;

    public Qwen3Host Host { get; private set; } = null!;

    public HttpClient Http { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        ModelSynthesizer.Write(_directory, "tiny", new SynthesisOptions
        {
            Seed = 11,
            TokenizerDirectory = Path.Combine(AppContext.BaseDirectory, "Fixtures", "qwen3-tokenizer"),
        });
        Host = Qwen3Host.Load(_directory, new HostOptions { ThreadCount = 2, ContextSize = 256, MaxSequences = MaxSequences });
        _app = Qwen3Server.Build(new ServerOptions { Port = 0, ServedModelNames = ["tiny \"model\""], ApiKey = Key }, Host.Chat,
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

public sealed class MetricsEndpointTests(MetricsServerFixture fixture) : IClassFixture<MetricsServerFixture>
{
    private const string P = "qwen3sharp:";
    private readonly MetricsServerFixture _f = fixture;

    private async Task<Dictionary<string, PromFamily>> ScrapeAsync()
    {
        using HttpResponseMessage r = await _f.Http.GetAsync("/metrics");   // no Authorization: open, as vLLM's
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("text/plain", r.Content.Headers.ContentType!.MediaType);
        Assert.Contains(r.Content.Headers.ContentType.Parameters, p => p.Name == "version" && p.Value == "0.0.4");
        Dictionary<string, PromFamily> families = PrometheusText.Parse(await r.Content.ReadAsStringAsync());
        foreach (PromFamily f in families.Values)
        {
            Assert.All(f.Samples, s => Assert.Equal("tiny \"model\"", s.Label("model_name")));
        }

        return families;
    }

    private static double Value(Dictionary<string, PromFamily> m, string family, string sample, string? label = null, string? labelValue = null) =>
        m[P + family].Samples.Single(s => s.Name == P + sample && (label is null || s.Label(label) == labelValue)).Value;

    private static double Counter(Dictionary<string, PromFamily> m, string name) => Value(m, name, name);

    private async Task<JsonNode> PostAsync(string path, JsonObject body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", MetricsServerFixture.Key);
        using HttpResponseMessage r = await _f.Http.SendAsync(request);
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, text);
        return body["stream"]?.GetValue<bool>() == true ? JsonNode.Parse(LastUsageChunk(text))! : JsonNode.Parse(text)!;
    }

    private static string LastUsageChunk(string sse) =>
        sse.Split('\n').Where(l => l.StartsWith("data: {", StringComparison.Ordinal) && l.Contains("\"usage\":{", StringComparison.Ordinal))
            .Select(l => l["data: ".Length..]).Last();

    private static void AssertHistogramWellFormed(PromFamily h)
    {
        Assert.Equal("histogram", h.Type);
        List<PromSample> buckets = h.Samples.Where(s => s.Name == h.Name + "_bucket").ToList();
        double[] bounds = buckets.Select(b => b.Label("le") == "+Inf" ? double.PositiveInfinity : double.Parse(b.Label("le")!, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(bounds.Order(), bounds);
        Assert.Equal(double.PositiveInfinity, bounds[^1]);
        for (int i = 1; i < buckets.Count; i++)
        {
            Assert.True(buckets[i].Value >= buckets[i - 1].Value, $"{h.Name}: buckets not cumulative at le={buckets[i].Label("le")}");
        }

        double count = h.Samples.Single(s => s.Name == h.Name + "_count").Value;
        double sum = h.Samples.Single(s => s.Name == h.Name + "_sum").Value;
        Assert.Equal(count, buckets[^1].Value);
        Assert.True(sum >= 0 && (count > 0 || sum == 0), $"{h.Name}: sum {sum} with count {count}");
    }

    [Fact]
    public async Task Metrics_AfterRealRequests_CountersAndHistogramsMoveByTheRequests()
    {
        Dictionary<string, PromFamily> before = await ScrapeAsync();

        // Three completions on exact token-id prompts and one streamed chat, two of them at once.
        var bodies = new List<(string Path, JsonObject Body)>
        {
            ("/v1/completions", new JsonObject { ["model"] = "tiny \"model\"", ["prompt"] = new JsonArray(1, 2, 3, 4, 5, 6, 7), ["max_tokens"] = 6, ["temperature"] = 0 }),
            ("/v1/completions", new JsonObject { ["model"] = "tiny \"model\"", ["prompt"] = new JsonArray(9, 8, 7), ["max_tokens"] = 1, ["temperature"] = 0 }),
            ("/v1/completions", new JsonObject { ["model"] = "tiny \"model\"", ["prompt"] = new JsonArray(100, 200, 300, 400), ["max_tokens"] = 4, ["temperature"] = 0 }),
            ("/v1/chat/completions", new JsonObject
            {
                ["model"] = "tiny \"model\"", ["max_tokens"] = 5, ["temperature"] = 0, ["enable_thinking"] = false, ["stream"] = true,
                ["stream_options"] = new JsonObject { ["include_usage"] = true },
                ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Count the waves." }),
            }),
        };
        JsonNode[] results = await Task.WhenAll(bodies.Select(b => PostAsync(b.Path, b.Body)));
        int prompt = results.Sum(r => r["usage"]!["prompt_tokens"]!.GetValue<int>());
        int[] completion = results.Select(r => r["usage"]!["completion_tokens"]!.GetValue<int>()).ToArray();
        Assert.All(completion, c => Assert.True(c >= 1));
        var reasons = results.Take(3).Select(r => r["choices"]![0]!["finish_reason"]!.GetValue<string>()).ToList();

        // The engine publishes its queue once per step: give it that step.
        Dictionary<string, PromFamily> after = await ScrapeAsync();
        for (int i = 0; i < 50 && Value(after, "num_requests_running", "num_requests_running") != 0; i++)
        {
            await Task.Delay(20);
            after = await ScrapeAsync();
        }

        double Delta(string name) => Counter(after, name) - Counter(before, name);
        double HistogramDelta(string name, string part) => Value(after, name, name + part) - Value(before, name, name + part);

        Assert.Equal(prompt, Delta("prompt_tokens_total"));
        Assert.Equal(completion.Sum(), Delta("generation_tokens_total"));
        Assert.Equal(4, HistogramDelta("time_to_first_token_seconds", "_count"));   // once per request
        Assert.Equal(completion.Sum() - 4, HistogramDelta("inter_token_latency_seconds", "_count"));
        Assert.Equal(completion.Sum() - 4, HistogramDelta("time_per_output_token_seconds", "_count"));
        Assert.Equal(4, HistogramDelta("e2e_request_latency_seconds", "_count"));
        Assert.True(HistogramDelta("e2e_request_latency_seconds", "_sum") > 0);
        double finished = after[P + "request_success_total"].Samples.Sum(s => s.Value) - before[P + "request_success_total"].Samples.Sum(s => s.Value);
        Assert.Equal(4, finished);
        int completionsStoppedByLength = reasons.Count(r => r == "length");
        Assert.True(Value(after, "request_success_total", "request_success_total", "finished_reason", "length")
                    - Value(before, "request_success_total", "request_success_total", "finished_reason", "length") >= completionsStoppedByLength);
        Assert.Equal(0, Delta("num_preemptions_total"));
        int cached = results.Sum(r => r["usage"]!["prompt_tokens_details"]!["cached_tokens"]!.GetValue<int>());
        Assert.Equal(prompt, Delta("prefix_cache_queries_total"));   // every prompt looked up once at admission
        Assert.Equal(cached, Delta("prefix_cache_hits_total"));
        Assert.Equal(0, Value(after, "num_requests_running", "num_requests_running"));
        Assert.Equal(0, Value(after, "num_requests_waiting", "num_requests_waiting"));
        Assert.Equal(0, Value(after, "kv_cache_usage_perc", "kv_cache_usage_perc"));
        Assert.Equal(0, Value(after, "kv_cache_blocks_used", "kv_cache_blocks_used"));
        Assert.True(_f.Host.Engine.Stats.KvBlocksTotal > 0);
        Assert.Equal(_f.Host.Engine.Stats.KvBlocksTotal, Value(after, "kv_cache_blocks_total", "kv_cache_blocks_total"));
        foreach (string h in new[] { "time_to_first_token_seconds", "inter_token_latency_seconds", "time_per_output_token_seconds", "e2e_request_latency_seconds" })
        {
            AssertHistogramWellFormed(after[P + h]);
        }

        Assert.Equal(EngineMetrics.TimeToFirstTokenBuckets.Length + 1, after[P + "time_to_first_token_seconds"].Samples.Count(s => s.Name.EndsWith("_bucket", StringComparison.Ordinal)));
        Assert.Equal(["abort", "error", "length", "stop"], after[P + "request_success_total"].Samples.Select(s => s.Label("finished_reason")!).Order());
    }

    [Fact]
    public async Task Metrics_WithApiKey_IsOpenButTheApiIsNot()
    {
        await ScrapeAsync();
        using HttpResponseMessage models = await _f.Http.GetAsync("/v1/models");
        Assert.Equal(HttpStatusCode.Unauthorized, models.StatusCode);
    }
}

public sealed class EngineMetricsTests
{
    [Fact]
    public void Histogram_BoundsAreInclusive_CumulativeEndsAtCount()
    {
        var h = new EngineMetrics.Histogram([0.1, 1.0]);
        foreach (double v in new[] { 0.05, 0.1, 0.5, 1.0, 3.0 })
        {
            h.Observe(v);
        }

        long[] cumulative = new long[3];
        Assert.Equal(5, h.CopyCumulative(cumulative));
        Assert.Equal([2L, 4L, 5L], cumulative);
        Assert.Equal(4.65, h.Sum, 10);
        Assert.Equal(5, h.Count);
    }

    [Fact]
    public void Histogram_NonIncreasingBounds_Throws() =>
        Assert.Throws<ArgumentException>(() => new EngineMetrics.Histogram([1.0, 1.0]));

    [Fact]
    public void Observe_AfterWarmUp_AllocatesNothing()
    {
        var m = new EngineMetrics(() => 0);
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        m.RecordFirstToken(t0, t0 + 10, 5);
        int windows = 0;
        Assert.Equal(0, Allocations.Fewest(() =>
        {
            windows++;
            for (int i = 0; i < 1000; i++)
            {
                m.RecordNextToken(t0, t0 + i);
                m.RecordFinished(RequestOutcome.Stop, t0, t0 + i);
                m.RecordPrefixCacheLookup(16, 8);
            }
        }));
        Assert.Equal(16000L * windows, m.PrefixCacheQueries);
        Assert.Equal(1 + 1000L * windows, m.GenerationTokens);
    }

    [Fact]
    public void Format_EscapesTheModelName_AndNamesCountersWithTotal()
    {
        var m = new EngineMetrics(() => 2);
        m.SetSchedulerState(1, 1, 4);
        string text = MetricsEndpoint.Format(m, "a\\b\"c\nd");
        Dictionary<string, PromFamily> families = PrometheusText.Parse(text);
        Assert.Equal("a\\b\"c\nd", families["qwen3sharp:num_requests_waiting"].Samples[0].Label("model_name"));
        Assert.Equal(1, families["qwen3sharp:num_requests_waiting"].Samples[0].Value);
        Assert.Equal(0.25, families["qwen3sharp:kv_cache_usage_perc"].Samples[0].Value);
        Assert.Equal("counter", families["qwen3sharp:prompt_tokens_total"].Type);
    }
}
