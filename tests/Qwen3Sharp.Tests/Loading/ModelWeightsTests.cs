using Qwen3Sharp.Loading;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Tests.Loading;

public sealed class ModelWeightsTests
{
    private static readonly Qwen3Config Micro = ModelSynthesizer.Preset("tiny-mqa") with
    {
        VocabSize = 16, HiddenSize = 8, IntermediateSize = 12, NumHiddenLayers = 2, NumAttentionHeads = 2, NumKeyValueHeads = 1, HeadDim = 4,
    };

    [Fact]
    public unsafe void Populate_MapsAFreshBufferInInOneCall()
    {
        // what the load does before each piece it copies or repacks: every page resident after one madvise (mincore says
        // so per page, whatever other tests allocate meanwhile), not faulted in one by one as the copy touches them
        Assert.True(OperatingSystem.IsLinux(), "the project's machines and CI run Linux");
        Assert.NotEqual("0", Environment.GetEnvironmentVariable(ModelWeights.PopulateVariable));
        const long bytes = 64L << 20;
        long pages = bytes / Environment.SystemPageSize;
        byte* buffer = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)bytes, 4096);
        byte[] residency = new byte[pages];
        try
        {
            Assert.True(Resident(buffer, bytes, residency) < pages / 2);   // a fresh mapping: not yet faulted in
            Assert.True(ModelWeights.Populate(buffer + 100, bytes - 200, write: true));   // rounded out to whole pages
            Assert.Equal(pages, Resident(buffer, bytes, residency));
            Assert.Equal(0, buffer[bytes - 1]);   // populated as if written, its contents untouched (fresh pages are zero)
        }
        finally
        {
            System.Runtime.InteropServices.NativeMemory.AlignedFree(buffer);
        }

        static long Resident(byte* start, long length, byte[] vector)
        {
            fixed (byte* v = vector)
            {
                Assert.Equal(0, Mincore(start, (nuint)length, v));
            }

            return vector.Count(b => (b & 1) != 0);
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "mincore")]
    private static extern unsafe int Mincore(void* address, nuint length, byte* vector);

    /// <summary>Writes config.json and a single F32 model.safetensors, leaving out or reshaping one tensor if asked.</summary>
    private static void WriteMicroModel(string dir, Qwen3Config config, string? skip = null, string? reshape = null)
    {
        ModelSynthesizer.Write(dir, config, new SynthesisOptions { DType = DType.F32 });
        File.Delete(Path.Combine(dir, ModelDirectory.SingleFileName));
        var entries = CheckpointKeys.Enumerate(config)
            .Where(t => t.Key != skip)
            .Select(t => new SafetensorsEntry(t.Key, DType.F32, t.Key == reshape ? [.. t.Entry.Shape(config), 1] : t.Entry.Shape(config)))
            .ToList();
        using var writer = new SafetensorsWriter(Path.Combine(dir, ModelDirectory.SingleFileName), entries);
        foreach (SafetensorsEntry e in entries)
        {
            writer.WriteTensor(new byte[e.ByteCount]);
        }

        writer.Complete();
    }

    [Fact]
    public void Load_TiedGoldenModel_LmHeadAliasesEmbedTokens()
    {
        using ModelWeights w = ModelWeights.Load(Path.Combine(AppContext.BaseDirectory, "Fixtures", "golden", "tiny-a"));
        Assert.True(w.Config.TieWordEmbeddings);
        unsafe
        {
            Assert.True(w.LmHead.Data == w.EmbedTokens.Data);
        }

        Assert.Equal(DType.BF16, w.EmbedTokens.DType);
        Assert.Equal((1024, 64), (w.EmbedTokens.RowCount, w.EmbedTokens.ColCount));
        Assert.Equal((128, 64), (w.Layers[0].QProj.RowCount, w.Layers[0].QProj.ColCount));
        Assert.Equal(32, w.Layers[1].KNorm!.Length);
        Assert.Single(w.Files);
    }

    [Fact]
    public void Load_ShardedUntiedGoldenModel_ReadsBothShards()
    {
        using ModelWeights w = ModelWeights.Load(Path.Combine(AppContext.BaseDirectory, "Fixtures", "golden", "tiny-b"));
        Assert.Equal(2, w.Files.Count);
        Assert.Equal(DType.F32, w.LmHead.DType);
        unsafe
        {
            Assert.True(w.LmHead.Data != w.EmbedTokens.Data);
        }

        Assert.Equal(3, w.Layers.Length);
        Assert.Equal(16, w.Layers[2].KProj.RowCount);   // one kv head of 16
        Assert.Null(w.Layers[0].QBias);
    }

    [Fact]
    public void Load_MissingTensor_ThrowsNamingKey()
    {
        using var dir = new TempDir();
        WriteMicroModel(dir.Path, Micro, skip: "model.layers.1.self_attn.k_norm.weight");
        var ex = Assert.Throws<ModelFormatException>(() => ModelWeights.Load(dir.Path));
        Assert.Equal("model.layers.1.self_attn.k_norm.weight", ex.Tensor);
        Assert.Contains("missing tensor (KNorm)", ex.Message);
    }

    [Fact]
    public void Load_MissingLmHeadWhenUntied_Throws()
    {
        using var dir = new TempDir();
        WriteMicroModel(dir.Path, Micro, skip: "lm_head.weight");
        Assert.Equal("lm_head.weight", Assert.Throws<ModelFormatException>(() => ModelWeights.Load(dir.Path)).Tensor);
    }

    [Fact]
    public void Load_MisShapedTensor_ThrowsWithExpectedShape()
    {
        using var dir = new TempDir();
        WriteMicroModel(dir.Path, Micro, reshape: "model.layers.0.mlp.down_proj.weight");
        var ex = Assert.Throws<ModelFormatException>(() => ModelWeights.Load(dir.Path));
        Assert.Equal("model.layers.0.mlp.down_proj.weight", ex.Tensor);
        Assert.Contains("DownProj must be [8, 12]", ex.Message);
        Assert.Contains("[8, 12, 1]", ex.Message);
    }

    [Fact]
    public void Load_ConfigDisagreesWithWeights_ThrowsMisShaped()
    {
        using var dir = new TempDir();
        WriteMicroModel(dir.Path, Micro);
        File.WriteAllText(Path.Combine(dir.Path, "config.json"),
            File.ReadAllText(Path.Combine(dir.Path, "config.json")).Replace("\"intermediate_size\": 12", "\"intermediate_size\": 10"));
        var ex = Assert.Throws<ModelFormatException>(() => ModelWeights.Load(dir.Path));
        Assert.Contains("does not match the config", ex.Message);
    }

    [Fact]
    public void Open_IndexNamesMissingShard_ThrowsNamingShard()
    {
        using var dir = new TempDir();
        ModelSynthesizer.Write(dir.Path, Micro, new SynthesisOptions { DType = DType.F32, MaxShardBytes = 600 });
        string[] shards = Directory.GetFiles(dir.Path, "model-*.safetensors");
        Assert.True(shards.Length > 1);
        File.Delete(shards[^1]);
        var ex = Assert.Throws<ModelFormatException>(() => ModelDirectory.Open(dir.Path));
        Assert.EndsWith(ModelDirectory.IndexFileName, ex.File);
        Assert.Contains(Path.GetFileName(shards[^1]), ex.Message);
        Assert.Contains("does not exist", ex.Message);
    }

    [Fact]
    public void Load_IndexPlacesTensorInWrongShard_Throws()
    {
        using var dir = new TempDir();
        ModelSynthesizer.Write(dir.Path, Micro, new SynthesisOptions { DType = DType.F32, MaxShardBytes = 600 });
        string index = Path.Combine(dir.Path, ModelDirectory.IndexFileName);
        string text = File.ReadAllText(index);
        string[] shards = Directory.GetFiles(dir.Path, "model-*.safetensors").Select(Path.GetFileName).ToArray()!;
        // Point the embedding at the last shard, which does not hold it.
        text = System.Text.RegularExpressions.Regex.Replace(text,
            "\"model.embed_tokens.weight\": \"[^\"]+\"", $"\"model.embed_tokens.weight\": \"{shards[^1]}\"");
        File.WriteAllText(index, text);
        var ex = Assert.Throws<ModelFormatException>(() => ModelWeights.Load(dir.Path));
        Assert.Equal("model.embed_tokens.weight", ex.Tensor);
    }

    [Fact]
    public void Open_NoWeights_ThrowsNamingExpectedFiles()
    {
        using var dir = new TempDir();
        WriteMicroModel(dir.Path, Micro);
        File.Delete(Path.Combine(dir.Path, ModelDirectory.SingleFileName));
        var ex = Assert.Throws<ModelFormatException>(() => ModelDirectory.Open(dir.Path));
        Assert.Contains("model.safetensors", ex.Message);
    }

    [Fact]
    public void Load_TruncatedWeightFile_ThrowsFormatError()
    {
        using var dir = new TempDir();
        WriteMicroModel(dir.Path, Micro);
        string file = Path.Combine(dir.Path, ModelDirectory.SingleFileName);
        byte[] bytes = File.ReadAllBytes(file);
        File.WriteAllBytes(file, bytes[..^10]);
        var ex = Assert.Throws<ModelFormatException>(() => ModelWeights.Load(dir.Path));
        Assert.Equal("lm_head.weight", ex.Tensor);   // the last tensor no longer fits
        Assert.Contains("outside the data region", ex.Message);
    }

    [Theory]
    [InlineData("tiny-a", Qwen3Sharp.Kernels.QuantLayout.Rows)]
    [InlineData("tiny-a", Qwen3Sharp.Kernels.QuantLayout.Interleaved8)]
    [InlineData("tiny-b", Qwen3Sharp.Kernels.QuantLayout.Rows)]          // two shards, F32
    [InlineData("tiny-b", Qwen3Sharp.Kernels.QuantLayout.Interleaved8)]
    public unsafe void Load_CopyReadFromTheFilesInPiecesOf8Rows_HoldsTheMappedMatricesBytes(string model, Qwen3Sharp.Kernels.QuantLayout floatLayout)
    {
        // The copy reads each piece from its file (pread) straight into place, or into a reused buffer to be grouped from
        // there; pieces of 8 rows split every matrix of the tiny models, so a piece's rows must land at their own rows.
        string dir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "golden", model);
        using ModelWeights mapped = ModelWeights.Load(dir, WeightPlacement.Mapped);
        ModelWeights.CopyPieceBytesOnThisThread = 1;
        try
        {
            using ModelWeights copied = ModelWeights.Load(dir, WeightPlacement.Copy, floatLayout: floatLayout);
            WeightView[] Matrices(ModelWeights w) => [.. w.Layers.SelectMany(l => l.Matrices), w.EmbedTokens, w.LmHead];
            foreach (var (m, c) in Matrices(mapped).Zip(Matrices(copied)))
            {
                Assert.Equal((m.RowCount, m.ColCount), (c.RowCount, c.ColCount));
                byte[] expected = new byte[c.DataBytes];
                fixed (byte* e = expected)
                {
                    if (floatLayout == Qwen3Sharp.Kernels.QuantLayout.Rows)
                    {
                        Assert.Equal(m.DType, c.DType);
                        Buffer.MemoryCopy(m.Data, e, expected.Length, m.DataBytes);
                    }
                    else
                    {
                        Assert.Equal(Qwen3Sharp.Kernels.MatMul.FloatGroupLayoutOf(m.DType), c.DType);
                        Qwen3Sharp.Kernels.MatMul.RepackFloatGroups(m.DType, m.Data, m.RowCount, m.ColCount, 0, m.RowCount, e);
                    }
                }

                Assert.True(m.RowCount > 8);   // more than one piece
                Assert.True(expected.AsSpan().SequenceEqual(new ReadOnlySpan<byte>(c.Data, expected.Length)));
            }
        }
        finally
        {
            ModelWeights.CopyPieceBytesOnThisThread = 0;
        }
    }

    [Fact]
    public unsafe void MappedFileRead_AfterTheFileShrank_IsAModelFormatErrorNamingIt()
    {
        // A load reads its chunks with pread from the mapped file: a file cut short after it was mapped (a download or copy
        // still running over it) gives a clear error naming the file, where reading the mapping would have killed the process.
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "model.safetensors");
        File.Copy(Path.Combine(AppContext.BaseDirectory, "Fixtures", "golden", "tiny-a", "model.safetensors"), path);
        using SafetensorsFile st = SafetensorsFile.Open(path);
        WeightView up = st.GetMatrix("model.layers.1.mlp.up_proj.weight");
        Assert.True(st.Mapping.TryLocate(up.Data, out long offset));
        byte[] bytes = new byte[up.DataBytes];
        fixed (byte* b = bytes)
        {
            st.Mapping.ReadExactly(b, bytes.Length, offset);
            Assert.True(bytes.AsSpan().SequenceEqual(new ReadOnlySpan<byte>(up.Data, bytes.Length)));   // the mapped bytes

            Assert.Equal(0, Truncate(path, offset + 100));
            nint target = (nint)b;
            var ex = Assert.Throws<ModelFormatException>(() => st.Mapping.ReadExactly((byte*)target, bytes.Length, offset));
            Assert.Equal(path, ex.File);
            Assert.Contains($"the file ended at byte {offset + 100}", ex.Message);
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "truncate", SetLastError = true)]
    private static extern int Truncate(string path, long length);
}
