using System.Runtime.InteropServices;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Loading;

/// <summary>Where the weight matrices live while the model runs.</summary>
public enum WeightPlacement
{
    /// <summary>Used in place from the memory-mapped safetensors files (the default: no copy, shared page cache).</summary>
    Mapped,

    /// <summary>
    /// Copied once at load into one anonymous buffer advised for transparent huge pages (Linux
    /// <c>madvise(MADV_HUGEPAGE)</c>; elsewhere a plain aligned buffer). Costs a copy of the matrices at load
    /// and their size in private memory; on a machine whose mapped file pages are 4 KiB it makes the
    /// memory-bound decode matvecs faster (fewer TLB misses, hardware prefetchers not stopped at every 4 KiB).
    /// </summary>
    HugePageCopy,

    /// <summary>
    /// Copied once at load, on every core, into private anonymous memory with no huge-page advice, the file's pages
    /// dropped from the resident set as each piece is copied. On the Zen 3 machine this decoded BF16 as fast as
    /// <see cref="HugePageCopy"/> (products over the 1.7B matrices 13% faster than from the mapped file, median of 8
    /// interleaved sweeps) without the kernel's huge-page compaction, which made that load take 13 s.
    /// </summary>
    Copy,
}

/// <summary>One decoder layer's weights. Matrices point into the mapped files; vectors are float32 copies.</summary>
public readonly struct Qwen3LayerWeights
{
    public WeightView QProj { get; init; }            // [heads * headDim, hidden]
    public WeightView KProj { get; init; }            // [kvHeads * headDim, hidden]
    public WeightView VProj { get; init; }            // [kvHeads * headDim, hidden]
    public WeightView OProj { get; init; }            // [hidden, heads * headDim]
    public WeightView GateProj { get; init; }         // [intermediate, hidden]
    public WeightView UpProj { get; init; }           // [intermediate, hidden]
    public WeightView DownProj { get; init; }         // [hidden, intermediate]
    public float[] InputLayerNorm { get; init; }      // [hidden]
    public float[] PostAttentionLayerNorm { get; init; } // [hidden]
    public float[]? QNorm { get; init; }              // [headDim] (qwen3)
    public float[]? KNorm { get; init; }              // [headDim] (qwen3)
    public float[]? QBias { get; init; }              // [heads * headDim] (qwen2, or attention_bias)
    public float[]? KBias { get; init; }              // [kvHeads * headDim]
    public float[]? VBias { get; init; }              // [kvHeads * headDim]
    public float[]? OBias { get; init; }              // [hidden] (qwen3 with attention_bias)

    /// <summary>The seven projections, in forward order (bench and load-time summaries; not for the per-token path).</summary>
    public WeightView[] Matrices => [QProj, KProj, VProj, OProj, GateProj, UpProj, DownProj];
}

/// <summary>
/// Every weight of a Qwen3/Qwen2 checkpoint, validated against the config: matrices used in place from the
/// memory-mapped safetensors files (BF16, F16 or F32), small 1-D weights converted to float32 once. With tied
/// embeddings <see cref="LmHead"/> aliases <see cref="EmbedTokens"/>. Disposing unmaps the files.
/// </summary>
public sealed unsafe partial class ModelWeights : IDisposable
{
    private const long HugePageBytes = 2L << 20;
    private const int MadviseHugePage = 14;      // MADV_HUGEPAGE
    private const int MadviseDontNeed = 4;       // MADV_DONTNEED

    private readonly SafetensorsFile[] _files;
    private readonly GgufParts? _gguf;           // the mapped GGUF file(s), when loaded from GGUF
    private byte* _copy;                         // the HugePageCopy buffer, or null
    private readonly List<nint> _buffers;        // native buffers of repacked MLX codes (2, 3 and 6 bits)

    private ModelWeights(Qwen3Config config, SafetensorsFile[] files, WeightView embedTokens, WeightView lmHead, float[] norm,
        Qwen3LayerWeights[] layers, byte* copy, GgufParts? gguf = null, List<nint>? buffers = null)
    {
        _buffers = buffers ?? [];
        Config = config;
        _files = files;
        _gguf = gguf;
        _copy = copy;
        EmbedTokens = embedTokens;
        LmHead = lmHead;
        Norm = norm;
        Layers = layers;
    }

    public Qwen3Config Config { get; }

    public WeightView EmbedTokens { get; }   // [vocab, hidden]

    public WeightView LmHead { get; }        // [vocab, hidden]; the same memory as EmbedTokens when tied

    public float[] Norm { get; }             // [hidden]

    public Qwen3LayerWeights[] Layers { get; }

