using System.Diagnostics;
using Qwen3Sharp.Tokenization;

namespace Qwen3Sharp.Structured;

/// <summary>
/// The byte strings of a vocabulary's ordinary tokens as a trie (llguidance / XGrammar style): a token mask is
/// computed by walking it once, so a prefix that cannot continue the output rules out every token under it.
/// Added tokens (special or not: &lt;think&gt;, &lt;tool_call&gt;, &lt;|im_end|&gt;) are not in the trie; grammars
/// match them by id. Immutable once built; shared by all requests of a tokenizer.
/// </summary>
public sealed class TokenTrie
{
    private readonly byte[][] _tokenBytes;   // [vocab] bytes of each ordinary token; empty for added ones
    private readonly bool[] _isByteToken;    // [vocab]
    private readonly int[] _tokenStart;      // [nodes + 1] into _tokens: the tokens whose bytes end at each node
    private readonly int[] _tokens;
    private readonly byte[] _nodeByte;       // [nodes] the byte on the edge into each node (nodes are numbered in preorder)
    private readonly int[] _nodeDepth;       // [nodes] edges from the root
    private readonly int[] _subtreeEnd;      // [nodes] one past the last node of each node's subtree

    public TokenTrie(IReadOnlyList<byte[]?> tokenBytes, int vocabSize)
    {
        VocabSize = vocabSize;
        _tokenBytes = new byte[vocabSize][];
        _isByteToken = new bool[vocabSize];
        var ids = new List<int>();
        for (int i = 0; i < vocabSize; i++)
        {
            byte[]? b = i < tokenBytes.Count ? tokenBytes[i] : null;
            _tokenBytes[i] = b ?? [];
            if (b is { Length: > 0 })
            {
                _isByteToken[i] = true;
                ids.Add(i);
            }
        }

        ids.Sort((a, b) => _tokenBytes[a].AsSpan().SequenceCompareTo(_tokenBytes[b]));

        // Build nodes in DFS order from the sorted list: node 0 is the root.
        var tokenStart = new List<int>();
        var tokens = new List<int>();
        int nodeCount = 0;
        var children = new List<List<(byte, int)>>();
        var nodeTokens = new List<List<int>>();
        int NewNode()
        {
            children.Add([]);
            nodeTokens.Add([]);
            return nodeCount++;
        }

        NewNode();
        var path = new List<int> { 0 };   // path[d] = node at depth d for the previous token
        byte[] prev = [];
        foreach (int id in ids)
        {
            byte[] t = _tokenBytes[id];
            int common = 0;
            while (common < prev.Length && common < t.Length && prev[common] == t[common])
            {
                common++;
            }

            path.RemoveRange(common + 1, path.Count - common - 1);
            for (int d = common; d < t.Length; d++)
            {
                int n = NewNode();
                children[path[d]].Add((t[d], n));
                path.Add(n);
            }

            nodeTokens[path[t.Length]].Add(id);
            prev = t;
        }

        for (int n = 0; n < nodeCount; n++)
        {
            tokenStart.Add(tokens.Count);
            tokens.AddRange(nodeTokens[n]);
        }

        tokenStart.Add(tokens.Count);

        // Preorder layout for the mask walk: node n's subtree is [n, _subtreeEnd[n]).
        _nodeByte = new byte[nodeCount];
        _nodeDepth = new int[nodeCount];
        _subtreeEnd = new int[nodeCount];
        for (int n = nodeCount - 1; n >= 0; n--)
        {
            int end = n + 1;
            foreach ((byte b, int c) in children[n])
            {
                Debug.Assert(c > n, "trie nodes are numbered in preorder");
                _nodeByte[c] = b;
                end = Math.Max(end, _subtreeEnd[c]);
            }

            _subtreeEnd[n] = end;
        }

        for (int n = 0; n < nodeCount; n++)
        {
            foreach ((_, int c) in children[n])
            {
                _nodeDepth[c] = _nodeDepth[n] + 1;
            }

            MaxDepth = Math.Max(MaxDepth, _nodeDepth[n]);
        }
        _tokenStart = [.. tokenStart];
        _tokens = [.. tokens];
        NodeCount = nodeCount;
    }

    /// <summary>Size of token masks (the model's vocabulary, which may exceed the tokenizer's).</summary>
    public int VocabSize { get; }

