namespace Qwen3Sharp.Chat.Parsing;

/// <summary>
/// How to split a Qwen3 completion into reasoning, content and Hermes tool calls.
/// The start state is decided up front from the rendered prompt (see <see cref="ForPrompt"/>), so the
/// whole-output and streaming parsers never have to guess after the fact.
/// </summary>
public sealed record ChatParserOptions
{
    /// <summary>
    /// Parse <c>&lt;think&gt;…&lt;/think&gt;</c>. False means "reasoning already closed" (non-thinking mode,
    /// the prompt ended with the empty block): every character is content and no tag is special.
    /// </summary>
    public bool ReasoningEnabled { get; init; }

    /// <summary>
    /// The prompt already ends inside a reasoning block (template pre-filled <c>&lt;think&gt;\n</c>, as
    /// Qwen3-*-Thinking-2507 does): the output starts with reasoning and only <c>&lt;/think&gt;</c> ends it.
    /// A redundant leading <c>&lt;think&gt;</c> is tolerated. Ignored unless <see cref="ReasoningEnabled"/>.
    /// </summary>
    public bool StartsInsideReasoning { get; init; }

    /// <summary>Parse Hermes <c>&lt;tool_call&gt;{json}&lt;/tool_call&gt;</c> blocks into tool calls.</summary>
    public bool ToolsEnabled { get; init; }

    /// <summary>
    /// Also parse <c>&lt;tool_call&gt;</c> blocks written inside reasoning (off by default: they stay
    /// reasoning text, as vLLM does when the reasoning parser runs first). Requires <see cref="ToolsEnabled"/>.
    /// </summary>
    public bool ParseToolCallsInReasoning { get; init; }

    /// <summary>
    /// Picks the start state from the rendered prompt's ending:
    /// <c>…&lt;/think&gt;\n\n</c> (non-thinking mode) -> reasoning closed;
    /// <c>…&lt;think&gt;\n</c> (pre-filled thinking) -> starts inside reasoning;
    /// anything else -> the model may open <c>&lt;think&gt;</c> itself.
    /// </summary>
    public static ChatParserOptions ForPrompt(string renderedPrompt, bool toolsEnabled, bool parseToolCallsInReasoning = false)
    {
        ArgumentNullException.ThrowIfNull(renderedPrompt);
        ReadOnlySpan<char> tail = renderedPrompt.AsSpan().TrimEnd();
        bool closed = tail.EndsWith(ChatTags.ThinkEnd, StringComparison.Ordinal);
        bool inside = !closed && tail.EndsWith(ChatTags.ThinkStart, StringComparison.Ordinal);
        return new ChatParserOptions
        {
            ReasoningEnabled = !closed,
            StartsInsideReasoning = inside,
            ToolsEnabled = toolsEnabled,
            ParseToolCallsInReasoning = parseToolCallsInReasoning,
        };
    }
}

/// <summary>The literal tags Qwen3 writes (plain text tokens in its vocabulary).</summary>
public static class ChatTags
{
    public const string ThinkStart = "<think>";
    public const string ThinkEnd = "</think>";
    public const string ToolCallStart = "<tool_call>";
    public const string ToolCallEnd = "</tool_call>";
}
