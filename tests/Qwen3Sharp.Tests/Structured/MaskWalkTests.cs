using System.Text;
using System.Text.Json.Nodes;
using Qwen3Sharp.Structured;

namespace Qwen3Sharp.Tests.Structured;

/// <summary>
/// The mask walk (trie walk over cached byte transitions) against a brute-force check of every token of the real
/// vocabulary, byte by byte over frame lists, in every state of random walks through many grammars.
/// </summary>
public class MaskWalkTests
{
    private const int StatesPerGrammar = 6;

    private const string ArithGbnf = """
        root ::= expr
        expr ::= term (("+" | "-") term)*
        term ::= [0-9]+ | "(" expr ")" | [a-z] [a-z0-9_]{0,6}
        """;

    private const string FreeTextGbnf = """
        root ::= "Answer: " [^\n]{1,40} "\n" ("Because " [^\n.]* "." | "")
        """;

    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (string name in Grammars.Keys)
        {
            data.Add(name);
        }

        return data;
    }

    private static readonly Dictionary<string, Func<GNode>> Grammars = BuildGrammars();

    private static Dictionary<string, Func<GNode>> BuildGrammars()
    {
        var all = new Dictionary<string, Func<GNode>>();
        foreach ((string name, string schema) in SchemaCases.All)
        {
            all["schema:" + name] = () => StructuredKit.Schema(schema);
        }

        for (int i = 0; i < 10; i++)
        {
            int seed = i;
            all["random-schema:" + i] = () => StructuredKit.Schema(RandomSchema(new Random(seed), 3).ToJsonString());
        }

        all["json_object"] = () => G.Seq(JsonSchemaCompiler.Ws, JsonSchemaCompiler.AnyObject());
        all["gbnf:arith"] = () => GbnfCompiler.Compile(ArithGbnf);
        all["gbnf:free-text"] = () => GbnfCompiler.Compile(FreeTextGbnf);
        all["regex:raw"] = () => RegexCompiler.Compile(@"[A-Za-z ]{0,30}(!|\?)\d*", jsonString: false);
        all["tool-calls"] = () => ToolCallGrammar.Calls(
            [new ToolCallTarget("get_weather", JsonSchemaCompiler.Compile(JsonNode.Parse(SchemaCases.All["object-required"]), true, out _)),
             new ToolCallTarget("lookup", JsonSchemaCompiler.Compile(JsonNode.Parse(SchemaCases.All["map"]), true, out _))],
            new GToken(StructuredKit.Tokenizer.ToolCallStart!.Value), new GToken(StructuredKit.Tokenizer.ToolCallEnd!.Value), parallel: true);
        return all;
    }

    /// <summary>A random schema of the keywords the compiler enforces, nested up to <paramref name="depth"/> levels.</summary>
    private static JsonNode RandomSchema(Random rng, int depth)
    {
        int kind = rng.Next(depth > 0 ? 9 : 6);
        switch (kind)
        {
            case 0:
                var s = new JsonObject { ["type"] = "string" };
                if (rng.Next(2) == 0)
                {
                    s["maxLength"] = rng.Next(1, 20);
                }

                return s;
            case 1:
                return new JsonObject { ["type"] = "integer", ["minimum"] = rng.Next(-50, 5), ["maximum"] = rng.Next(5, 3000) };
            case 2:
                return new JsonObject { ["type"] = rng.Next(2) == 0 ? "number" : "boolean" };
            case 3:
                return new JsonObject { ["enum"] = new JsonArray("alpha", "beta", 7, null) };
            case 4:
                string[] formats = ["date", "uuid", "email", "date-time"];
                return new JsonObject { ["type"] = "string", ["format"] = formats[rng.Next(formats.Length)] };
            case 5:
                return new JsonObject { ["type"] = "string", ["pattern"] = "^[a-c]{1,3}-[0-9]+$" };
            case 6:
                var arr = new JsonObject { ["type"] = "array", ["items"] = RandomSchema(rng, depth - 1) };
                if (rng.Next(2) == 0)
                {
                    arr["maxItems"] = rng.Next(1, 4);
                }

                return arr;
            case 7:
                return new JsonObject { ["anyOf"] = new JsonArray(RandomSchema(rng, depth - 1), new JsonObject { ["type"] = "null" }) };
            default:
                var props = new JsonObject();
                var required = new JsonArray();
                int n = rng.Next(1, 4);
                for (int i = 0; i < n; i++)
                {
                    string key = "k" + i + (rng.Next(2) == 0 ? "_é" : "");
                    props[key] = RandomSchema(rng, depth - 1);
                    if (rng.Next(2) == 0)
                    {
                        required.Add(key);
                    }
                }

                return new JsonObject
                {
                    ["type"] = "object", ["properties"] = props, ["required"] = required, ["additionalProperties"] = false,
                };
        }
    }

    [Theory, MemberData(nameof(Names))]
    public void Mask_EqualsBruteForceCheckOfEveryToken_AlongRandomWalks(string name)
    {
        var matcher = new GrammarMatcher(Grammars[name](), StructuredKit.Trie);
        var rng = new Random(StableSeed(name));
        TokenTrie trie = StructuredKit.Trie;
        StateSet? state = matcher.Initial;
        for (int step = 0; step < StatesPerGrammar && state is { Terminals.Length: > 0 }; step++)
        {
            ulong[] mask = matcher.MaskOf(state);
            var allowed = new List<int>();
            for (int id = 0; id < trie.VocabSize; id++)
            {
                bool walked = (mask[id >> 6] & (1UL << (id & 63))) != 0;
                bool reference = matcher.AllowsByReference(state, id);
                if (walked != reference)
                {
                    Assert.Fail($"{name}, state {step}: token {id} {Describe(id)} is {(walked ? "allowed" : "refused")} by the mask " +
                        $"but {(reference ? "allowed" : "refused")} byte by byte");
                }

                if (walked)
                {
                    allowed.Add(id);
                }
            }

            Assert.NotEmpty(allowed);
            // Mostly short tokens, so the walk moves through the structure rather than staying in one long string.
            int next = allowed[rng.Next(allowed.Count)];
            for (int tries = 0; tries < 4 && trie.IsByteToken(next) && trie.BytesOf(next).Length > 2; tries++)
            {
                next = allowed[rng.Next(allowed.Count)];
            }

            state = matcher.Advance(state, next);
            Assert.NotNull(state);
        }
    }

    [Fact]
    public void ByteTransitions_DroppedPastTheirBudget_GiveTheSameMasks()
    {
        GNode grammar = StructuredKit.Schema(SchemaCases.All["pydantic-user"]);
        var roomy = new GrammarMatcher(grammar, StructuredKit.Trie);
        var tight = new GrammarMatcher(grammar, StructuredKit.Trie) { MaxTransitionArrays = 4 };
        StateSet? a = roomy.Initial, b = tight.Initial;
        foreach (int id in StructuredKit.Tokenizer.Encode("""{"name": "Ann", "age": 3, "email": null, "tags": ["x"]"""))
        {
            Assert.Equal(roomy.MaskOf(a!), tight.MaskOf(b!));
            a = roomy.Advance(a!, id);
            b = tight.Advance(b!, id);
        }

        Assert.NotNull(b);
    }

    [Fact]
    public void ByteTransitions_AreSharedByTheAdvanceAndTheWalk()
    {
        var matcher = new GrammarMatcher(StructuredKit.Schema("""{"type":"string"}"""), StructuredKit.Trie);
        StateSet inString = matcher.Advance(matcher.Initial, "\"ab"u8)!;
        matcher.MaskOf(inString);
        int states = matcher.StateCount;
        Assert.Same(inString, matcher.Advance(inString, "cd"u8));   // a free string's state loops on letters
        Assert.Equal(states, matcher.StateCount);
    }

    private string Describe(int id) => StructuredKit.Trie.IsByteToken(id)
        ? "\"" + Encoding.UTF8.GetString(StructuredKit.Trie.BytesOf(id)).ReplaceLineEndings("\\n") + "\""
        : "(added token)";

    /// <summary>A seed from the name that is the same in every process (string.GetHashCode is randomised per process).</summary>
    private static int StableSeed(string name)
    {
        uint h = 2166136261;
        foreach (char ch in name)
        {
            h = (h ^ ch) * 16777619;
        }

        return (int)(h & 0xFFFF);
    }
}
