using System.Text.Json;
using System.Text.Json.Nodes;
using Qwen3Sharp.Cache;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Kernels.Reference;
using Qwen3Sharp.Loading;
using Qwen3Sharp.Model;
using Qwen3Sharp.Tensors;
using Qwen3Sharp.Tests.Model;
using Xunit.Abstractions;

namespace Qwen3Sharp.Tests.Loading;

/// <summary>
/// MLX quantized directories (Fixtures/mlx, made by tools/fixtures/mlx/mlx_convert.py from the golden models): the
/// loader, logprobs against the float64 numpy reference on the dequantized weights, and malformed directories.
/// </summary>
public sealed unsafe class MlxTests(ITestOutputHelper output)
{
    internal static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "mlx", name);

    private static (double Max, int At) MaxDiff(double[] a, JsonElement b)
    {
        (double max, int at) = (0, -1);
        int i = 0;
        foreach (JsonElement e in b.EnumerateArray())
        {
            double d = Math.Abs(a[i] - e.GetDouble());
            if (d > max)
            {
                (max, at) = (d, i);
            }

            i++;
        }

        Assert.Equal(a.Length, i);
        return (max, at);
    }

    /// <summary>Float activations (the affine matrices stay in rows, <see cref="AffineMatMul"/>): the path that must match the dequantized weights to float32 rounding.</summary>
    private static readonly Qwen3ModelOptions FloatPath = new() { ThreadCount = 2, QuantDecode = QuantDecodeKernel.Float };

    [Theory]
    [InlineData("tiny-a-8bit")]
    [InlineData("tiny-a-4bit-mixed")]
    [InlineData("tiny-b-6bit")]
    public void Logprobs_match_the_float64_reference_on_the_dequantized_weights(string name)
    {
        using var reference = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Fixture(name), "reference.json")));
        using Qwen3Model model = Qwen3Model.Load(Fixture(name), FloatPath);
        Assert.Equal(DType.Affine, model.Weights.Layers[0].QProj.DType);
        var logits = new float[model.VocabSize];
        double worst = 0;
        foreach (JsonElement c in reference.RootElement.GetProperty("cases").EnumerateArray())
        {
            int[] ids = c.GetProperty("input_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            using KvCache cache = model.CreateCache(512);
            model.Forward(ids, 0, cache, logits);                    // prefill: the batched kernel
            (double d, int at) = MaxDiff(GoldenModelTests.LogSoftmax(logits), c.GetProperty("prefill_logprobs"));
            Assert.True(d <= 5e-3, $"{name} prefill of {ids.Length}: |Δ logprob| {d} at {at}");
            worst = Math.Max(worst, d);

            model.Forward([c.GetProperty("next_token").GetInt32()], ids.Length, cache, logits);   // decode: the matvec
            (d, at) = MaxDiff(GoldenModelTests.LogSoftmax(logits), c.GetProperty("decode_logprobs"));
            Assert.True(d <= 5e-3, $"{name} decode after {ids.Length}: |Δ logprob| {d} at {at}");
            worst = Math.Max(worst, d);
        }

        output.WriteLine($"{name}: max |Δ logprob| {worst:E2}");
    }

    [Theory]
    [InlineData("tiny-a-8bit")]
    [InlineData("tiny-a-4bit-mixed")]
    [InlineData("tiny-b-6bit")]
    public void Int8_path_stays_within_activation_rounding_of_the_reference(string name)
    {
        // The default load repacks the BF16-table affine matrices into 8-row groups (Affine8x8/Affine4x8) for the int8
        // kernels: decode, batches and 32+-token prefills all round the activations to int8 blocks, so the check is on the
        // distribution against the float64 reference on the dequantized weights: KL and the top-1 token, as for GGUF.
        using var reference = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Fixture(name), "reference.json")));
        using Qwen3Model model = Qwen3Model.Load(Fixture(name), threadCount: 2);
        Assert.Contains(model.Weights.Layers[0].GateProj.DType, new[] { DType.Affine8x8, DType.Affine4x8 });
        var logits = new float[model.VocabSize];
        double worstKl = 0, worstDiff = 0;
        int agree = 0, total = 0;
        void Check(JsonElement expected)
        {
            double[] want = [.. expected.EnumerateArray().Select(e => e.GetDouble())];
            double[] got = GoldenModelTests.LogSoftmax(logits);
            double kl = 0;
            for (int i = 0; i < want.Length; i++)
            {
                kl += Math.Exp(want[i]) * (want[i] - got[i]);
                worstDiff = Math.Max(worstDiff, Math.Abs(want[i] - got[i]));
            }

            worstKl = Math.Max(worstKl, kl);
            agree += Array.IndexOf(want, want.Max()) == Array.IndexOf(got, got.Max()) ? 1 : 0;
            total++;
        }

        foreach (JsonElement c in reference.RootElement.GetProperty("cases").EnumerateArray())
        {
            int[] ids = c.GetProperty("input_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            using KvCache cache = model.CreateCache(512);
            model.Forward(ids, 0, cache, logits);
            Check(c.GetProperty("prefill_logprobs"));
            model.Forward([c.GetProperty("next_token").GetInt32()], ids.Length, cache, logits);
            Check(c.GetProperty("decode_logprobs"));
        }

        // Measured (Zen 3, AVX2): see the output line; the bounds are those of the GGUF Q8_0/Q4_0 int8 test (hidden sizes of
        // 64-256, so each 32-element block's rounding weighs more than at 2048).
        string measured = $"{name}: int8 path, max KL {worstKl:G3}, max |Δ logprob| {worstDiff:G3}, top-1 {agree}/{total}";
        output.WriteLine(measured);
        Assert.True(worstKl <= 0.02, measured);
        Assert.True(agree >= total - 1, measured);
        Assert.True(worstDiff > 0, $"{name}: the int8 path should move the logits (is it in use?)");
    }

    [Fact]
    public void Default_load_repacks_bf16_table_matrices_into_8_row_groups_with_every_element()
    {
        using ModelWeights rows = ModelWeights.Load(Fixture("tiny-a-4bit-mixed"), layout: QuantLayout.Rows);
        using ModelWeights x8 = ModelWeights.Load(Fixture("tiny-a-4bit-mixed"));
        Assert.Equal(DType.Affine4x8, x8.Layers[0].QProj.DType);
        Assert.Equal(DType.Affine8x8, x8.Layers[0].GateProj.DType);     // "bits": 8 override
        Assert.Equal(DType.BF16, x8.Layers[1].VProj.DType);              // not quantized: as it was
        Assert.True(x8.LmHead.Data == x8.EmbedTokens.Data);             // tied: still one matrix
        foreach (var (a, b) in new[] { (rows.Layers[0].QProj, x8.Layers[0].QProj), (rows.Layers[0].GateProj, x8.Layers[0].GateProj),
            (rows.Layers[1].DownProj, x8.Layers[1].DownProj), (rows.EmbedTokens, x8.EmbedTokens) })
        {
            Assert.Equal((a.GroupSize, a.Bits, a.RowCount, a.ColCount), (b.GroupSize, b.Bits, b.RowCount, b.ColCount));
            var ra = new float[a.ColCount];
            var rb = new float[b.ColCount];
            for (int r = 0; r < a.RowCount; r++)
            {
                fixed (float* pa = ra, pb = rb)
                {
                    AffineMatMul.DequantizeRow(a, r, pa);
                    QuantMatMul.DequantizeRow(b, r, pb);
                }

                Assert.Equal(ra, rb);
                Assert.Equal(a[r, r % a.ColCount], b[r, r % b.ColCount]);
            }
        }
    }

    [Fact]
    public void Loads_quantized_views_with_per_module_overrides_and_tied_head()
    {
        using (ModelWeights w = ModelWeights.Load(Fixture("tiny-a-8bit"), layout: QuantLayout.Rows))
        {
            Assert.Equal(DType.Affine, w.EmbedTokens.DType);
            Assert.True(w.LmHead.Data == w.EmbedTokens.Data);     // tied: the output head is the quantized embedding
            foreach (WeightView v in new[] { w.Layers[0].QProj, w.Layers[1].GateProj, w.EmbedTokens })
            {
                Assert.Equal((DType.Affine, 8, 64, DType.BF16), (v.DType, v.Bits, v.GroupSize, v.GroupDType));
            }

            Assert.Equal(DType.BF16, w.Layers[1].DownProj.DType);   // 160 columns: group size 64 does not divide them (mlx_lm skips it)
            Assert.InRange(w.FileBytes, w.MatrixBytes, w.MatrixBytes + 20_000);   // used in place: the file is the weights
        }

        using (ModelWeights w = ModelWeights.Load(Fixture("tiny-a-4bit-mixed"), layout: QuantLayout.Rows))
        {
            Assert.Equal((4, 32), (w.Layers[0].QProj.Bits, w.Layers[0].QProj.GroupSize));
            Assert.Equal((8, 64), (w.Layers[0].GateProj.Bits, w.Layers[0].GateProj.GroupSize));   // "bits": 8 override
            Assert.Equal(DType.BF16, w.Layers[1].VProj.DType);                                      // false: not quantized
            Assert.Equal((4, 32), (w.Layers[1].GateProj.Bits, w.Layers[1].GateProj.GroupSize));
            Assert.Equal((4, 32), (w.Layers[0].DownProj.Bits, w.Layers[0].DownProj.GroupSize));
        }

        using (ModelWeights w = ModelWeights.Load(Fixture("tiny-b-6bit"), layout: QuantLayout.Rows))
        {
            Assert.False(w.LmHead.Data == w.EmbedTokens.Data);
            Assert.Equal((DType.Affine, 8, 32), (w.LmHead.DType, w.LmHead.Bits, w.LmHead.GroupSize));   // 6-bit codes held as bytes
            Assert.Equal(w.LmHead[5, 7], WeightAt(Fixture("tiny-b-6bit"), "lm_head", 6, 32, 5, 7));
        }
    }

    [Theory]
    [InlineData("tiny-a-4bit-mixed")]
    [InlineData("tiny-b-6bit")]
    public void Huge_page_copy_gives_the_same_logits(string name)
    {
        using Qwen3Model mapped = Qwen3Model.Load(Fixture(name), new Qwen3ModelOptions { ThreadCount = 2, WeightPlacement = WeightPlacement.Mapped });
        using Qwen3Model copied = Qwen3Model.Load(Fixture(name), new Qwen3ModelOptions
        {
            ThreadCount = 2,
            WeightPlacement = WeightPlacement.HugePageCopy,
            FloatLayout = QuantLayout.Rows,   // the unquantized BF16 modules as stored (the 8-row groups sum in another order)
        });
        Assert.Equal(WeightPlacement.HugePageCopy, copied.Weights.Placement);
        int[] ids = [3, 141, 59, 26, 535, 89, 79, 323, 846, 264, 338, 327, 950, 288, 419, 716, 939, 937, 510, 582, 97, 494, 459, 230, 781,
            640, 628, 620, 899, 862, 803, 482, 534, 211, 706, 798];
        var a = new float[mapped.VocabSize];
        var b = new float[mapped.VocabSize];
        using KvCache ca = mapped.CreateCache(64);
        using KvCache cb = copied.CreateCache(64);
        mapped.Forward(ids, 0, ca, a);
        copied.Forward(ids, 0, cb, b);
        Assert.Equal(a, b);
        mapped.Forward([7], ids.Length, ca, a);
        copied.Forward([7], ids.Length, cb, b);
        Assert.Equal(a, b);
    }

    /// <summary>Element (r, c) straight from the file's bit stream and bf16 tables.</summary>
    private static float WeightAt(string dir, string module, int bits, int gs, int r, int c)
    {
        using SafetensorsFile f = SafetensorsFile.Open(Path.Combine(dir, "model.safetensors"));
        ReadOnlySpan<byte> codes = f.GetBytes(module + ".weight");
        float[] scales = f.ReadFloats(module + ".scales"), biases = f.ReadFloats(module + ".biases");
        int cols = (int)(f.GetInfo(module + ".weight").Shape[1] * 32 / bits), groups = cols / gs;
        fixed (byte* p = codes)
        {
            int code = ModelWeights.PackedCode(p + (long)r * cols * bits / 8, bits, c);
            return scales[r * groups + c / gs] * code + biases[r * groups + c / gs];
        }
    }

    [Theory]
    [InlineData("tiny-a-8bit", "model.embed_tokens", 8, 64)]
    [InlineData("tiny-b-6bit", "lm_head", 6, 32)]
    public void The_reference_quantizer_writes_the_same_bytes_as_the_python_converter(string name, string module, int bits, int gs)
    {
        string golden = GoldenCase.Dir(name[..6]);
        ModelDirectory src = ModelDirectory.Open(golden);
        float[] w = src.WeightFiles.Select(SafetensorsFile.Open).Select(f =>
        {
            using (f)
            {
                return f.Contains(module + ".weight") ? f.ReadFloats(module + ".weight") : null;
            }
        }).Single(a => a is not null)!;
        using SafetensorsFile mlx = SafetensorsFile.Open(Path.Combine(Fixture(name), "model.safetensors"));
        int cols = (int)(mlx.GetInfo(module + ".weight").Shape[1] * 32 / bits), rows = w.Length / cols, groups = cols / gs;
        var codes = new byte[(long)rows * cols * bits / 8];
        var scales = new ushort[rows * groups];
        var biases = new ushort[rows * groups];
        fixed (float* pw = w)
        fixed (byte* pc = codes)
        fixed (ushort* ps = scales, pb = biases)
        {
            for (int r = 0; r < rows; r++)
            {
                QuantScalar.QuantizeRowAffine(pw + (long)r * cols, cols, bits, gs, pc + (long)r * cols * bits / 8, ps + r * groups, pb + r * groups);
            }
        }

        Assert.True(mlx.GetBytes(module + ".weight").SequenceEqual(codes));
        Assert.True(mlx.GetBytes(module + ".scales").SequenceEqual(System.Runtime.InteropServices.MemoryMarshal.AsBytes(scales.AsSpan())));
        Assert.True(mlx.GetBytes(module + ".biases").SequenceEqual(System.Runtime.InteropServices.MemoryMarshal.AsBytes(biases.AsSpan())));
    }

    public static TheoryData<string, int, int> WidthCases() => new()
    {
        { "tiny-a", 2, 32 },
        { "tiny-b", 2, 128 },
        { "tiny-a", 3, 32 },
        { "tiny-b", 3, 32 },
        { "tiny-b", 4, 128 },
        { "tiny-a", 6, 64 },
        { "tiny-b", 8, 32 },
    };

    /// <summary>Every bit width and group size against the same weights dequantized into a float32 directory.</summary>
    [Theory, MemberData(nameof(WidthCases))]
    public void Every_width_matches_its_dequantized_float32_directory(string golden, int bits, int groupSize)
    {
        using var dir = new TempDir();
        MlxTestModels.Write(GoldenCase.Dir(golden), dir.File("mlx"), bits, groupSize, dir.File("f32"));
        using Qwen3Model q = Qwen3Model.Load(dir.File("mlx"), FloatPath);
        using Qwen3Model f = Qwen3Model.Load(dir.File("f32"), threadCount: 2);
        Qwen3LayerWeights l0 = q.Weights.Layers[0];
        Assert.Equal(DType.Affine, (groupSize == 128 ? l0.DownProj : l0.GateProj).DType);   // tiny-b's down_proj has 256 columns
        var a = new float[q.VocabSize];
        var b = new float[q.VocabSize];
        foreach (GoldenCase c in GoldenCase.LoadAll(golden).Where(c => c.InputIds.Length is 5 or 64))
        {
            using KvCache ca = q.CreateCache(512);
            using KvCache cb = f.CreateCache(512);
            q.Forward(c.InputIds, 0, ca, a);
            f.Forward(c.InputIds, 0, cb, b);
            (float diff, int at) = GoldenModelTests.MaxAbsDiff(a, b);
            Assert.True(diff <= 1e-3f, $"{golden} {bits}-bit g{groupSize} prefill of {c.InputIds.Length}: |Δ| {diff} at {at}");
            q.Forward([c.Greedy[0]], c.InputIds.Length, ca, a);
            f.Forward([c.Greedy[0]], c.InputIds.Length, cb, b);
            (diff, at) = GoldenModelTests.MaxAbsDiff(a, b);
            Assert.True(diff <= 1e-3f, $"{golden} {bits}-bit g{groupSize} decode: |Δ| {diff} at {at}");
        }
    }

    // ------------------------------------------------------------------ malformed directories

    private static ModelFormatException LoadFails(string dir, params string[] fragments)
    {
        var e = Assert.Throws<ModelFormatException>(() => { using ModelWeights w = ModelWeights.Load(dir); });
        foreach (string f in fragments)
        {
            Assert.Contains(f, e.Message);
        }

        return e;
    }

    private static JsonObject Quant(JsonNode c) => (JsonObject)c["quantization"]!;

    [Fact]
    public void Unsupported_settings_in_config_are_clear_errors()
    {
        using var dir = new TempDir();
        string src = Fixture("tiny-a-8bit");
        LoadFails(MlxTestModels.EditedCopy(src, dir.File("bits5"), config: c => Quant(c)["bits"] = 5), "5-bit", "supported: 2, 3, 4, 6, 8");
        LoadFails(MlxTestModels.EditedCopy(src, dir.File("g48"), config: c => Quant(c)["group_size"] = 48), "group size 48");
        LoadFails(MlxTestModels.EditedCopy(src, dir.File("mxfp4"), config: c => Quant(c)["mode"] = "mxfp4"), "'mxfp4'", "affine");
        LoadFails(MlxTestModels.EditedCopy(src, dir.File("override"), config: c => Quant(c)["model.layers.0.mlp.up_proj"] = new JsonObject { ["bits"] = 7, ["group_size"] = 64 }),
            "model.layers.0.mlp.up_proj.bits", "7-bit");
        LoadFails(MlxTestModels.EditedCopy(src, dir.File("gptq"), config: c =>
        {
            c.AsObject().Remove("quantization");
            c["quantization_config"] = new JsonObject { ["quant_method"] = "gptq", ["bits"] = 4, ["group_size"] = 128 };
        }), "'gptq'");
        LoadFails(MlxTestModels.EditedCopy(src, dir.File("noquant"), config: c =>
        {
            c.AsObject().Remove("quantization");
            c.AsObject().Remove("quantization_config");
        }), "U32", "no 'quantization' section");
        LoadFails(MlxTestModels.EditedCopy(src, dir.File("false"), config: c =>
        {
            Quant(c)["model.layers.0.mlp.up_proj"] = false;
            c.AsObject().Remove("quantization_config");
        }), "model.layers.0.mlp.up_proj", "unquantized");
        LoadFails(MlxTestModels.EditedCopy(src, dir.File("bits4"), config: c =>
        {
            Quant(c)["bits"] = 4;
            c.AsObject().Remove("quantization_config");
        }), "model.embed_tokens.weight", "[1024, 8]");
    }

    [Fact]
    public void Malformed_tensors_are_clear_errors()
    {
        using var dir = new TempDir();
        string src = Fixture("tiny-a-8bit");
        // the same bytes, another shape: [128, 1] scales as [1, 128]
        LoadFails(MlxTestModels.EditedCopy(src, dir.File("shape"), header: h => h["model.layers.0.self_attn.q_proj.scales"]!["shape"] = new JsonArray(1, 128)),
            "model.layers.0.self_attn.q_proj.scales", "[128, 1]");
        LoadFails(MlxTestModels.EditedCopy(src, dir.File("missing"), header: h =>
        {
            JsonNode e = h["model.layers.1.mlp.up_proj.biases"]!;
            h.Remove("model.layers.1.mlp.up_proj.biases");
            h["model.layers.1.mlp.up_proj.offsets"] = e;
        }), "model.layers.1.mlp.up_proj.biases", "missing tensor");
        LoadFails(MlxTestModels.EditedCopy(src, dir.File("dtypes"), header: h => h["model.layers.0.mlp.gate_proj.biases"]!["dtype"] = "F16"),
            "model.layers.0.mlp.gate_proj.biases", "must match");
        LoadFails(MlxTestModels.EditedCopy(src, dir.File("i32"), header: h => h["model.layers.0.mlp.gate_proj.scales"]!["dtype"] = "I32"), "I32");
    }

    [Theory]
    [InlineData("tiny-a-8bit")]
    [InlineData("tiny-a-4bit-mixed")]
    [InlineData("tiny-b-6bit")]      // 6-bit codes are widened at load (not the file's bytes): read through the mapping
    public void Load_RepackReadFromTheFilesInChunksOf8Rows_EqualsOneRepackOfTheMappedMatrix(string fixture)
    {
        // The repack reads each chunk's codes, scales and biases from the file (pread) into one reused buffer; chunks of 8
        // rows split every matrix, so each chunk's rows must land in their own group.
        using ModelWeights mapped = ModelWeights.Load(Fixture(fixture), WeightPlacement.Mapped, layout: QuantLayout.Rows);
        ModelWeights.RepackChunkRowsOnThisThread = 8;
        try
        {
            using ModelWeights repacked = ModelWeights.Load(Fixture(fixture), WeightPlacement.Mapped, layout: QuantLayout.Interleaved8);
            WeightView[] Matrices(ModelWeights w) => [.. w.Layers.SelectMany(l => l.Matrices), w.EmbedTokens, w.LmHead];
            int compared = 0;
            foreach (var (m, r) in Matrices(mapped).Zip(Matrices(repacked)))
            {
                if (QuantMatMul.AffineGroupLayoutOf(m) is not { } layout)
                {
                    continue;
                }

                Assert.Equal(layout, r.DType);
                Assert.True(m.RowCount > 8);   // more than one chunk
                byte[] expected = new byte[QuantMatMul.RepackedBytesAffineX8(m.Bits, m.GroupSize, m.RowCount, m.ColCount)];
                fixed (byte* e = expected)
                {
                    QuantMatMul.RepackAffineX8(m, 0, m.RowCount, e);
                }

                Assert.True(expected.AsSpan().SequenceEqual(new ReadOnlySpan<byte>(r.Data, expected.Length)));
                compared++;
            }

            Assert.True(compared > 0);
        }
        finally
        {
            ModelWeights.RepackChunkRowsOnThisThread = 0;
        }
    }
}
