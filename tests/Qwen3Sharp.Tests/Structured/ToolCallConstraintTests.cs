using System.Text.Json.Nodes;
using Json.Schema;
using Qwen3Sharp.Chat.Parsing;
using Qwen3Sharp.Structured;

namespace Qwen3Sharp.Tests.Structured;

/// <summary>Hermes tool-call grammars and the triggered (strict-under-auto) constraint, over the real Qwen3 vocabulary.</summary>
public class ToolCallConstraintTests
{
    private const string WeatherSchema = """{"type":"object","properties":{"city":{"type":"string","maxLength":12},"unit":{"enum":["c","f"]}},"required":["city","unit"],"additionalProperties":false}""";
    private const string TimeSchema = """{"type":"object","properties":{"zone":{"type":"string","pattern":"^[A-Z]{3}$"}},"required":["zone"],"additionalProperties":false}""";

    private static readonly Dictionary<string, string> Schemas = new() { ["get_weather"] = WeatherSchema, ["get_time"] = TimeSchema };

    private static int ToolCallStart => StructuredKit.Tokenizer.ToolCallStart!.Value;

    private static GNode Open => new GToken(ToolCallStart);

    private static GNode Close => new GToken(StructuredKit.Tokenizer.ToolCallEnd!.Value);

    private static List<ToolCallTarget> Targets(params string[] names) =>
        [.. names.Select(n => new ToolCallTarget(n, JsonSchemaCompiler.Compile(JsonNode.Parse(Schemas[n]), strict: true, out _)))];

    private static string Call(string name, string arguments) => $"<tool_call>\n{{\"name\": \"{name}\", \"arguments\": {arguments}}}\n</tool_call>";

    /// <summary>Feeds <paramref name="text"/> token by token (as the tokenizer encodes it); true when every token and then end of turn are allowed.</summary>
    private static bool Accepts(TokenConstraint c, string text)
    {
        var logits = new float[StructuredKit.VocabSize];
        foreach (int id in StructuredKit.Tokenizer.Encode(text))
        {
            logits.AsSpan().Clear();
            c.Mask(logits);
            if (float.IsNegativeInfinity(logits[id]))
            {
                return false;
            }

            c.Accept(id);
        }

        logits.AsSpan().Clear();
        c.Mask(logits);
        return !float.IsNegativeInfinity(logits[StructuredKit.EndToken]);
    }

    private static TokenConstraint Forced(bool parallel, params string[] names) =>
        StructuredKit.Constraint(ToolCallGrammar.Calls(Targets(names), Open, Close, parallel));

    private static TokenConstraint Triggered(bool repeat, params string[] names) =>
        new(new GrammarMatcher(ToolCallGrammar.Body(Targets(names), Close), StructuredKit.Trie), [StructuredKit.EndToken],
            ConstraintStart.FirstToken, -1, -1, ToolCallStart, repeat);

    public static TheoryData<string, bool, bool> ForcedCases() => new()
    {
        { Call("get_weather", """{"city": "Paris", "unit": "c"}"""), false, true },
        { "\n\n" + Call("get_time", """{ "zone" : "UTC" }"""), false, true },
        { Call("get_weather", """{"city": "Paris", "unit": "c"}""") + "\n" + Call("get_time", """{"zone": "CET"}"""), true, true },
        { Call("get_weather", """{"city": "Paris", "unit": "c"}""") + "\n" + Call("get_time", """{"zone": "CET"}"""), false, false },
        { Call("get_weather", """{"city": "Paris"}"""), true, false },                       // a required property missing
        { Call("get_weather", """{"city": "Paris", "unit": "k"}"""), true, false },          // not in the enum
        { Call("get_time", """{"zone": "utc"}"""), true, false },                            // pattern
        { Call("get_weather", """{"city": "Paris", "unit": "c", "x": 1}"""), true, false },  // additionalProperties: false
        { Call("get_news", """{}"""), true, false },                                         // not an offered function
        { "Sure: " + Call("get_time", """{"zone": "UTC"}"""), true, false },                 // text instead of a call
        { "", true, false },                                                                 // no call at all
        { Call("get_time", """{"zone": "UTC"}""") + "\nDone.", true, false },               // text after the calls
    };

