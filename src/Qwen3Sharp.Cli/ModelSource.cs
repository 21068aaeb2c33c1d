using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;
using Qwen3Sharp.Cli.Commands;
using Qwen3Sharp.Hub;
using Qwen3Sharp.Loading;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Cli;

/// <summary>
/// Turns <c>--model</c> into a directory. The default model (<see cref="Qwen3Cli.DefaultModel"/>) is taken from the
/// Hugging Face cache when it is there and never downloaded implicitly: without it the embedded demo model is used,
/// with a loud notice, so the first command of the README works on a machine without internet. Any other hub id
/// is pulled first when missing.
/// </summary>
internal static class ModelSource
{
    public static async Task<string> ResolveAsync(string model, CliContext context, CancellationToken ct)
    {
        ModelLocator locator = ModelLocator.FromEnvironment(context.GetEnvironmentVariable);
        if (model == Qwen3Cli.DefaultModel)
        {
            if (locator.TryResolveLocal(model) is { } cached)
            {
                return cached;
            }

            string demo = DemoModel.Ensure(context);
            await context.Error.WriteLineAsync(DemoModel.Notice);
            return demo;
        }

        return await context.ResolveModelAsync(model, ct);
    }
}

/// <summary>
/// The embedded demo model: a tiny Qwen3 (3 layers, hidden 128, the full 151,936-token vocabulary, the real tokenizer
/// and chat template) trained by tools/demo-model on conversations that greet and say what it is, think in
/// &lt;think&gt; and answer, work small arithmetic word problems and call tools (get_weather, get_time and the like), in
/// English and Chinese; so far it has learned the greeting, the thinking switches, answers from tool results, tool
/// calls for the cities and tools it was trained on and for unseen Chinese cities (copied from the question), and most
/// held-out sums, not yet most held-out tool calls (v7: 281 of 400 held-out conversations right through qwen3 serve,
/// whose tool-call grammar keeps unseen tool names whole; 275 without it, v4 267). It is
/// carried compactly (only the embedding rows of the tokens it was trained on; every other token's row is generated
/// from its id by <see cref="UnusedTokenRows"/>, or, in assets before v5, is one shared row) and expanded into a normal
/// Hugging Face directory on first use.
/// </summary>
internal static class DemoModel
{
    public const string Name = "qwen3sharp-demo-tiny";
    private const int Version = 7;  // v1 was the random-weight model, v2 the first trained one, v3 44/100 held-out, v4 67/100 (v5 and v6 were not shipped): a new directory for new weights, so old copies are not reused
    private const string Resource = "demo-model/demo-model.safetensors";

    public static readonly string Notice = $"""

        ==================================================================================================
          No --model given and Qwen/Qwen3-1.7B is not in the Hugging Face cache: using the EMBEDDED DEMO
          MODEL "{Name}-v{Version}", a tiny model trained only to show the engine. It greets, says what
          it is, follows the thinking switches, works small sums and calls get_weather / get_time, in
          English and Chinese, for the cities it was trained on; it copies unseen Chinese city names
          from the question, but unseen English ones and unseen tool names are unreliable (281 of 400
          held-out tests right). Nothing else. Try tools in the terminal: qwen3 chat --tools FILE.
          Get the real model:  qwen3 pull Qwen/Qwen3-1.7B
          then run again:      qwen3 serve          (or: qwen3 serve --model /path/to/Qwen3-1.7B)
        ==================================================================================================

        """;

