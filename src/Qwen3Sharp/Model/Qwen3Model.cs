using Qwen3Sharp.Cache;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Loading;

namespace Qwen3Sharp.Model;

/// <summary>How a <see cref="Qwen3Model"/> is run.</summary>
public sealed record Qwen3ModelOptions
{
    /// <summary>Worker threads the kernels split rows across.</summary>
    public int ThreadCount { get; init; } = Environment.ProcessorCount;

    /// <summary>Tokens per forward chunk: prompts longer than this are prefilled in chunks.</summary>
    public int MaxBatchTokens { get; init; } = 512;

    /// <summary>Positions per sequence; default min(max_position_embeddings, 4096).</summary>
    public int? ContextSize { get; init; }

    /// <summary>
    /// Where <see cref="Qwen3Model.Load(string, Qwen3ModelOptions?)"/> puts the weight matrices: copied into private
    /// memory (default, as <c>qwen3 --weights copy</c>: float matrices in the batch-invariant 8-row groups on AVX2, faster
    /// decode), in place from the mapped files (instant load, page cache shared between processes) or into huge pages
    /// (see <see cref="Loading.WeightPlacement"/>).
    /// </summary>
    public WeightPlacement WeightPlacement { get; init; } = WeightPlacement.Copy;

    /// <summary>
    /// The layout of BF16, F16 and F32 matrices copied into private memory (<see cref="WeightPlacement"/> copy or huge-page
    /// copy): <see cref="QuantLayout.Interleaved8"/> repacks them into 8-row groups (<see cref="Tensors.DType.BF16x8"/>...; one
    /// summation order at every token count, MatMul.FloatGroups.cs), rows keeps them as stored; null takes <see cref="KernelSelection.FloatLayout"/>
    /// (<c>QWEN3_FLOAT_LAYOUT</c>).
    /// </summary>
    public QuantLayout? FloatLayout { get; init; }

    /// <summary>
    /// The BF16 prefill kernel (batches of 32+ tokens); null takes <see cref="KernelSelection.Prefill"/>
    /// (<c>QWEN3_PREFILL_KERNEL</c>). <see cref="Kernels.PrefillKernel.JitBf16"/> where the CPU lacks AVX512_BF16 is
    /// a <see cref="NotSupportedException"/> at construction.
    /// </summary>
    public PrefillKernel? PrefillKernel { get; init; }

    /// <summary>
    /// The activation path of block-format (Q8_0, Q4_0, K-quant) products under 32 tokens (decode); null takes <see cref="KernelSelection.QuantDecode"/>
    /// (<c>QWEN3_QUANT_DECODE</c>).
    /// </summary>
    public QuantDecodeKernel? QuantDecode { get; init; }

    /// <summary>
    /// Batch invariance (vLLM's <c>VLLM_BATCH_INVARIANT</c>): every matrix product sums each token's row in the order of
    /// that token's decode product, so a sequence's logits do not depend on what else shares its forward pass (or on
    /// where a chunked prefill splits its prompt), bit for bit, with every KV cache dtype. Off (default): batches of
    /// 2+ tokens take faster kernels whose float32 rounding differs from the decode's (see <see cref="Qwen3Model.BatchInvariant"/>).
    /// </summary>
    public bool BatchInvariant { get; init; }
}

/// <summary>
/// A Qwen3 (or Qwen2/2.5) causal LM: weights, worker pool, RoPE table and activation scratch. One forward pass at a
/// time (the scratch is shared); each sequence brings its own <see cref="KvCache"/> from <see cref="CreateCache"/>.
/// </summary>
public sealed class Qwen3Model : IDisposable
{
    private readonly ModelWeights _weights;
    private readonly WorkerPool _pool;
    private readonly ForwardScratch _scratch;
    private readonly float[] _inverseFrequencies;   // [headDim / 2]
    private readonly float _attentionScaling;
    private readonly float _eps;
    private readonly float _attentionScale;
    private readonly int _hidden, _vocab, _heads, _kvHeads, _headDim;
    private readonly BatchSequence[] _single = new BatchSequence[1];   // the one sequence of Forward(tokens, start, cache)
    private readonly AttentionSequence[] _attentionSequences;          // [MaxBatchTokens]: the step's sequences as attention reads them
    private int[] _blockTables = [];                                   // the step's block tables, concatenated

