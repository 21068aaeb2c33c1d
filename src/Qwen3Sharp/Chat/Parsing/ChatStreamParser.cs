namespace Qwen3Sharp.Chat.Parsing;

/// <summary>
/// Incremental Qwen3 output parser: feed detokenized text pieces with <see cref="Append"/>, then call
/// <see cref="Finish"/> once. Deltas are appended to the caller's list (adjacent text of the same kind from
/// one call is merged).
/// </summary>
/// <remarks>
/// Rules (identical for whole and streamed input, whatever the split):
/// <list type="bullet">
/// <item>Without <see cref="ChatParserOptions.StartsInsideReasoning"/>, reasoning starts only with a leading
///   <c>&lt;think&gt;</c> (whitespace before it allowed); a leading <c>&lt;/think&gt;</c> closes an empty block. Text
///   that starts otherwise is content, even if a <c>&lt;/think&gt;</c> follows later: deciding that would mean
///   holding back the whole output, so a pre-filled <c>&lt;think&gt;</c> must be announced through the options.</item>
/// <item>Reasoning is stripped of leading and trailing <c>\n</c> and content after <c>&lt;/think&gt;</c> of leading
///   <c>\n</c>, as Qwen's chat template does (<c>"&lt;think&gt;\nabc\n&lt;/think&gt;\n\nanswer"</c> -> reasoning
///   "abc", content "answer"). Output cut off inside reasoning is all reasoning.</item>
/// <item>With tools on, whitespace right before a valid <c>&lt;tool_call&gt;</c> block and right after it is
///   dropped (vLLM returns the text before the first call without it). A block whose JSON is malformed is
///   content, verbatim, tags included; an unterminated block at the end is content, verbatim.</item>
/// </list>
/// Held back between calls: a suffix that could still become a tag (<c>&lt;thi</c>, <c>&lt;/thin</c>,
/// <c>&lt;tool_</c>); the run of characters those rules may still drop (trailing <c>\n</c> in reasoning,
/// trailing whitespace in content when tools are on); and a tool-call block until its closing tag, which is
/// then emitted as a start delta plus the whole arguments string as one fragment.
/// </remarks>
public sealed class ChatStreamParser
{
    private enum State { ExpectThinkStart, Reasoning, Content, ToolCall }

    private enum Skip { None, Newlines, Whitespace }

    private readonly ChatParserOptions _options;
    private readonly Func<string> _newToolCallId;
    private readonly bool _toolsInReasoning;

    private string _buffer = "";        // text received but not yet emitted
    private State _state;
    private State _returnState;         // where a tool-call block returns to (Content or Reasoning)
    private Skip _skipLeading;          // characters to drop at the start of the current section
    private bool _allowThinkStart;      // StartsInsideReasoning: tolerate one redundant leading <think>
    private string _whitespaceBeforeCall = "";
    private int _toolCallEndScanFrom;
    private int _toolCallCount;
    private bool _finished;

    public ChatStreamParser(ChatParserOptions options, Func<string>? newToolCallId = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _newToolCallId = newToolCallId ?? ToolCallIds.NewId;
        _toolsInReasoning = options.ToolsEnabled && options.ParseToolCallsInReasoning;
        if (!options.ReasoningEnabled)
        {
            _state = State.Content;
        }
        else if (options.StartsInsideReasoning)
        {
            EnterReasoning();
            _allowThinkStart = true;
        }
        else
        {
            _state = State.ExpectThinkStart;
        }
    }

    /// <summary>True once a reasoning section was entered (even an empty one).</summary>
    public bool SawReasoning { get; private set; }

    /// <summary>True while the parser is inside reasoning (e.g. to report a completion cut off while thinking).</summary>
    public bool InReasoning => _state == State.Reasoning || (_state == State.ToolCall && _returnState == State.Reasoning);

    /// <summary>Number of tool calls emitted so far.</summary>
    public int ToolCallCount => _toolCallCount;

    public void Append(string textDelta, List<ChatDelta> output)
    {
        ArgumentNullException.ThrowIfNull(textDelta);
        ArgumentNullException.ThrowIfNull(output);
        if (_finished)
        {
            throw new InvalidOperationException("Append called after Finish.");
        }

        if (textDelta.Length == 0)
        {
            return;
        }

        _buffer = string.Concat(_buffer, textDelta);
        Process(final: false, output, output.Count);
    }

    /// <summary>Flushes everything held back: partial tags become text, an unterminated tool call becomes content.</summary>
    public void Finish(List<ChatDelta> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (_finished)
        {
            return;
        }

        _finished = true;
        Process(final: true, output, output.Count);
    }

