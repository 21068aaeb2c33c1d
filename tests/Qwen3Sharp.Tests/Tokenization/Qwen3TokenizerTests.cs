using Qwen3Sharp.Tokenization;
using static Qwen3Sharp.Tests.Tokenization.TokenizerTestData;

namespace Qwen3Sharp.Tests.Tokenization;

public class Qwen3TokenizerTests
{
    [Fact]
    public void VocabSize_Qwen3_Is151669()
    {
        Assert.Equal(151_669, Tokenizer.VocabSize);
        Assert.Equal(26, Tokenizer.AddedTokens.Count);
    }

    [Fact]
    public void SpecialTokenProperties_Qwen3_HaveOfficialIds()
    {
        Assert.Equal(151643, Tokenizer.EndOfText);
        Assert.Equal(151644, Tokenizer.ImStart);
        Assert.Equal(151645, Tokenizer.ImEnd);
        Assert.Equal(151657, Tokenizer.ToolCallStart);
        Assert.Equal(151658, Tokenizer.ToolCallEnd);
        Assert.Equal(151667, Tokenizer.ThinkStart);
        Assert.Equal(151668, Tokenizer.ThinkEnd);
        Assert.Equal(151645, Tokenizer.EosTokenId);
        Assert.Equal(151643, Tokenizer.PadTokenId);
    }

    [Fact]
    public void TokenBytes_AreTheRawBytes_PartialCharactersIncluded()
    {
        int[] ids = Tokenizer.Encode("𒀀");   // U+12000: four UTF-8 bytes the vocabulary has no single token for
        Assert.True(ids.Length > 1);
        Assert.Equal("𒀀"u8.ToArray(), ids.SelectMany(Tokenizer.TokenBytes).ToArray());
        Assert.Contains(ids, id => Tokenizer.Decode([id]) == "\uFFFD");   // alone, a part decodes to U+FFFD; its bytes stay exact
        Assert.Equal("<think>"u8.ToArray(), Tokenizer.TokenBytes(Tokenizer.ThinkStart!.Value));
        Assert.Equal(" world"u8.ToArray(), Tokenizer.TokenBytes(Tokenizer.TokenToId("Ġworld")!.Value));
        Assert.Empty(Tokenizer.TokenBytes(-1));
    }

    [Fact]
    public void IsSpecial_AddedTokens_FollowSpecialFlag()
    {
        Assert.True(Tokenizer.IsSpecial(151643));
        Assert.True(Tokenizer.IsSpecial(151645));
        Assert.False(Tokenizer.IsSpecial(151667)); // <think> is added but not special
        Assert.True(Tokenizer.IsAddedToken(151667));
        Assert.False(Tokenizer.IsSpecial(9707));
        Assert.False(Tokenizer.IsSpecial(-1));
        Assert.False(Tokenizer.IsSpecial(200_000));
    }

    [Fact]
    public void TokenToId_VocabAndAddedTokens_RoundTripThroughIdToToken()
    {
        Assert.Equal(1879, Tokenizer.TokenToId("Ġworld"));
        Assert.Equal("Ġworld", Tokenizer.IdToToken(1879));
        Assert.Equal(151645, Tokenizer.TokenToId("<|im_end|>"));
        Assert.Equal("<|im_end|>", Tokenizer.IdToToken(151645));
        Assert.Null(Tokenizer.TokenToId("no such token"));
        Assert.Null(Tokenizer.IdToToken(151_669));
        Assert.Null(Tokenizer.IdToToken(-1));
    }

    [Fact]
    public void Encode_ChatMarkup_MatchesAddedTokensAsSingleIds()
    {
        int[] ids = Tokenizer.Encode("<|im_start|>user\nhi<|im_end|>");
        Assert.Equal(151644, ids[0]);
        Assert.Equal(151645, ids[^1]);
        Assert.DoesNotContain(151644, ids[1..^1]);
    }