    public IReadOnlyList<SafetensorsFile> Files => _files;

    /// <summary>The mapped GGUF file the weights come from (the first part of a split model: its metadata holds the tokenizer and template), or null.</summary>
    public GgufFile? Gguf => _gguf?.First;

    /// <summary>Where the matrices live (see <see cref="WeightPlacement"/>).</summary>
    public WeightPlacement Placement { get; private init; }

    /// <summary>The block format the matrices were quantized to at load (<c>--quantize</c>), or null.</summary>
    public DType? LoadQuantization { get; private init; }

    /// <summary>Total size of the mapped weight files.</summary>
    public long FileBytes => _files.Sum(f => f.FileBytes) + (_gguf?.FileBytes ?? 0);

    /// <summary>Bytes of every weight matrix (what a decode step streams, the embedding table aside when untied).</summary>
    public long MatrixBytes => Layers.Sum(l => l.Matrices.Sum(m => m.ByteCount)) + LmHead.ByteCount;

    /// <param name="layout">The layout of GGUF Q4_0/Q4_K/Q8_0 matrices and of matrices quantized at load (see <see cref="LoadGguf"/>); null lets the loader choose.</param>
    /// <param name="floatLayout">The layout of BF16, F16 and F32 matrices copied into private memory (see <see cref="CopyToPrivate"/>); null: <see cref="Kernels.KernelSelection.FloatLayout"/>.</param>
    public static ModelWeights Load(string directory, WeightPlacement placement = WeightPlacement.Mapped, DType? quantize = null,
        Kernels.QuantLayout? layout = null, Kernels.QuantLayout? floatLayout = null)
        => GgufModel.IsGguf(directory) ? LoadGguf(directory, placement, quantize, layout, floatLayout)
            : Load(ModelDirectory.Open(directory), placement, quantize, layout, floatLayout);

