namespace Qwen3Sharp.Structured;

/// <summary>
/// Compiled matchers by grammar source (schema text, tools), so that requests repeating a schema — an agent's tools
/// every turn, a client's response_format every call — reuse its automaton states and token masks instead of walking
/// the token trie again. Bounded: at most <see cref="Capacity"/> matchers (the oldest goes first), and a matcher that
/// has accumulated more than <see cref="MaxMasksPerMatcher"/> masks (19 KB each for Qwen3's vocabulary) or
/// <see cref="MaxStatesPerMatcher"/> automaton states (up to 2 KB of byte transitions each) is dropped and rebuilt on
/// its next use.
/// </summary>
public sealed class GrammarCache(int capacity = 32, int maxMasksPerMatcher = 1024, int maxStatesPerMatcher = 8192)
{
    private readonly Dictionary<string, GrammarMatcher> _matchers = [];
    private readonly Queue<string> _order = new();
    private readonly Lock _lock = new();

    public int Capacity { get; } = capacity;

    public int MaxMasksPerMatcher { get; } = maxMasksPerMatcher;

    public int MaxStatesPerMatcher { get; } = maxStatesPerMatcher;

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
                return true;
            }

            _matchers.Remove(key);   // too big now: its next user rebuilds it
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
        }
    }
}
