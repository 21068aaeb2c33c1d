using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Qwen3Sharp.Cli;
using Qwen3Sharp.Engine;
using Qwen3Sharp.Loading;

namespace Qwen3Sharp.Tests.Cli;

/// <summary>
/// DemoModel.Write expands a compact checkpoint (trained rows only) into a normal directory: the trained rows at their
/// token ids, every other token's row generated from its id exactly as tools/demo-model/unused_rows.py does (the
/// fixture holds that script's values), or, for assets before v5, the one shared row.
/// </summary>
public sealed class DemoModelTests : IDisposable
{
    private const int Vocab = 151936;
    private const int Hidden = 128;
    private static readonly string FixturePath = Path.Combine(AppContext.BaseDirectory, "Fixtures", "demo-model", "unused-rows.json");
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "qwen3sharp-demo-test-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public void UnusedTokenRows_FixtureIds_MatchThePythonGeneratorBitForBit()
    {
        (UnusedTokenRows rows, Dictionary<int, float[]> expected) = Fixture();
        var row = new float[Hidden];
        foreach ((int id, float[] values) in expected)
        {
            rows.Fill(id, row);
            for (int j = 0; j < Hidden; j++)
            {
                Assert.True(BitConverter.SingleToInt32Bits(values[j]) == BitConverter.SingleToInt32Bits(row[j]),
                    $"token {id}, value {j}: python {values[j]:R}, C# {row[j]:R}");
            }
        }
    }

    [Fact]
    public void UnusedTokenRows_UnknownGenerator_IsAModelFormatError()
    {
        var e = Assert.Throws<ModelFormatException>(() =>
            UnusedTokenRows.Parse("""{"generator": "mt19937", "seed": 1, "scale_log2": 13}""", "demo.safetensors"));
        Assert.Contains("mt19937", e.Message);
    }

    [Fact]
    public void Write_GeneratedUnusedRows_KeepsTrainedRowsAndGeneratesTheRestAndLoads()
    {
        (UnusedTokenRows rows, Dictionary<int, float[]> expected) = Fixture();
        int[] used = [3, 100, 151644, 151645];
        string metadata = $$"""{"generator": "{{UnusedTokenRows.Generator}}", "seed": {{rows.Seed}}, "scale_log2": {{rows.ScaleLog2}}, "shared_id": {{rows.SharedId}}}""";
        DemoModel.Write(_directory, CompactFile(used, used.Length, metadata), "test.safetensors");

        using (SafetensorsFile file = SafetensorsFile.Open(Path.Combine(_directory, ModelDirectory.SingleFileName)))
        {
            Assert.Equal(new long[] { Vocab, Hidden }, file.GetInfo("model.embed_tokens.weight").Shape);
            float[] embed = file.ReadFloats("model.embed_tokens.weight");
            for (int k = 0; k < used.Length; k++)
            {
                Assert.Equal(TrainedRow(k), embed.AsSpan(used[k] * Hidden, Hidden).ToArray());
            }

            foreach ((int id, float[] values) in expected)
            {
                Assert.Equal(values, embed.AsSpan(id * Hidden, Hidden).ToArray());
            }

            Assert.Equal(Layer(0, "model.norm.weight"), file.ReadFloats("model.norm.weight"));
        }

        using Qwen3Host host = Qwen3Host.Load(_directory, new HostOptions { ThreadCount = 1, ContextSize = 256 });
        Assert.Equal(Vocab, host.Config.VocabSize);
    }

    [Fact]
    public void Write_SharedUnusedRow_GivesEveryOtherTokenTheLastRow()
    {
        int[] used = [3, 100, 151644];
        DemoModel.Write(_directory, CompactFile(used, used.Length + 1, unusedRows: null), "test.safetensors");

        using SafetensorsFile file = SafetensorsFile.Open(Path.Combine(_directory, ModelDirectory.SingleFileName));
        float[] embed = file.ReadFloats("model.embed_tokens.weight");
        Assert.Equal(TrainedRow(1), embed.AsSpan(100 * Hidden, Hidden).ToArray());
        foreach (int id in new[] { 0, 4, 87654, Vocab - 1 })
        {
            Assert.Equal(TrainedRow(used.Length), embed.AsSpan(id * Hidden, Hidden).ToArray());
        }
    }

    [Fact]
    public void Write_EmbeddingRowCountDisagreesWithTheFormat_IsAModelFormatError()
    {
        int[] used = [3, 100];
        string metadata = $$"""{"generator": "{{UnusedTokenRows.Generator}}", "seed": 1, "scale_log2": 13}""";
        var e = Assert.Throws<ModelFormatException>(() =>
            DemoModel.Write(_directory, CompactFile(used, used.Length + 1, metadata), "test.safetensors"));
        Assert.Contains("expected 2", e.Message);
    }

    [Fact]
    public void Write_EmbeddedAsset_UnusedTokensGetTheirOwnOrTheSharedRow()
    {
        DemoModel.Write(_directory);
        using SafetensorsFile file = SafetensorsFile.Open(Path.Combine(_directory, ModelDirectory.SingleFileName));
        string? unusedRows = HeaderMetadata(EmbeddedAsset()).TryGetValue("unused_rows", out string? g) ? g : null;
        float[] embed = file.ReadFloats("model.embed_tokens.weight");
        (_, Dictionary<int, float[]> expected) = Fixture();
        // 151935 is a padding id past the tokenizer's last token: never trained.
        float[] padding = embed.AsSpan(151935 * Hidden, Hidden).ToArray();
        if (unusedRows is null)
        {
            Assert.Equal(padding, embed.AsSpan(151934 * Hidden, Hidden).ToArray()); // v4: one shared row
        }
        else
        {
            Assert.Equal(UnusedTokenRows.Parse(unusedRows, "asset"), Fixture().Rows);
            Assert.Equal(expected[151935], padding);
            Assert.NotEqual(padding, embed.AsSpan(151934 * Hidden, Hidden).ToArray());
        }
    }

