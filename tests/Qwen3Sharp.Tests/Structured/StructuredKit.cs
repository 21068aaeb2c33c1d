using System.Text;
using System.Text.Json.Nodes;
using Qwen3Sharp.Structured;
using Qwen3Sharp.Tokenization;

namespace Qwen3Sharp.Tests.Structured;

/// <summary>The real Qwen3 tokenizer's token trie, and helpers to run grammars over it.</summary>
internal static class StructuredKit
{
    public const int VocabSize = 151936;

    private static readonly Lazy<(Qwen3Tokenizer, TokenTrie)> Assets = new(() =>
    {
        var tok = Qwen3Tokenizer.Load(Path.Combine(AppContext.BaseDirectory, "Fixtures", "qwen3-tokenizer"));
        return (tok, TokenTrie.FromTokenizer(tok, VocabSize));
    });

    public static Qwen3Tokenizer Tokenizer => Assets.Value.Item1;

    public static TokenTrie Trie => Assets.Value.Item2;

    public static int EndToken => Tokenizer.ImEnd!.Value;

    public static GNode Schema(string json, bool strict = false) =>
        G.Seq(JsonSchemaCompiler.Ws, JsonSchemaCompiler.Compile(JsonNode.Parse(json), strict, out _));

    public static TokenConstraint Constraint(GNode root) =>
        new(new GrammarMatcher(root, Trie), [EndToken], ConstraintStart.FirstToken);

    /// <summary>Feeds <paramref name="text"/> as the tokenizer encodes it; true when every token is allowed and the end is allowed after.</summary>
    public static bool Accepts(GNode root, string text)
    {
        TokenConstraint c = Constraint(root);
        var logits = new float[VocabSize];
        foreach (int id in Tokenizer.Encode(text))
        {
            logits.AsSpan().Clear();
            c.Mask(logits);
            if (float.IsNegativeInfinity(logits[id]))
            {
                return false;
            }

            c.Accept(id);
        }

        logits.AsSpan().Clear();
        c.Mask(logits);
        return !float.IsNegativeInfinity(logits[EndToken]);
    }

    /// <summary>
    /// Samples one output at high temperature from random logits (a stand-in for a random-weight model), with a
    /// bias toward tokens that close strings, arrays and objects so outputs end. Null when it ran out of tokens.
    /// </summary>
    public static string? Sample(GNode root, Random rng, int maxTokens = 300)
    {
        TokenConstraint c = Constraint(root);
        var logits = new float[VocabSize];
        var ids = new List<int>();
        for (int step = 0; step < maxTokens; step++)
        {
            logits.AsSpan().Clear();
            c.Mask(logits);
            int best = -1;
            double bestScore = double.NegativeInfinity;
            for (int i = 0; i < logits.Length; i++)
            {
                if (float.IsNegativeInfinity(logits[i]))
                {
                    continue;
                }

                double score = rng.NextDouble() * 6 + (IsCloser[i] ? 7 : 0) + (i == EndToken ? 20 : 0);
                if (score > bestScore)
                {
                    bestScore = score;
                    best = i;
                }
            }

            Assert.True(best >= 0, "the mask allowed no token at all");
            if (best == EndToken)
            {
                return Tokenizer.Decode(ids.ToArray());
            }

            ids.Add(best);
            c.Accept(best);
        }

        return null;
    }

    private static readonly bool[] IsCloser = BuildClosers();

    private static bool[] BuildClosers()
    {
        var list = new bool[VocabSize];
        for (int id = 0; id < Trie.VocabSize; id++)
        {
            if (Trie.IsByteToken(id))
            {
                ReadOnlySpan<byte> b = Trie.BytesOf(id);
                if (b.Length <= 3 && (b.IndexOf((byte)'"') >= 0 || b.IndexOf((byte)']') >= 0 || b.IndexOf((byte)'}') >= 0))
                {
                    list[id] = true;
                }
            }
        }

        return list;
    }

    public static string Utf8(ReadOnlySpan<byte> b) => Encoding.UTF8.GetString(b);
}
