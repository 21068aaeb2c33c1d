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
    private readonly int[] _childStart;      // [nodes + 1] into _childByte / _childNode
    private readonly byte[] _childByte;
    private readonly int[] _childNode;
    private readonly int[] _tokenStart;      // [nodes + 1] into _tokens
    private readonly int[] _tokens;

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
        var childStart = new List<int>();
        var childByte = new List<byte>();
        var childNode = new List<int>();
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
            childStart.Add(childByte.Count);
            foreach ((byte b, int c) in children[n])
            {
                childByte.Add(b);
                childNode.Add(c);
            }

            tokenStart.Add(tokens.Count);
            tokens.AddRange(nodeTokens[n]);
        }

        childStart.Add(childByte.Count);
        tokenStart.Add(tokens.Count);
        _childStart = [.. childStart];
        _childByte = [.. childByte];
        _childNode = [.. childNode];
        _tokenStart = [.. tokenStart];
        _tokens = [.. tokens];
        NodeCount = nodeCount;
    }

    /// <summary>Size of token masks (the model's vocabulary, which may exceed the tokenizer's).</summary>
    public int VocabSize { get; }

    public int NodeCount { get; }

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

    public bool IsByteToken(int id) => (uint)id < (uint)_isByteToken.Length && _isByteToken[id];

    public ReadOnlySpan<byte> BytesOf(int id) => _tokenBytes[id];

    internal ReadOnlySpan<byte> ChildBytes(int node) => _childByte.AsSpan(_childStart[node], _childStart[node + 1] - _childStart[node]);

    internal ReadOnlySpan<int> ChildNodes(int node) => _childNode.AsSpan(_childStart[node], _childStart[node + 1] - _childStart[node]);

    internal bool HasChildren(int node) => _childStart[node + 1] > _childStart[node];

    internal ReadOnlySpan<int> TokensAt(int node) => _tokens.AsSpan(_tokenStart[node], _tokenStart[node + 1] - _tokenStart[node]);
}