    private static (UnusedTokenRows Rows, Dictionary<int, float[]> Expected) Fixture()
    {
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(FixturePath));
        JsonElement root = doc.RootElement;
        Assert.Equal(UnusedTokenRows.Generator, root.GetProperty("generator").GetString());
        Assert.Equal(Hidden, root.GetProperty("hidden").GetInt32());
        var rows = new UnusedTokenRows(root.GetProperty("seed").GetUInt64(), root.GetProperty("scale_log2").GetInt32(),
            root.GetProperty("shared_id").GetUInt64());
        var expected = root.GetProperty("rows").EnumerateObject()
            .ToDictionary(p => int.Parse(p.Name), p => p.Value.EnumerateArray().Select(v => v.GetSingle()).ToArray());
        return (rows, expected);
    }

    private static float[] TrainedRow(int k) => [.. Enumerable.Range(0, Hidden).Select(j => (k + 1) * 0.5f + j / 256f)];

    private static float[] Layer(int seed, string name, int count = Hidden) =>
        [.. Enumerable.Range(0, count).Select(j => ((name.Length * 31 + seed * 7 + j) % 17 - 8) / 64f)];

    /// <summary>A compact checkpoint as export.py writes it: one layer of the demo shapes, <paramref name="rowCount"/>
    /// embedding rows for the <paramref name="used"/> ids, and "unused_rows" metadata when given.</summary>
    private static byte[] CompactFile(int[] used, int rowCount, string? unusedRows)
    {
        const int heads = 4, kvHeads = 2, headDim = 32, intermediate = 64;
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray("Qwen3ForCausalLM"), ["model_type"] = "qwen3", ["hidden_size"] = Hidden,
            ["intermediate_size"] = intermediate, ["num_hidden_layers"] = 1, ["num_attention_heads"] = heads,
            ["num_key_value_heads"] = kvHeads, ["head_dim"] = headDim, ["vocab_size"] = Vocab, ["max_position_embeddings"] = 4096,
            ["rope_theta"] = 1000000.0, ["rms_norm_eps"] = 1e-6, ["tie_word_embeddings"] = true, ["torch_dtype"] = "float32",
            ["hidden_act"] = "silu", ["attention_bias"] = false, ["bos_token_id"] = 151643, ["eos_token_id"] = 151645,
        };
        var tensors = new List<(string Name, string DType, long[] Shape, byte[] Data)>
        {
            ("used_token_ids", "I32", [used.Length], Bytes<int>(used)),
            ("model.embed_tokens.weight", "F32", [rowCount, Hidden],
                Bytes<float>([.. Enumerable.Range(0, rowCount).SelectMany(TrainedRow)])),
            ("model.norm.weight", "F32", [Hidden], Bytes<float>(Layer(0, "model.norm.weight"))),
        };
        foreach ((string name, int rows, int columns) in new[]
        {
            ("input_layernorm", Hidden, 0), ("post_attention_layernorm", Hidden, 0),
            ("self_attn.q_proj", heads * headDim, Hidden), ("self_attn.k_proj", kvHeads * headDim, Hidden),
            ("self_attn.v_proj", kvHeads * headDim, Hidden), ("self_attn.o_proj", Hidden, heads * headDim),
            ("self_attn.q_norm", headDim, 0), ("self_attn.k_norm", headDim, 0),
            ("mlp.gate_proj", intermediate, Hidden), ("mlp.up_proj", intermediate, Hidden), ("mlp.down_proj", Hidden, intermediate),
        })
        {
            string full = $"model.layers.0.{name}.weight";
            tensors.Add((full, "F32", columns == 0 ? [rows] : [rows, columns], Bytes<float>(Layer(1, full, rows * Math.Max(columns, 1)))));
        }

        var header = new JsonObject();
        var metadata = new JsonObject { ["format"] = "pt", ["config"] = config.ToJsonString() };
        if (unusedRows is not null)
        {
            metadata["unused_rows"] = unusedRows;
        }

        header["__metadata__"] = metadata;
        long offset = 0;
        foreach ((string name, string dtype, long[] shape, byte[] data) in tensors)
        {
            header[name] = new JsonObject
            {
                ["dtype"] = dtype, ["shape"] = new JsonArray([.. shape.Select(d => JsonValue.Create(d))]),
                ["data_offsets"] = new JsonArray(offset, offset + data.Length),
            };
            offset += data.Length;
        }

        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        var stream = new MemoryStream();
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)json.Length);
        stream.Write(length);
        stream.Write(json);
        foreach ((_, _, _, byte[] data) in tensors)
        {
            stream.Write(data);
        }

        return stream.ToArray();
    }

    private static byte[] Bytes<T>(T[] values) where T : unmanaged =>
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    private static byte[] EmbeddedAsset()
    {
        using Stream resource = typeof(DemoModel).Assembly.GetManifestResourceStream("demo-model/demo-model.safetensors")!;
        var bytes = new byte[resource.Length];
        resource.ReadExactly(bytes);
        return bytes;
    }

    private static Dictionary<string, string> HeaderMetadata(byte[] file)
    {
        int length = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(file));
        using JsonDocument header = JsonDocument.Parse(file.AsMemory(8, length));
        return header.RootElement.GetProperty("__metadata__").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
    }
}
