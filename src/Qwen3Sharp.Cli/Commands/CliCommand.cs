using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Qwen3Sharp.Cli.Commands;

/// <summary>A subcommand that turns a parse into its options record.</summary>
internal interface IBindableCommand
{
    object Bind(ParseResult parse);
}

/// <summary>A subcommand whose action binds <typeparamref name="TOptions"/> and hands it to a RunAsync method.</summary>
internal sealed class CliCommand<TOptions> : Command, IBindableCommand where TOptions : notnull
{
    private readonly Func<ParseResult, TOptions> _bind;

    public CliCommand(string name, string description, Func<ParseResult, TOptions> bind,
        Func<TOptions, CancellationToken, Task<int>> run)
        : base(name, description)
    {
        _bind = bind;
        SetAction((parse, ct) => run(_bind(parse), ct));
    }

    public object Bind(ParseResult parse) => _bind(parse);
}

/// <summary>Option builders with range and enum validation (a failed check is a usage error: exit code 2).</summary>
internal static class CliOptions
{
    public static Option<int> Int(string name, string description, int defaultValue, int min, int max) =>
        new(name)
        {
            Description = description,
            HelpName = "N",
            DefaultValueFactory = _ => defaultValue,
            CustomParser = r => ParseInRange(r, name, min, max) ?? defaultValue,
        };

    public static Option<int?> OptionalInt(string name, string description, int min, int max) =>
        new(name)
        {
            Description = description,
            HelpName = "N",
            CustomParser = r => ParseInRange(r, name, min, max),
        };