    /// <exception cref="ModelFormatException">A file is malformed, a tensor is missing or has the wrong shape for the config.</exception>
    /// <param name="quantize">Q8_0 or Q4_0 to quantize the BF16/F16/F32 matrices at load (see <see cref="QuantizeMatrices"/>); null keeps them.</param>
    /// <param name="layout">The quantized matrices' layout: rows, or repacked into 8-row groups as GGUF files' are (see <see cref="LoadGguf"/>).</param>
    /// <param name="floatLayout">The layout of BF16, F16 and F32 matrices copied into private memory (see <see cref="CopyToPrivate"/>); null: <see cref="Kernels.KernelSelection.FloatLayout"/>.</param>
    public static ModelWeights Load(ModelDirectory directory, WeightPlacement placement = WeightPlacement.Mapped, DType? quantize = null,
        Kernels.QuantLayout? layout = null, Kernels.QuantLayout? floatLayout = null)
    {
        Qwen3Config config = directory.Config;
        var files = new List<SafetensorsFile>();
        var buffers = new List<nint>();
        byte* copy = null;
        try
        {
            MlxQuantization? quantization = MlxQuantization.Read(config.SourceFile);
            foreach (string path in directory.WeightFiles)
            {
                files.Add(SafetensorsFile.Open(path));
            }

            var owner = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            foreach (SafetensorsFile f in files)
            {
                foreach (string name in f.Tensors.Keys)
                {
                    if (!owner.TryAdd(name, f))
                    {
                        throw new ModelFormatException(f.FilePath, name, $"tensor also appears in {owner[name].FilePath}");
                    }
                }
            }

            if (directory.WeightMap is { } map)
            {
                foreach (var (key, shard) in map)
                {
                    if (!owner.TryGetValue(key, out SafetensorsFile? f) || Path.GetFileName(f.FilePath) != shard)
                    {
                        throw new ModelFormatException(Path.Combine(directory.DirectoryPath, ModelDirectory.IndexFileName), key,
                            $"weight_map places this tensor in '{shard}', which does not contain it");
                    }
                }
            }

            string describeFiles = files.Count == 1 ? files[0].FilePath : directory.DirectoryPath + " (" + files.Count + " shards)";
            var matrices = new Dictionary<string, WeightView>(StringComparer.Ordinal);
            var vectors = new Dictionary<string, float[]>(StringComparer.Ordinal);
            foreach (var (key, entry, _) in CheckpointKeys.Enumerate(config))
            {
                if (!owner.TryGetValue(key, out SafetensorsFile? file))
                {
                    throw new ModelFormatException(describeFiles, key, $"missing tensor ({entry.Name}), required by {config.SourceFile}");
                }

                SafetensorsTensorInfo info = file.GetInfo(key);
                long[] expected = entry.Shape(config);
                if (entry.Kind == TensorKind.Matrix && quantization is not null && key.EndsWith(".weight", StringComparison.Ordinal))
                {
                    string module = key[..^".weight".Length];
                    bool hasScales = owner.ContainsKey(module + ".scales");
                    MlxQuantSpec? spec = quantization.For(module);
                    if (spec is { } s && (hasScales || quantization.HasOverride(module) || info.DType == DType.U32))
                    {
                        matrices[key] = AffineMatrix(owner, describeFiles, module, entry.Name, expected, s, buffers);
                        continue;
                    }

                    if (spec is null && hasScales)
                    {
                        throw new ModelFormatException(quantization.SourceFile, module,
                            $"config.json leaves this module unquantized (false), but the checkpoint has '{module}.scales'");
                    }

                    // else: a module mlx_lm left in floating point (no scales), loaded as usual below
                }

                if (info.DType == DType.U32)
                {
                    throw new ModelFormatException(file.FilePath, key, quantization is null
                        ? "holds U32 packed codes, but config.json has no 'quantization' section saying how they are packed"
                        : "holds U32 packed codes, but config.json leaves this module unquantized");
                }

                if (!info.Shape.SequenceEqual(expected))
                {
                    throw new ModelFormatException(file.FilePath, key,
                        $"shape {info.ShapeText} does not match the config: {entry.Name} must be [{string.Join(", ", expected)}]");
                }

                if (entry.Kind == TensorKind.Matrix)
                {
                    matrices[key] = file.GetMatrix(key);
                }
                else
                {
                    vectors[key] = file.ReadFloats(key);
                }
            }

            var mapped = new MappedFiles(files.Select(f => f.Mapping));
            if (quantization is not null && ResolveLayout(layout) == Kernels.QuantLayout.Interleaved8)
            {
                // MLX: the affine matrices into the int8 kernels' 8-row groups, from the mapped files (nothing to copy after)
                RepackAffineGroups(matrices, buffers, hugePages: placement == WeightPlacement.HugePageCopy, mapped);
            }

            copy = Place(matrices, placement, quantize, ResolveLayout(layout), floatLayout, mapped);

            (Qwen3LayerWeights[] layers, WeightView embed, WeightView lmHead, float[] norm) = Assemble(config, matrices, vectors);
            return new ModelWeights(config, files.ToArray(), embed, lmHead, norm, layers, copy, buffers: buffers)
                { Placement = placement, LoadQuantization = quantize };
        }
        catch
        {
            NativeMemory.AlignedFree(copy);
            foreach (nint b in buffers)
            {
                NativeMemory.AlignedFree((void*)b);
            }

            foreach (SafetensorsFile f in files)
            {
                f.Dispose();
            }

            throw;
        }
    }

    /// <summary>Bytes per piece of <see cref="CopyToPrivate"/>: 16 MiB.</summary>
    private const long DefaultCopyPieceBytes = 16L << 20;

    [ThreadStatic]
    private static long t_copyPieceBytes;