    private void EnterReasoning()
    {
        _state = State.Reasoning;
        _skipLeading = Skip.Newlines;
        SawReasoning = true;
    }

    private void Process(bool final, List<ChatDelta> output, int firstNew)
    {
        while (true)
        {
            switch (_state)
            {
                case State.ExpectThinkStart:
                {
                    int i = 0;
                    while (i < _buffer.Length && char.IsWhiteSpace(_buffer[i]))
                    {
                        i++;
                    }

                    if (i == _buffer.Length && !final)
                    {
                        return;
                    }

                    ReadOnlySpan<char> rest = _buffer.AsSpan(i);
                    if (rest.StartsWith(ChatTags.ThinkStart, StringComparison.Ordinal))
                    {
                        _buffer = _buffer[(i + ChatTags.ThinkStart.Length)..];
                        EnterReasoning();
                        continue;
                    }

                    if (rest.StartsWith(ChatTags.ThinkEnd, StringComparison.Ordinal))
                    {
                        // A leading </think> closes an empty reasoning block whose opening was in the prompt
                        // (e.g. a caller's prefill "\n</think>\n\n"); it is never meant as content.
                        _buffer = _buffer[(i + ChatTags.ThinkEnd.Length)..];
                        SawReasoning = true;
                        _state = State.Content;
                        _skipLeading = Skip.Newlines;
                        continue;
                    }

                    if (!final && (IsProperPrefixOf(rest, ChatTags.ThinkStart) || IsProperPrefixOf(rest, ChatTags.ThinkEnd)))
                    {
                        return;
                    }

                    _state = State.Content;
                    continue;
                }

                case State.Reasoning:
                {
                    if (!DropLeading())
                    {
                        return;
                    }

                    if (_allowThinkStart)
                    {
                        if (_buffer.StartsWith(ChatTags.ThinkStart, StringComparison.Ordinal))
                        {
                            _buffer = _buffer[ChatTags.ThinkStart.Length..];
                            _allowThinkStart = false;
                            _skipLeading = Skip.Newlines;
                            continue;
                        }

                        if (!final && IsProperPrefixOf(_buffer, ChatTags.ThinkStart))
                        {
                            return;
                        }

                        _allowThinkStart = false;
                    }

                    int end = _buffer.IndexOf(ChatTags.ThinkEnd, StringComparison.Ordinal);
                    int call = _toolsInReasoning ? _buffer.IndexOf(ChatTags.ToolCallStart, StringComparison.Ordinal) : -1;
                    if (call >= 0 && (end < 0 || call < end))
                    {
                        EnterToolCall(call, State.Reasoning, output, firstNew);
                        continue;
                    }

                    if (end >= 0)
                    {
                        Emit(ChatDeltaKind.Reasoning, _buffer.AsSpan(0, end).TrimEnd('\n'), output, firstNew);
                        _buffer = _buffer[(end + ChatTags.ThinkEnd.Length)..];
                        _state = State.Content;
                        _skipLeading = Skip.Newlines;
                        continue;
                    }

                    if (final)
                    {
                        // Cut off inside reasoning: all of it is reasoning, trailing newlines stripped as at </think>.
                        Emit(ChatDeltaKind.Reasoning, _buffer.AsSpan().TrimEnd('\n'), output, firstNew);
                        _buffer = "";
                        return;
                    }

                    int held = Math.Max(
                        PartialTagSuffixLength(_buffer, ChatTags.ThinkEnd),
                        _toolsInReasoning ? PartialTagSuffixLength(_buffer, ChatTags.ToolCallStart) : 0);
                    int emit = _buffer.AsSpan(0, _buffer.Length - held).TrimEnd('\n').Length;
                    Emit(ChatDeltaKind.Reasoning, _buffer.AsSpan(0, emit), output, firstNew);
                    _buffer = _buffer[emit..];
                    return;
                }

                case State.Content:
                {
                    if (!DropLeading())
                    {
                        return;
                    }

                    if (!_options.ToolsEnabled)
                    {
                        Emit(ChatDeltaKind.Content, _buffer, output, firstNew);
                        _buffer = "";
                        return;
                    }

                    int call = _buffer.IndexOf(ChatTags.ToolCallStart, StringComparison.Ordinal);
                    if (call >= 0)
                    {
                        EnterToolCall(call, State.Content, output, firstNew);
                        continue;
                    }

                    if (final)
                    {
                        Emit(ChatDeltaKind.Content, _buffer, output, firstNew);
                        _buffer = "";
                        return;
                    }

                    int held = PartialTagSuffixLength(_buffer, ChatTags.ToolCallStart);
                    int emit = _buffer.AsSpan(0, _buffer.Length - held).TrimEnd().Length;
                    Emit(ChatDeltaKind.Content, _buffer.AsSpan(0, emit), output, firstNew);
                    _buffer = _buffer[emit..];
                    return;
                }

                case State.ToolCall:
                {
                    int end = _buffer.IndexOf(ChatTags.ToolCallEnd, _toolCallEndScanFrom, StringComparison.Ordinal);
                    ChatDeltaKind textKind = _returnState == State.Reasoning ? ChatDeltaKind.Reasoning : ChatDeltaKind.Content;
                    if (end < 0)
                    {
                        if (final)
                        {
                            // Cut off inside a tool call: the raw text is kept as text.
                            Emit(textKind, string.Concat(_whitespaceBeforeCall, ChatTags.ToolCallStart, _buffer), output, firstNew);
                            _buffer = "";
                            _state = _returnState;
                            return;
                        }

                        _toolCallEndScanFrom = Math.Max(0, _buffer.Length - (ChatTags.ToolCallEnd.Length - 1));
                        return;
                    }

                    string body = _buffer[..end];
                    _buffer = _buffer[(end + ChatTags.ToolCallEnd.Length)..];
                    _toolCallEndScanFrom = 0;
                    _state = _returnState;
                    if (HermesToolCall.TryParse(body, out string name, out string arguments))
                    {
                        int index = _toolCallCount++;
                        output.Add(ChatDelta.ToolCallStart(index, _newToolCallId(), name));
                        output.Add(ChatDelta.ToolCallArguments(index, arguments));
                        _skipLeading = _returnState == State.Reasoning ? Skip.Newlines : Skip.Whitespace;
                    }
                    else
                    {
                        Emit(textKind, string.Concat(_whitespaceBeforeCall, ChatTags.ToolCallStart, body, ChatTags.ToolCallEnd), output, firstNew);
                    }

                    _whitespaceBeforeCall = "";
                    continue;
                }
            }
        }
    }

