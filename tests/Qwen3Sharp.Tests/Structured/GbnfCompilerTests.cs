using Qwen3Sharp.Structured;

namespace Qwen3Sharp.Tests.Structured;

/// <summary>llama.cpp GBNF grammars compiled to the byte grammar, force-fed token by token over the real vocabulary.</summary>
public class GbnfCompilerTests
{
    /// <summary>llama.cpp's grammars/json.gbnf, verbatim.</summary>
    private const string JsonGbnf = """
        root   ::= object
        value  ::= object | array | string | number | ("true" | "false" | "null") ws

        object ::=
          "{" ws (
                    string ":" ws value
            ("," ws string ":" ws value)*
          )? "}" ws

        array  ::=
          "[" ws (
                    value
            ("," ws value)*
          )? "]" ws

        string ::=
          "\"" (
            [^"\\\x7F\x00-\x1F] |
            "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
          )* "\"" ws

        number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws

        # Optional space: by convention, applied in this grammar after literal chars when allowed
        ws ::= | " " | "\n" [ \t]{0,20}
        """;

    private const string Arithmetic = """
        root ::= expr "=" ws term "\n"
        expr ::= term ([-+*/] term)*
        term ::= ident | num | "(" ws expr ")" ws
        ident ::= [a-z] [a-z0-9_]* ws
        num ::= [0-9]+ ws
        ws ::= [ \t]*
        """;

    public static TheoryData<string, string, bool> Cases() => new()
    {
        { JsonGbnf, """{"a": [1, 2.5e3, "x\u00e9"], "b": {"c": null}}""", true },
        { JsonGbnf, "{\"é\": \"日本\"}", true },
        { JsonGbnf, """{"a": 10}""", true },
        { JsonGbnf, """{"a": 01}""", false },   // json.gbnf's number rule has no leading zeros
        { JsonGbnf, """[1, 2]""", false },        // root is an object
        { JsonGbnf, """{"a": tru}""", false },
        { JsonGbnf, """{"a": "unterminated}""", false },
        { Arithmetic, "(a+b)*c=d\n", true },
        { Arithmetic, "x1 = 42\n", true },
        { Arithmetic, "1+=2\n", false },
        { Arithmetic, "a=b", false },
        { """root ::= "yes" | "no" """, "yes", true },
        { """root ::= "yes" | "no" """, "maybe", false },
        { "root ::= [^a-z]{2,3} \".\"", "AB.", true },
        { "root ::= [^a-z]{2,3} \".\"", "Ab.", false },
        { "root ::= [^a-z]{2,3} \".\"", "ABCD.", false },
        { "root ::= \"\\u00e9\" \"\\x41\" .", "éA日", true },
        { "root ::= list\nlist ::= \"[\" (item (\",\" item)*)? \"]\"\nitem ::= \"x\" | list", "[x,[x,[]],x]", true },
        { "root ::= list\nlist ::= \"[\" (item (\",\" item)*)? \"]\"\nitem ::= \"x\" | list", "[x,[x,[]],x", false },
    };

    [Theory, MemberData(nameof(Cases))]
    public void ForceFed_AcceptedExactlyWhenInTheLanguage(string grammar, string text, bool expected) =>
        Assert.Equal(expected, StructuredKit.Accepts(GbnfCompiler.Compile(grammar), text));

    [Theory]
    [InlineData("expr ::= \"a\"", "no 'root' rule")]
    [InlineData("root ::= item", "'item' is used but not defined")]
    [InlineData("root ::= \"a\"\nroot ::= \"b\"", "defined twice")]
    [InlineData("root ::= \"abc", "unterminated string literal")]
    [InlineData("root ::= [a-", "missing ']'")]
    [InlineData("root ::= (\"a\"", "missing ')'")]
    [InlineData("root = \"a\"", "expected '::='")]
    [InlineData("root ::= \"a\"{3,1}", "below the minimum")]
    [InlineData("root ::= \"\\q\"", "unknown escape")]
    public void BadGrammars_AreRefusedNamingTheProblem(string grammar, string message)
    {
        SchemaException e = Assert.Throws<SchemaException>(() => GbnfCompiler.Compile(grammar));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void RepeatingSomethingEmpty_IsRefusedWhenTheFirstMaskIsComputed() =>
        Assert.Throws<GrammarTooComplexException>(() =>
            StructuredKit.Constraint(GbnfCompiler.Compile("root ::= (\"a\"?)* \"b\"")).Prepare(TimeSpan.FromSeconds(30)));
}
