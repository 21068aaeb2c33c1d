using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Qwen3Sharp.Engine;

namespace Qwen3Sharp.Server;

/// <summary>
/// <c>GET /metrics</c>: the engine's <see cref="EngineMetrics"/> in the Prometheus text exposition format 0.0.4,
/// named as vLLM names them (<c>vllm:num_requests_waiting</c> → <c>qwen3sharp:num_requests_waiting</c>) and
/// labelled with <c>model_name</c>. Open without the API key, as vLLM's is (its key guards <c>/v1</c> only).
/// </summary>
public static class MetricsEndpoint
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    public const string Prefix = "qwen3sharp:";

    public static async Task HandleAsync(HttpContext context)
    {
        Qwen3ServerState state = context.RequestServices.GetRequiredService<Qwen3ServerState>();
        string text = Format(state.Chat.Engine.Metrics, state.ModelId);
        context.Response.ContentType = ContentType;
        context.Response.Headers.CacheControl = "no-store";
        await context.Response.WriteAsync(text, context.RequestAborted);
    }

    /// <summary>The exposition text of <paramref name="m"/>, every series labelled <c>model_name="modelName"</c>.</summary>
    public static string Format(EngineMetrics m, string modelName)
    {
        var w = new Writer(modelName);
        w.Gauge("num_requests_running", "Number of requests in model execution batches.", m.RunningRequests);
        w.Gauge("num_requests_waiting", "Number of requests waiting to be processed.", m.WaitingRequests);
        w.Gauge("kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", m.KvCacheUsage);
        w.Gauge("kv_cache_blocks_used", "KV-cache blocks in use.", m.KvBlocksUsed);
        w.Gauge("kv_cache_blocks_total", "KV-cache blocks in all.", m.KvBlocksTotal);
        w.Counter("prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.", m.PrefixCacheQueries);
        w.Counter("prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", m.PrefixCacheHits);
        w.Counter("num_preemptions", "Cumulative number of preemption from the engine.", m.Preemptions);
        w.Counter("prompt_tokens", "Number of prefill tokens processed.", m.PromptTokens);
        w.Counter("generation_tokens", "Number of generation tokens processed.", m.GenerationTokens);
        w.Header("request_success_total", "counter", "Count of successfully processed requests.");
        foreach (RequestOutcome outcome in Enum.GetValues<RequestOutcome>())
        {
            w.Sample("request_success_total", "finished_reason", FinishedReason(outcome), m.FinishedRequests(outcome));
        }

        w.Histogram("time_to_first_token_seconds", "Histogram of time to first token in seconds.", m.TimeToFirstToken);
        w.Histogram("inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", m.InterTokenLatency);
        w.Histogram("time_per_output_token_seconds",
            "Histogram of time per output token in seconds (the same observations as inter_token_latency_seconds, vLLM's older name).",
            m.InterTokenLatency);
        w.Histogram("e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", m.EndToEndLatency);
        return w.ToString();
    }

    /// <summary>vLLM's <c>finished_reason</c> label values.</summary>
    public static string FinishedReason(RequestOutcome outcome) => outcome switch
    {
        RequestOutcome.Stop => "stop",
        RequestOutcome.Length => "length",
        RequestOutcome.Abort => "abort",
        _ => "error",
    };

    private sealed class Writer(string modelName)
    {
        private readonly StringBuilder _b = new();
        private readonly string _model = Escape(modelName);

        public void Header(string name, string type, string help)
        {
            _b.Append("# HELP ").Append(Prefix).Append(name).Append(' ').Append(help).Append('\n');
            _b.Append("# TYPE ").Append(Prefix).Append(name).Append(' ').Append(type).Append('\n');
        }

        public void Gauge(string name, string help, double value)
        {
            Header(name, "gauge", help);
            Sample(name, null, null, value);
        }

        /// <summary>A counter: the family is named without <c>_total</c>, the sample with it (Prometheus's rule).</summary>
        public void Counter(string name, string help, long value)
        {
            Header(name + "_total", "counter", help);
            Sample(name + "_total", null, null, value);
        }

        public void Histogram(string name, string help, EngineMetrics.Histogram h)
        {
            Header(name, "histogram", help);
            ReadOnlySpan<double> bounds = h.UpperBounds;
            Span<long> cumulative = stackalloc long[bounds.Length + 1];
            double sum = h.Sum;
            long count = h.CopyCumulative(cumulative);
            for (int i = 0; i < bounds.Length; i++)
            {
                Sample(name + "_bucket", "le", Number(bounds[i]), cumulative[i]);
            }

            Sample(name + "_bucket", "le", "+Inf", count);
            Sample(name + "_count", null, null, count);
            Sample(name + "_sum", null, null, sum);
        }

        public void Sample(string name, string? label, string? labelValue, double value)
        {
            _b.Append(Prefix).Append(name).Append("{model_name=\"").Append(_model).Append('"');
            if (label is not null)
            {
                _b.Append(',').Append(label).Append("=\"").Append(Escape(labelValue!)).Append('"');
            }

            _b.Append("} ").Append(Number(value)).Append('\n');
        }

        public override string ToString() => _b.ToString();

        private static string Number(double v) =>
            double.IsPositiveInfinity(v) ? "+Inf" : double.IsNegativeInfinity(v) ? "-Inf" : double.IsNaN(v) ? "NaN"
            : v.ToString("R", CultureInfo.InvariantCulture);

        /// <summary>Label values escape backslash, double quote and line feed.</summary>
        private static string Escape(string s) => s.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n");
    }
}
