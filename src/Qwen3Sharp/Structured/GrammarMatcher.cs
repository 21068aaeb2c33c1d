using System.Diagnostics;

namespace Qwen3Sharp.Structured;

/// <summary>
/// One pushdown stack of the automaton: <see cref="Node"/> at position <see cref="Pos"/> on top of
/// <see cref="Parent"/>. Frames are interned per matcher, so equal stacks are the same object.
/// </summary>
internal sealed class Frame(GNode node, int pos, Frame? parent, int id)
{
    public readonly GNode Node = node;
    public readonly int Pos = pos;
    public readonly Frame? Parent = parent;
    public readonly int Id = id;

    /// <summary>Terminal frames (byte, byte set or special token on top) this stack can be at without consuming input.</summary>
    public Frame[]? Terminals;

    /// <summary>Whether the stack can end here (the whole grammar matched).</summary>
    public bool Accepts;

    /// <summary>For a terminal frame: the stack after its byte/token is consumed (expanded lazily).</summary>
    public Frame? After;

    /// <summary>Used while merging frame sets: the stamp of the set this frame was last added to.</summary>
    public int Mark;

    /// <summary>Used while expanding a stack: the stamp of the expansion this frame was last added to.</summary>
    public int ExpandMark;

    public bool Matches(byte b) => Node switch
    {
        GBytes l => l.Bytes[Pos] == b,
        GByteSet s => s.Contains(b),
        _ => false,
    };
}

/// <summary>A set of terminal frames (the matcher's state between tokens), interned with its mask and transitions.</summary>
internal sealed class StateSet(Frame[] terminals, bool accepts)
{
    public readonly Frame[] Terminals = terminals; // sorted by Id
    public readonly bool Accepts = accepts;
    public ulong[]? Mask;                           // [ceil(vocab / 64)] allowed token bits
    public readonly Dictionary<int, StateSet?> Next = [];
    public StateSet[]? ByteNext;                    // [256] the state after each byte (Dead: none), filled lazily

    /// <summary>The state after a byte that cannot continue the output.</summary>
    public static readonly StateSet Dead = new([], false);

    public bool IsDead => Terminals.Length == 0 && !Accepts;
}

/// <summary>
/// Runs a <see cref="GNode"/> grammar over bytes (a nondeterministic pushdown automaton whose stacks are interned
/// <see cref="Frame"/>s) and computes token masks by walking a <see cref="TokenTrie"/>. The walk steps through states
/// (<see cref="StateSet"/>s) whose byte transitions are cached as they are met, a DFA built lazily (as llguidance's
/// lexer is): a trie edge costs one array load once its transition is known, and a byte that cannot continue prunes every
/// token under it. One matcher serves one
/// grammar and may be shared by the requests that use it (the chat service caches matchers per schema): the state and
/// mask caches then carry over, and a lock serialises the threads that advance or mask with it.
/// </summary>
public sealed class GrammarMatcher
{
    private readonly Dictionary<(GNode, int, Frame?), Frame> _frames = [];
    private readonly Dictionary<StateKey, StateSet> _states = [];
    private readonly TokenTrie _trie;
    private readonly List<Frame> _expandScratch = [];
    private int _stamp;
    private int _expandStamp;
    private long _deadline = long.MaxValue;   // Stopwatch timestamp past which a mask computation gives up
    private int _workSinceClockCheck;
    private readonly int _maxStackDepth;
    private readonly Lock _lock = new();
    private int _maskCount;
    private long _walkedNodes;
    private int _transitionArrays;         // states whose ByteNext is allocated
    private StateSet[] _walkStates = [];   // [trie depth + 1] the mask walk's state per depth

    public GrammarMatcher(GNode root, TokenTrie trie, int maxStackDepth = 512)
    {
        _trie = trie;
        _maxStackDepth = maxStackDepth;
        Frame top = Intern(root, 0, null);
        Initial = Intern(Expand(top).Terminals!, top.Accepts);
    }

    internal StateSet Initial { get; }

    public TokenTrie Trie => _trie;

    /// <summary>Frames created so far (a size measure for limits and benchmarks).</summary>
    public int FrameCount => _frames.Count;

    /// <summary>Automaton states interned so far (each with its byte transitions once a walk passed through it).</summary>
    public int StateCount
    {
        get
        {
            lock (_lock)
            {
                return _states.Count;
            }
        }
    }

    /// <summary>Trie edges examined by all mask walks so far (a work measure for benchmarks).</summary>
    public long WalkedTrieNodes => Volatile.Read(ref _walkedNodes);

    /// <summary>Token masks computed and kept so far (each <c>ceil(vocab / 64)</c> words).</summary>
    public int MaskCount => Volatile.Read(ref _maskCount);