    [Theory, MemberData(nameof(ForcedCases))]
    public void Forced_AcceptsExactlyCallsOfOfferedFunctionsWithValidArguments(string output, bool parallel, bool expected) =>
        Assert.Equal(expected, Accepts(Forced(parallel, "get_weather", "get_time"), output));

    [Fact]
    public void Forced_NamedFunction_RefusesTheOtherFunction()
    {
        Assert.True(Accepts(Forced(false, "get_time"), Call("get_time", """{"zone": "UTC"}""")));
        Assert.False(Accepts(Forced(false, "get_time"), Call("get_weather", """{"city": "Paris", "unit": "c"}""")));
    }

    public static TheoryData<string, bool, bool> TriggeredCases() => new()
    {
        { "No call needed, the answer is {\"city\": 4}.", true, true },   // free text, JSON-ish or not
        { "Let me look.\n" + Call("get_time", """{"zone": "UTC"}""") + "\nIt is noon.", true, true },
        { Call("get_time", """{"zone": "UTC"}""") + "\n" + Call("get_weather", """{"city": "Oslo", "unit": "f"}"""), true, true },
        { Call("get_time", """{"zone": "UTC"}""") + "\n" + Call("get_weather", """{"city": "Oslo", "unit": "f"}"""), false, false },
        { "Let me look.\n" + Call("get_time", """{"zone": "UTC"}"""), false, true },
        { "Let me look.\n" + Call("get_time", """{"zone": "UTC"}""") + "\nIt is noon.", false, false },
        { "Let me look.\n" + Call("get_time", """{"zone": "Europe/Oslo"}"""), true, false },
        { Call("get_time", """{"zone": "UTC"}""").Replace("\"name\": ", "\"name\":"), true, false },   // the template's layout only
        { "Let me look.\n<tool_call>\n{\"name\": \"get_time\"", true, false },                           // an unfinished call cannot end the turn
    };

    [Theory, MemberData(nameof(TriggeredCases))]
    public void Triggered_FreeTextAroundCalls_ConstrainedInsideThem(string output, bool repeat, bool expected) =>
        Assert.Equal(expected, Accepts(Triggered(repeat, "get_weather", "get_time"), output));

    private static TokenConstraint TriggeredByText(bool repeat, params string[] names) =>
        new(new GrammarMatcher(ToolCallGrammar.Body(Targets(names), Close), StructuredKit.Trie), [StructuredKit.EndToken],
            ConstraintStart.FirstToken, -1, -1, ToolCallStart, repeat, triggerText: "<tool_call>");

    /// <summary>Token ids of <paramref name="text"/> with every tag spelled out of ordinary tokens.</summary>
    private static List<int> Pieces(string text)
    {
        var ids = new List<int>();
        StructuredKit.Tokenizer.Encode(text, ids, parseAddedTokens: false);
        return ids;
    }

    private static List<int> Tokens(string text) => [.. StructuredKit.Tokenizer.Encode(text)];

    private static bool AcceptsIds(TokenConstraint c, List<int> ids)
    {
        var logits = new float[StructuredKit.VocabSize];
        foreach (int id in ids)
        {
            logits.AsSpan().Clear();
            c.Mask(logits);
            if (float.IsNegativeInfinity(logits[id]))
            {
                return false;
            }

            c.Accept(id);
        }

        logits.AsSpan().Clear();
        c.Mask(logits);
        return !float.IsNegativeInfinity(logits[StructuredKit.EndToken]);
    }

