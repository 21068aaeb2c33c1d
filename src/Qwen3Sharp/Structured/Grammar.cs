using System.Text;

namespace Qwen3Sharp.Structured;

/// <summary>
/// A byte-level grammar node. Grammars are trees of these (with <see cref="GRef"/> for recursion); a
/// <see cref="GrammarMatcher"/> runs them as a pushdown automaton over the UTF-8 bytes of the output.
/// </summary>
public abstract class GNode
{
    private static int s_nextId;

    /// <summary>Unique id, used to order frames canonically.</summary>
    internal readonly int Id = Interlocked.Increment(ref s_nextId);
}

/// <summary>A literal byte string.</summary>
public sealed class GBytes(byte[] bytes) : GNode
{
    public byte[] Bytes { get; } = bytes;
}

/// <summary>One byte from a set.</summary>
public sealed class GByteSet : GNode
{
    private readonly ulong[] _bits = new ulong[4]; // [256 bits]

    public GByteSet(ReadOnlySpan<(byte Lo, byte Hi)> ranges)
    {
        foreach ((byte lo, byte hi) in ranges)
        {
            for (int b = lo; b <= hi; b++)
            {
                _bits[b >> 6] |= 1UL << (b & 63);
            }
        }
    }

    public bool Contains(byte b) => (_bits[b >> 6] & (1UL << (b & 63))) != 0;
}

/// <summary>A special (added) token such as &lt;/tool_call&gt;, matched by id, not by bytes.</summary>
public sealed class GToken(int tokenId) : GNode
{
    public int TokenId { get; } = tokenId;
}

public sealed class GSeq(GNode[] items) : GNode
{
    public GNode[] Items { get; } = items;
}

public sealed class GAlt(GNode[] items) : GNode
{
    public GNode[] Items { get; } = items;
}

/// <summary><see cref="Item"/> between <see cref="Min"/> and <see cref="Max"/> times (Max -1 = unbounded). Item must not match empty.</summary>
public sealed class GRepeat(GNode item, int min, int max) : GNode
{
    public GNode Item { get; } = item;
    public int Min { get; } = min;
    public int Max { get; } = max;
}

/// <summary>A forward reference (a recursive $ref); <see cref="Target"/> is set once the target is built.</summary>
public sealed class GRef : GNode
{
    public GNode? Target { get; set; }
}

/// <summary>Builders for grammar nodes.</summary>
public static class G
{
    public static readonly GNode Empty = new GSeq([]);

    public static GNode Lit(string text) => text.Length == 0 ? Empty : new GBytes(Encoding.UTF8.GetBytes(text));

    public static GNode Set(params (char Lo, char Hi)[] ranges)
    {
        Span<(byte, byte)> r = stackalloc (byte, byte)[ranges.Length];
        for (int i = 0; i < ranges.Length; i++)
        {
            r[i] = ((byte)ranges[i].Lo, (byte)ranges[i].Hi);
        }

        return new GByteSet(r);
    }

    public static GNode Bytes(params (byte Lo, byte Hi)[] ranges) => new GByteSet(ranges);

    public static GNode Seq(params GNode[] items)
    {
        var flat = new List<GNode>(items.Length);
        foreach (GNode n in items)
        {
            if (n is GSeq s && s.Items.Length == 0)
            {
                continue;
            }

            flat.Add(n);
        }

        return flat.Count == 1 ? flat[0] : new GSeq([.. flat]);
    }

    public static GNode Alt(params GNode[] items) => items.Length == 1 ? items[0] : new GAlt(items);

    public static GNode Opt(GNode item) => new GRepeat(item, 0, 1);

    public static GNode Star(GNode item) => new GRepeat(item, 0, -1);

    public static GNode Repeat(GNode item, int min, int max) => min == 1 && max == 1 ? item : new GRepeat(item, min, max);
}
