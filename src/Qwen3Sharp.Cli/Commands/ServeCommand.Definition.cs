using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Qwen3Sharp.Cli.Commands;

/// <summary>Which response field carries the model's thinking.</summary>
public enum ReasoningField
{
    /// <summary><c>reasoning_content</c> (DeepSeek, llama.cpp, older vLLM).</summary>
    ReasoningContent,
    /// <summary><c>reasoning</c> (newer vLLM, OpenRouter).</summary>
    Reasoning,
    /// <summary>Both fields with the same text.</summary>
    Both,
}

/// <summary>What to do with &lt;tool_call&gt; blocks that appear inside &lt;think&gt;.</summary>
public enum ToolCallsInReasoning
{
    /// <summary>Leave them as reasoning text (vLLM's behaviour).</summary>
    Ignore,
    /// <summary>Parse them as tool calls.</summary>
    Parse,
}

/// <summary>The options of <c>qwen3 serve</c>.</summary>
public sealed record ServeOptions
{
    public CliContext Context { get; init; } = CliContext.Console;
    /// <summary>--model: a local directory or hub id ORG/NAME[@REVISION] (resolve with Qwen3Sharp.Hub.ModelLocator).</summary>
    public string Model { get; init; } = Qwen3Cli.DefaultModel;
    public string Host { get; init; } = "127.0.0.1";
    public int Port { get; init; } = 8000;
    /// <summary>--api-key: when set, requests must send "Authorization: Bearer KEY".</summary>
    public string? ApiKey { get; init; }
    /// <summary>--served-model-name: the ids /v1/models lists and requests may name; empty means the --model value.</summary>
    public IReadOnlyList<string> ServedModelNames { get; init; } = [];
    /// <summary>--ctx-size; null means the model's max_position_embeddings.</summary>
    public int? CtxSize { get; init; }
    /// <summary>--threads; null means the physical core count.</summary>
    public int? Threads { get; init; }
    /// <summary>--reasoning on|off: whether thinking is enabled by default (requests can still override).</summary>
    public bool Reasoning { get; init; } = true;
    public ReasoningField ReasoningField { get; init; } = ReasoningField.ReasoningContent;
    /// <summary>--chat-template-kwargs: a JSON object of default template variables, e.g. {"enable_thinking":false}.</summary>
    public JsonObject? ChatTemplateKwargs { get; init; }
    /// <summary>--thinking-budget: the most tokens a response may spend thinking before &lt;/think&gt; is forced; null = unlimited.</summary>
    public int? ThinkingBudget { get; init; }
    public ToolCallsInReasoning ToolCallsInReasoning { get; init; } = ToolCallsInReasoning.Ignore;
    /// <summary>--tool-call-grammar all|strict: shape every tool call under tool_choice auto (all), or only strict functions'.</summary>
    public bool ConstrainToolCalls { get; init; } = true;
    /// <summary>--max-queue: requests waiting beyond this are answered 503 server_overloaded (Retry-After: 1).</summary>
    public int MaxQueue { get; init; } = 64;
    /// <summary>--weights: where the BF16 matrices live (mapped files, or a huge-page copy).</summary>
    public Loading.WeightPlacement Weights { get; init; }
    /// <summary>--quantize: Q8_0 or Q4_0 at load, or null.</summary>
    public Tensors.DType? Quantize { get; init; }
    /// <summary>--max-num-seqs: most sequences decoded together in one step.</summary>
    public int MaxNumSeqs { get; init; } = 16;
    /// <summary>--max-num-batched-tokens: most tokens (decode tokens plus prompt chunks) in one step.</summary>
    public int MaxNumBatchedTokens { get; init; } = 512;
    /// <summary>--kv-cache-memory: bytes, or a fraction (≤ 1) of available memory; null = the host's default.</summary>
    public double? KvCacheMemory { get; init; }
    /// <summary>--kv-cache-dtype: how the KV cache stores keys and values.</summary>
    public Cache.KvCacheDType KvCacheDType { get; init; } = Cache.KvCacheDTypes.Default;
    /// <summary>--batch-invariant: logits alone and in a batch bit-identical (slower batches and prefill).</summary>
    public bool BatchInvariant { get; init; }

