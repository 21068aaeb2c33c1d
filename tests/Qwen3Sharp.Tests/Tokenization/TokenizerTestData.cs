using System.Text.Json;
using Qwen3Sharp.Tokenization;

namespace Qwen3Sharp.Tests.Tokenization;

/// <summary>The real Qwen3 tokenizer and the transformers.js fixtures (tools/fixtures/tokenizer/gen-fixtures.mjs).</summary>
internal static class TokenizerTestData
{
    public static string TokenizerDirectory => Path.Combine(AppContext.BaseDirectory, "Fixtures", "qwen3-tokenizer");
    public static string FixtureDirectory => Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizer");

    private static readonly Lazy<Qwen3Tokenizer> s_tokenizer = new(() => Qwen3Tokenizer.Load(TokenizerDirectory));
    private static readonly Lazy<Fixtures> s_fixtures = new(LoadFixtures);

    public static Qwen3Tokenizer Tokenizer => s_tokenizer.Value;
    public static Fixtures Cases => s_fixtures.Value;

    public sealed record EncodeCase(string Category, string Text, int[] Ids, string Decoded, string DecodedSkipSpecial);
    public sealed record DecodeCase(int[] Ids, string Text, string TextSkipSpecial);
    public sealed record NfcCase(string Input, string Output);
    public sealed record FlagCase(string Text, int[] Ids);
    public sealed record Fixtures(string Reference, EncodeCase[] Encode, DecodeCase[] Decode, NfcCase[] Nfc, FlagCase[] AddedTokenFlags);

    private static Fixtures LoadFixtures()
    {
        using JsonDocument document = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(FixtureDirectory, "fixtures.json")));
        JsonElement root = document.RootElement;
        var encode = root.GetProperty("encode").EnumerateArray().Select(e => new EncodeCase(
            e.GetProperty("category").GetString()!,
            e.TryGetProperty("text", out JsonElement text)
                ? text.GetString()!
                : new string(e.GetProperty("textUtf16").EnumerateArray().Select(u => (char)u.GetInt32()).ToArray()),
            Ids(e.GetProperty("ids")),
            e.GetProperty("decoded").GetString()!,
            e.GetProperty("decodedSkipSpecial").GetString()!)).ToArray();
        var decode = root.GetProperty("decode").EnumerateArray().Select(e => new DecodeCase(
            Ids(e.GetProperty("ids")), e.GetProperty("text").GetString()!, e.GetProperty("textSkipSpecial").GetString()!)).ToArray();
        var nfc = root.GetProperty("nfc").EnumerateArray().Select(e => new NfcCase(
            e.GetProperty("input").GetString()!, e.GetProperty("output").GetString()!)).ToArray();
        var flags = root.GetProperty("addedTokenFlags").EnumerateArray().Select(e => new FlagCase(
            e.GetProperty("text").GetString()!, Ids(e.GetProperty("ids")))).ToArray();
        return new Fixtures(root.GetProperty("reference").GetString()!, encode, decode, nfc, flags);
    }

    private static int[] Ids(JsonElement array) => array.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    /// <summary>C#-escaped rendering for failure messages.</summary>
    public static string Show(string s)
    {
        var sb = new System.Text.StringBuilder("\"");
        foreach (char c in s.Length > 200 ? s[..200] : s)
        {
            if (c >= 0x20 && c < 0x7F) sb.Append(c);
            else sb.Append($"\\u{(int)c:X4}");
        }
        return sb.Append(s.Length > 200 ? "\"…" : "\"").ToString();
    }

    public static string Show(int[] ids) => "[" + string.Join(", ", ids.Take(60)) + (ids.Length > 60 ? ", …" : "") + "]";
}
