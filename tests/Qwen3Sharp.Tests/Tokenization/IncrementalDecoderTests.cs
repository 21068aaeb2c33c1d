using Qwen3Sharp.Tokenization;
using static Qwen3Sharp.Tests.Tokenization.TokenizerTestData;

namespace Qwen3Sharp.Tests.Tokenization;

public class IncrementalDecoderTests
{
    private static string Stream(IncrementalDecoder decoder, ReadOnlySpan<int> ids, List<string>? chunks = null)
    {
        var sb = new System.Text.StringBuilder();
        foreach (int id in ids)
        {
            string chunk = decoder.Append(id);
            chunks?.Add(chunk);
            sb.Append(chunk);
        }
        string tail = decoder.Flush();
        chunks?.Add(tail);
        return sb.Append(tail).ToString();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Append_EveryFixture_ConcatenationEqualsDecode(bool skipSpecialTokens)
    {
        IncrementalDecoder decoder = Tokenizer.CreateIncrementalDecoder(skipSpecialTokens);
        IEnumerable<int[]> sequences = Cases.Encode.Select(c => c.Ids).Concat(Cases.Decode.Select(c => c.Ids));
        foreach (int[] ids in sequences)
            Assert.Equal(Tokenizer.Decode(ids, skipSpecialTokens), Stream(decoder, ids));
    }

    [Fact]
    public void Append_ChunksOfWellFormedText_NeverContainHalfACharacter()
    {
        IncrementalDecoder decoder = Tokenizer.CreateIncrementalDecoder();
        foreach (EncodeCase c in Cases.Encode.Where(c => c.Category is "emoji" or "multilingual" or "long" or "nfc" or "random"))
        {
            var chunks = new List<string>();
            Stream(decoder, c.Ids, chunks);
            foreach (string chunk in chunks)
            {
                Assert.DoesNotContain('\uFFFD', chunk); // nothing was cut into invalid pieces
                Assert.True(System.Text.Unicode.Utf8.FromUtf16(chunk, new byte[chunk.Length * 3], out _, out _, replaceInvalidSequences: false)
                    == System.Buffers.OperationStatus.Done, $"chunk {Show(chunk)} of {Show(c.Text)} is not well-formed UTF-16");
            }
        }
    }

    [Fact]
    public void Append_ByteTokensOfOneCjkCharacter_HoldsBackUntilComplete()
    {
        // '中' is E4 B8 AD: feed it as three single-byte tokens.
        int[] bytes = [.. new byte[] { 0xE4, 0xB8, 0xAD }.Select(b => Tokenizer.TokenToId(ByteAlphabet.CharOf(b).ToString())!.Value)];
        IncrementalDecoder decoder = Tokenizer.CreateIncrementalDecoder();
        Assert.Equal("", decoder.Append(bytes[0]));
        Assert.Equal("", decoder.Append(bytes[1]));
        Assert.Equal("中", decoder.Append(bytes[2]));
        Assert.Equal("", decoder.Flush());
    }

    [Fact]
    public void Flush_IncompleteCharacter_EmitsReplacementLikeDecode()
    {
        int e4 = Tokenizer.TokenToId(ByteAlphabet.CharOf(0xE4).ToString())!.Value;
        int b8 = Tokenizer.TokenToId(ByteAlphabet.CharOf(0xB8).ToString())!.Value;
        IncrementalDecoder decoder = Tokenizer.CreateIncrementalDecoder();
        Assert.Equal("", decoder.Append(e4));
        Assert.Equal("", decoder.Append(b8));
        Assert.Equal(Tokenizer.Decode([e4, b8]), decoder.Flush());
        Assert.Equal("\uFFFD", Tokenizer.Decode([e4, b8]));
    }

    [Fact]
    public void Append_AddedTokenAfterIncompleteCharacter_FlushesReplacementThenToken()
    {
        int e4 = Tokenizer.TokenToId(ByteAlphabet.CharOf(0xE4).ToString())!.Value;
        IncrementalDecoder decoder = Tokenizer.CreateIncrementalDecoder();
        decoder.Append(e4);
        Assert.Equal("\uFFFD<think>", decoder.Append(Tokenizer.ThinkStart!.Value));
    }

    [Fact]
    public void Append_SkippedSpecialTokenInsideCharacter_KeepsCharacterWhole()
    {
        int[] ids = Tokenizer.Encode("😀");
        Assert.True(ids.Length >= 1);
        int[] bytes = [.. System.Text.Encoding.UTF8.GetBytes("😀").Select(b => Tokenizer.TokenToId(ByteAlphabet.CharOf(b).ToString())!.Value)];
        int[] withSpecial = [bytes[0], bytes[1], Tokenizer.ImEnd!.Value, bytes[2], bytes[3]];
        Assert.Equal("😀", Tokenizer.Decode(withSpecial, skipSpecialTokens: true));
        Assert.Equal("😀", Stream(Tokenizer.CreateIncrementalDecoder(skipSpecialTokens: true), withSpecial));
        // F0 9F is one maximal invalid subpart (one U+FFFD); 98 and 80 are two stray continuation bytes.
        Assert.Equal("\uFFFD<|im_end|>\uFFFD\uFFFD", Tokenizer.Decode(withSpecial));
        Assert.Equal(Tokenizer.Decode(withSpecial), Stream(Tokenizer.CreateIncrementalDecoder(), withSpecial));
    }

    [Fact]
    public void Append_SpanOverload_WritesSameTextAsStringOverload()
    {
        EncodeCase c = Cases.Encode.First(x => x.Category == "long" && x.Text.Length == 20_000);
        IncrementalDecoder decoder = Tokenizer.CreateIncrementalDecoder();
        var buffer = new char[decoder.MaxCharsPerAppend];
        var sb = new System.Text.StringBuilder();
        foreach (int id in c.Ids) sb.Append(buffer, 0, decoder.Append(id, buffer));
        sb.Append(buffer, 0, decoder.Flush(buffer));
        Assert.Equal(Tokenizer.Decode(c.Ids), sb.ToString());
    }

    [Fact]
    public void Append_DestinationTooSmall_Throws()
    {
        IncrementalDecoder decoder = Tokenizer.CreateIncrementalDecoder();
        Assert.Throws<ArgumentException>(() => decoder.Append(0, new char[1]));
    }

    [Fact]
    public void Reset_AfterPartialCharacter_ForgetsHeldBytes()
    {
        int e4 = Tokenizer.TokenToId(ByteAlphabet.CharOf(0xE4).ToString())!.Value;
        IncrementalDecoder decoder = Tokenizer.CreateIncrementalDecoder();
        decoder.Append(e4);
        decoder.Reset();
        Assert.Equal("hi", Stream(decoder, Tokenizer.Encode("hi")));
    }

    [Fact]
    public void Append_RandomSplitsOfEmojiAndCjkBytes_ConcatenationEqualsDecode()
    {
        // Re-tokenize the UTF-8 of emoji/CJK text into random runs of byte tokens (ids that exist in the vocab),
        // so characters are split at every possible place.
        var random = new Random(7);
        string text = "👨‍👩‍👧‍👦🇺🇸👍🏽中文字符テスト한국어😀" + "𠀀𝐀";
        byte[] utf8 = System.Text.Encoding.UTF8.GetBytes(text);
        for (int trial = 0; trial < 200; trial++)
        {
            var ids = new List<int>();
            for (int i = 0; i < utf8.Length;)
            {
                int take = Math.Min(random.Next(1, 5), utf8.Length - i);
                // a run of bytes is a token only if the vocab has it; fall back to single bytes
                string run = string.Concat(utf8.AsSpan(i, take).ToArray().Select(b => ByteAlphabet.CharOf(b)));
                if (Tokenizer.TokenToId(run) is int id && !Tokenizer.IsAddedToken(id)) { ids.Add(id); i += take; }
                else { ids.Add(Tokenizer.TokenToId(ByteAlphabet.CharOf(utf8[i]).ToString())!.Value); i++; }
            }
            Assert.Equal(text, Tokenizer.Decode(ids.ToArray()));
            Assert.Equal(text, Stream(Tokenizer.CreateIncrementalDecoder(), ids.ToArray()));
        }
    }
}
