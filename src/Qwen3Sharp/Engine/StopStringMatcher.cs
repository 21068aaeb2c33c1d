namespace Qwen3Sharp.Engine;

/// <summary>
/// Finds stop strings in streamed text, also when they are split across tokens: text that could still be the
/// start of a stop string is held back until it is known not to be one.
/// </summary>
internal sealed class StopStringMatcher(IReadOnlyList<string> stopStrings)
{
    private readonly System.Text.StringBuilder _pending = new();

    /// <summary>The stop string found, once one is.</summary>
    public string? Matched { get; private set; }

    /// <summary>Adds text; returns the part that can be released. After a match, returns the text before it.</summary>
    public string Append(string text)
    {
        if (stopStrings.Count == 0)
        {
            return text;
        }

        _pending.Append(text);
        string pending = _pending.ToString();
        int matchAt = -1;
        foreach (string stop in stopStrings)
        {
            int at = pending.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (matchAt < 0 || at < matchAt))
            {
                matchAt = at;
                Matched = stop;
            }
        }

        if (matchAt >= 0)
        {
            _pending.Clear();
            return pending[..matchAt];
        }

        int hold = 0;
        foreach (string stop in stopStrings)
        {
            for (int k = Math.Min(stop.Length - 1, pending.Length); k > hold; k--)
            {
                if (pending.AsSpan(pending.Length - k).SequenceEqual(stop.AsSpan(0, k)))
                {
                    hold = k;
                    break;
                }
            }
        }

        _pending.Clear();
        _pending.Append(pending, pending.Length - hold, hold);
        return pending[..^hold];
    }

    /// <summary>Releases what was held back (the generation ended without completing a stop string).</summary>
    public string Flush()
    {
        string rest = _pending.ToString();
        _pending.Clear();
        return rest;
    }
}
