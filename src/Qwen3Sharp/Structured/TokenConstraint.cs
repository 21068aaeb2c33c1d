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
/// <remarks>
/// Two modes. Whole answer (the default): after the optional reasoning, every answer token is masked by the grammar and
/// end of turn is allowed once the grammar accepts. Triggered (<see cref="TokenConstraint(GrammarMatcher, IReadOnlyCollection{int}, ConstraintStart, int, int, int, bool, TimeSpan?)"/>
/// with a trigger token, e.g. &lt;tool_call&gt; for strict tools under tool_choice auto): the answer is free until the model
/// writes the trigger token; the grammar then runs from its start until it is complete (it accepts and nothing can
/// follow), after which the answer is free again (<c>repeat</c>) or may only end.
/// </remarks>
public sealed class TokenConstraint
{
    private readonly GrammarMatcher _matcher;
    private readonly int[] _endTokens;
    private readonly int _thinkStart, _thinkEnd;
    private readonly int _trigger;      // -1: whole-answer mode
    private readonly bool _repeat;
    private readonly long _maskTimeoutTicks;
    private readonly byte[]? _triggerText;   // the trigger token's text, also recognised when spelled by ordinary tokens
    private readonly int[]? _triggerFail;    // KMP failure function of _triggerText
    private readonly (int Token, int End)[][]? _textCompletions;   // [matched bytes] the tokens that complete the text
    private int _textMatched;                // bytes of _triggerText the free text ends with
    private StateSet? _state;          // null once the output left the grammar (only end tokens are allowed then)
    private Phase _phase;

    private enum Phase { AwaitThinkOrAnswer, Reasoning, Constrained, Free, EndOnly, Finished }

    public TokenConstraint(GrammarMatcher matcher, IReadOnlyCollection<int> endTokens, ConstraintStart start,
        int thinkStartTokenId = -1, int thinkEndTokenId = -1, TimeSpan? maskTimeout = null)
        : this(matcher, endTokens, start, thinkStartTokenId, thinkEndTokenId, triggerTokenId: -1, repeat: false, maskTimeout)
    {
    }

    /// <summary>
    /// A triggered constraint when <paramref name="triggerTokenId"/> ≥ 0: <paramref name="matcher"/>'s grammar describes
    /// what follows the trigger token. <paramref name="repeat"/>: free again after each completed match (else only
    /// end tokens may follow the first one). <paramref name="triggerText"/>: the trigger token's text; when given, free
    /// text that spells it out of ordinary tokens (e.g. <c>&lt;</c> <c>tool</c> <c>_call</c> <c>&gt;</c>, which the chat
    /// parser reads as the same tag) triggers the grammar too, and a token that would complete it with bytes the grammar
    /// cannot start with is masked.
    /// </summary>
    public TokenConstraint(GrammarMatcher matcher, IReadOnlyCollection<int> endTokens, ConstraintStart start,
        int thinkStartTokenId, int thinkEndTokenId, int triggerTokenId, bool repeat, TimeSpan? maskTimeout = null,
        string? triggerText = null)
    {
        _matcher = matcher;
        _endTokens = [.. endTokens];
        _thinkStart = thinkStartTokenId;
        _thinkEnd = thinkEndTokenId;
        _trigger = triggerTokenId;
        _repeat = repeat;
        _state = matcher.Initial;
        _maskTimeoutTicks = (long)((maskTimeout ?? DefaultMaskTimeout).TotalSeconds * Stopwatch.Frequency);
        if (triggerTokenId >= 0 && !string.IsNullOrEmpty(triggerText))
        {
            _triggerText = System.Text.Encoding.UTF8.GetBytes(triggerText);
            _triggerFail = TokenTrie.KmpFailure(_triggerText);
            _textCompletions = matcher.Trie.TextCompletions(_triggerText);
        }

        _phase = start switch
        {
            ConstraintStart.AfterReasoning => Phase.Reasoning,
            ConstraintStart.AfterOptionalReasoning when thinkStartTokenId >= 0 => Phase.AwaitThinkOrAnswer,
            _ => AnswerPhase,
        };
    }

    /// <summary>
    /// Most wall-clock time one mask may take during generation: a guard against a grammar that would stall the engine,
    /// not a quality limit (pathological grammars are refused at admission, where the first mask has a 2 s budget), so it
    /// is generous enough for a machine shared with other work.
    /// </summary>
    public static readonly TimeSpan DefaultMaskTimeout = TimeSpan.FromSeconds(60);