    /// <summary>The demo model's directory, written on first use.</summary>
    public static string Ensure(CliContext context)
    {
        string root = context.GetEnvironmentVariable("QWEN3SHARP_HOME")
            ?? Path.Combine(context.GetEnvironmentVariable("XDG_CACHE_HOME")
                ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "qwen3sharp");
        string directory = Path.Combine(root, $"{Name}-v{Version}");
        if (ModelFile.IsFile(Path.Combine(directory, ModelDirectory.SingleFileName)))
        {
            return directory;
        }

        string staging = directory + ".tmp-" + Environment.ProcessId;
        try
        {
            Write(staging);
            Directory.CreateDirectory(root);
            Directory.Move(staging, directory);
        }
        catch (IOException) when (ModelFile.IsFile(Path.Combine(directory, ModelDirectory.SingleFileName)))
        {
            // another process finished first: its copy is identical
        }
        finally
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }
        }

        return directory;
    }

    /// <summary>Expands the embedded compact checkpoint into a Hugging Face model directory at <paramref name="directory"/>.</summary>
    internal static void Write(string directory)
    {
        using Stream resource = typeof(DemoModel).Assembly.GetManifestResourceStream(Resource)
            ?? throw new InvalidOperationException($"the embedded demo model {Resource} is missing from this build");
        byte[] file = new byte[resource.Length];
        resource.ReadExactly(file);
        Write(directory, file, Resource);
    }

    /// <summary>
    /// Expands a compact checkpoint (<paramref name="file"/>, the bytes of a file like the embedded one, named
    /// <paramref name="source"/> in errors) into a Hugging Face model directory at <paramref name="directory"/>.
    /// </summary>
    internal static void Write(string directory, byte[] file, string source)
    {
        Directory.CreateDirectory(directory);
        EmbeddedTokenizer.WriteTo(directory);

        // safetensors: u64 header length, JSON header (name -> dtype, shape, data_offsets; __metadata__), data.
        int headerLength = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(file));
        using JsonDocument header = JsonDocument.Parse(file.AsMemory(8, headerLength));
        int dataStart = 8 + headerLength;
        JsonElement metadata = header.RootElement.GetProperty("__metadata__");
        string configJson = metadata.GetProperty("config").GetString()!;
        Qwen3Config config = Qwen3Config.Parse(configJson, source);
        UnusedTokenRows? generated = metadata.TryGetProperty("unused_rows", out JsonElement g)
            ? UnusedTokenRows.Parse(g.GetString()!, source)
            : null;
        File.WriteAllText(Path.Combine(directory, Qwen3Config.FileName), configJson + "\n");
        ModelSynthesizer.WriteGenerationConfig(Path.Combine(directory, GenerationConfig.FileName), config);

        ReadOnlySpan<byte> Data(string name) => Tensor(header.RootElement.GetProperty(name), file, dataStart);
        ReadOnlySpan<int> usedIds = MemoryMarshal.Cast<byte, int>(Data("used_token_ids"));
        var entries = new List<SafetensorsEntry>();
        foreach (JsonProperty t in header.RootElement.EnumerateObject())
        {
            if (t.Name is "__metadata__" or "used_token_ids")
            {
                continue;
            }

            long[] shape = [.. t.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64())];
            if (t.Name == "model.embed_tokens.weight")
            {
                shape[0] = config.VocabSize;
            }

            entries.Add(new SafetensorsEntry(t.Name, DType.F32, shape));
        }

        using var writer = new SafetensorsWriter(Path.Combine(directory, ModelDirectory.SingleFileName), entries,
            new Dictionary<string, string> { ["format"] = "pt" });
        foreach (SafetensorsEntry entry in entries)
        {
            ReadOnlySpan<byte> data = Data(entry.Name);
            if (entry.Name != "model.embed_tokens.weight")
            {
                writer.WriteTensor(data);
                continue;
            }

            // Row k of the compact table is token usedIds[k]. Every other token gets its generated row, or (before v5)
            // the table's one extra last row, which they all share.
            int rowBytes = config.HiddenSize * sizeof(float);
            int expectedRows = usedIds.Length + (generated is null ? 1 : 0);
            if (data.Length != expectedRows * rowBytes)
            {
                throw new ModelFormatException(source, entry.Name,
                    $"holds {data.Length / rowBytes} rows of {config.HiddenSize}, expected {expectedRows} ({usedIds.Length} used tokens"
                    + (generated is null ? " and the shared row)" : "; the others are generated)"));
            }

            int unused = generated is null ? usedIds.Length : -1;
            var rowOf = new int[config.VocabSize];
            Array.Fill(rowOf, unused);
            for (int k = 0; k < usedIds.Length; k++)
            {
                rowOf[usedIds[k]] = k;
            }

            var row = new float[config.HiddenSize];
            for (int id = 0; id < config.VocabSize; id++)
            {
                if (rowOf[id] >= 0)
                {
                    writer.WriteTensor(data.Slice(rowOf[id] * rowBytes, rowBytes));
                    continue;
                }

                generated!.Fill(id, row);
                writer.WriteTensor(MemoryMarshal.AsBytes(row.AsSpan()));
            }
        }

        writer.Complete();
    }

    private static ReadOnlySpan<byte> Tensor(JsonElement entry, byte[] file, int dataStart)
    {
        JsonElement offsets = entry.GetProperty("data_offsets");
        long begin = offsets[0].GetInt64(), end = offsets[1].GetInt64();
        return file.AsSpan(checked((int)(dataStart + begin)), checked((int)(end - begin)));
    }
}