    /// <summary>Prepares a model over loaded weights; the model takes ownership of <paramref name="weights"/> and disposes them.</summary>
    public Qwen3Model(ModelWeights weights, Qwen3ModelOptions? options = null)
    {
        options ??= new Qwen3ModelOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.ThreadCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxBatchTokens, 1);
        _weights = weights;
        Config = weights.Config;
        ContextSize = options.ContextSize ?? Math.Min(Config.MaxPositionEmbeddings, 4096);
        ArgumentOutOfRangeException.ThrowIfLessThan(ContextSize, 1);
        if (ContextSize > Config.MaxPositionEmbeddings)
        {
            throw new ArgumentOutOfRangeException(nameof(options),
                $"context size {ContextSize} exceeds max_position_embeddings {Config.MaxPositionEmbeddings}");
        }

        MaxBatchTokens = options.MaxBatchTokens;
        RotaryEmbedding rope = RotaryEmbedding.Create(Config);
        _inverseFrequencies = rope.InverseFrequencies;
        _attentionScaling = rope.AttentionScaling;
        _eps = (float)Config.RmsNormEps;
        _hidden = Config.HiddenSize;
        _vocab = Config.VocabSize;
        _heads = Config.NumAttentionHeads;
        _kvHeads = Config.NumKeyValueHeads;
        _headDim = Config.HeadDim;
        _attentionScale = 1f / MathF.Sqrt(_headDim);
        PrefillKernel = options.PrefillKernel ?? KernelSelection.Prefill;
        QuantDecode = options.QuantDecode ?? KernelSelection.QuantDecode;
        BatchInvariant = options.BatchInvariant;
        _pool = new WorkerPool(options.ThreadCount);
        _scratch = new ForwardScratch(Config, MaxBatchTokens);
        _attentionSequences = new AttentionSequence[MaxBatchTokens];
    }

    /// <summary>
    /// The BF16 prefill kernel this model's products of 32+ tokens use (settable between forward passes, e.g. for an
    /// A/B in one process; the JIT kernel where the CPU lacks AVX512_BF16 is a <see cref="NotSupportedException"/>).
    /// </summary>
    public PrefillKernel PrefillKernel
    {
        get => _prefill;
        set
        {
            if (value == PrefillKernel.JitBf16 && !KernelSelection.JitBf16Supported)
            {
                throw new NotSupportedException(KernelSelection.JitUnsupported + ".");
            }

            _prefill = value;
        }
    }

    private PrefillKernel _prefill;

    /// <summary>
    /// The activation path of this model's block-format decode products (settable between forward passes, e.g. for an
    /// A/B or a KL measurement). The 8-row groups (<see cref="Tensors.DType.Q4_0x8"/>, <see cref="Tensors.DType.Q4_Kx8"/>, <see cref="Tensors.DType.Q5_Kx8"/>, <see cref="Tensors.DType.Q6_Kx8"/>, <see cref="Tensors.DType.Q8_0x8"/>, MLX affine) take their integer-activation kernel under both.
    /// </summary>
    public QuantDecodeKernel QuantDecode { get; set; }

    /// <summary>
    /// Whether every product sums a token's row in its one-token (decode) order whatever the batch, so logits alone and
    /// in a batch are identical (settable between forward passes, e.g. for an A/B). Costs batched throughput and
    /// prefill, not decode (on AVX-512 machines it also keeps the four-row decode kernel); see
    /// <see cref="Qwen3ModelOptions.BatchInvariant"/>.
    /// </summary>
    public bool BatchInvariant { get; set; }

    /// <summary>When set, every forward pass adds its phases' wall times to it (<c>qwen3 bench --profile</c>); null (default) records nothing.</summary>
    public ForwardProfile? Profile { get; set; }

    /// <summary>Loads the checkpoint in <paramref name="directory"/> (placed as <see cref="Qwen3ModelOptions.WeightPlacement"/> says) and prepares the model.</summary>
    /// <exception cref="ModelFormatException">The directory's config or weights are malformed.</exception>
    public static Qwen3Model Load(string directory, Qwen3ModelOptions? options = null)
    {
        // the float activation path asked for: GGUF Q4_0 stays in row layout (the 8-row layout has only the int8 kernel)
        ModelWeights weights = ModelWeights.Load(directory, options?.WeightPlacement ?? WeightPlacement.Copy, quantize: null,
            options?.QuantDecode == QuantDecodeKernel.Float ? QuantLayout.Rows : null, options?.FloatLayout);
        try
        {
            return new Qwen3Model(weights, options);
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    /// <summary>Maps the checkpoint in <paramref name="directory"/> with <paramref name="threadCount"/> kernel threads.</summary>
    public static Qwen3Model Load(string directory, int threadCount)
        => Load(directory, new Qwen3ModelOptions { ThreadCount = threadCount });

    public Qwen3Config Config { get; }

    public ModelWeights Weights => _weights;

    /// <summary>Default positions per cache made by <see cref="CreateCache"/>.</summary>
    public int ContextSize { get; }

    public int MaxBatchTokens { get; }

    public int VocabSize => _vocab;

    public ReadOnlySpan<float> InverseFrequencies => _inverseFrequencies;

    public float AttentionScaling => _attentionScaling;

    /// <summary>A cache for one sequence of up to <paramref name="contextSize"/> positions (default <see cref="ContextSize"/>).</summary>
    public KvCache CreateCache(int? contextSize = null)
    {
        int size = contextSize ?? ContextSize;
        if (size > Config.MaxPositionEmbeddings)
        {
            throw new ArgumentOutOfRangeException(nameof(contextSize), $"{size} exceeds max_position_embeddings {Config.MaxPositionEmbeddings}");
        }

        return KvCache.Create(Config, size);
    }

    /// <summary>
    /// Runs <paramref name="tokenIds"/> at positions startPosition.. through the model, appending their keys and values to
    /// <paramref name="cache"/>, and writes the logits of the last token to <paramref name="logits"/> [vocab].
    /// Several tokens are a (chunked) prefill; one token is a decode step. Allocates nothing.
    /// </summary>
    public void Forward(ReadOnlySpan<int> tokenIds, int startPosition, KvCache cache, Span<float> logits)
    {
        Validate(tokenIds, startPosition, cache, logits.Length, _vocab, "[vocab]");
        for (int offset = 0; offset < tokenIds.Length; offset += MaxBatchTokens)
        {
            ReadOnlySpan<int> chunk = tokenIds.Slice(offset, Math.Min(MaxBatchTokens, tokenIds.Length - offset));
            bool last = offset + chunk.Length == tokenIds.Length;
            _single[0] = new BatchSequence(0, chunk.Length, startPosition + offset, DenseView(cache), computeLogits: last);
            Forward(new ForwardBatch(chunk, _single), last ? logits[.._vocab] : default);
        }

        _single[0] = default;
    }

    /// <summary>
    /// As <see cref="Forward(ReadOnlySpan{int}, int, KvCache, Span{float})"/> but writes the logits of every token:
    /// <paramref name="logits"/> [tokenCount, vocab].
    /// </summary>
    public void ForwardAll(ReadOnlySpan<int> tokenIds, int startPosition, KvCache cache, Span<float> logits)
    {
        Validate(tokenIds, startPosition, cache, logits.Length, (long)tokenIds.Length * _vocab, "[tokenCount, vocab]");
        for (int offset = 0; offset < tokenIds.Length; offset += MaxBatchTokens)
        {
            int count = Math.Min(MaxBatchTokens, tokenIds.Length - offset);
            _single[0] = new BatchSequence(0, count, startPosition + offset, DenseView(cache), computeLogits: false);
            ForwardProfile? profile = Profile;
            profile?.BeginPass();
            RunLayers(new ForwardBatch(tokenIds.Slice(offset, count), _single), profile);
            Span<float> normed = _scratch.Normed(count);                                                        // [T, hidden]
            RmsNorm.Apply(_scratch.Hidden(count), _weights.Norm, _eps, normed);
            profile?.Mark(ForwardPhase.Norm);
            MatMul.Multiply(_pool, normed, count, _weights.LmHead, logits.Slice(offset * _vocab, count * _vocab), _prefill, QuantDecode, BatchInvariant); // [T, vocab]
            profile?.Mark(ForwardPhase.LmHead);
        }

        _single[0] = default;
    }

    /// <summary>
    /// One forward pass over every sequence of <paramref name="batch"/>: their tokens go through the projections and
    /// the MLP as one [T, hidden] batch (every weight read once), attention runs per sequence over its own (paged)
    /// cache. Writes the last-token logits of each sequence with <see cref="BatchSequence.ComputeLogits"/>, in batch
    /// order, to <paramref name="logits"/> [those sequences, vocab]. Allocates nothing.
    /// </summary>
    public void Forward(in ForwardBatch batch, Span<float> logits)
    {
        int t = batch.TokenIds.Length;
        if (t == 0 || t > MaxBatchTokens)
        {
            ThrowArgument($"a batch holds 1..{MaxBatchTokens} tokens, got {t}", nameof(batch));
        }

        int rows = 0, covered = 0;
        foreach (ref readonly BatchSequence q in batch.Sequences)
        {
            if (q.TokenOffset != covered || q.TokenCount < 1 || q.StartPosition < 0)
            {
                ThrowArgument("batch sequences must cover the tokens in order, each with at least one token", nameof(batch));
            }

            covered += q.TokenCount;
            rows += q.ComputeLogits ? 1 : 0;
        }

        if (covered != t)
        {
            ThrowArgument($"batch sequences cover {covered} of {t} tokens", nameof(batch));
        }

        if (logits.Length < (long)rows * _vocab)
        {
            ThrowArgument($"logits must hold [{rows}, vocab] = {(long)rows * _vocab} floats, got {logits.Length}", nameof(logits));
        }

        foreach (int id in batch.TokenIds)
        {
            if ((uint)id >= (uint)_vocab)
            {
                ThrowRange("tokenIds", $"token id {id} is outside the vocabulary [0, {_vocab})");
            }
        }

        ForwardProfile? profile = Profile;
        profile?.BeginPass();
        RunLayers(batch, profile);
        if (rows == 0)
        {
            return;
        }

        Span<float> hidden = _scratch.Hidden(t);    // [T, hidden]
        Span<float> normed = _scratch.Normed(rows); // [rows, hidden]
        int row = 0;
        foreach (ref readonly BatchSequence q in batch.Sequences)
        {
            if (q.ComputeLogits)
            {
                int last = q.TokenOffset + q.TokenCount - 1;
                RmsNorm.Apply(hidden.Slice(last * _hidden, _hidden), _weights.Norm, _eps, normed.Slice(row++ * _hidden, _hidden));
            }
        }

        profile?.Mark(ForwardPhase.Norm);
        MatMul.Multiply(_pool, normed, rows, _weights.LmHead, logits[..(rows * _vocab)], _prefill, QuantDecode, BatchInvariant);                      // [rows, vocab]
        profile?.Mark(ForwardPhase.LmHead);
    }

    private KvCacheView DenseView(KvCache cache) => new(cache, DenseTable, cache.ContextSize, _kvHeads * _headDim);

    private static readonly int[] DenseTable = [0];

    /// <summary>The decoder stack for one batch: leaves the final hidden states in the scratch's Hidden [T, hidden].</summary>
    private void RunLayers(in ForwardBatch batch, ForwardProfile? profile)
    {
        ReadOnlySpan<int> tokenIds = batch.TokenIds;
        ReadOnlySpan<BatchSequence> sequences = batch.Sequences;
        int t = tokenIds.Length;
        int qDim = _heads * _headDim, kvDim = _kvHeads * _headDim;
        ForwardScratch s = _scratch;
        Span<float> hidden = s.Hidden(t);         // [T, hidden]
        Span<float> normed = s.Normed(t);         // [T, hidden]
        Span<float> q = s.Q(t);                   // [T, heads * headDim]
        Span<float> k = s.K(t);                   // [T, kvHeads * headDim]
        Span<float> v = s.V(t);                   // [T, kvHeads * headDim]
        Span<float> attnOut = s.AttnOut(t);       // [T, heads * headDim]
        Span<float> gate = s.Gate(t);             // [T, intermediate]
        Span<float> up = s.Up(t);                 // [T, intermediate]
        Span<int> positions = s.Positions(t);     // [T]
        foreach (ref readonly BatchSequence b in sequences)
        {
            for (int i = 0; i < b.TokenCount; i++)
            {
                positions[b.TokenOffset + i] = b.StartPosition + i;
            }
        }

        Span<float> rope = s.RopeTable(t);            // [T, headDim]: the rotation of each token, for q and k of every layer
        Rope.FillTable(positions, _inverseFrequencies, _headDim, _attentionScaling, rope);
        bool oneStore = PrepareAttention(sequences);
        ReadOnlySpan<AttentionSequence> attention = _attentionSequences.AsSpan(0, sequences.Length);
        Embedding.Gather(_weights.EmbedTokens, tokenIds, hidden);
        profile?.Mark(ForwardPhase.Embed);
        for (int l = 0; l < Config.NumHiddenLayers; l++)
        {
            ref readonly Qwen3LayerWeights w = ref _weights.Layers[l];

            // attention
            RmsNorm.Apply(_pool, hidden, w.InputLayerNorm, _eps, normed);
            profile?.Mark(ForwardPhase.Norm);
            MatMul.Multiply(_pool, normed, t, w.QProj, q, _prefill, QuantDecode, BatchInvariant);
            MatMul.Multiply(_pool, normed, t, w.KProj, k, _prefill, QuantDecode, BatchInvariant);
            MatMul.Multiply(_pool, normed, t, w.VProj, v, _prefill, QuantDecode, BatchInvariant);
            if (w.QBias is not null)
            {
                AddBias(w.QBias, q);                                    // qwen2
                AddBias(w.KBias!, k);
                AddBias(w.VBias!, v);
            }

            profile?.Mark(ForwardPhase.QkvProjection);

            if (w.QNorm is not null)
            {
                RmsNorm.ApplyPerHead(_pool, q, w.QNorm, _eps);          // qwen3: q/k norm before RoPE
                RmsNorm.ApplyPerHead(_pool, k, w.KNorm!, _eps);
            }

            Rope.Rotate(_pool, q, _heads, _headDim, rope);
            Rope.Rotate(_pool, k, _kvHeads, _headDim, rope);
            profile?.Mark(ForwardPhase.QkNormRope);
            foreach (ref readonly BatchSequence b in sequences)
            {
                int n = b.TokenCount;
                b.Cache.Write(_pool, l, b.StartPosition, k.Slice(b.TokenOffset * kvDim, n * kvDim), v.Slice(b.TokenOffset * kvDim, n * kvDim), n);
            }

            profile?.Mark(ForwardPhase.KvWrite);
            if (oneStore)                                               // ragged: each sequence over its own blocks, one dispatch
            {
                IKvStore store = sequences[0].Cache.Store;
                Attention.Causal(_pool, q, attention, store.KeyBytes(l), store.ValueBytes(l), store.DType, _blockTables,
                    sequences[0].Cache.BlockSize, _heads, _kvHeads, _headDim, _attentionScale, attnOut, BatchInvariant);   // GQA over the cache
            }
            else
            {
                foreach (ref readonly BatchSequence b in sequences)     // sequences in caches of their own: one dispatch each
                {
                    int n = b.TokenCount;
                    KvCacheView cache = b.Cache;
                    Attention.Causal(_pool, q.Slice(b.TokenOffset * qDim, n * qDim), n, b.StartPosition,
                        cache.Store.KeyBytes(l), cache.Store.ValueBytes(l), cache.Store.DType, cache.Table, cache.BlockSize, _heads, _kvHeads, _headDim,
                        _attentionScale, attnOut.Slice(b.TokenOffset * qDim, n * qDim), BatchInvariant);
                }
            }

            profile?.Mark(ForwardPhase.Attention);
            MatMul.MultiplyAdd(_pool, attnOut, t, w.OProj, hidden, _prefill, QuantDecode, BatchInvariant);   // residual fused
            if (w.OBias is not null)
            {
                AddBias(w.OBias, hidden);
            }

            profile?.Mark(ForwardPhase.OutputProjection);

            // mlp
            RmsNorm.Apply(_pool, hidden, w.PostAttentionLayerNorm, _eps, normed);
            profile?.Mark(ForwardPhase.Norm);
            MatMul.Multiply(_pool, normed, t, w.GateProj, gate, _prefill, QuantDecode, BatchInvariant);
            MatMul.Multiply(_pool, normed, t, w.UpProj, up, _prefill, QuantDecode, BatchInvariant);
            profile?.Mark(ForwardPhase.GateUpProjection);
            SwiGlu.SiluMul(_pool, gate, up, gate);
            profile?.Mark(ForwardPhase.SwiGlu);
            MatMul.MultiplyAdd(_pool, gate, t, w.DownProj, hidden, _prefill, QuantDecode, BatchInvariant);   // residual fused
            profile?.Mark(ForwardPhase.DownProjection);
        }
    }

    /// <summary>
    /// When every sequence of the step reads one KV store with one block size (the engine's block pool), describes them
    /// for one attention dispatch per layer: their rows and positions in <see cref="_attentionSequences"/> and the used
    /// part of their block tables, concatenated, in <see cref="_blockTables"/>. False otherwise (caches of their own).
    /// </summary>
    private bool PrepareAttention(ReadOnlySpan<BatchSequence> sequences)
    {
        IKvStore store = sequences[0].Cache.Store;
        int blockSize = sequences[0].Cache.BlockSize;
        long capacity = 0;
        foreach (ref readonly BatchSequence b in sequences)
        {
            if (!ReferenceEquals(b.Cache.Store, store) || b.Cache.BlockSize != blockSize)
            {
                return false;
            }

            capacity += b.Cache.Table.Length;
        }

        if (_blockTables.Length < capacity)
        {
            _blockTables = new int[capacity];   // the tables' capacities, so a sequence growing into a new block reallocates nothing
        }

        int offset = 0;
        for (int i = 0; i < sequences.Length; i++)
        {
            ref readonly BatchSequence b = ref sequences[i];
            int used = Math.Min(b.Cache.Table.Length, (b.StartPosition + b.TokenCount + blockSize - 1) / blockSize);
            b.Cache.Table.AsSpan(0, used).CopyTo(_blockTables.AsSpan(offset));
            _attentionSequences[i] = new AttentionSequence(b.TokenOffset, b.TokenCount, b.StartPosition, offset, used);
            offset += used;
        }

        return true;
    }

    /// <summary>x [rows, bias.Length] += bias on every row.</summary>
    private static void AddBias(ReadOnlySpan<float> bias, Span<float> x)
    {
        for (int row = 0; row < x.Length; row += bias.Length)
        {
            Span<float> r = x.Slice(row, bias.Length);
            for (int i = 0; i < r.Length; i++)
            {
                r[i] += bias[i];
            }
        }
    }

    private void Validate(ReadOnlySpan<int> tokenIds, int startPosition, KvCache cache, int logitsLength, long expectedLogits, string logitsShape)
    {
        ArgumentNullException.ThrowIfNull(cache);
        if (tokenIds.IsEmpty)
        {
            ThrowArgument("tokenIds is empty", nameof(tokenIds));
        }

        if (cache.LayerCount != Config.NumHiddenLayers || cache.KvHeadCount != _kvHeads || cache.HeadDim != _headDim)
        {
            ThrowArgument("the cache was made for a different model shape", nameof(cache));
        }

        if (startPosition < 0 || startPosition > cache.ContextSize - tokenIds.Length)
        {
            ThrowRange(nameof(startPosition),
                $"positions {startPosition}..{startPosition + tokenIds.Length - 1} do not fit the cache's {cache.ContextSize} positions");
        }

        if (logitsLength < expectedLogits)
        {
            ThrowArgument($"logits must hold {logitsShape} = {expectedLogits} floats, got {logitsLength}", "logits");
        }

        foreach (int id in tokenIds)
        {
            if ((uint)id >= (uint)_vocab)
            {
                ThrowRange(nameof(tokenIds), $"token id {id} is outside the vocabulary [0, {_vocab})");
            }
        }
    }

    private static void ThrowArgument(string message, string parameter) => throw new ArgumentException(message, parameter);

    private static void ThrowRange(string parameter, string message) => throw new ArgumentOutOfRangeException(parameter, message);

    public void Dispose()
    {
        _scratch.Dispose();
        _pool.Dispose();
        _weights.Dispose();
    }
}

/// <summary>One sequence of a <see cref="ForwardBatch"/>: its tokens [TokenOffset, TokenOffset + TokenCount) of the batch at positions StartPosition...</summary>
public readonly struct BatchSequence(int tokenOffset, int tokenCount, int startPosition, KvCacheView cache, bool computeLogits)
{
    public int TokenOffset { get; } = tokenOffset;

    public int TokenCount { get; } = tokenCount;

    public int StartPosition { get; } = startPosition;

    public KvCacheView Cache { get; } = cache;

    /// <summary>Whether the logits after this sequence's last token are wanted (it samples this step).</summary>
    public bool ComputeLogits { get; } = computeLogits;
}

/// <summary>The tokens of one engine step, concatenated [T], and the sequences they belong to.</summary>
public readonly ref struct ForwardBatch(ReadOnlySpan<int> tokenIds, ReadOnlySpan<BatchSequence> sequences)
{
    public ReadOnlySpan<int> TokenIds { get; } = tokenIds;

    public ReadOnlySpan<BatchSequence> Sequences { get; } = sequences;
}
