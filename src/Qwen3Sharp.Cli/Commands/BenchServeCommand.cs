using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Qwen3Sharp.Engine;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Server;

namespace Qwen3Sharp.Cli.Commands;

/// <summary>
/// <c>qwen3 bench-serve</c>: drives the OpenAI server (in-process on a free loopback port, or a running one on this
/// machine) with concurrent streamed <c>/v1/completions</c> whose prompts are token ids, so every prompt has exactly
/// <c>--prompt-tokens</c> tokens, and prints a row per concurrency level. Fixed request counts; it stops by itself.
/// </summary>
public static partial class BenchServeCommand
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>One stream's timings: send → first token → last token, in Stopwatch ticks, and every token chunk's arrival.</summary>
    internal sealed record StreamResult(long Sent, long First, long Last, int Tokens, int PromptTokens, int? CachedTokens, string? Error,
        IReadOnlyList<long>? Arrivals = null)
    {
        public double Ttft => Stopwatch.GetElapsedTime(Sent, First).TotalSeconds;
    }

    public static async Task<int> RunAsync(BenchServeOptions o, CancellationToken ct)
    {
        TextWriter w = o.Context.Out;
        Qwen3Host? host = null;
        WebApplication? app = null;
        try
        {
            Uri baseUrl;
            if (o.Url is { } url)
            {
                baseUrl = new Uri(url.TrimEnd('/') + "/");
            }
            else
            {
                string directory = await ModelSource.ResolveAsync(o.Model!, o.Context, ct);
                int maxLevel = Math.Max(o.Concurrency.Max(), o.Probe + 1);
                host = Qwen3Host.Load(directory, new HostOptions
                {
                    ThreadCount = o.Threads ?? Environment.ProcessorCount,
                    MaxSequences = o.MaxSeqs ?? new HostOptions().MaxSequences,
                    MaxBatchedTokens = o.MaxNumBatchedTokens ?? new HostOptions().MaxBatchedTokens,
                    MaxQueuedRequests = Math.Max(64, 2 * maxLevel),
                    WeightPlacement = o.Weights,
                    Quantize = o.Quantize,
                    KvCacheDType = o.KvCacheDType,
                    BatchInvariant = o.BatchInvariant,
                    PrefillFirst = o.PrefillFirst,
                    WarmUp = true,      // as qwen3 serve: the first level must not time tier-0 code
                });
                app = Qwen3Server.Build(new ServerOptions { Host = "127.0.0.1", Port = 0, ServedModelNames = [ServerOptions.ModelNameFromDirectory(directory)] },
                    host.Chat, ["--Logging:LogLevel:Default=Warning"]);
                await app.StartAsync(ct);
                baseUrl = app.GetBoundAddress();
                await w.WriteLineAsync($"server: in-process on {baseUrl} ({host.Config.NumHiddenLayers} layers, {o.Threads ?? Environment.ProcessorCount} threads, " +
                    $"{o.MaxSeqs ?? new HostOptions().MaxSequences} sequences at once, {o.MaxNumBatchedTokens ?? new HostOptions().MaxBatchedTokens} tokens per step, " +
                    $"{(o.PrefillFirst ? "prefill-first" : "mixed")} steps, KV cache {Cache.KvCacheDTypes.Name(host.KvCacheDType)}: {host.KvBlockCount} blocks" +
                    (o.BatchInvariant ? ", batch invariant)" : ")") + (host.WarmUp is { } warm ? $"; warmed up in {warm.Elapsed.TotalSeconds:F1} s" : ""));
            }

            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 1024, PooledConnectionLifetime = TimeSpan.FromMinutes(30) })
            {
                BaseAddress = baseUrl,
                Timeout = TimeSpan.FromMinutes(30),
            };
            string model = (await GetJsonAsync(http, "v1/models", ct))["data"]![0]!["id"]!.GetValue<string>();
            await w.WriteLineAsync($"model: {model}; prompts of {o.PromptTokens} token ids, {o.GenTokens} tokens generated per stream, greedy; CPU: {CpuName()}; " +
                $"bf16 batches {KernelSelection.Name(KernelSelection.Batch)} ({KernelSelection.BatchKernelVariable})");

            var random = new Random(20251206);
            await StreamCompletionAsync(http, model, RandomPrompt(random, Math.Min(8, o.PromptTokens)), 2, ct);   // warm-up

            await w.WriteLineAsync();
            await w.WriteLineAsync("| streams | ok | generated | wall s | decode tok/s (aggregate) | per-stream tok/s | TTFT p50 s | TTFT p99 s | × one stream | first-to-last tok/s | output tok/s |");
            await w.WriteLineAsync("|---|---|---|---|---|---|---|---|---|---|---|");
            double? baseline = null;
            foreach (int n in o.Concurrency)
            {
                ct.ThrowIfCancellationRequested();
                int[][] prompts = Enumerable.Range(0, n).Select(_ => RandomPrompt(random, o.PromptTokens)).ToArray();
                long start = Stopwatch.GetTimestamp();
                StreamResult[] results = await Task.WhenAll(prompts.Select(p => StreamCompletionAsync(http, model, p, o.GenTokens, ct)));
                double wall = Stopwatch.GetElapsedTime(start).TotalSeconds;
                StreamResult[] ok = results.Where(r => r.Error is null && r.Tokens > 0).ToArray();
                foreach (StreamResult bad in results.Where(r => r.Error is not null).Take(3))
                {
                    await o.Context.Error.WriteLineAsync($"warning: a stream failed at {n} streams: {bad.Error}");
                }

                if (ok.Length == 0)
                {
                    await w.WriteLineAsync($"| {n} | 0 | 0 | {wall.ToString("F2", Inv)} | - | - | - | - | - |");
                    continue;
                }

                long firstAny = ok.Min(r => r.First), lastAny = ok.Max(r => r.Last);
                double decodeSpan = Stopwatch.GetElapsedTime(firstAny, lastAny).TotalSeconds;
                int decoded = ok.Sum(r => r.Tokens - 1);
                double firstToLast = decodeSpan > 0 ? decoded / decodeSpan : 0;
                (double Rate, int AtOnce)? peak = PeakDecodingRate(ok);
                double aggregate = peak?.Rate ?? firstToLast;
                double output = ok.Sum(r => r.Tokens) / wall;
                double perStream = ok.Where(r => r.Tokens > 1).Select(r => (r.Tokens - 1) / Stopwatch.GetElapsedTime(r.First, r.Last).TotalSeconds).DefaultIfEmpty(0).Average();
                double[] ttft = ok.Select(r => r.Ttft).Order().ToArray();
                baseline ??= aggregate;
                string ratio = baseline > 0 ? (aggregate / baseline.Value).ToString("F2", Inv) + "×" : "-";
                await w.WriteLineAsync($"| {n} | {ok.Length}/{n} | {ok.Sum(r => r.Tokens)} | {wall.ToString("F2", Inv)} | {aggregate.ToString("F2", Inv)}{(peak is { } pk && pk.AtOnce < ok.Length ? $" ({pk.AtOnce} at once)" : "")} | " +
                    $"{perStream.ToString("F2", Inv)} | {Percentile(ttft, 0.50).ToString("F3", Inv)} | {Percentile(ttft, 0.99).ToString("F3", Inv)} | {ratio} | " +
                    $"{firstToLast.ToString("F2", Inv)} | {output.ToString("F2", Inv)} |");
                await w.FlushAsync(ct);
            }

            await w.WriteLineAsync();
            await w.WriteLineAsync("decode tok/s (aggregate): tokens arriving while every stream is decoding (from the latest first token to the earliest " +
                "last token) over that time, as llama-batched-bench's S_TG counts only steps after every prompt is in; when the server runs fewer at once " +
                "(--max-seqs), while the most streams it ran at once were decoding, marked \"(N at once)\"; first-to-last tok/s: tokens after each " +
                "stream's first over the time from the earliest first token to the latest last (it includes the prefill steps of streams admitted later); " +
                "output tok/s: all tokens over the wall time (vLLM's output throughput); per-stream tok/s: the mean of each stream's own; " +
                "× one stream: aggregate over the first level's.");

            if (o.Probe > 0)
            {
                await ProbeAsync(http, model, o, random, w, ct);
            }

            if (o.MultiTurn)
            {
                await MultiTurnAsync(http, model, o, w, ct);
            }

            return Qwen3Cli.ExitOk;
        }
        finally
        {
            if (app is not null)
            {
                host!.Engine.Dispose();
                await app.StopAsync(CancellationToken.None);
                await app.DisposeAsync();
            }

            host?.Dispose();
        }
    }

    /// <summary>A short request's time to first token alone, then while <c>--probe</c> streams are decoding.</summary>
    private static async Task ProbeAsync(HttpClient http, string model, BenchServeOptions o, Random random, TextWriter w, CancellationToken ct)
    {
        const int ShortPrompt = 16;
        double idle = (await StreamCompletionAsync(http, model, RandomPrompt(random, ShortPrompt), 1, ct)).Ttft;
        int n = o.Probe;
        var started = new TaskCompletionSource();
        int firstTokens = 0;
        int finished = 0;
        Task<StreamResult>[] background = Enumerable.Range(0, n).Select(_ => StreamCompletionAsync(http, model, RandomPrompt(random, o.PromptTokens), o.GenTokens * 4, ct,
            onFirst: () => { if (Interlocked.Increment(ref firstTokens) == n) started.TrySetResult(); },
            onDone: () => { Interlocked.Increment(ref finished); started.TrySetResult(); })).ToArray();
        await started.Task.WaitAsync(ct);
        int decoding = Volatile.Read(ref firstTokens) - Volatile.Read(ref finished);
        StreamResult probe = await StreamCompletionAsync(http, model, RandomPrompt(random, ShortPrompt), 1, ct);
        await Task.WhenAll(background);
        await w.WriteLineAsync();
        await w.WriteLineAsync($"probe: a {ShortPrompt}-token request's time to first token: idle {idle.ToString("F3", Inv)} s; " +
            $"while {decoding} of {n} streams decode {probe.Ttft.ToString("F3", Inv)} s ({(probe.Ttft / idle).ToString("F1", Inv)}× idle)");
    }

    /// <summary>Five chat turns over the same ~1,500-token tools prompt: prompt and cached tokens per turn.</summary>
    private static async Task MultiTurnAsync(HttpClient http, string model, BenchServeOptions o, TextWriter w, CancellationToken ct)
    {
        JsonArray tools = ToolsPrompt();
        var messages = new JsonArray(
            new JsonObject { ["role"] = "system", ["content"] = "You are a travel-desk assistant. Use the tools when they help." });
        string[] questions =
        [
            "I need a flight from Lisbon to Oslo next Friday.",
            "What will the weather be there?",
            "Book a hotel near the harbour for two nights.",
            "Convert 300 euros to Norwegian kroner.",
            "Summarise the plan in three lines.",
        ];
        await w.WriteLineAsync();
        await w.WriteLineAsync("| turn | prompt tokens | cached tokens | cached % | TTFT s |");
        await w.WriteLineAsync("|---|---|---|---|---|");
        for (int turn = 0; turn < questions.Length; turn++)
        {
            messages.Add(new JsonObject { ["role"] = "user", ["content"] = questions[turn] });
            var body = new JsonObject
            {
                ["model"] = model, ["messages"] = messages.DeepClone(), ["tools"] = tools.DeepClone(), ["tool_choice"] = "auto",
                ["max_tokens"] = o.GenTokens, ["temperature"] = 0, ["enable_thinking"] = false, ["stream"] = true,
                ["stream_options"] = new JsonObject { ["include_usage"] = true },
            };
            var answer = new StringBuilder();
            StreamResult r = await StreamAsync(http, "v1/chat/completions", body, ct, text: answer);
            if (r.Error is not null)
            {
                throw new InvalidOperationException($"turn {turn + 1} failed: {r.Error}");
            }

            string cached = r.CachedTokens is { } c ? c.ToString(Inv) : "n/a";
            string percent = r.CachedTokens is { } c2 && r.PromptTokens > 0 ? (100.0 * c2 / r.PromptTokens).ToString("F0", Inv) + "%" : "n/a";
            await w.WriteLineAsync($"| {turn + 1} | {r.PromptTokens} | {cached} | {percent} | {r.Ttft.ToString("F3", Inv)} |");
            messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = answer.ToString() });
        }

        await w.WriteLineAsync("cached tokens: usage.prompt_tokens_details.cached_tokens (n/a: the server does not report it).");
    }

    private static Task<StreamResult> StreamCompletionAsync(HttpClient http, string model, int[] prompt, int maxTokens, CancellationToken ct,
        Action? onFirst = null, Action? onDone = null) =>
        StreamAsync(http, "v1/completions", new JsonObject
        {
            ["model"] = model, ["prompt"] = new JsonArray(prompt.Select(t => (JsonNode)t).ToArray()), ["max_tokens"] = maxTokens,
            ["temperature"] = 0, ["stream"] = true, ["stream_options"] = new JsonObject { ["include_usage"] = true },
        }, ct, onFirst, onDone);

    /// <summary>Posts a streamed request and times its SSE chunks: the first and last chunk carrying a token.</summary>
    private static async Task<StreamResult> StreamAsync(HttpClient http, string path, JsonObject body, CancellationToken ct,
        Action? onFirst = null, Action? onDone = null, StringBuilder? text = null)
    {
        long sent = Stopwatch.GetTimestamp(), first = 0, last = 0;
        int chunks = 0, promptTokens = 0;
        var arrivals = new List<long>();
        int? completionTokens = null, cachedTokens = null;
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "EMPTY");
            using HttpResponseMessage response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
            if (!response.IsSuccessStatusCode)
            {
                return new StreamResult(sent, sent, sent, 0, 0, null, $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
            }

            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
            while (await reader.ReadLineAsync(ct) is { } line)
            {
                if (!line.StartsWith("data: {", StringComparison.Ordinal))
                {
                    continue;
                }

                JsonNode chunk = JsonNode.Parse(line.AsSpan("data: ".Length).ToString())!;
                if (chunk["usage"] is JsonObject usage)
                {
                    promptTokens = usage["prompt_tokens"]?.GetValue<int>() ?? 0;
                    completionTokens = usage["completion_tokens"]?.GetValue<int>();
                    cachedTokens = usage["prompt_tokens_details"]?["cached_tokens"]?.GetValue<int>();
                }

                if (chunk["choices"] is JsonArray { Count: > 0 } choices && IsTokenChunk(choices[0]!, text))
                {
                    last = Stopwatch.GetTimestamp();
                    arrivals.Add(last);
                    if (chunks++ == 0)
                    {
                        first = last;
                        onFirst?.Invoke();
                    }
                }
            }

            return chunks == 0
                ? new StreamResult(sent, sent, sent, 0, promptTokens, cachedTokens, "no tokens in the stream")
                : new StreamResult(sent, first, last, completionTokens ?? chunks, promptTokens, cachedTokens, null, arrivals);
        }
        catch (HttpRequestException ex)
        {
            return new StreamResult(sent, sent, sent, 0, 0, null, ex.Message);
        }
        finally
        {
            onDone?.Invoke();
        }
    }

    /// <summary>A chunk that carries generated output (text, reasoning or a tool-call delta), not just a role or a finish reason.</summary>
    private static bool IsTokenChunk(JsonNode choice, StringBuilder? text)
    {
        if (choice["text"] is JsonValue t)
        {
            return t.GetValue<string>().Length > 0 || choice["finish_reason"] is null;
        }

        if (choice["delta"] is not JsonObject delta)
        {
            return false;
        }

        string? content = delta["content"]?.GetValue<string>();
        if (content is not null)
        {
            text?.Append(content);
        }

        return content is { Length: > 0 } || delta["reasoning_content"] is not null || delta["reasoning"] is not null || delta["tool_calls"] is not null;
    }

    private static async Task<JsonNode> GetJsonAsync(HttpClient http, string path, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "EMPTY");
        using HttpResponseMessage response = await http.SendAsync(request, ct);
        string body = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"GET {path}: {(int)response.StatusCode} {body}");
        }

        return JsonNode.Parse(body)!;
    }

    /// <summary>Ordinary token ids (no special tokens), a different prompt per stream so no two share a prefix.</summary>
    private static int[] RandomPrompt(Random random, int count) => Enumerable.Range(0, count).Select(_ => random.Next(1_000, 30_000)).ToArray();

    /// <summary>
    /// Tokens per second while the most streams decode at once: the chunks arriving in the times when that many streams
    /// are between their first and last tokens, over those times, and that number. With every stream running at once it is
    /// the window from the latest first token to the earliest last one (llama-batched-bench's S_TG); when the server runs
    /// fewer (<c>--max-seqs</c>) it is the rate at its full batch, not a window that never occurs. Null when too short to
    /// time (under 2 steps' tokens, or one stream at a time).
    /// </summary>
    internal static (double Rate, int AtOnce)? PeakDecodingRate(StreamResult[] ok)
    {
        // ends before starts at the same instant: a stream that ends as another starts does not overlap it
        (long At, int Step)[] events = [.. ok.SelectMany(r => new[] { (r.First, 1), (r.Last, -1) }).OrderBy(e => e.Item1).ThenBy(e => e.Item2)];
        int active = 0, most = 0;
        foreach ((_, int step) in events)
        {
            active += step;
            most = Math.Max(most, active);
        }

        var spans = new List<(long From, long To)>();
        active = 0;
        for (int i = 0; i < events.Length - 1; i++)
        {
            active += events[i].Step;
            if (active == most && events[i + 1].At > events[i].At)
            {
                spans.Add((events[i].At, events[i + 1].At));
            }
        }

        if (most < 2 || spans.Count == 0)
        {
            return null;
        }

        double seconds = spans.Sum(s => Stopwatch.GetElapsedTime(s.From, s.To).TotalSeconds);
        int tokens = ok.Sum(r => r.Arrivals?.Count(t => spans.Any(s => t > s.From && t <= s.To)) ?? 0);
        return tokens < 2 * most || seconds <= 0 ? null : (tokens / seconds, most);
    }

    private static double Percentile(double[] sorted, double p) => sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];

    /// <summary>About 1,500 tokens of tool definitions, the size of an agent's tools prompt.</summary>
    private static JsonArray ToolsPrompt()
    {
        string[] names = ["search_flights", "get_weather", "find_hotels", "book_hotel", "convert_currency", "list_attractions"];
        var tools = new JsonArray();
        foreach (string name in names)
        {
            var properties = new JsonObject();
            foreach (string p in new[] { "location", "date", "travellers", "budget", "preferences" })
            {
                properties[p] = new JsonObject
                {
                    ["type"] = p == "travellers" || p == "budget" ? "number" : "string",
                    ["description"] = $"The {p} for {name.Replace('_', ' ')}; give it as the user stated it, normalised to the usual format for a {p}.",
                };
            }

            tools.Add(new JsonObject
            {
                ["type"] = "function",
                ["function"] = new JsonObject
                {
                    ["name"] = name,
                    ["description"] = $"Calls the travel desk's {name.Replace('_', ' ')} service and returns its answer as JSON. Use it only when the user asks for it.",
                    ["parameters"] = new JsonObject { ["type"] = "object", ["properties"] = properties, ["required"] = new JsonArray("location") },
                },
            });
        }

        return tools;
    }

    private static string CpuName()
    {
        try
        {
            string? line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line is null ? "unknown" : line[(line.IndexOf(':') + 1)..].Trim() + $", {Environment.ProcessorCount} logical CPUs";
        }
        catch (IOException)
        {
            return "unknown";
        }
    }
}