    /// <summary>--step-policy: false for mixed steps.</summary>
    public bool PrefillFirst { get; init; } = true;
    /// <summary>--no-warmup: start listening without running a short chat through the model first.</summary>
    public bool NoWarmup { get; init; }
}

public static partial class ServeCommand
{
    internal static Command Create(CliContext context)
    {
        Option<string> model = CliOptions.Model();
        var host = new Option<string>("--host") { Description = "Address to listen on.", DefaultValueFactory = _ => "127.0.0.1" };
        host.Validators.Add(r =>
        {
            if (string.IsNullOrWhiteSpace(r.GetValueOrDefault<string>())) r.AddError("--host must not be empty.");
        });
        Option<int> port = CliOptions.Int("--port", "TCP port to listen on (0 picks a free one and prints it).", 8000, 0, 65535);
        var apiKey = new Option<string?>("--api-key") { Description = "Require \"Authorization: Bearer KEY\" on every request.", HelpName = "KEY" };
        var servedNames = new Option<string[]>("--served-model-name")
        {
            Description = "Model id(s) reported by /v1/models and accepted in requests [default: the --model value].",
            AllowMultipleArgumentsPerToken = true,
            HelpName = "NAME",
        };
        Option<int?> ctxSize = CliOptions.CtxSize();
        Option<int?> threads = CliOptions.Threads();
        Option<string> reasoning = CliOptions.Choice("--reasoning", "Thinking on or off by default.", "on", "on", "off");
        Option<string> reasoningField = CliOptions.Choice("--reasoning-field", "Response field that carries the thinking.",
            "reasoning_content", "reasoning_content", "reasoning", "both");
        var kwargs = new Option<JsonObject?>("--chat-template-kwargs")
        {
            Description = "Default chat template variables as a JSON object, e.g. '{\"enable_thinking\":false}'.",
            HelpName = "JSON",
            CustomParser = r =>
            {
                string text = r.Tokens.Count > 0 ? r.Tokens[0].Value : "";
                try
                {
                    if (JsonNode.Parse(text) is JsonObject obj) return obj;
                    r.AddError($"--chat-template-kwargs must be a JSON object (got {text}).");
                }
                catch (JsonException e)
                {
                    r.AddError($"--chat-template-kwargs is not valid JSON: {e.Message}");
                }
                return null;
            },
        };
        Option<int?> thinkingBudget = CliOptions.OptionalInt("--thinking-budget",
            "Most tokens a response may think before </think> is forced [default: unlimited].", 0, 1 << 20);
        Option<string> toolCallsInReasoning = CliOptions.Choice("--tool-calls-in-reasoning",
            "What to do with <tool_call> blocks inside <think>.", "ignore", "ignore", "parse");
        Option<string> toolCallGrammar = CliOptions.Choice("--tool-call-grammar",
            "Under tool_choice auto, once the model opens a <tool_call>: 'all' makes every call name an offered function with arguments that follow its parameters schema (llama.cpp's lazy grammar); 'strict' shapes only functions with strict: true (vLLM, OpenAI).",
            "all", "all", "strict");
        Option<string> weights = CliOptions.Weights();
        Option<string> quantize = CliOptions.Quantize();
        Option<int> maxNumSeqs = CliOptions.Int("--max-num-seqs", "Most sequences decoded together in one step.", 16, 1, 4096);
        Option<int> maxNumBatchedTokens = CliOptions.Int("--max-num-batched-tokens",
            "Most tokens per engine step: one per decoding sequence plus prompt chunks (long prompts are prefilled in chunks).", 512, 1, 1 << 16);
        var kvCacheMemory = new Option<double?>("--kv-cache-memory")
        {
            Description = "KV-cache memory: bytes (2GiB, 512MiB, 1000000) or a fraction of available memory (0.25) [default: 2GiB or a quarter of available memory, the smaller].",
            HelpName = "SIZE",
            CustomParser = r =>
            {
                string text = r.Tokens.Count > 0 ? r.Tokens[0].Value : "";
                if (ParseMemory(text) is { } bytes) return bytes;
                r.AddError($"--kv-cache-memory must be a size like 2GiB, 512MiB, 4000000000 or a fraction in (0, 1] like 0.3 (got '{text}').");
                return null;
            },
        };
        Option<Cache.KvCacheDType> kvCacheDType = CliOptions.KvCacheDType();
        Option<bool> batchInvariant = CliOptions.BatchInvariant();
        Option<string> stepPolicy = CliOptions.StepPolicy();
        Option<int> maxQueue = CliOptions.Int("--max-queue", "Most requests waiting for a sequence slot; beyond it new requests get 503 (server_overloaded, Retry-After: 1), which OpenAI clients retry.", 64, 1, 1_000_000);

        var noWarmup = new Option<bool>("--no-warmup")
        {
            Description = "Start listening at once: skip the warm-up, a short chat run through the model after load so the first requests get the JIT's optimized kernels (a few seconds).",
        };

        var command = new CliCommand<ServeOptions>("serve", "Serve the model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/models).",
            parse => new ServeOptions
            {
                Context = context,
                Model = parse.GetValue(model)!,
                Host = parse.GetValue(host)!,
                Port = parse.GetValue(port),
                ApiKey = parse.GetValue(apiKey),
                ServedModelNames = parse.GetValue(servedNames) ?? [],
                CtxSize = parse.GetValue(ctxSize),
                Threads = parse.GetValue(threads),
                Reasoning = parse.GetValue(reasoning) == "on",
                ReasoningField = parse.GetValue(reasoningField) switch
                {
                    "reasoning" => ReasoningField.Reasoning,
                    "both" => ReasoningField.Both,
                    _ => ReasoningField.ReasoningContent,
                },
                ChatTemplateKwargs = parse.GetValue(kwargs),
                ThinkingBudget = parse.GetValue(thinkingBudget),
                ToolCallsInReasoning = parse.GetValue(toolCallsInReasoning) == "parse" ? ToolCallsInReasoning.Parse : ToolCallsInReasoning.Ignore,
                ConstrainToolCalls = parse.GetValue(toolCallGrammar) != "strict",
                MaxQueue = parse.GetValue(maxQueue),
                Weights = CliOptions.Placement(parse.GetValue(weights)!),
                Quantize = CliOptions.Quantization(parse.GetValue(quantize)!),
                MaxNumSeqs = parse.GetValue(maxNumSeqs),
                MaxNumBatchedTokens = parse.GetValue(maxNumBatchedTokens),
                KvCacheMemory = parse.GetValue(kvCacheMemory),
                KvCacheDType = parse.GetValue(kvCacheDType),
                BatchInvariant = parse.GetValue(batchInvariant),
                PrefillFirst = parse.GetValue(stepPolicy) != "mixed",
                NoWarmup = parse.GetValue(noWarmup),
            },
            RunAsync);
        foreach (Option option in new Option[] { model, host, port, apiKey, servedNames, ctxSize, threads, reasoning, reasoningField,
                     kwargs, thinkingBudget, toolCallsInReasoning, toolCallGrammar, maxQueue, weights, quantize, maxNumSeqs, maxNumBatchedTokens, kvCacheMemory, kvCacheDType, batchInvariant, stepPolicy, noWarmup })
        {
            command.Options.Add(option);
        }
        return command;
    }

    /// <summary>"2GiB", "512MiB", "1.5GB", "123456" (bytes) or a fraction in (0, 1]; null when malformed.</summary>
    internal static double? ParseMemory(string text)
    {
        text = text.Trim();
        (string Suffix, double Scale)[] units =
        [
            ("KiB", 1L << 10), ("MiB", 1L << 20), ("GiB", 1L << 30), ("TiB", 1L << 40),
            ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12), ("K", 1L << 10), ("M", 1L << 20), ("G", 1L << 30), ("B", 1),
        ];
        double scale = 0;
        foreach ((string suffix, double unit) in units)
        {
            if (text.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                text = text[..^suffix.Length].Trim();
                scale = unit;
                break;
            }
        }

        if (!double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double value)
            || !(value > 0) || double.IsInfinity(value))
        {
            return null;
        }

        if (scale == 0)
        {
            return value <= 1 || value >= 1 << 20 ? value : null;   // a fraction, or plainly a byte count
        }

        double bytes = value * scale;
        return bytes >= 1 << 20 ? bytes : null;
    }
}
