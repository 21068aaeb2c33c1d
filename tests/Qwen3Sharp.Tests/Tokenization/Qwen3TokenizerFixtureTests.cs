using Qwen3Sharp.Tokenization;
using static Qwen3Sharp.Tests.Tokenization.TokenizerTestData;

namespace Qwen3Sharp.Tests.Tokenization;

public class Qwen3TokenizerFixtureTests
{
    [Fact]
    public void Fixtures_Loaded_CoverEveryCategory()
    {
        string[] categories = Cases.Encode.Select(c => c.Category).Distinct().ToArray();
        Assert.True(Cases.Encode.Length >= 400, $"only {Cases.Encode.Length} encode cases");
        foreach (string expected in new[] { "english", "digits", "whitespace", "code", "multilingual", "emoji", "nfc", "added-tokens", "surrogates", "long", "random" })
            Assert.Contains(expected, categories);
        Assert.Contains(Cases.Encode, c => c.Category == "long" && c.Text.Length == 20_000);
    }

    [Fact]
    public void Encode_EveryFixtureText_MatchesTransformersJs()
    {
        var failures = new List<string>();
        foreach (EncodeCase c in Cases.Encode)
        {
            int[] actual = Tokenizer.Encode(c.Text);
            if (!actual.AsSpan().SequenceEqual(c.Ids))
            {
                int at = actual.AsSpan().CommonPrefixLength(c.Ids);
                failures.Add($"[{c.Category}] {Show(c.Text)}: first difference at token {at}\n  expected {Show(c.Ids[at..])}\n  actual   {Show(actual[at..])}");
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count}/{Cases.Encode.Length} cases differ from {Cases.Reference}:\n" + string.Join("\n", failures.Take(15)));
    }

    [Fact]
    public void Encode_IntoList_AppendsSameIdsAsArrayOverload()
    {
        var ids = new List<int> { -7 };
        foreach (EncodeCase c in Cases.Encode.Take(50)) Tokenizer.Encode(c.Text, ids);
        int[] expected = [-7, .. Cases.Encode.Take(50).SelectMany(c => c.Ids)];
        Assert.Equal(expected, ids);
    }

    [Fact]
    public void Decode_EveryFixtureIds_MatchesTransformersJs()
    {
        var failures = new List<string>();
        foreach (EncodeCase c in Cases.Encode)
        {
            string plain = Tokenizer.Decode(c.Ids);
            string skipped = Tokenizer.Decode(c.Ids, skipSpecialTokens: true);
            if (plain != c.Decoded) failures.Add($"[{c.Category}] decode {Show(c.Ids)}: expected {Show(c.Decoded)}, got {Show(plain)}");
            if (skipped != c.DecodedSkipSpecial) failures.Add($"[{c.Category}] decode(skip) {Show(c.Ids)}: expected {Show(c.DecodedSkipSpecial)}, got {Show(skipped)}");
        }
        foreach (DecodeCase c in Cases.Decode)
        {
            string plain = Tokenizer.Decode(c.Ids);
            string skipped = Tokenizer.Decode(c.Ids, skipSpecialTokens: true);
            if (plain != c.Text) failures.Add($"[random ids] decode {Show(c.Ids)}: expected {Show(c.Text)}, got {Show(plain)}");
            if (skipped != c.TextSkipSpecial) failures.Add($"[random ids] decode(skip) {Show(c.Ids)}: expected {Show(c.TextSkipSpecial)}, got {Show(skipped)}");
        }
        Assert.True(failures.Count == 0, $"{failures.Count} decodes differ:\n" + string.Join("\n", failures.Take(15)));
    }

    [Fact]
    public void DecodeOfEncode_WellFormedText_ReturnsNfcOfText()
    {
        foreach (EncodeCase c in Cases.Encode.Where(c => c.Category != "surrogates"))
            Assert.Equal(Nfc.Normalize(c.Text), Tokenizer.Decode(Tokenizer.Encode(c.Text)));
    }

    [Fact]
    public void DecodeOfEncode_LoneSurrogates_BecomeReplacementCharacter()
    {
        Assert.Equal("a\uFFFDb\uFFFD", Tokenizer.Decode(Tokenizer.Encode("a\uD800b\uDC00")));
    }

    [Fact]
    public void DecodeOfEncode_RandomWellFormedStrings_RoundTrip()
    {
        var random = new Random(1234);
        for (int i = 0; i < 300; i++)
        {
            var sb = new System.Text.StringBuilder();
            for (int n = random.Next(1, 60); n > 0; n--)
            {
                int cp = random.Next(4) switch
                {
                    0 => random.Next(0x20, 0x7F),
                    1 => random.Next(0x80, 0x3000),
                    2 => random.Next(0x3000, 0xD800),
                    _ => random.Next(0x10000, 0x30000),
                };
                sb.Append(char.ConvertFromUtf32(cp));
            }
            string text = sb.ToString();
            Assert.Equal(Nfc.Normalize(text), Tokenizer.Decode(Tokenizer.Encode(text)));
        }
    }
}
