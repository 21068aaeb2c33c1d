using System.Diagnostics;

namespace Qwen3Sharp.Structured;

/// <summary>Where the constrained part of the output begins.</summary>
public enum ConstraintStart
{
    /// <summary>From the first generated token (thinking off, or a pre-filled tool call).</summary>
    FirstToken,

    /// <summary>The model may open a &lt;think&gt; block first; the constraint applies after &lt;/think&gt;, or from the first token if it answers directly.</summary>
    AfterOptionalReasoning,

    /// <summary>The prompt ends inside an open &lt;think&gt; block; the constraint applies after &lt;/think&gt;.</summary>
    AfterReasoning,
}

/// <summary>
/// Token-level constraint of one request: masks the logits of every token whose bytes cannot continue a valid output
/// and advances on each accepted token. Masks are cached per automaton state (<see cref="StateSet.Mask"/>), so a state
/// seen before costs one pass over the mask words and no allocation.
/// </summary>
public sealed class TokenConstraint
{
    private readonly GrammarMatcher _matcher;
    private readonly int[] _endTokens;
    private readonly int _thinkStart, _thinkEnd;
    private readonly long _maskTimeoutTicks;
    private StateSet? _state;          // null once the output left the grammar (only end tokens are allowed then)
    private Phase _phase;

    private enum Phase { AwaitThinkOrAnswer, Reasoning, Constrained, Finished }

    public TokenConstraint(GrammarMatcher matcher, IReadOnlyCollection<int> endTokens, ConstraintStart start,
        int thinkStartTokenId = -1, int thinkEndTokenId = -1, TimeSpan? maskTimeout = null)
    {
        _matcher = matcher;
        _endTokens = [.. endTokens];
        _thinkStart = thinkStartTokenId;
        _thinkEnd = thinkEndTokenId;
        _state = matcher.Initial;
        _maskTimeoutTicks = (long)((maskTimeout ?? TimeSpan.FromSeconds(5)).TotalSeconds * Stopwatch.Frequency);
        _phase = start switch
        {
            ConstraintStart.AfterReasoning => Phase.Reasoning,
            ConstraintStart.AfterOptionalReasoning when thinkStartTokenId >= 0 => Phase.AwaitThinkOrAnswer,
            _ => Phase.Constrained,
        };
    }

    /// <summary>The constrained output is complete (the grammar accepts what was written).</summary>
    public bool IsComplete => _state is { Accepts: true };

    /// <summary>Whether the constraint is masking now (false while the model reasons).</summary>
    public bool IsActive => _phase is Phase.Constrained or Phase.AwaitThinkOrAnswer;

    /// <summary>Computes the current state's mask now (the first mask of a schema is computed before the request runs).</summary>
    public void Prepare(TimeSpan timeout)
    {
        if (_state is not null)
        {
            _matcher.MaskOf(_state, Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency));
        }
    }

    /// <summary>Sets every disallowed token's logit to −∞.</summary>
    public void Mask(Span<float> logits)
    {
        if (!IsActive)
        {
            return;
        }

        ulong[]? mask = _state is null ? null : _matcher.MaskOf(_state, Stopwatch.GetTimestamp() + _maskTimeoutTicks);
        bool endAllowed = _state is null || _state.Accepts;
        bool thinkAllowed = _phase == Phase.AwaitThinkOrAnswer && (uint)_thinkStart < (uint)logits.Length;
        float think = thinkAllowed ? logits[_thinkStart] : 0;
        Span<float> ends = stackalloc float[Math.Min(_endTokens.Length, 16)];
        for (int i = 0; i < ends.Length; i++)
        {
            ends[i] = (uint)_endTokens[i] < (uint)logits.Length ? logits[_endTokens[i]] : 0;
        }

        ApplyMask(mask, logits);
        if (thinkAllowed)
        {
            logits[_thinkStart] = think;
        }

        if (endAllowed)
        {
            for (int i = 0; i < ends.Length; i++)
            {
                if ((uint)_endTokens[i] < (uint)logits.Length)
                {
                    logits[_endTokens[i]] = ends[i];
                }
            }
        }
    }

    private static void ApplyMask(ulong[]? mask, Span<float> logits)
    {
        int words = (logits.Length + 63) / 64;
        for (int w = 0; w < words; w++)
        {
            ulong allowed = mask is not null && w < mask.Length ? mask[w] : 0;
            if (allowed == ulong.MaxValue)
            {
                continue;
            }

            int baseIndex = w * 64;
            int count = Math.Min(64, logits.Length - baseIndex);
            if (allowed == 0)
            {
                logits.Slice(baseIndex, count).Fill(float.NegativeInfinity);
                continue;
            }

            ulong blocked = ~allowed;
            while (blocked != 0)
            {
                int bit = System.Numerics.BitOperations.TrailingZeroCount(blocked);
                if (bit >= count)
                {
                    break;
                }

                logits[baseIndex + bit] = float.NegativeInfinity;
                blocked &= blocked - 1;
            }
        }
    }

    /// <summary>Advances over a token that joined the output (sampled or forced).</summary>
    public void Accept(int tokenId)
    {
        switch (_phase)
        {
            case Phase.Reasoning:
                if (tokenId == _thinkEnd)
                {
                    _phase = Phase.Constrained;
                }

                return;
            case Phase.AwaitThinkOrAnswer:
                if (tokenId == _thinkStart)
                {
                    _phase = Phase.Reasoning;
                    return;
                }

                _phase = Phase.Constrained;
                break;
            case Phase.Finished:
                return;
        }

        if (Array.IndexOf(_endTokens, tokenId) >= 0)
        {
            _phase = Phase.Finished;
            return;
        }

        if (_state is not null)
        {
            _state = _matcher.Advance(_state, tokenId);
        }
    }
}