    private bool Triggered => _trigger >= 0;

    /// <summary>Where the answer starts: under the grammar, or free until the trigger.</summary>
    private Phase AnswerPhase => Triggered ? Phase.Free : Phase.Constrained;

    /// <summary>The constrained output is complete (the grammar accepts what was written).</summary>
    public bool IsComplete => _state is { Accepts: true };

    /// <summary>Whether the constraint is masking now (false while the model reasons or writes freely).</summary>
    public bool IsActive => _phase is Phase.Constrained or Phase.EndOnly || (_phase == Phase.AwaitThinkOrAnswer && !Triggered);

    /// <summary>Computes the current state's mask now (the first mask of a schema is computed before the request runs).</summary>
    public void Prepare(TimeSpan timeout) => Prepare(Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency));

    /// <summary>Computes the current state's mask now, giving up once the <see cref="Stopwatch"/> timestamp <paramref name="deadline"/> has passed.</summary>
    public void Prepare(long deadline)
    {
        if (_state is not null)
        {
            _matcher.MaskOf(_state, deadline);
        }
    }

    /// <summary>Sets every disallowed token's logit to −∞.</summary>
    public void Mask(Span<float> logits)
    {
        if (_phase == Phase.Free && _textCompletions is not null)
        {
            MaskTextTriggers(logits);
            return;
        }

        if (!IsActive)
        {
            return;
        }

        ulong[]? mask = _state is null || _phase == Phase.EndOnly ? null : _matcher.MaskOf(_state, Stopwatch.GetTimestamp() + _maskTimeoutTicks);
        bool endAllowed = _phase == Phase.EndOnly || _state is null || _state.Accepts;
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

    /// <summary>Free text: masks the tokens that would complete the trigger text followed by bytes the grammar refuses.</summary>
    private void MaskTextTriggers(Span<float> logits)
    {
        foreach ((int token, int end) in _textCompletions![_textMatched])
        {
            ReadOnlySpan<byte> rest = _matcher.Trie.BytesOf(token)[end..];
            if ((uint)token < (uint)logits.Length && rest.Length > 0 && _matcher.Advance(_matcher.Initial, rest) is null)
            {
                logits[token] = float.NegativeInfinity;
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
                    _phase = AnswerPhase;
                }

                return;
            case Phase.AwaitThinkOrAnswer:
                if (tokenId == _thinkStart)
                {
                    _phase = Phase.Reasoning;
                    return;
                }

                _phase = AnswerPhase;
                break;
            case Phase.Finished:
                return;
        }

        if (Array.IndexOf(_endTokens, tokenId) >= 0)
        {
            _phase = Phase.Finished;
            return;
        }

        switch (_phase)
        {
            case Phase.Free:
                if (tokenId == _trigger)
                {
                    _state = _matcher.Initial;
                    _phase = Phase.Constrained;
                    _textMatched = 0;
                }
                else if (_triggerText is not null)
                {
                    AcceptFreeText(tokenId);
                }

                return;
            case Phase.EndOnly:
                return;
        }

        if (_state is not null)
        {
            _state = _matcher.Advance(_state, tokenId);
            EndCallIfComplete();
        }
    }

    /// <summary>Triggered mode: once the grammar is complete (it accepts and nothing can follow), the text is free again or may only end.</summary>
    private void EndCallIfComplete()
    {
        if (Triggered && _state is { Accepts: true, Terminals.Length: 0 })
        {
            _phase = _repeat ? Phase.Free : Phase.EndOnly;
        }
    }

    /// <summary>Free text: follows how much of the trigger text the output ends with; its last byte starts the grammar.</summary>
    private void AcceptFreeText(int tokenId)
    {
        if (!_matcher.Trie.IsByteToken(tokenId))
        {
            _textMatched = 0;   // added tokens end with '>' (Qwen3's all do), which no proper prefix of a tag ends with
            return;
        }

        ReadOnlySpan<byte> bytes = _matcher.Trie.BytesOf(tokenId);
        for (int i = 0; i < bytes.Length; i++)
        {
            _textMatched = TokenTrie.KmpStep(_triggerText!, _triggerFail!, _textMatched, bytes[i]);
            if (_textMatched == _triggerText!.Length)
            {
                _textMatched = 0;
                _phase = Phase.Constrained;
                _state = _matcher.Advance(_matcher.Initial, bytes[(i + 1)..]);
                EndCallIfComplete();
                return;
            }
        }
    }
}