    /// <summary>Emits the text before a <c>&lt;tool_call&gt;</c> at <paramref name="tagIndex"/> and switches to buffering the call.</summary>
    private void EnterToolCall(int tagIndex, State returnState, List<ChatDelta> output, int firstNew)
    {
        ReadOnlySpan<char> before = _buffer.AsSpan(0, tagIndex);
        ReadOnlySpan<char> kept = returnState == State.Reasoning ? before.TrimEnd('\n') : before.TrimEnd();
        Emit(returnState == State.Reasoning ? ChatDeltaKind.Reasoning : ChatDeltaKind.Content, kept, output, firstNew);
        _whitespaceBeforeCall = before[kept.Length..].ToString();
        _buffer = _buffer[(tagIndex + ChatTags.ToolCallStart.Length)..];
        _returnState = returnState;
        _state = State.ToolCall;
        _toolCallEndScanFrom = 0;
    }

    /// <summary>Drops the characters <see cref="_skipLeading"/> names; false when nothing is left to look at.</summary>
    private bool DropLeading()
    {
        if (_skipLeading != Skip.None)
        {
            int i = 0;
            while (i < _buffer.Length && (_skipLeading == Skip.Whitespace ? char.IsWhiteSpace(_buffer[i]) : _buffer[i] == '\n'))
            {
                i++;
            }

            _buffer = _buffer[i..];
            if (_buffer.Length == 0)
            {
                return false;
            }

            _skipLeading = Skip.None;
        }

        return _buffer.Length > 0;
    }

    private static void Emit(ChatDeltaKind kind, ReadOnlySpan<char> text, List<ChatDelta> output, int firstNew)
    {
        if (text.IsEmpty)
        {
            return;
        }

        if (output.Count > firstNew && output[^1].Kind == kind)
        {
            ChatDelta last = output[^1];
            output[^1] = last with { Text = string.Concat(last.Text, text) };
            return;
        }

        string s = text.ToString();
        output.Add(kind == ChatDeltaKind.Reasoning ? ChatDelta.Reasoning(s) : ChatDelta.Content(s));
    }

    private static bool IsProperPrefixOf(ReadOnlySpan<char> text, string tag)
        => text.Length < tag.Length && tag.AsSpan().StartsWith(text, StringComparison.Ordinal);

    /// <summary>Length of the longest suffix of <paramref name="text"/> that is a proper prefix of <paramref name="tag"/>.</summary>
    private static int PartialTagSuffixLength(string text, string tag)
    {
        for (int n = Math.Min(text.Length, tag.Length - 1); n > 0; n--)
        {
            if (text.AsSpan(text.Length - n).SequenceEqual(tag.AsSpan(0, n)))
            {
                return n;
            }
        }

        return 0;
    }
}