    [Fact]
    public void Encode_ParseAddedTokensFalse_EncodesMarkupAsText()
    {
        var ids = new List<int>();
        Tokenizer.Encode("<|im_end|><think>", ids, parseAddedTokens: false);
        Assert.DoesNotContain(151645, ids);
        Assert.DoesNotContain(151667, ids);
        Assert.Equal("<|im_end|><think>", Tokenizer.Decode(ids.ToArray()));
    }

    [Fact]
    public void Decode_UnknownIds_AreSkipped()
    {
        int[] hello = Tokenizer.Encode("hello");
        Assert.Equal("hello", Tokenizer.Decode([-5, .. hello, 151_700, 151_935]));
    }

    [Fact]
    public void Decode_SkipSpecialTokens_KeepsNonSpecialAddedTokens()
    {
        int[] ids = Tokenizer.Encode("<|im_start|>assistant\n<think>\nx\n</think>\n\nok<|im_end|>");
        Assert.Equal("assistant\n<think>\nx\n</think>\n\nok", Tokenizer.Decode(ids, skipSpecialTokens: true));
    }

    [Fact]
    public void Encode_ConcurrentCallers_GetSameIds()
    {
        string[] texts = Cases.Encode.Select(c => c.Text).ToArray();
        int[][] expected = Cases.Encode.Select(c => c.Ids).ToArray();
        Parallel.For(0, 4, _ =>
        {
            for (int i = 0; i < texts.Length; i++) Assert.Equal(expected[i], Tokenizer.Encode(texts[i]));
        });
    }

    [Fact]
    public void Load_MissingDirectory_ThrowsTokenizerFormatException()
    {
        var e = Assert.Throws<TokenizerFormatException>(() => Qwen3Tokenizer.Load(Path.Combine(Path.GetTempPath(), "no-such-model-dir")));
        Assert.EndsWith("tokenizer.json", e.File);
    }

    [Fact]
    public void FromJson_WithoutConfig_HasNoEosButSameIds()
    {
        string json = File.ReadAllText(Path.Combine(TokenizerDirectory, "tokenizer.json"));
        Qwen3Tokenizer bare = Qwen3Tokenizer.FromJson(json);
        Assert.Null(bare.EosTokenId);
        Assert.Null(bare.PadTokenId);
        Assert.Equal(151645, bare.ImEnd);
        Assert.True(bare.IsSpecial(151645));
        Assert.Equal(Tokenizer.Encode("Hello <|im_end|> 世界"), bare.Encode("Hello <|im_end|> 世界"));
    }

    [Fact]
    public void FromJson_MalformedJson_ThrowsTokenizerFormatException()
    {
        Assert.Throws<TokenizerFormatException>(() => Qwen3Tokenizer.FromJson("{ not json"));
    }

    [Fact]
    public void FromJson_OtherPreTokenizerRegex_ThrowsNamingTheField()
    {
        string json = """
        {"normalizer":{"type":"NFC"},
         "pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\\s+"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"use_regex":false}]},
         "decoder":{"type":"ByteLevel"},
         "model":{"type":"BPE","vocab":{},"merges":[]}}
        """;
        var e = Assert.Throws<TokenizerFormatException>(() => Qwen3Tokenizer.FromJson(json));
        Assert.Contains("pre_tokenizer.pretokenizers[0].pattern.Regex", e.Message);
    }

    [Fact]
    public void FromJson_MergeWithUnknownToken_ThrowsNamingTheMerge()
    {
        string vocab = "{" + string.Join(",", Enumerable.Range(0, 256).Select(b => $"\"{Escape(ByteAlphabet.CharOf((byte)b))}\":{b}")) + "}";
        string json = $$$"""
        {"normalizer":null,
         "pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":{{{System.Text.Json.JsonSerializer.Serialize(PreTokenizer.Pattern)}}}},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"use_regex":false}]},
         "decoder":{"type":"ByteLevel"},
         "model":{"type":"BPE","vocab":{{{vocab}}},"merges":[["a","b"]]}}
        """;
        var e = Assert.Throws<TokenizerFormatException>(() => Qwen3Tokenizer.FromJson(json));
        Assert.Contains("model.merges[0]", e.Message);

        static string Escape(char c) => c is '"' or '\\' ? "\\" + c : c.ToString();
    }
}
