namespace Qwen3Sharp.Chat.Parsing;

public enum ChatDeltaKind
{
    /// <summary><see cref="ChatDelta.Text"/> is a piece of reasoning (OpenAI-compatible <c>reasoning_content</c>).</summary>
    Reasoning,
    /// <summary><see cref="ChatDelta.Text"/> is a piece of the answer.</summary>
    Content,
    /// <summary>A new tool call: <see cref="ChatDelta.ToolCallIndex"/>, <see cref="ChatDelta.ToolCallId"/>, <see cref="ChatDelta.ToolCallName"/>.</summary>
    ToolCallStart,
    /// <summary><see cref="ChatDelta.Text"/> is a fragment of the arguments JSON string of tool call <see cref="ChatDelta.ToolCallIndex"/>.</summary>
    ToolCallArguments,
}

/// <summary>
/// One streaming event, shaped like an OpenAI chat-completion chunk delta. The fragments of one tool call's
/// arguments concatenate to exactly <see cref="ParsedToolCall.Arguments"/>.
/// </summary>
public readonly record struct ChatDelta(ChatDeltaKind Kind, string Text, int ToolCallIndex, string? ToolCallId, string? ToolCallName)
{
    public static ChatDelta Reasoning(string text) => new(ChatDeltaKind.Reasoning, text, -1, null, null);
    public static ChatDelta Content(string text) => new(ChatDeltaKind.Content, text, -1, null, null);
    public static ChatDelta ToolCallStart(int index, string id, string name) => new(ChatDeltaKind.ToolCallStart, "", index, id, name);
    public static ChatDelta ToolCallArguments(int index, string fragment) => new(ChatDeltaKind.ToolCallArguments, fragment, index, null, null);
}

/// <summary>A complete tool call. <see cref="Arguments"/> is a JSON string (OpenAI <c>function.arguments</c>).</summary>
public sealed record ParsedToolCall(string Id, string Name, string Arguments);

/// <summary>
/// A whole completion split up. <see cref="Reasoning"/> is null when the output had no reasoning section,
/// "" for an empty <c>&lt;think&gt;&lt;/think&gt;</c> block.
/// </summary>
public sealed record ParsedChatOutput(string? Reasoning, string Content, IReadOnlyList<ParsedToolCall> ToolCalls);