    [Theory]
    [InlineData("""{"zone": "UTC"}""", true)]
    [InlineData("""{"zone": "Europe/Oslo"}""", false)]   // the pattern: the spelled-out tag constrains the call too
    public void Triggered_TagSpelledOutOfPieces_ConstrainsTheCallLikeTheTagToken(string arguments, bool expected)
    {
        List<int> open = Pieces("Let me look.\n<tool_call>");
        Assert.DoesNotContain(ToolCallStart, open);
        Assert.True(open.Count >= 4, "the tag is several ordinary tokens");
        List<int> ids = [.. open, .. Tokens($"\n{{\"name\": \"get_time\", \"arguments\": {arguments}}}\n</tool_call>\nIt is noon.")];
        Assert.Equal(expected, AcceptsIds(TriggeredByText(repeat: true, "get_time"), ids));
        Assert.True(AcceptsIds(Triggered(repeat: true, "get_time"), ids));   // without the text trigger nothing is checked
    }

    [Fact]
    public void Triggered_TokenCompletingTheSpelledTag_IsMaskedWhenTheCallCannotContinueWithItsRest()
    {
        TokenConstraint c = TriggeredByText(repeat: false, "get_time");
        foreach (int id in Pieces("Hm <tool_call"))
        {
            c.Accept(id);
        }

        var logits = new float[StructuredKit.VocabSize];
        c.Mask(logits);
        Assert.True(float.IsFinite(logits[Single(">")]));
        Assert.True(float.IsFinite(logits[Single(">\n")]));       // '>' then the call's first byte
        Assert.True(float.IsNegativeInfinity(logits[Single(">,")]));
        Assert.True(float.IsFinite(logits[Single("_")]));          // not completing the tag: free text
        Assert.False(c.IsActive);
        c.Accept(Single(">\n"));
        Assert.True(c.IsActive);

        static int Single(string text)
        {
            List<int> ids = Pieces(text);
            Assert.Single(ids);
            return ids[0];
        }
    }

    [Fact]
    public void Triggered_IsActiveOnlyInsideACall_AndAfterTheOnlyCall()
    {
        TokenConstraint c = Triggered(repeat: false, "get_time");
        Assert.False(c.IsActive);
        foreach (int id in StructuredKit.Tokenizer.Encode("Hm.\n<tool_call>"))
        {
            c.Accept(id);
        }

        Assert.True(c.IsActive);
        foreach (int id in StructuredKit.Tokenizer.Encode("\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"UTC\"}}\n</tool_call>"))
        {
            c.Accept(id);
        }

        Assert.True(c.IsActive);   // only end of turn is left
        var logits = new float[StructuredKit.VocabSize];
        c.Mask(logits);
        Assert.Equal(1, logits.Count(float.IsFinite));
        Assert.True(float.IsFinite(logits[StructuredKit.EndToken]));
    }

    [Fact]
    public void Sampled_ForcedCalls_ParseAndValidate()
    {
        var rng = new Random(14);
        var parser = new ChatOutputParser(new ChatParserOptions { ToolsEnabled = true });
        int complete = 0;
        for (int i = 0; i < 12; i++)
        {
            string? output = StructuredKit.Sample(ToolCallGrammar.Calls(Targets("get_weather", "get_time"), Open, Close, parallel: i % 2 == 0), rng);
            if (output is null)
            {
                continue;
            }

            complete++;
            ParsedChatOutput parsed = parser.ParseComplete(output);
            Assert.True(parsed.Content.Length == 0, $"sample {i} left text outside the calls: {output}");
            Assert.NotEmpty(parsed.ToolCalls);
            if (i % 2 == 1)
            {
                Assert.Single(parsed.ToolCalls);
            }

            foreach (ParsedToolCall call in parsed.ToolCalls)
            {
                EvaluationResults r = JsonSchema.FromText(Schemas[call.Name]).Evaluate(JsonNode.Parse(call.Arguments));
                Assert.True(r.IsValid, $"sample {i}: {output}");
            }
        }

        Assert.True(complete >= 9, $"only {complete} of 12 samples ended");
    }
}
