namespace Qwen3Sharp.Structured;

/// <summary>
/// Compiled matchers by grammar source (schema text, tools), so that requests repeating a schema — an agent's tools
/// every turn, a client's response_format every call — reuse its automaton states and token masks instead of walking
/// the token trie again. Bounded: at most <see cref="Capacity"/> matchers (the oldest goes first), and a matcher that
/// has accumulated more than <see cref="MaxMasksPerMatcher"/> masks (19 KB each for Qwen3's vocabulary) or
/// <see cref="MaxStatesPerMatcher"/> automaton states (up to 2 KB of byte transitions each) is dropped and rebuilt on
/// its next use. Across matchers, masks are bounded too (<see cref="MaxTotalMasks"/>, ~78 MB for Qwen3): past it the
/// oldest matchers go first, so many distinct tools lists (every tools request is constrained under auto) cannot hold
/// 32 × 1024 masks (~620 MB).
/// </summary>
public sealed class GrammarCache(int capacity = 32, int maxMasksPerMatcher = 1024, int maxStatesPerMatcher = 8192, int maxTotalMasks = 4096)
{
    private readonly Dictionary<string, GrammarMatcher> _matchers = [];
    private Queue<string> _order = new();   // the kept keys, oldest first, each once
    private readonly Lock _lock = new();

    public int Capacity { get; } = capacity;

    public int MaxMasksPerMatcher { get; } = maxMasksPerMatcher;

    public int MaxStatesPerMatcher { get; } = maxStatesPerMatcher;

    /// <summary>Most masks all kept matchers may hold together; past it the oldest are dropped (never the one in use).</summary>
    public int MaxTotalMasks { get; } = maxTotalMasks;

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _matchers.Count;
            }
        }
    }

    public bool TryGet(string key, out GrammarMatcher matcher)
    {
        lock (_lock)
        {
            if (_matchers.TryGetValue(key, out GrammarMatcher? m) && m.MaskCount <= MaxMasksPerMatcher && m.StateCount <= MaxStatesPerMatcher)
            {
                matcher = m;
                TrimTotal(key);   // masks grow while the matchers are used, not when they are added
                return true;
            }

            if (_matchers.Remove(key))   // too big now: its next user rebuilds it (and queues it anew)
            {
                _order = new Queue<string>(_order.Where(k => k != key));
            }

            matcher = null!;
            return false;
        }
    }

    /// <summary>Keeps <paramref name="matcher"/> under <paramref name="key"/> (after its first mask was computed in time).</summary>
    public void Add(string key, GrammarMatcher matcher)
    {
        if (Capacity <= 0)
        {
            return;
        }

        lock (_lock)
        {
            if (_matchers.TryAdd(key, matcher))
            {
                _order.Enqueue(key);
            }
            else
            {
                _matchers[key] = matcher;
            }

            while (_matchers.Count > Capacity && _order.TryDequeue(out string? oldest))
            {
                _matchers.Remove(oldest);
            }

            TrimTotal(key);
        }
    }

    /// <summary>Drops the oldest matchers other than <paramref name="keep"/> while all together hold more than <see cref="MaxTotalMasks"/> masks. Under the lock.</summary>
    private void TrimTotal(string keep)
    {
        long total = 0;
        foreach (GrammarMatcher m in _matchers.Values)
        {
            total += m.MaskCount;
        }

        if (total <= MaxTotalMasks)
        {
            return;
        }

        foreach (string key in _order)
        {
            if (total <= MaxTotalMasks)
            {
                break;
            }

            if (key != keep && _matchers.Remove(key, out GrammarMatcher? old))
            {
                total -= old.MaskCount;
            }
        }

        _order = new Queue<string>(_order.Where(_matchers.ContainsKey));
    }
}
