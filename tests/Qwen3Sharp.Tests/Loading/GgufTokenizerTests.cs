using System.IO.Compression;
using System.Text.Json;
using Qwen3Sharp.Chat;
using Qwen3Sharp.Loading;
using Qwen3Sharp.Tests.TestModels;
using Qwen3Sharp.Tokenization;

namespace Qwen3Sharp.Tests.Loading;

/// <summary>
/// Fixtures/gguf/qwen3-vocab.gguf.gz: the tokenizer metadata that hf_to_gguf.py (convert_hf_to_gguf.py's writer)
/// stores for the real Qwen3 tokenizer (tools/fixtures/gguf/vocab_only_gguf.py). Read back, it must tokenize every
/// corpus case exactly as the tokenizer.json it came from (and as transformers.js, whose ids the corpus holds).
/// </summary>
public sealed class GgufTokenizerTests
{
    private static string Fixtures => Path.Combine(AppContext.BaseDirectory, "Fixtures");

    [Fact]
    public void Tokenizer_and_template_from_gguf_metadata_equal_the_hugging_face_files()
    {
        using var dir = new TempDir();
        string path = dir.File("vocab.gguf");
        using (var gz = new GZipStream(File.OpenRead(Path.Combine(Fixtures, "gguf", "qwen3-vocab.gguf.gz")), CompressionMode.Decompress))
        using (FileStream o = File.Create(path))
        {
            gz.CopyTo(o);
        }

        Qwen3Tokenizer fromGguf;
        string? template;
        using (GgufFile f = GgufFile.Open(path))
        {
            var (json, config) = GgufModel.ReadTokenizer(f);
            fromGguf = Qwen3Tokenizer.FromJson(json, config);
            template = GgufModel.ReadChatTemplate(f);
        }

        Qwen3Tokenizer fromHf = Qwen3Tokenizer.Load(Path.Combine(Fixtures, "qwen3-tokenizer"));
        Assert.Equal(fromHf.EosTokenId, fromGguf.EosTokenId);
        Assert.Equal(fromHf.PadTokenId, fromGguf.PadTokenId);
        Assert.Equal(ChatTemplate.Load(Path.Combine(Fixtures, "qwen3-tokenizer"))!.Source, template);

        using JsonDocument corpus = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Fixtures, "tokenizer", "fixtures.json")));
        int cases = 0;
        foreach (JsonElement c in corpus.RootElement.GetProperty("encode").EnumerateArray())
        {
            string text = c.TryGetProperty("text", out JsonElement t) ? t.GetString()!
                : new string(c.GetProperty("textUtf16").EnumerateArray().Select(u => (char)u.GetInt32()).ToArray());   // lone surrogates
            int[] ids = c.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            Assert.Equal(ids, fromGguf.Encode(text));
            Assert.Equal(fromHf.Decode(ids), fromGguf.Decode(ids));
            Assert.Equal(fromHf.Decode(ids, skipSpecialTokens: true), fromGguf.Decode(ids, skipSpecialTokens: true));
            cases++;
        }

        // every added token, alone: GGUF keeps no special flag (the converter stores every <|...|> token as CONTROL,
        // the FIM markers included, which tokenizer.json marks non-special); skip_special_tokens must still agree
        int[] added = [.. Enumerable.Range(151643, 151669 - 151643)];   // <|endoftext|> … </think>
        Assert.Equal(fromHf.Decode(added, skipSpecialTokens: true), fromGguf.Decode(added, skipSpecialTokens: true));
        Assert.Contains("<|fim_prefix|>", fromGguf.Decode(added, skipSpecialTokens: true));

        string prose = File.ReadAllText(Path.Combine(Fixtures, "tokenizer", "prose-gpl3.txt"));
        Assert.Equal(fromHf.Encode(prose), fromGguf.Encode(prose));
        Assert.True(cases > 400, $"{cases} corpus cases");
    }
}