    // One place for "is it an integer" and "is it in range", so both are usage errors with our wording.
    private static int? ParseInRange(ArgumentResult result, string name, int min, int max)
    {
        if (result.Tokens.Count == 0) return null;
        string text = result.Tokens[^1].Value;
        if (!int.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int value))
        {
            result.AddError($"{name} must be an integer (got '{text}').");
            return null;
        }
        if (value < min || value > max)
        {
            result.AddError($"{name} must be between {min} and {max} (got {value}).");
            return null;
        }
        return value;
    }

    public static Option<string> Choice(string name, string description, string defaultValue, params string[] values)
    {
        var option = new Option<string>(name) { Description = description, DefaultValueFactory = _ => defaultValue };
        option.AcceptOnlyFromAmong(values);
        return option;
    }

    /// <summary>--model: a local directory or a hub id ORG/NAME[@REVISION].</summary>
    public static Option<string> Model(bool required = false)
    {
        var option = new Option<string>("--model", "-m")
        {
            Description = required
                ? "Model directory (config.json, tokenizer.json, *.safetensors) or hub id ORG/NAME[@REVISION]."
                : "Model directory or hub id ORG/NAME[@REVISION], pulled into the Hugging Face cache if needed.",
            Required = required,
            HelpName = "DIR|ORG/NAME",
        };
        if (!required) option.DefaultValueFactory = _ => Qwen3Cli.DefaultModel;
        option.Validators.Add(r =>
        {
            if (string.IsNullOrWhiteSpace(r.GetValueOrDefault<string>())) r.AddError("--model must not be empty.");
        });
        return option;
    }

    /// <summary>--weights: matrices used in place from the memory-mapped files, or copied into private memory (huge pages on request).</summary>
    public static Option<string> Weights() =>
        Choice("--weights", "copy (default): copy the matrices into private memory at load (a few seconds for 3.4 GB, BF16 decode ~20% " +
            "faster); mapped: use the memory-mapped files in place (instant load, page cache shared between processes); hugepage-copy: the same " +
            "into 2 MB pages (slow load while the kernel compacts memory).", "copy", "mapped", "copy", "hugepage-copy");

    /// <summary>--quantize: BF16/F16 matrices quantized to Q8_0 or Q4_0 at load (llama.cpp's block formats and rounding).</summary>
    public static Option<string> Quantize() =>
        Choice("--quantize", "none: run the weights as stored; q8_0 / q4_0: quantize BF16/F16/F32 matrices at load into llama.cpp's " +
            "Q8_0 / Q4_0 blocks (about half / a quarter of the BF16 memory, faster decode; a few seconds at load).", "none", "none", "q8_0", "q4_0");

    public static Tensors.DType? Quantization(string value) => value switch
    {
        "q8_0" => Tensors.DType.Q8_0,
        "q4_0" => Tensors.DType.Q4_0,
        _ => null,
    };

    public static Loading.WeightPlacement Placement(string value) =>
        value switch
        {
            "hugepage-copy" => Loading.WeightPlacement.HugePageCopy,
            "copy" => Loading.WeightPlacement.Copy,
            _ => Loading.WeightPlacement.Mapped,
        };

    public static Option<int?> Threads() =>
        OptionalInt("--threads", "Worker threads for the forward pass [default: every core the process may use].", 1, 1024);

    /// <summary>--step-policy prefill-first|mixed: how a step treats new requests while others decode (see HostOptions.PrefillFirst).</summary>
    public static Option<string> StepPolicy() => Choice("--step-policy",
        "prefill-first (default): a step that can admit new requests while others decode runs only their prompts, and the next one " +
        "the running requests (a new short request's first token comes after its own prefill, not after a mixed step); " +
        "mixed: every step runs the decode tokens and the prompt chunks together (vLLM v1's order).", "prefill-first", "prefill-first", "mixed");

    /// <summary>--batch-invariant: a request's output does not depend on what else runs beside it (see HostOptions.BatchInvariant).</summary>
    public static Option<bool> BatchInvariant() => new("--batch-invariant")
    {
        Description = "Batch-invariant kernels (as vLLM's VLLM_BATCH_INVARIANT): every product sums a token's row in the order its " +
            "one-token decode uses, so a request's logits are bit-identical alone and beside others, whatever the KV dtype. " +
            "Float models copied at load (--weights copy, the default) on AVX2 machines are batch invariant without it (the 8-row " +
            "groups, QWEN3_FLOAT_LAYOUT); elsewhere (mapped weights, AVX-512 machines) it costs batched throughput and prefill, not " +
            "single-request decode.",
    };

    /// <summary>--kv-cache-dtype f32|bf16|f16: how the KV cache stores keys and values (default f16).</summary>
    public static Option<Cache.KvCacheDType> KvCacheDType()
    {
        var option = new Option<Cache.KvCacheDType>("--kv-cache-dtype")
        {
            Description = "How the KV cache stores keys and values: f16 or bf16 (2 bytes: twice the tokens per byte of f32; f16 drifts less, bf16 has float32's range), " +
                "q8_0 (llama.cpp's 8-bit blocks of 32: 1.06 bytes, nearly 4x f32's tokens; head_dim a multiple of 32) or f32 (exact) [default: f16].",
            HelpName = "f32|bf16|f16|q8_0",
            DefaultValueFactory = _ => Cache.KvCacheDTypes.Default,
            CustomParser = r =>
            {
                string text = r.Tokens.Count > 0 ? r.Tokens[^1].Value : "";
                if (Cache.KvCacheDTypes.TryParse(text, out Cache.KvCacheDType dtype)) return dtype;
                r.AddError($"--kv-cache-dtype must be f32, bf16, f16 or q8_0 (got '{text}').");
                return Cache.KvCacheDTypes.Default;
            },
        };
        option.CompletionSources.Add("f16", "bf16", "f32");
        return option;
    }

    /// <summary>--temperature T: sampling temperature in [0, 2], 0 greedy; unset, the thinking mode's recommended default.</summary>
    public static Option<float?> Temperature() => new("--temperature")
    {
        Description = "Sampling temperature, 0 = greedy [default: 0.6 thinking, 0.7 non-thinking].",
        HelpName = "T",
        CustomParser = r =>
        {
            if (r.Tokens.Count == 0) return null;
            string text = r.Tokens[^1].Value;
            if (float.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out float t)
                && float.IsFinite(t) && t >= 0 && t <= 2)
            {
                return t;
            }
            r.AddError($"--temperature must be between 0 and 2 (got '{text}').");
            return null;
        },
    };

    public static Option<int?> CtxSize() =>
        OptionalInt("--ctx-size", "Most tokens per sequence (prompt and completion) [default: max_position_embeddings, bounded by the KV-cache memory].", 16, 1 << 20);

    /// <summary>
    /// --tools FILE: the functions the model may call, as a JSON array in the OpenAI <c>tools</c> shape
    /// (<c>{"type": "function", "function": {"name", "description", "parameters"}}</c>; a bare function object is taken as
    /// one), read and checked at parse time so a bad file is a usage error naming what is wrong.
    /// </summary>
    public static Option<JsonArray?> Tools(string what) => new("--tools")
    {
        Description = $"JSON file with the functions the model may call (OpenAI's \"tools\" array: {{\"type\": \"function\", \"function\": {{\"name\", \"description\", \"parameters\"}}}}); {what}.",
        HelpName = "FILE",
        CustomParser = r =>
        {
            string path = r.Tokens.Count > 0 ? r.Tokens[^1].Value : "";
            try
            {
                return ParseTools(File.ReadAllText(path));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or FormatException)
            {
                r.AddError($"--tools {path}: {e.Message}");
                return null;
            }
        },
    };

    /// <summary>The tools array of a <c>--tools</c> file, each entry in the OpenAI shape; <see cref="FormatException"/> naming the entry when it is not a function.</summary>
    internal static JsonArray ParseTools(string json)
    {
        JsonArray array = JsonNode.Parse(json) as JsonArray ?? throw new FormatException("must be a JSON array of tools, as the OpenAI API's \"tools\" field");
        var tools = new JsonArray();
        for (int i = 0; i < array.Count; i++)
        {
            JsonObject tool = array[i] as JsonObject ?? throw new FormatException($"entry {i} is not a JSON object");
            JsonObject function = tool["function"] as JsonObject ?? (tool.ContainsKey("name") ? tool : throw new FormatException(
                $"entry {i} has no \"function\" object (and is no bare function with a \"name\")"));
            if (function["name"] is not JsonValue name || !name.TryGetValue(out string? n) || string.IsNullOrWhiteSpace(n))
            {
                throw new FormatException($"entry {i}'s function has no \"name\" string");
            }

            if (tool["type"] is { } type && (type as JsonValue)?.TryGetValue(out string? t) == true && t != "function")
            {
                throw new FormatException($"entry {i} has type \"{t}\"; only \"function\" tools can be called");
            }

            tools.Add(new JsonObject { ["type"] = "function", ["function"] = function.DeepClone() });
        }

        return tools;
    }
}
