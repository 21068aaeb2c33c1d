using Qwen3Sharp.Tokenization;

namespace Qwen3Sharp.Tests.Tokenization;

public class ByteLevelBpeTests
{
    [Fact]
    public void MergeWithHeap_RandomWords_EqualsMergeByScan()
    {
        ByteLevelBpe bpe = TokenizerTestData.Tokenizer.Bpe;
        var random = new Random(3);
        string[] samples = ["the", " and", "ing", "中文", "tion", "    ", "😀", "abc", "==", "ation", "é", " 的"];
        for (int trial = 0; trial < 600; trial++)
        {
            var text = new System.Text.StringBuilder();
            int parts = random.Next(1, 30);
            for (int i = 0; i < parts; i++)
                text.Append(random.Next(3) == 0 ? ((char)random.Next(0x20, 0x7F)).ToString() : samples[random.Next(samples.Length)]);
            byte[] utf8 = System.Text.Encoding.UTF8.GetBytes(text.ToString());
            int[] a = utf8.Select(b => bpe.ByteToId(b)).ToArray();
            int[] b = (int[])a.Clone();
            int na = bpe.MergeByScan(a);
            int nb = bpe.MergeWithHeap(b);
            Assert.Equal(a.AsSpan(0, na).ToArray(), b.AsSpan(0, nb).ToArray());
        }
    }

    [Fact]
    public void Merge_LongRepeatedWord_FinishesAndRoundTrips()
    {
        var tokenizer = TokenizerTestData.Tokenizer;
        string text = string.Concat(Enumerable.Repeat("中文字符", 10_000)); // one 40,000-char pre-token
        int[] ids = tokenizer.Encode(text);
        Assert.Equal(text, tokenizer.Decode(ids));
        Assert.True(ids.Length < text.Length);
    }
}