    private Frame Intern(GNode node, int pos, Frame? parent)
    {
        if (!_frames.TryGetValue((node, pos, parent), out Frame? f))
        {
            f = new Frame(node, pos, parent, _frames.Count);
            _frames.Add((node, pos, parent), f);
        }

        return f;
    }

    private StateSet Intern(Frame[] terminals, bool accepts)
    {
        var key = new StateKey(terminals, accepts);
        if (!_states.TryGetValue(key, out StateSet? s))
        {
            s = new StateSet(terminals, accepts);
            _states.Add(key, s);
        }

        return s;
    }

    /// <summary>Fills <see cref="Frame.Terminals"/> and <see cref="Frame.Accepts"/> of <paramref name="f"/>.</summary>
    private Frame Expand(Frame f)
    {
        if (f.Terminals is not null)
        {
            return f;
        }

        var terminals = new List<Frame>();
        bool accepts = false;
        int stamp = ++_expandStamp;
        ExpandInto(f, terminals, ref accepts, stamp, 0);
        terminals.Sort(static (a, b) => a.Id.CompareTo(b.Id));
        f.Accepts = accepts;
        f.Terminals = [.. terminals];
        return f;
    }

    private void ExpandInto(Frame? f, List<Frame> into, ref bool accepts, int stamp, int depth)
    {
        CheckDeadline("the grammar took too long to evaluate");

        if (f is null)
        {
            accepts = true;
            return;
        }

        if (f.Terminals is not null)
        {
            foreach (Frame t in f.Terminals)
            {
                if (t.ExpandMark != stamp)
                {
                    t.ExpandMark = stamp;
                    into.Add(t);
                }
            }

            accepts |= f.Accepts;
            return;
        }

        if (depth > _maxStackDepth * 4)
        {
            throw new GrammarTooComplexException("the grammar nests too deeply (or loops without consuming input)");
        }

        switch (f.Node)
        {
            case GBytes l:
                if (f.Pos < l.Bytes.Length)
                {
                    AddTerminal(f, into, stamp);
                }
                else
                {
                    ExpandInto(f.Parent, into, ref accepts, stamp, depth + 1);
                }

                break;
            case GByteSet or GToken:
                if (f.Pos == 0)
                {
                    AddTerminal(f, into, stamp);
                }
                else
                {
                    ExpandInto(f.Parent, into, ref accepts, stamp, depth + 1);
                }

                break;
            case GSeq s:
                if (f.Pos < s.Items.Length)
                {
                    ExpandInto(Push(s.Items[f.Pos], Intern(s, f.Pos + 1, f.Parent)), into, ref accepts, stamp, depth + 1);
                }
                else
                {
                    ExpandInto(f.Parent, into, ref accepts, stamp, depth + 1);
                }

                break;
            case GAlt a:
                foreach (GNode item in a.Items)
                {
                    ExpandInto(Push(item, f.Parent), into, ref accepts, stamp, depth + 1);
                }

                break;
            case GRepeat r:
                if (r.Max < 0 || f.Pos < r.Max)
                {
                    int next = r.Max < 0 ? Math.Min(f.Pos + 1, r.Min) : f.Pos + 1;
                    ExpandInto(Push(r.Item, Intern(r, next, f.Parent)), into, ref accepts, stamp, depth + 1);
                }

                if (f.Pos >= r.Min)
                {
                    ExpandInto(f.Parent, into, ref accepts, stamp, depth + 1);
                }

                break;
            case GRef g:
                ExpandInto(Push(g.Target ?? throw new InvalidOperationException("unresolved grammar reference"), f.Parent),
                    into, ref accepts, stamp, depth + 1);
                break;
        }
    }

    private Frame Push(GNode node, Frame? parent)
    {
        int depth = 0;
        for (Frame? p = parent; p is not null && depth <= _maxStackDepth; p = p.Parent)
        {
            depth++;
        }

        if (depth > _maxStackDepth)
        {
            throw new GrammarTooComplexException($"the output nests deeper than {_maxStackDepth} levels");
        }

        return Intern(node, 0, parent);
    }

    private static void AddTerminal(Frame f, List<Frame> into, int stamp)
    {
        if (f.ExpandMark != stamp)
        {
            f.ExpandMark = stamp;
            into.Add(f);
        }
    }

    private Frame AfterOf(Frame t)
    {
        if (t.After is null)
        {
            t.After = Expand(Intern(t.Node, t.Pos + 1, t.Parent));
        }

        return t.After;
    }

    /// <summary>The state after <paramref name="bytes"/>, or null when they cannot continue a valid output.</summary>
    internal StateSet? Advance(StateSet state, ReadOnlySpan<byte> bytes)
    {
        lock (_lock)
        {
            foreach (byte b in bytes)
            {
                state = Step(state, b);
                if (ReferenceEquals(state, StateSet.Dead))
                {
                    return null;
                }
            }

            return state;
        }
    }

