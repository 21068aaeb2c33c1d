using Qwen3Sharp.Chat.Parsing;

namespace Qwen3Sharp.Tests.Chat.Parsing;

public class ChatOutputParserTests
{
    public sealed record Case(
        string Name,
        ChatParserOptions Options,
        string Text,
        string? Reasoning,
        string Content,
        (string Name, string Arguments)[] Calls)
    {
        public override string ToString() => Name;
    }

    private static readonly ChatParserOptions Thinking = new() { ReasoningEnabled = true };
    private static readonly ChatParserOptions Prefilled = new() { ReasoningEnabled = true, StartsInsideReasoning = true };
    private static readonly ChatParserOptions Closed = new() { ReasoningEnabled = false };
    private static readonly ChatParserOptions ToolsOnly = new() { ReasoningEnabled = false, ToolsEnabled = true };
    private static readonly ChatParserOptions ThinkingTools = new() { ReasoningEnabled = true, ToolsEnabled = true };
    private static readonly ChatParserOptions ThinkingToolsInReasoning = new() { ReasoningEnabled = true, ToolsEnabled = true, ParseToolCallsInReasoning = true };

    private const string Weather = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call>";
    private const string WeatherArgs = "{\"city\":\"Paris\",\"unit\":\"c\"}";
    private const string Time = "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"Europe/Paris\"}}\n</tool_call>";
    private const string TimeArgs = "{\"tz\":\"Europe/Paris\"}";
    private const string NoArgs = "<tool_call>\n{\"name\": \"ping\"}\n</tool_call>";
    private const string Malformed = "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": }\n</tool_call>";

    public static readonly Case[] Cases =
    [
        new("thinking on", Thinking, "<think>\nabc\n</think>\n\nanswer", "abc", "answer", []),
        new("thinking on, multi-line", Thinking, "<think>\na\n\nb\n</think>\n\nc\n\nd\n", "a\n\nb", "c\n\nd\n", []),
        new("thinking on, model skipped thinking", Thinking, "Hello there", null, "Hello there", []),
        new("thinking on, leading newline before think", Thinking, "\n<think>\nx\n</think>\n\ny", "x", "y", []),
        new("thinking off", Closed, "Plain answer.\n", null, "Plain answer.\n", []),
        new("thinking off, tags are text", Closed, "<think>x</think>y", null, "<think>x</think>y", []),
        new("missing open tag", Prefilled, "abc\n</think>\n\nanswer", "abc", "answer", []),
        new("missing open tag, redundant think", Prefilled, "<think>\nabc</think>ans", "abc", "ans", []),
        new("cut off reasoning", Thinking, "<think>\nlet me think\n\n", "let me think", "", []),
        new("cut off reasoning, prefilled", Prefilled, "partial reas", "partial reas", "", []),
        new("cut off inside end tag", Thinking, "<think>\nabc</thi", "abc</thi", "", []),
        new("empty think", Thinking, "<think>\n\n</think>\n\nanswer", "", "answer", []),
        new("empty think, prefilled", Prefilled, "\n</think>\n\nanswer", "", "answer", []),
        new("partial open tag at end", Thinking, "<thi", null, "<thi", []),
        new("leading end tag closes empty block", Thinking, "\n</think>\n\nanswer", "", "answer", []),
        new("late end tag without open tag is content", Thinking, "abc</think>x", null, "abc</think>x", []),
        new("partial end tag at end", Thinking, "</thi", null, "</thi", []),
        new("tools on, zero calls", ToolsOnly, "Just text.\n", null, "Just text.\n", []),
        new("tools on, angle brackets", ToolsOnly, "a < b <tool and <x> <tool_call", null, "a < b <tool and <x> <tool_call", []),
        new("one call", ToolsOnly, Weather, null, "", [("get_weather", WeatherArgs)]),
        new("two calls, text before", ToolsOnly, "Let me check.\n\n" + Weather + "\n" + Time + "\n", null, "Let me check.", [("get_weather", WeatherArgs), ("get_time", TimeArgs)]),
        new("three calls after thinking", ThinkingTools, "<think>\nplan\n</think>\n\n" + Weather + "\n" + Time + "\n" + NoArgs, "plan", "", [("get_weather", WeatherArgs), ("get_time", TimeArgs), ("ping", "{}")]),
        new("text after call", ToolsOnly, Weather + "\n\nDone.", null, "Done.", [("get_weather", WeatherArgs)]),
        new("malformed json", ToolsOnly, "Try:\n" + Malformed, null, "Try:\n" + Malformed, []),
        new("valid then malformed", ToolsOnly, Weather + "\n" + Malformed, null, Malformed, [("get_weather", WeatherArgs)]),
        new("not an object", ToolsOnly, "<tool_call>[1,2]</tool_call>", null, "<tool_call>[1,2]</tool_call>", []),
        new("arguments is a number", ToolsOnly, "<tool_call>{\"name\":\"f\",\"arguments\":3}</tool_call>", null, "<tool_call>{\"name\":\"f\",\"arguments\":3}</tool_call>", []),
        new("string arguments", ToolsOnly, "<tool_call>\n{\"name\": \"f\", \"arguments\": \"{\\\"x\\\": 1}\"}\n</tool_call>", null, "", [("f", "{\"x\": 1}")]),
        new("nested unicode arguments", ToolsOnly,
            "<tool_call>\n{\"name\": \"search\", \"arguments\": {\"q\": \"café ☕ 日本 😀\", \"filters\": {\"tags\": [\"a\", \"b c\"], \"n\": 3.5, \"ok\": true, \"e\": \"\\u00e9\\n\\\"\"}}}\n</tool_call>",
            null, "", [("search", "{\"q\":\"café ☕ 日本 😀\",\"filters\":{\"tags\":[\"a\",\"b c\"],\"n\":3.5,\"ok\":true,\"e\":\"\\u00e9\\n\\\"\"}}")]),
        new("unterminated call", ToolsOnly, "Sure.\n<tool_call>\n{\"name\": \"f\", \"argu", null, "Sure.\n<tool_call>\n{\"name\": \"f\", \"argu", []),
        new("tools disabled, call is text", Closed, Weather, null, Weather, []),
        new("call inside reasoning, default policy", ThinkingTools,
            "<think>\nI might " + Weather + " hmm\n</think>\n\nok", "I might " + Weather + " hmm", "ok", []),
        new("call inside reasoning, parsed", ThinkingToolsInReasoning,
            "<think>\nI might " + Weather + " hmm\n</think>\n\nok", "I might  hmm", "ok", [("get_weather", WeatherArgs)]),
        new("cut off reasoning with call, parsed", ThinkingToolsInReasoning,
            "<think>\nx\n" + Time + "\n", "x", "", [("get_time", TimeArgs)]),
    ];

    public static TheoryData<Case> AllCases()
    {
        var data = new TheoryData<Case>();
        foreach (Case c in Cases)
        {
            data.Add(c);
        }

        return data;
    }

    private static Func<string> Counter()
    {
        int n = 0;
        return () => "call_" + n++;
    }

    private static void AssertMatches(Case c, ParsedChatOutput actual)
    {
        Assert.Equal(c.Reasoning, actual.Reasoning);
        Assert.Equal(c.Content, actual.Content);
        Assert.Equal(c.Calls.Length, actual.ToolCalls.Count);
        for (int i = 0; i < c.Calls.Length; i++)
        {
            Assert.Equal("call_" + i, actual.ToolCalls[i].Id);
            Assert.Equal(c.Calls[i].Name, actual.ToolCalls[i].Name);
            Assert.Equal(c.Calls[i].Arguments, actual.ToolCalls[i].Arguments);
        }
    }

    private static ParsedChatOutput Stream(Case c, IEnumerable<string> pieces)
    {
        var parser = new ChatStreamParser(c.Options, Counter());
        var deltas = new List<ChatDelta>();
        foreach (string piece in pieces)
        {
            parser.Append(piece, deltas);
        }

        parser.Finish(deltas);
        var acc = new ChatDeltaAccumulator();
        acc.AddRange(deltas);
        return acc.ToOutput(parser.SawReasoning);
    }

    private static List<string> RandomSplit(string text, Random rng, int maxPiece)
    {
        var pieces = new List<string>();
        int i = 0;
        while (i < text.Length)
        {
            int n = Math.Min(text.Length - i, rng.Next(1, maxPiece + 1));
            pieces.Add(text.Substring(i, n));
            i += n;
        }

        return pieces;
    }

    [Theory, MemberData(nameof(AllCases))]
    public void ParseComplete_TableCase_MatchesExpected(Case c)
        => AssertMatches(c, new ChatOutputParser(c.Options, Counter()).ParseComplete(c.Text));

    [Theory, MemberData(nameof(AllCases))]
    public void Stream_OneCharPieces_MatchesExpected(Case c)
        => AssertMatches(c, Stream(c, c.Text.Select(ch => ch.ToString())));

    [Theory, MemberData(nameof(AllCases))]
    public void Stream_RandomSplits_ConcatenationEqualsWhole(Case c)
    {
        ParsedChatOutput whole = new ChatOutputParser(c.Options, Counter()).ParseComplete(c.Text);
        var rng = new Random(12345 + c.Name.Length);
        for (int trial = 0; trial < 300; trial++)
        {
            List<string> pieces = RandomSplit(c.Text, rng, maxPiece: trial % 3 == 0 ? 2 : 12);
            ParsedChatOutput streamed = Stream(c, pieces);
            Assert.True(whole.Reasoning == streamed.Reasoning, $"trial {trial}: reasoning [{streamed.Reasoning}] != [{whole.Reasoning}] split [{string.Join("|", pieces)}]");
            Assert.True(whole.Content == streamed.Content, $"trial {trial}: content [{streamed.Content}] != [{whole.Content}] split [{string.Join("|", pieces)}]");
            Assert.Equal(whole.ToolCalls, streamed.ToolCalls);
        }
    }

    [Fact]
    public void Stream_TagsSplitAcrossPieces_ParsesTags()
    {
        var c = new Case("split", ThinkingTools, "", "abc", "answer", [("f", "{}")]);
        string[] pieces = ["<th", "ink>\nab", "c\n</th", "ink>\n", "\nans", "wer <tool_", "call>{\"name\":\"f\",\"arguments\":{}}</tool_c", "all>"];
        AssertMatches(c, Stream(c, pieces));
    }

    [Fact]
    public void Append_TextThatCannotBeATag_IsEmittedImmediately()
    {
        var parser = new ChatStreamParser(ThinkingTools, Counter());
        var deltas = new List<ChatDelta>();

        parser.Append("<thi", deltas);
        Assert.Empty(deltas);                                   // could still be <think>
        parser.Append("nk>\nReason", deltas);
        Assert.Equal([ChatDelta.Reasoning("Reason")], deltas);
        deltas.Clear();
        parser.Append("ing </thin", deltas);
        Assert.Equal([ChatDelta.Reasoning("ing ")], deltas);    // "</thin" held back
        deltas.Clear();
        parser.Append("k>\n\nHello wor", deltas);
        Assert.Equal([ChatDelta.Content("Hello wor")], deltas);
        deltas.Clear();
        parser.Append("ld <tool_", deltas);
        Assert.Equal([ChatDelta.Content("ld")], deltas);         // " " may precede a call, "<tool_" may be one
        deltas.Clear();
        parser.Append("box>", deltas);
        Assert.Equal([ChatDelta.Content(" <tool_box>")], deltas);
    }

    [Fact]
    public void Append_CompleteToolCall_EmitsStartThenWholeArguments()
    {
        var parser = new ChatStreamParser(ToolsOnly, () => "call_x");
        var deltas = new List<ChatDelta>();
        parser.Append("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Pa", deltas);
        Assert.Empty(deltas);
        parser.Append("ris\", \"unit\": \"c\"}}\n</tool_call>", deltas);
        Assert.Equal([ChatDelta.ToolCallStart(0, "call_x", "get_weather"), ChatDelta.ToolCallArguments(0, WeatherArgs)], deltas);
        Assert.Equal(1, parser.ToolCallCount);
    }

    [Theory]
    [InlineData("<|im_start|>assistant\n<think>\n", "\n</think>\n\n<tool_call>\n{\"name\": \"")]
    [InlineData("<|im_start|>assistant\n", "<think>\n\n</think>\n\n<tool_call>\n{\"name\": \"")]
    [InlineData("<|im_start|>assistant\n<think>\n\n</think>\n\n", "<tool_call>\n{\"name\": \"")]
    public void Stream_ForcedToolCallPrefill_ParsesCallWithEmptyReasoning(string prompt, string prefill)
    {
        // The chat layer forces a call by appending a prefill to the prompt and feeding the same prefill to the parser.
        foreach (ChatParserOptions options in new[] { ChatParserOptions.ForPrompt(prompt, true), ChatParserOptions.ForPrompt(prompt + prefill, true) })
        {
            var parser = new ChatStreamParser(options, () => "call_0");
            var deltas = new List<ChatDelta>();
            parser.Append(prefill, deltas);
            parser.Append("get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call>", deltas);
            parser.Finish(deltas);
            var acc = new ChatDeltaAccumulator();
            acc.AddRange(deltas);
            ParsedChatOutput output = acc.ToOutput(parser.SawReasoning);
            Assert.True(output.Reasoning is null or "", $"reasoning [{output.Reasoning}]");
            Assert.Equal("", output.Content);
            Assert.Equal([new ParsedToolCall("call_0", "get_weather", WeatherArgs)], output.ToolCalls);
        }
    }

    [Fact]
    public void Append_AfterFinish_Throws()
    {
        var parser = new ChatStreamParser(Thinking);
        parser.Finish([]);
        Assert.Throws<InvalidOperationException>(() => parser.Append("x", []));
    }

    [Fact]
    public void InReasoning_CutOffWhileThinking_IsTrue()
    {
        var parser = new ChatStreamParser(Thinking);
        var deltas = new List<ChatDelta>();
        parser.Append("<think>\nhmm", deltas);
        Assert.True(parser.InReasoning);
        parser.Append("</think>ok", deltas);
        Assert.False(parser.InReasoning);
    }

    [Fact]
    public void DefaultIds_HaveOpenAiShape()
    {
        ParsedChatOutput output = new ChatOutputParser(ToolsOnly).ParseComplete(Weather + Time);
        Assert.Equal(2, output.ToolCalls.Count);
        foreach (ParsedToolCall call in output.ToolCalls)
        {
            Assert.Matches("^call_[A-Za-z0-9]{24}$", call.Id);
        }

        Assert.NotEqual(output.ToolCalls[0].Id, output.ToolCalls[1].Id);
    }

    [Theory]
    [InlineData("<|im_start|>assistant\n<think>\n\n</think>\n\n", false, false)]
    [InlineData("<|im_start|>assistant\n<think>\n", true, true)]
    [InlineData("<|im_start|>assistant\n", true, false)]
    public void ForPrompt_PromptEnding_PicksStartState(string prompt, bool reasoningEnabled, bool startsInside)
    {
        ChatParserOptions options = ChatParserOptions.ForPrompt(prompt, toolsEnabled: true);
        Assert.Equal(reasoningEnabled, options.ReasoningEnabled);
        Assert.Equal(startsInside, options.StartsInsideReasoning);
        Assert.True(options.ToolsEnabled);
    }

    [Theory]
    [InlineData("{\n  \"a\" : [ 1 , 2 ],\t\"b\": \"x y\\\" z\" }", "{\"a\":[1,2],\"b\":\"x y\\\" z\"}")]
    [InlineData("{\"s\": \"\\\\\", \"t\": \" \"}", "{\"s\":\"\\\\\",\"t\":\" \"}")]
    public void Minify_WhitespaceOutsideStrings_IsRemoved(string json, string expected)
        => Assert.Equal(expected, HermesToolCall.Minify(json));
}
