using Microsoft.Extensions.AI;
using Qwen3Sharp.Cache;
using Qwen3Sharp.Chat;
using Qwen3Sharp.Loading;
using Qwen3Sharp.Model;
using Qwen3Sharp.Tokenization;

namespace Qwen3Sharp.Engine;

public sealed record HostOptions
{
    /// <summary>Worker threads for the kernels; default: every core.</summary>
    public int ThreadCount { get; init; } = Environment.ProcessorCount;

    /// <summary>Most tokens per sequence (prompt and completion); default max_position_embeddings, bounded by the KV memory.</summary>
    public int? ContextSize { get; init; }

    /// <summary>Most sequences running at once (--max-num-seqs); they share one paged KV cache.</summary>
    public int MaxSequences { get; init; } = 16;

    /// <summary>Most tokens computed in one engine step (--max-num-batched-tokens): decode tokens plus prompt chunks.</summary>
    public int MaxBatchedTokens { get; init; } = 512;

    /// <summary>New requests' prompts get a step of their own while others decode (--step-policy prefill-first, the default; see <see cref="EngineOptions.PrefillFirst"/>).</summary>
    public bool PrefillFirst { get; init; } = true;

    /// <summary>
    /// KV-cache memory (--kv-cache-memory): bytes, or when at most 1 a fraction of the memory available now.
    /// Default: 2 GiB, or a quarter of available memory when that is less.
    /// </summary>
    public double? KvCacheMemory { get; init; }

    /// <summary>
    /// How the KV cache stores keys and values (--kv-cache-dtype): f16 by default (half of float32's memory, so
    /// <see cref="KvCacheMemory"/> holds twice the tokens); float32 for bit-exact agreement with the dense reference.
    /// </summary>
    public KvCacheDType KvCacheDType { get; init; } = KvCacheDTypes.Default;

    public int MaxQueuedRequests { get; init; } = 64;

    /// <summary>
    /// Where the matrices live: copied into private memory (default, the same as the <c>qwen3</c> commands' <c>--weights
    /// copy</c>: the faster decode layout, batch invariant for float models on AVX2), in place from the mapped files, or
    /// copied into huge pages.
    /// </summary>
    public WeightPlacement WeightPlacement { get; init; } = WeightPlacement.Copy;

    /// <summary>
    /// The layout of float matrices copied at load (<see cref="WeightPlacement"/> copy or huge-page copy): the 8-row groups
    /// (batch invariant by default) or rows; null takes <see cref="Kernels.KernelSelection.FloatLayout"/> (<c>QWEN3_FLOAT_LAYOUT</c>).
    /// </summary>
    public Kernels.QuantLayout? FloatLayout { get; init; }

    /// <summary>Q8_0 or Q4_0 to quantize BF16/F16/F32 matrices at load (--quantize), or null to run them as stored.</summary>
    public Tensors.DType? Quantize { get; init; }

    /// <summary>
    /// Batch invariance (--batch-invariant, vLLM's VLLM_BATCH_INVARIANT): a request's logits do not depend on what else
    /// runs beside it, bit for bit, with every KV cache dtype (see <see cref="Qwen3ModelOptions.BatchInvariant"/>).
    /// Off by default: it costs batched throughput and prefill, not single-request decode.
    /// </summary>
    public bool BatchInvariant { get; init; }

    public ChatServiceOptions Chat { get; init; } = new();

    /// <summary>
    /// Runs a short chat through the model before the engine starts (llama-server's warm-up), so the first requests
    /// run the JIT's optimized kernels instead of tier-0 code; it leaves no KV blocks, prefix-cache entries or metrics
    /// behind. Off by default here; <c>qwen3 serve</c> and <c>qwen3 chat</c> turn it on (<c>--no-warmup</c> turns it off).
    /// </summary>
    public bool WarmUp { get; init; }
}

/// <summary>
/// A model directory brought up for serving: weights, tokenizer, chat template, engine loop and chat layer.
/// The one place that wires them together; the CLI, the server and embedding apps start here.
/// </summary>
public sealed class Qwen3Host : IDisposable
{
    private Qwen3Host(string directory, Qwen3Model model, Qwen3Tokenizer tokenizer, ChatTemplate template,
        InferenceEngine engine, ChatService chat, Qwen3ModelRunner runner)
    {
        KvCacheDType = runner.KvDType;
        KvBlockCount = runner.KvBlockCount;
        KvBlockSize = runner.KvBlockSize;
        KvPoolBytes = runner.KvCacheBytes;
        Directory = directory;
        Model = model;
        Tokenizer = tokenizer;
        Template = template;
        Engine = engine;
        Chat = chat;
    }

    public string Directory { get; }

    public Qwen3Model Model { get; }

    public Qwen3Config Config => Model.Config;

    public Qwen3Tokenizer Tokenizer { get; }

    public ChatTemplate Template { get; }

    public InferenceEngine Engine { get; }

    public ChatService Chat { get; }

    /// <summary>How the paged KV cache stores keys and values.</summary>
    public KvCacheDType KvCacheDType { get; }

    /// <summary>Blocks in the KV pool (a 16-bit dtype gets twice float32's for the same memory).</summary>
    public int KvBlockCount { get; }

    /// <summary>Positions per KV block.</summary>
    public int KvBlockSize { get; }

    /// <summary>Bytes reserved for the KV pool (keys and values of every layer).</summary>
    public long KvPoolBytes { get; }

    /// <summary>What the warm-up ran (<see cref="HostOptions.WarmUp"/>); null when it was off or the KV pool too small for it.</summary>
    public WarmUpReport? WarmUp { get; private init; }