    /// <summary>
    /// The state after byte <paramref name="b"/> (<see cref="StateSet.Dead"/> when it cannot continue), cached per
    /// state: the states a mask walk meets become a lazily built DFA, so the walk costs an array load per trie node.
    /// </summary>
    private StateSet Step(StateSet state, byte b)
    {
        StateSet[] next = state.ByteNext ?? Transitions(state);
        return next[b] ?? (next[b] = StepUncached(state, b));
    }

    private StateSet StepUncached(StateSet state, byte b)
    {
        CheckDeadline("computing the token mask took too long");
        var afters = new List<Frame>();
        foreach (Frame t in state.Terminals)
        {
            if (t.Matches(b))
            {
                afters.Add(AfterOf(t));   // expands before the merge below, whose stamps an expansion must not disturb
            }
        }

        if (afters.Count == 0)
        {
            return StateSet.Dead;
        }

        (List<Frame> current, bool accepts) = Merge(afters);
        if (current.Count == 0 && !accepts)
        {
            return StateSet.Dead;
        }

        current.Sort(static (x, y) => x.Id.CompareTo(y.Id));
        return Intern([.. current], accepts);
    }

    /// <summary>Most states with a byte-transition array (2 KB each) before the arrays are dropped and rebuilt as needed (as RE2 resets its DFA cache).</summary>
    internal int MaxTransitionArrays { get; init; } = 8192;

    private StateSet[] Transitions(StateSet state)
    {
        _transitionArrays++;
        return state.ByteNext = new StateSet[256];
    }

    private void ForgetTransitions()
    {
        foreach (StateSet s in _states.Values)
        {
            s.ByteNext = null;
        }

        _transitionArrays = 0;
    }

    /// <summary>
    /// Whether <paramref name="tokenId"/> may follow <paramref name="state"/>, simulated byte by byte over frame lists
    /// without the byte-transition cache or the trie (a brute-force reference for tests and benchmarks).
    /// </summary>
    internal bool AllowsByReference(StateSet state, int tokenId)
    {
        lock (_lock)
        {
            if (!_trie.IsByteToken(tokenId))
            {
                return Array.Exists(state.Terminals, t => t.Node is GToken g && g.TokenId == tokenId);
            }

            List<Frame> current = [.. state.Terminals];
            bool accepts = state.Accepts;
            foreach (byte b in _trie.BytesOf(tokenId))
            {
                var afters = new List<Frame>();
                foreach (Frame t in current)
                {
                    if (t.Matches(b))
                    {
                        afters.Add(AfterOf(t));
                    }
                }

                (current, accepts) = Merge(afters);
                if (current.Count == 0 && !accepts)
                {
                    return false;
                }
            }

            return true;
        }
    }

    private (List<Frame>, bool) Merge(List<Frame> expanded)
    {
        var next = new List<Frame>();
        bool accepts = false;
        int stamp = ++_stamp;
        foreach (Frame a in expanded)
        {
            accepts |= a.Accepts;
            foreach (Frame x in a.Terminals!)
            {
                if (x.Mark != stamp)
                {
                    x.Mark = stamp;
                    next.Add(x);
                }
            }
        }

        return (next, accepts);
    }

    /// <summary>The state after the special token <paramref name="tokenId"/>, or null.</summary>
    internal StateSet? AdvanceSpecial(StateSet state, int tokenId)
    {
        var afters = new List<Frame>();
        foreach (Frame t in state.Terminals)
        {
            if (t.Node is GToken g && g.TokenId == tokenId)
            {
                afters.Add(AfterOf(t));
            }
        }

        (List<Frame> next, bool accepts) = Merge(afters);
        if (next.Count == 0 && !accepts)
        {
            return null;
        }

        next.Sort(static (a, b) => a.Id.CompareTo(b.Id));
        return Intern([.. next], accepts);
    }

    /// <summary>The state after token <paramref name="tokenId"/> (bytes or special), cached per state; null when not allowed.</summary>
    internal StateSet? Advance(StateSet state, int tokenId)
    {
        lock (_lock)
        {
            if (state.Next.TryGetValue(tokenId, out StateSet? cached))
            {
                return cached;
            }

            StateSet? next = _trie.IsByteToken(tokenId) ? Advance(state, _trie.BytesOf(tokenId)) : AdvanceSpecial(state, tokenId);
            state.Next[tokenId] = next;
            return next;
        }
    }

    /// <summary>Reads the clock every 1024 units of work; throws once <see cref="_deadline"/> has passed.</summary>
    private void CheckDeadline(string what)
    {
        if (++_workSinceClockCheck >= 1024)
        {
            _workSinceClockCheck = 0;
            if (Stopwatch.GetTimestamp() > _deadline)
            {
                throw new GrammarTooComplexException(what);
            }
        }
    }

