using Qwen3Sharp.Structured;

namespace Qwen3Sharp.Tests.Structured;

public class GrammarCacheTests
{
    private static GrammarMatcher Matcher(string literal) => new(G.Lit(literal), StructuredKit.Trie);

    [Fact]
    public void KeepsAtMostCapacity_DroppingTheOldestFirst()
    {
        var cache = new GrammarCache(capacity: 2);
        GrammarMatcher a = Matcher("a"), b = Matcher("b"), c = Matcher("c");
        cache.Add("a", a);
        cache.Add("b", b);
        cache.Add("c", c);
        Assert.Equal(2, cache.Count);
        Assert.False(cache.TryGet("a", out _));
        Assert.True(cache.TryGet("b", out GrammarMatcher gotB));
        Assert.Same(b, gotB);
        Assert.True(cache.TryGet("c", out GrammarMatcher gotC));
        Assert.Same(c, gotC);
    }

    [Fact]
    public void AMatcherDroppedAsTooBig_AndAddedAgain_IsAsOldAsItsNewAdd()
    {
        var cache = new GrammarCache(capacity: 3, maxMasksPerMatcher: 1);
        cache.Add("x", Matcher("x"));
        cache.Add("a", WithMasks("abc", 2));
        Assert.False(cache.TryGet("a", out _));     // too many masks: dropped
        cache.Add("b", Matcher("b"));
        cache.Add("a", Matcher("a"));               // rebuilt: now the newest
        cache.Add("c", Matcher("c"));               // x goes
        cache.Add("d", Matcher("d"));               // then b, the oldest left, not the rebuilt a
        Assert.False(cache.TryGet("x", out _));
        Assert.False(cache.TryGet("b", out _));
        Assert.True(cache.TryGet("a", out _));
        Assert.True(cache.TryGet("c", out _));
        Assert.True(cache.TryGet("d", out _));
    }

    [Fact]
    public void AMatcherWithTooManyMasks_IsDroppedOnItsNextLookup()
    {
        var cache = new GrammarCache(capacity: 4, maxMasksPerMatcher: 1);
        GrammarMatcher m = Matcher("hello world");
        var constraint = new TokenConstraint(m, [StructuredKit.EndToken], ConstraintStart.FirstToken);
        var logits = new float[StructuredKit.VocabSize];
        cache.Add("k", m);
        constraint.Mask(logits);
        Assert.True(cache.TryGet("k", out _));   // one mask: within the limit
        constraint.Accept(StructuredKit.Tokenizer.Encode("hello")[0]);
        constraint.Mask(logits);
        Assert.Equal(2, m.MaskCount);
        Assert.False(cache.TryGet("k", out _));
        Assert.Equal(0, cache.Count);
    }

    /// <summary>A matcher of <paramref name="literal"/> that has computed the masks of its first <paramref name="masks"/> states.</summary>
    private static GrammarMatcher WithMasks(string literal, int masks)
    {
        GrammarMatcher m = Matcher(literal);
        var constraint = new TokenConstraint(m, [StructuredKit.EndToken], ConstraintStart.FirstToken);
        var logits = new float[StructuredKit.VocabSize];
        foreach (char c in literal[..masks])
        {
            constraint.Mask(logits);
            constraint.Accept(StructuredKit.Tokenizer.Encode(c.ToString())[0]);
        }

        Assert.Equal(masks, m.MaskCount);
        return m;
    }

    [Fact]
    public void MasksAcrossMatchers_AreBounded_TheOldestGoFirst_NeverTheOneInUse()
    {
        var cache = new GrammarCache(capacity: 8, maxTotalMasks: 5);
        cache.Add("a", WithMasks("abc", 2));
        cache.Add("b", WithMasks("bcd", 2));
        Assert.Equal(2, cache.Count);               // 4 masks: within the budget
        cache.Add("c", WithMasks("cde", 2));        // 6: the oldest goes
        Assert.False(cache.TryGet("a", out _));
        Assert.True(cache.TryGet("b", out _));
        Assert.True(cache.TryGet("c", out _));

        // masks grow while a matcher is used: the lookup that finds the budget passed drops the others, not it
        GrammarMatcher big = WithMasks("defghi", 5);
        cache.Add("d", big);
        Assert.True(cache.TryGet("d", out GrammarMatcher got));
        Assert.Same(big, got);
        Assert.Equal(1, cache.Count);
    }

    [Fact]
    public void AMatcherWithTooManyStates_IsDroppedOnItsNextLookup()
    {
        GrammarMatcher m = new(StructuredKit.Schema("""{"type":"string","maxLength":40}"""), StructuredKit.Trie);
        var constraint = new TokenConstraint(m, [StructuredKit.EndToken], ConstraintStart.FirstToken);
        var logits = new float[StructuredKit.VocabSize];
        constraint.Mask(logits);
        constraint.Accept(StructuredKit.Tokenizer.Encode("\"")[0]);
        constraint.Mask(logits);   // a walk through the string's positions: a state per position reached
        var cache = new GrammarCache(capacity: 4, maxStatesPerMatcher: m.StateCount);
        cache.Add("k", m);
        Assert.True(cache.TryGet("k", out _));
        constraint.Accept(StructuredKit.Tokenizer.Encode("ab")[0]);
        constraint.Mask(logits);
        Assert.False(cache.TryGet("k", out _));
    }

    [Fact]
    public void ASharedMatcher_GivesEveryConstraintItsOwnPosition()
    {
        GrammarMatcher m = Matcher("yes");
        var first = new TokenConstraint(m, [StructuredKit.EndToken], ConstraintStart.FirstToken);
        foreach (int id in StructuredKit.Tokenizer.Encode("yes"))
        {
            first.Accept(id);
        }

        var second = new TokenConstraint(m, [StructuredKit.EndToken], ConstraintStart.FirstToken);
        Assert.True(first.IsComplete);
        Assert.False(second.IsComplete);
        var logits = new float[StructuredKit.VocabSize];
        second.Mask(logits);
        Assert.True(float.IsNegativeInfinity(logits[StructuredKit.EndToken]));
    }
}