    public int NodeCount { get; }

    /// <summary>Bytes in the longest ordinary token (the depth of the trie).</summary>
    public int MaxDepth { get; }

    public static TokenTrie FromTokenizer(Qwen3Tokenizer tokenizer, int vocabSize)
    {
        var bytes = new byte[]?[vocabSize];
        for (int id = 0; id < Math.Min(vocabSize, tokenizer.VocabSize); id++)
        {
            if (tokenizer.IsAddedToken(id) || tokenizer.IdToToken(id) is not { } s)
            {
                continue;
            }

            var b = new byte[s.Length];
            bool ok = true;
            for (int i = 0; i < s.Length; i++)
            {
                int v = ByteAlphabet.ByteOf(s[i]);
                ok &= v >= 0;
                b[i] = (byte)v;
            }

            bytes[id] = ok ? b : null;
        }

        return new TokenTrie(bytes, vocabSize);
    }

    private readonly Dictionary<string, (int Token, int End)[][]> _completions = [];

    /// <summary>
    /// For a text <paramref name="text"/> and each k &lt; its length: the ordinary tokens that, written when the output
    /// ends with the first k bytes of <paramref name="text"/> (and no longer prefix of it), complete it, with the index
    /// just past the completing byte in the token (KMP matching; computed once per text and kept).
    /// </summary>
    internal (int Token, int End)[][] TextCompletions(byte[] text)
    {
        string key = Convert.ToHexString(text);
        lock (_completions)
        {
            if (_completions.TryGetValue(key, out var known))
            {
                return known;
            }

            int[] fail = KmpFailure(text);
            var lists = new List<(int, int)>[text.Length];
            for (int k = 0; k < text.Length; k++)
            {
                lists[k] = [];
            }

            for (int id = 0; id < VocabSize; id++)
            {
                ReadOnlySpan<byte> bytes = _tokenBytes[id];
                if (bytes.IndexOf(text[^1]) < 0)
                {
                    continue;   // only a token holding the last byte can complete the text
                }

                for (int k = 0; k < text.Length; k++)
                {
                    int state = k;
                    for (int i = 0; i < bytes.Length; i++)
                    {
                        state = KmpStep(text, fail, state, bytes[i]);
                        if (state == text.Length)
                        {
                            lists[k].Add((id, i + 1));
                            break;
                        }
                    }
                }
            }

            var result = lists.Select(l => l.ToArray()).ToArray();
            _completions[key] = result;
            return result;
        }
    }

    /// <summary>KMP failure function: fail[i] is the length of the longest proper border of text[..(i + 1)].</summary>
    internal static int[] KmpFailure(ReadOnlySpan<byte> text)
    {
        var fail = new int[text.Length];
        for (int i = 1, k = 0; i < text.Length; i++)
        {
            while (k > 0 && text[i] != text[k])
            {
                k = fail[k - 1];
            }

            if (text[i] == text[k])
            {
                k++;
            }

            fail[i] = k;
        }

        return fail;
    }

    /// <summary>The matched length after byte <paramref name="b"/> when <paramref name="state"/> bytes of <paramref name="text"/> were matched.</summary>
    internal static int KmpStep(ReadOnlySpan<byte> text, int[] fail, int state, byte b)
    {
        if (state == text.Length)
        {
            state = fail[state - 1];
        }

        while (state > 0 && text[state] != b)
        {
            state = fail[state - 1];
        }

        return text[state] == b ? state + 1 : 0;
    }

    public bool IsByteToken(int id) => (uint)id < (uint)_isByteToken.Length && _isByteToken[id];

    public ReadOnlySpan<byte> BytesOf(int id) => _tokenBytes[id];

    internal ReadOnlySpan<byte> NodeBytes => _nodeByte;

    internal ReadOnlySpan<int> NodeDepths => _nodeDepth;

    internal ReadOnlySpan<int> SubtreeEnds => _subtreeEnd;

    internal ReadOnlySpan<int> TokenStarts => _tokenStart;

    internal ReadOnlySpan<int> Tokens => _tokens;

    internal ReadOnlySpan<int> TokensAt(int node) => _tokens.AsSpan(_tokenStart[node], _tokenStart[node + 1] - _tokenStart[node]);
}
