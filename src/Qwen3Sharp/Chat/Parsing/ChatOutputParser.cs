namespace Qwen3Sharp.Chat.Parsing;

/// <summary>
/// Splits a Qwen3 completion into reasoning, content and Hermes tool calls (vLLM's qwen3 reasoning parser
/// followed by its hermes tool parser). <see cref="ParseComplete"/> is the whole-output method and
/// <see cref="CreateStream"/> the delta one; both run the same state machine, so a streamed completion
/// always adds up to the whole-output result.
/// With <see cref="ChatParserOptions.ToolsEnabled"/> off this is the reasoning parser alone; with
/// <see cref="ChatParserOptions.ReasoningEnabled"/> off it is the tool-call parser alone.
/// </summary>
public sealed class ChatOutputParser
{
    private readonly Func<string> _newToolCallId;

    /// <param name="newToolCallId">Tool-call id source; defaults to <see cref="ToolCallIds.NewId"/>. Inject a counter in tests.</param>
    public ChatOutputParser(ChatParserOptions options, Func<string>? newToolCallId = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        _newToolCallId = newToolCallId ?? ToolCallIds.NewId;
    }

    public ChatParserOptions Options { get; }

    public ParsedChatOutput ParseComplete(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var stream = CreateStream();
        var deltas = new List<ChatDelta>();
        stream.Append(text, deltas);
        stream.Finish(deltas);
        var acc = new ChatDeltaAccumulator();
        acc.AddRange(deltas);
        return acc.ToOutput(stream.SawReasoning);
    }

    public ChatStreamParser CreateStream() => new(Options, _newToolCallId);
}
