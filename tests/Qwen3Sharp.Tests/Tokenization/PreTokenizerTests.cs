using System.Text;
using System.Text.RegularExpressions;
using Qwen3Sharp.Tokenization;

namespace Qwen3Sharp.Tests.Tokenization;

public class PreTokenizerTests
{
    // The tokenizer.json regex translated for .NET: \s -> White_Space (JS/Oniguruma), ASCII-only case folding.
    // Valid on BMP text only: .NET matches UTF-16 code units, so supplementary characters are left out here
    // (the transformers.js fixtures cover them).
    private const string WhiteSpace = @"\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
    private static readonly Regex s_reference = new(
        $@"'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\r\n\p{{L}}\p{{N}}]?\p{{L}}+|\p{{N}}| ?[^{WhiteSpace}\p{{L}}\p{{N}}]+[\r\n]*|[{WhiteSpace}]*[\r\n]+|[{WhiteSpace}]+(?![^{WhiteSpace}])|[{WhiteSpace}]+",
        RegexOptions.CultureInvariant);

    private static List<string> Pieces(string text)
    {
        var pieces = new List<string>();
        for (int i = 0; i < text.Length;)
        {
            int end = PreTokenizer.NextPieceEnd(text, i);
            Assert.True(end > i, $"no progress at {i} in {TokenizerTestData.Show(text)}");
            pieces.Add(text[i..end]);
            i = end;
        }
        return pieces;
    }

    private static List<string> RegexPieces(string text)
    {
        var pieces = new List<string>();
        int last = 0;
        foreach (ValueMatch m in s_reference.EnumerateMatches(text))
        {
            if (m.Index > last) pieces.Add(text[last..m.Index]);
            pieces.Add(text.Substring(m.Index, m.Length));
            last = m.Index + m.Length;
        }
        if (last < text.Length) pieces.Add(text[last..]);
        return pieces;
    }

    [Theory]
    [InlineData("Hello world", new[] { "Hello", " world" })]
    [InlineData("I'm here", new[] { "I", "'m", " here" })]
    [InlineData("HE'LL", new[] { "HE", "'LL", })]
    [InlineData("12345", new[] { "1", "2", "3", "4", "5" })]
    [InlineData("a  b", new[] { "a", " ", " b" })]
    [InlineData("x \n\n y", new[] { "x", " \n\n", " y" })]
    [InlineData("!!\r\n\r\nz", new[] { "!!\r\n\r\n", "z" })]
    [InlineData("   ", new[] { "   " })]
    [InlineData(" ?x", new[] { " ?", "x" })]
    [InlineData("😀abc", new[] { "😀abc" })]
    [InlineData("𠀀𠀁 𝐀", new[] { "𠀀𠀁", " 𝐀" })]
    [InlineData("a\u0085b", new[] { "a", "\u0085b" })]
    [InlineData("a \uFEFFb", new[] { "a", " \uFEFF", "b" })]
    public void NextPieceEnd_KnownText_SplitsLikeHuggingFace(string text, string[] expected)
    {
        Assert.Equal(expected, Pieces(text));
    }

    [Fact]
    public void NextPieceEnd_RandomBmpCorpus_MatchesDotNetRegexTranslation()
    {
        // Characters whose class .NET and the tables agree on (old, stable assignments).
        string alphabet = "aZ'sStTrReEvVmMlLdDx09 \t\n\r\v\f\u0085\u00A0\u2028\u3000\uFEFF.,!?-_()[]{}<>\"/\\@#$%^&*=+|~`" +
                          "éÀßçñ中文あア한글абвαβשלوم٠١२३①Ⅻ½\u0301\u0308\u200B\u200D€£¥©®™…—–";
        var random = new Random(42);
        int checkedChars = 0;
        for (int i = 0; i < 3000; i++)
        {
            var sb = new StringBuilder();
            for (int n = random.Next(1, 80); n > 0; n--)
            {
                char c = alphabet[random.Next(alphabet.Length)];
                sb.Append(c, random.Next(10) == 0 ? random.Next(2, 6) : 1);
            }
            string text = sb.ToString();
            List<string> expected = RegexPieces(text), actual = Pieces(text);
            if (!expected.SequenceEqual(actual))
                Assert.Fail($"{TokenizerTestData.Show(text)}: regex [{string.Join("|", expected.Select(TokenizerTestData.Show))}] vs [{string.Join("|", actual.Select(TokenizerTestData.Show))}]");
            checkedChars += text.Length;
        }
        Assert.True(checkedChars > 60_000);
    }

    [Fact]
    public void Pattern_EqualsRegexOfShippedTokenizerJson()
    {
        string json = File.ReadAllText(Path.Combine(TokenizerTestData.TokenizerDirectory, "tokenizer.json"));
        using var document = System.Text.Json.JsonDocument.Parse(json);
        string regex = document.RootElement.GetProperty("pre_tokenizer").GetProperty("pretokenizers")[0]
            .GetProperty("pattern").GetProperty("Regex").GetString()!;
        Assert.Equal(PreTokenizer.Pattern, regex);
    }
}
