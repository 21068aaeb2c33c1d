using Qwen3Sharp.Tokenization;
using static Qwen3Sharp.Tests.Tokenization.TokenizerTestData;

namespace Qwen3Sharp.Tests.Tokenization;

public class NfcTests
{
    [Fact]
    public void Normalize_FixtureStrings_MatchJavaScriptNormalize()
    {
        Assert.NotEmpty(Cases.Nfc);
        foreach (NfcCase c in Cases.Nfc)
        {
            string actual = Nfc.Normalize(c.Input);
            Assert.True(actual == c.Output, $"NFC({Show(c.Input)}): expected {Show(c.Output)}, got {Show(actual)}");
        }
    }

    [Theory]
    [InlineData("e\u0301", "\u00E9")]
    [InlineData("\u212B", "\u00C5")]
    [InlineData("\u1100\u1161\u11A8", "\uAC01")]
    [InlineData("e\u0302\u0323", "\u1EC7")]
    [InlineData("\u0958", "\u0915\u093C")]
    [InlineData("\uD800x", "\uD800x")]
    [InlineData("", "")]
    public void Normalize_KnownSequences_Compose(string input, string expected)
    {
        Assert.Equal(expected, Nfc.Normalize(input));
    }

    [Fact]
    public void IsQuickNormalized_WhenTrue_NormalizeIsIdentity()
    {
        foreach (EncodeCase c in Cases.Encode)
            if (Nfc.IsQuickNormalized(c.Text)) Assert.Equal(c.Text, Nfc.Normalize(c.Text));
        Assert.True(Nfc.IsQuickNormalized("plain ASCII and 中文 and 😀"));
        Assert.False(Nfc.IsQuickNormalized("e\u0301"));
    }
}

public class NfcChunkingTests
{
    [Fact]
    public void Normalize_TextLongerThanChunks_EqualsPerPieceNormalization()
    {
        // '#' is a normalization boundary and composes with nothing, so NFC of the joined text is the join of the
        // NFC of the pieces.
        var cases = TokenizerTestData.Cases.Nfc;
        var input = new System.Text.StringBuilder();
        var expected = new System.Text.StringBuilder();
        for (int round = 0; input.Length < 6 * Nfc.ChunkChars; round++)
        {
            foreach (var c in cases)
            {
                input.Append(c.Input).Append('#');
                expected.Append(c.Output).Append('#');
            }
        }
        Assert.Equal(expected.ToString(), Nfc.Normalize(input.ToString()));
    }

    [Fact]
    public void Normalize_CombiningRunWithoutBoundary_StaysOneChunk()
    {
        string marks = new('\u0301', 3 * Nfc.ChunkChars);
        Assert.Equal("\u00E1" + marks[1..], Nfc.Normalize("a" + marks));
        Assert.Equal(string.Concat(Enumerable.Repeat("\u00E9", 5000)), Nfc.Normalize(string.Concat(Enumerable.Repeat("e\u0301", 5000))));
    }
}