/// <summary>
/// The embedding rows of the tokens the demo model was never trained on: fixed pseudo-random values generated from the
/// token id, the twin of tools/demo-model/unused_rows.py (exact: integer arithmetic and a power-of-two scale). Value j
/// of token id's row is <c>(k(id, j) + k(sharedId, j)) * 2^-scaleLog2</c> (the second term only with a shared id), where
/// <c>k(i, j) = 2 * (z &gt;&gt; 53) - 2047</c>, z the (i * hidden + j + 1)-th output of SplitMix64 seeded with
/// <c>seed</c>: a random odd integer in [-2047, 2047] of the token's own, plus one that every unused row shares.
/// </summary>
internal sealed record UnusedTokenRows(ulong Seed, int ScaleLog2, ulong? SharedId)
{
    public const string Generator = "splitmix64-odd11";
    private const ulong Gamma = 0x9E3779B97F4A7C15;

    /// <summary>Reads the asset's <c>unused_rows</c> metadata: <c>{"generator": ..., "seed": ..., "scale_log2": ...}</c>.</summary>
    public static UnusedTokenRows Parse(string json, string source)
    {
        using JsonDocument doc = JsonDocument.Parse(json);
        JsonElement root = doc.RootElement;
        string? generator = root.TryGetProperty("generator", out JsonElement g) ? g.GetString() : null;
        if (generator != Generator)
        {
            throw new ModelFormatException(source, "unused_rows", $"generator '{generator}' is not the one this program knows ('{Generator}')");
        }

        int scaleLog2 = root.GetProperty("scale_log2").GetInt32();
        if (scaleLog2 is < 0 or > 60)
        {
            throw new ModelFormatException(source, "unused_rows", $"scale_log2 {scaleLog2} is out of range");
        }

        ulong? sharedId = root.TryGetProperty("shared_id", out JsonElement shared) && shared.ValueKind != JsonValueKind.Null
            ? shared.GetUInt64()
            : null;
        return new UnusedTokenRows(root.GetProperty("seed").GetUInt64(), scaleLog2, sharedId);
    }

    /// <summary>Writes token <paramref name="id"/>'s row into <paramref name="destination"/> (its length is the hidden size).</summary>
    public void Fill(int id, Span<float> destination)
    {
        float scale = MathF.ScaleB(1f, -ScaleLog2);
        ulong hidden = (ulong)destination.Length;
        for (int j = 0; j < destination.Length; j++)
        {
            int k = Odd(Seed, unchecked((ulong)id * hidden + (ulong)j + 1));
            if (SharedId is ulong shared)
            {
                k += Odd(Seed, unchecked(shared * hidden + (ulong)j + 1));
            }

            destination[j] = k * scale;  // |k| < 2^12: exact
        }
    }

    /// <summary>2 * (z &gt;&gt; 53) - 2047 for z the n-th output of SplitMix64(seed): an odd integer in [-2047, 2047].</summary>
    private static int Odd(ulong seed, ulong n)
    {
        ulong z = unchecked(seed + n * Gamma);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EB);
        z ^= z >> 31;
        return 2 * (int)(z >> 53) - 2047;
    }
}

/// <summary>The real Qwen3 tokenizer.json and tokenizer_config.json, carried inside this program as resources.</summary>
internal static class EmbeddedTokenizer
{
    /// <summary>Writes both files into <paramref name="directory"/> (created if needed).</summary>
    public static void WriteTo(string directory)
    {
        Directory.CreateDirectory(directory);
        foreach (string file in new[] { "tokenizer.json", "tokenizer_config.json" })
        {
            using Stream resource = typeof(EmbeddedTokenizer).Assembly.GetManifestResourceStream("qwen3-tokenizer/" + file)
                ?? throw new InvalidOperationException($"the embedded tokenizer file {file} is missing from this build");
            using FileStream output = File.Create(Path.Combine(directory, file));
            resource.CopyTo(output);
        }
    }
}
