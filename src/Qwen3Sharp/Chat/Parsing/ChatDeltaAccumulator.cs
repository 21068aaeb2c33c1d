using System.Text;

namespace Qwen3Sharp.Chat.Parsing;

/// <summary>Folds a stream of <see cref="ChatDelta"/> back into a <see cref="ParsedChatOutput"/> (what a non-streaming response returns).</summary>
public sealed class ChatDeltaAccumulator
{
    private readonly StringBuilder _reasoning = new();
    private readonly StringBuilder _content = new();
    private readonly List<(string Id, string Name, StringBuilder Arguments)> _calls = [];

    public void Add(in ChatDelta delta)
    {
        switch (delta.Kind)
        {
            case ChatDeltaKind.Reasoning:
                _reasoning.Append(delta.Text);
                break;
            case ChatDeltaKind.Content:
                _content.Append(delta.Text);
                break;
            case ChatDeltaKind.ToolCallStart:
                if (delta.ToolCallIndex != _calls.Count)
                {
                    throw new InvalidOperationException($"Tool call index {delta.ToolCallIndex} started out of order; expected {_calls.Count}.");
                }

                _calls.Add((delta.ToolCallId!, delta.ToolCallName!, new StringBuilder()));
                break;
            case ChatDeltaKind.ToolCallArguments:
                if ((uint)delta.ToolCallIndex >= (uint)_calls.Count)
                {
                    throw new InvalidOperationException($"Arguments for tool call index {delta.ToolCallIndex} arrived before its start.");
                }

                _calls[delta.ToolCallIndex].Arguments.Append(delta.Text);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(delta), delta.Kind, "Unknown delta kind.");
        }
    }

    public void AddRange(IEnumerable<ChatDelta> deltas)
    {
        foreach (ChatDelta d in deltas)
        {
            Add(d);
        }
    }

    /// <param name="sawReasoning">Whether the parser entered a reasoning section (<see cref="ChatStreamParser.SawReasoning"/>);
    /// decides between a null and an empty <see cref="ParsedChatOutput.Reasoning"/>.</param>
    public ParsedChatOutput ToOutput(bool sawReasoning)
    {
        string? reasoning = sawReasoning || _reasoning.Length > 0 ? _reasoning.ToString() : null;
        var calls = new ParsedToolCall[_calls.Count];
        for (int i = 0; i < calls.Length; i++)
        {
            calls[i] = new ParsedToolCall(_calls[i].Id, _calls[i].Name, _calls[i].Arguments.ToString());
        }

        return new ParsedChatOutput(reasoning, _content.ToString(), calls);
    }
}