    /// <summary>Loads everything from a Hugging Face model directory, or from one GGUF file.</summary>
    /// <exception cref="ModelFormatException">A file is missing or malformed.</exception>
    public static Qwen3Host Load(string directory, HostOptions? options = null)
    {
        options ??= new HostOptions();
        if (GgufModel.IsGguf(directory))
        {
            return LoadGguf(directory, options);
        }

        var modelDirectory = ModelDirectory.Open(directory);
        Qwen3Tokenizer tokenizer = Qwen3Tokenizer.Load(directory);
        ChatTemplate template = ChatTemplate.Load(directory)
            ?? throw new ModelFormatException(Path.Combine(directory, "tokenizer_config.json"), null,
                "no chat_template (neither chat_template.jinja nor tokenizer_config.json's chat_template)");
        return Build(directory, ModelWeights.Load(modelDirectory, options.WeightPlacement, options.Quantize, floatLayout: options.FloatLayout), tokenizer, template, modelDirectory.Generation, options);
    }

    private static Qwen3Host LoadGguf(string path, HostOptions options)
    {
        ModelWeights weights = ModelWeights.LoadGguf(path, options.WeightPlacement, options.Quantize, floatLayout: options.FloatLayout);
        Qwen3Tokenizer tokenizer;
        ChatTemplate template;
        try
        {
            // the weights' loader parsed and validated the file once; its metadata holds the tokenizer and template
            GgufFile file = weights.Gguf!;
            var (tokenizerJson, tokenizerConfigJson) = GgufModel.ReadTokenizer(file);
            tokenizer = Qwen3Tokenizer.FromJson(tokenizerJson, tokenizerConfigJson);
            string source = GgufModel.ReadChatTemplate(file)
                ?? throw new ModelFormatException(path, "tokenizer.chat_template", "no chat template in the file");
            var special = new Dictionary<string, System.Text.Json.Nodes.JsonNode?>();
            if (System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, string>>(tokenizerConfigJson) is { } names)
            {
                foreach (var (k, v) in names)
                {
                    special[k] = v;
                }
            }

            template = new ChatTemplate(source, special);
        }
        catch
        {
            weights.Dispose();
            throw;
        }

        return Build(path, weights, tokenizer, template, GenerationConfig.Empty, options);
    }

    private static Qwen3Host Build(string path, ModelWeights weights, Qwen3Tokenizer tokenizer, ChatTemplate template,
        GenerationConfig generation, HostOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxBatchedTokens, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxSequences, 1);
        var model = new Qwen3Model(weights, new Qwen3ModelOptions
        {
            ThreadCount = options.ThreadCount,
            ContextSize = options.ContextSize ?? weights.Config.MaxPositionEmbeddings,
            MaxBatchTokens = options.MaxBatchedTokens,
            BatchInvariant = options.BatchInvariant,
        });
        try
        {
            int blocks = Qwen3ModelRunner.BlocksFor(model, KvCacheBytes(options.KvCacheMemory), options.MaxSequences, options.KvCacheDType);
            var runner = new Qwen3ModelRunner(model, options.MaxSequences, blocks, options.KvCacheDType);
            WarmUpReport? warmUp = options.WarmUp ? EngineWarmUp.Run(runner, tokenizer, template) : null;   // before the engine: no metrics
            var engine = new InferenceEngine(runner, r => SamplerAdapter.Create(r, runner.VocabSize),
                skip => new TokenizerTextDecoder(tokenizer.CreateIncrementalDecoder(skip)),
                new EngineOptions
                {
                    MaxQueuedRequests = options.MaxQueuedRequests,
                    StepTokenBudget = options.MaxBatchedTokens,
                    PrefillFirst = options.PrefillFirst,
                    ThinkStartTokenId = tokenizer.ThinkStart,
                    ThinkEndTokenId = tokenizer.ThinkEnd,
                });
            var chat = new ChatService(engine, tokenizer, template, generation, options.Chat);
            if (options.WarmUp)
            {
                chat.WarmUpStructuredOutput();
            }
            return new Qwen3Host(Path.GetFullPath(path), model, tokenizer, template, engine, chat, runner) { WarmUp = warmUp };
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>KV bytes for <see cref="HostOptions.KvCacheMemory"/>: a byte count, or a fraction (≤ 1) of the memory available now.</summary>
    public static long KvCacheBytes(double? setting)
    {
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (setting is not { } value)
        {
            return Math.Min(2L << 30, Math.Max(available / 4, 64L << 20));
        }

        if (!(value > 0) || double.IsInfinity(value))
        {
            throw new ArgumentOutOfRangeException(nameof(setting), $"KV-cache memory must be a byte count or a fraction in (0, 1], got {value}");
        }

        return value <= 1 ? (long)(available * value) : (long)value;
    }

    /// <summary>The engine as a Microsoft.Extensions.AI chat client.</summary>
    public IChatClient AsChatClient(string? modelId = null) =>
        new Qwen3ChatClient(Chat, modelId ?? Path.GetFileName(Directory.TrimEnd(Path.DirectorySeparatorChar)));

    public void Dispose() => Engine.Dispose();  // the engine disposes the runner, which disposes the model
}

/// <summary>The tokenizer's incremental decoder as the engine uses it.</summary>
internal sealed class TokenizerTextDecoder(IncrementalDecoder decoder) : ITextDecoder
{
    public string Append(int tokenId) => decoder.Append(tokenId);

    public string Flush() => decoder.Flush();
}