    /// <summary>
    /// The allowed-token bits of <paramref name="state"/> (end-of-output tokens are the caller's business),
    /// computed once per state by walking the token trie, giving up (<see cref="GrammarTooComplexException"/>) once the
    /// <see cref="Stopwatch"/> timestamp <paramref name="deadline"/> has passed.
    /// </summary>
    internal ulong[] MaskOf(StateSet state, long deadline = long.MaxValue)
    {
        if (Volatile.Read(ref state.Mask) is { } m)
        {
            return m;
        }

        lock (_lock)
        {
            return state.Mask ?? ComputeMask(state, deadline);
        }
    }

    private ulong[] ComputeMask(StateSet state, long deadline)
    {
        if (_transitionArrays > MaxTransitionArrays)
        {
            ForgetTransitions();   // between walks only: a walk holds the arrays of the states on its path
        }

        if (Stopwatch.GetTimestamp() > deadline)
        {
            throw new GrammarTooComplexException("computing the token mask took too long");
        }

        var mask = new ulong[(_trie.VocabSize + 63) / 64];
        _deadline = deadline;
        _workSinceClockCheck = 0;
        try
        {
            if (state.Terminals.Length > 0)
            {
                Walk(state, mask);
            }
        }
        finally
        {
            _deadline = long.MaxValue;
        }

        foreach (Frame t in state.Terminals)
        {
            if (t.Node is GToken g && (uint)g.TokenId < (uint)_trie.VocabSize)
            {
                mask[g.TokenId >> 6] |= 1UL << (g.TokenId & 63);
            }
        }

        Volatile.Write(ref state.Mask, mask);
        _maskCount++;
        return mask;
    }

    /// <summary>
    /// Walks the trie in preorder from <paramref name="state"/> (llguidance's toktrie walk): <c>states[d]</c> is the state
    /// after the first d bytes of the current node's path; a node whose byte leads to a dead state is skipped with its
    /// whole subtree, and so is the subtree under a state that can only end.
    /// </summary>
    private void Walk(StateSet state, ulong[] mask)
    {
        ReadOnlySpan<byte> nodeBytes = _trie.NodeBytes;
        ReadOnlySpan<int> depths = _trie.NodeDepths;
        ReadOnlySpan<int> subtreeEnds = _trie.SubtreeEnds;
        ReadOnlySpan<int> tokenStarts = _trie.TokenStarts;
        ReadOnlySpan<int> tokens = _trie.Tokens;
        if (_walkStates.Length < _trie.MaxDepth + 1)
        {
            _walkStates = new StateSet[_trie.MaxDepth + 1];
        }

        StateSet[] states = _walkStates;
        states[0] = state;
        if (state.ByteNext is null)
        {
            Transitions(state);
        }

        int nodeCount = nodeBytes.Length;
        int n = 1;
        long walked = 0;
        while (n < nodeCount)
        {
            walked++;
            StateSet parent = states[depths[n] - 1];
            byte b = nodeBytes[n];
            StateSet after = parent.ByteNext![b] ?? (parent.ByteNext[b] = StepUncached(parent, b));
            if (ReferenceEquals(after, StateSet.Dead))
            {
                n = subtreeEnds[n];
                continue;
            }

            for (int i = tokenStarts[n]; i < tokenStarts[n + 1]; i++)
            {
                int token = tokens[i];
                mask[token >> 6] |= 1UL << (token & 63);
            }

            if (after.Terminals.Length == 0)
            {
                n = subtreeEnds[n];   // the output can only end here: no longer token fits
                continue;
            }

            if (after.ByteNext is null)
            {
                Transitions(after);
            }

            states[depths[n]] = after;
            n++;
            if ((walked & 4095) == 0)
            {
                CheckDeadline("computing the token mask took too long");
            }
        }

        _walkedNodes += walked;
        Array.Clear(states);
    }

    private readonly struct StateKey(Frame[] terminals, bool accepts) : IEquatable<StateKey>
    {
        private readonly Frame[] _terminals = terminals;
        private readonly bool _accepts = accepts;

        public bool Equals(StateKey other) =>
            _accepts == other._accepts && _terminals.AsSpan().SequenceEqual(other._terminals);

        public override bool Equals(object? obj) => obj is StateKey k && Equals(k);

        public override int GetHashCode()
        {
            var h = new HashCode();
            h.Add(_accepts);
            foreach (Frame f in _terminals)
            {
                h.Add(f.Id);
            }

            return h.ToHashCode();
        }
    }
}

/// <summary>A grammar (or schema) too large or slow to run within the limits.</summary>
public sealed class GrammarTooComplexException(string message) : Exception(message);