    /// <summary>Bytes per copy piece for loads on this thread (tests: small pieces split the tiny models' matrices into pieces of 8 rows); 0 restores the default.</summary>
    internal static long CopyPieceBytesOnThisThread
    {
        get => t_copyPieceBytes > 0 ? t_copyPieceBytes : DefaultCopyPieceBytes;
        set => t_copyPieceBytes = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "0 or more bytes");
    }

    private static CheckpointKey Find(IReadOnlyList<CheckpointKey> table, string name)
    {
        foreach (CheckpointKey k in table)
        {
            if (k.Name == name)
            {
                return k;
            }
        }

        throw new InvalidOperationException($"'{name}' is not in the checkpoint key table");
    }

    /// <summary>The model's layers, embedding, output head and final norm from tensors keyed by checkpoint name (any format).</summary>
    private static (Qwen3LayerWeights[] Layers, WeightView Embed, WeightView LmHead, float[] Norm) Assemble(Qwen3Config config,
        Dictionary<string, WeightView> matrices, Dictionary<string, float[]> vectors)
    {
        var layers = new Qwen3LayerWeights[config.NumHiddenLayers];
        for (int l = 0; l < layers.Length; l++)
        {
            WeightView M(string name) => matrices[Find(CheckpointKeys.Layer, name).Key(l)];
            float[]? V(string name) => vectors.GetValueOrDefault(Find(CheckpointKeys.Layer, name).Key(l));
            layers[l] = new Qwen3LayerWeights
            {
                QProj = M("QProj"),
                KProj = M("KProj"),
                VProj = M("VProj"),
                OProj = M("OProj"),
                GateProj = M("GateProj"),
                UpProj = M("UpProj"),
                DownProj = M("DownProj"),
                InputLayerNorm = V("InputLayerNorm")!,
                PostAttentionLayerNorm = V("PostAttentionLayerNorm")!,
                QNorm = V("QNorm"),
                KNorm = V("KNorm"),
                QBias = V("QBias"),
                KBias = V("KBias"),
                VBias = V("VBias"),
                OBias = V("OBias"),
            };
        }

        WeightView embed = matrices[Find(CheckpointKeys.Head, "EmbedTokens").Key()];
        WeightView lmHead = config.TieWordEmbeddings ? embed : matrices[Find(CheckpointKeys.Tail, "LmHead").Key()];
        float[] norm = vectors[Find(CheckpointKeys.Tail, "Norm").Key()];
        return (layers, embed, lmHead, norm);
    }

    /// <summary>
    /// Where the matrices live: quantized into a private buffer (<paramref name="quantize"/>; already in huge pages, so
    /// <see cref="WeightPlacement.HugePageCopy"/> adds nothing), copied into private memory (huge pages on request), or in place in the mapped files
    /// (null then). Returns the buffer the matrices now point into.
    /// </summary>
    private static byte* Place(Dictionary<string, WeightView> matrices, WeightPlacement placement, DType? quantize, Kernels.QuantLayout layout,
        Kernels.QuantLayout? floatLayout, MappedFiles files) =>
        quantize is { } target ? QuantizeMatrices(matrices, target, groups: layout == Kernels.QuantLayout.Interleaved8, files)
        : placement is WeightPlacement.HugePageCopy or WeightPlacement.Copy
            ? CopyToPrivate(matrices, placement == WeightPlacement.HugePageCopy, (floatLayout ?? Kernels.KernelSelection.FloatLayout) == Kernels.QuantLayout.Interleaved8, files)
        : null;

    /// <summary>
    /// Copies every matrix still in the mapped files (not one repacked or quantized into a private buffer already) into one
    /// 2 MiB-aligned anonymous buffer, advised for huge pages with <paramref name="hugePages"/>, and repoints
    /// <paramref name="matrices"/> at the copies; with <paramref name="floatGroups"/>, BF16, F16 and F32 matrices (an even column
    /// count) are repacked on the way into 8-row groups (<see cref="DType.BF16x8"/>, <see cref="DType.F16x8"/>,
    /// <see cref="DType.F32x8"/>: MatMul.FloatGroups.cs). Pieces of
    /// at most 16 MiB are copied on every core, each piece's file pages dropped from this process's resident set once
    /// copied (the page cache keeps them), so the resident set holds the weights once. Returns null when there is nothing to copy.
    /// A piece that lies in one of <paramref name="files"/> is read from its file with <c>pread</c> instead, into a buffer
    /// reused from piece to piece, and copied or grouped from there: the mapping is never touched, as in
    /// <see cref="RepackGroups"/>. (Reading straight into the fresh target was slower on this project's Zen 5 VM: 1.7B BF16
    /// <c>qwen3 run</c> 8.4–8.7 s, against 7.0–7.5 s through the mapping and 6.3–6.5 s through the buffer.)
    /// </summary>
    private static byte* CopyToPrivate(Dictionary<string, WeightView> matrices, bool hugePages, bool floatGroups, MappedFiles? files)
    {
        string[] keys = [.. matrices.Where(kv => kv.Value.DType.RowGroup() == 1).Select(kv => kv.Key)];
        bool Grouped(in WeightView v) => floatGroups && Kernels.MatMul.FloatGroupLayoutOf(v.DType) is not null && v.ColCount % 2 == 0;
        long Bytes(in WeightView v) => Grouped(v) ? Kernels.MatMul.FloatGroupBytes(v.DType, v.RowCount, v.ColCount) : v.DataBytes;
        WeightView[] sources = [.. keys.Select(k => matrices[k])];
        byte* buffer = LayOut(sources, v => Bytes(v), hugePages, out nint[] targets);
        if (buffer == null)
        {
            return null;
        }

        for (int m = 0; m < keys.Length; m++)
        {
            WeightView v = sources[m];
            byte* target = (byte*)targets[m];
            matrices[keys[m]] = Grouped(v) ? new WeightView(target, Kernels.MatMul.FloatGroupLayoutOf(v.DType)!.Value, v.RowCount, v.ColCount)
                : v.WithData(target);       // affine: the scale and bias tables stay where they are
        }

        long piece = CopyPieceBytesOnThisThread;
        int PieceRows(WeightView v) => (int)Math.Clamp(piece / Math.Max(1, v.RowBytes) / 8 * 8, 8, Math.Max(8, v.RowCount));

        using var reads = new ChunkBuffers(sources.Max(v => Math.Min(PieceRows(v), v.RowCount) * v.RowBytes));
        ForEachChunk(sources, PieceRows, p =>
        {
            WeightView v = sources[p.Matrix];
            byte* source = v.Data + p.Row * v.RowBytes, target = (byte*)targets[p.Matrix] + p.Row * v.RowBytes;
            long pieceBytes = p.Rows * v.RowBytes;
            Populate(target, pieceBytes, write: true);   // grouped: the same bytes, rows in groups
            if (files is not null && files.TryLocate(source, out FileMapping? file, out long offset))
            {
                byte* rows = reads.Rent();
                try
                {
                    file.ReadExactly(rows, pieceBytes, offset);
                    if (Grouped(v))
                    {
                        // the piece's rows [Row, Row + Rows) are the buffer's: the repack addresses them from the matrix's row 0
                        Kernels.MatMul.RepackFloatGroups(v.DType, rows - p.Row * v.RowBytes, v.RowCount, v.ColCount, p.Row, p.Rows, target);
                    }
                    else
                    {
                        Buffer.MemoryCopy(rows, target, pieceBytes, pieceBytes);
                    }
                }
                finally
                {
                    reads.Return(rows);
                }

                return;
            }

            Populate(source, pieceBytes, write: false);
            if (Grouped(v))
            {
                Kernels.MatMul.RepackFloatGroups(v.DType, v.Data, v.RowCount, v.ColCount, p.Row, p.Rows, target);
            }
            else
            {
                Buffer.MemoryCopy(source, target, pieceBytes, pieceBytes);
            }

            DropPages(source, pieceBytes);
        });
        return buffer;
    }

    /// <summary>
    /// Drops this process's pages of a matrix it will not read again (Linux <c>madvise(MADV_DONTNEED)</c> on the whole
    /// pages inside the range): a mapped file's pages leave the resident set (the page cache keeps them; the file is
    /// unchanged); an anonymous buffer's are freed. Elsewhere nothing.
    /// </summary>
    private static void DropPages(byte* data, long bytes)
    {
        if (OperatingSystem.IsLinux())
        {
            long start = ((long)data + 4095) & ~4095L, end = ((long)data + bytes) & ~4095L;
            if (end > start)
            {
                _ = Madvise((void*)start, (nuint)(end - start), MadviseDontNeed);
            }
        }
    }

    /// <summary>
    /// Maps in every page of [<paramref name="data"/>, + <paramref name="bytes"/>) in one call (Linux 5.14+
    /// <c>madvise(MADV_POPULATE_WRITE)</c>, or <c>MADV_POPULATE_READ</c> for pages only read) instead of one page fault per
    /// 4 KiB page as the copy first touches them: on a VM each fault is an exception and a hypervisor round trip (~1.7 s
    /// of system time per GiB on this project's Zen 5 VM). Advice only: where the call is not supported the faults happen
    /// as before.
    /// </summary>
    /// <returns>Whether the system mapped the pages in (false where the call is unsupported, refused, or turned off).</returns>
    internal static bool Populate(byte* data, long bytes, bool write)
    {
        if (OperatingSystem.IsLinux() && Environment.GetEnvironmentVariable(PopulateVariable) != "0")
        {
            long start = (long)data & ~4095L, end = ((long)data + bytes + 4095) & ~4095L;
            if (end > start)
            {
                return Madvise((void*)start, (nuint)(end - start), write ? MadvisePopulateWrite : MadvisePopulateRead) == 0;
            }
        }

        return false;
    }

    /// <summary>The environment variable that, set to 0, leaves the load's pages to fault in one by one (the A/B of <see cref="Populate"/>).</summary>
    public const string PopulateVariable = "QWEN3_POPULATE";
    private const int MadvisePopulateRead = 22;     // MADV_POPULATE_READ
    private const int MadvisePopulateWrite = 23;    // MADV_POPULATE_WRITE

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(void* address, nuint length, int advice);

    public void Dispose()
    {
        foreach (SafetensorsFile f in _files)
        {
            f.Dispose();
        }

        _gguf?.Dispose();
        NativeMemory.AlignedFree(_copy);
        _copy = null;
        foreach (nint b in _buffers)
        {
            NativeMemory.AlignedFree((void*)b);
        }

        _buffers.Clear();
    }
}
