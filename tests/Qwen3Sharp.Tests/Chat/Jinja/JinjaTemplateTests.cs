using Qwen3Sharp.Chat;
using Qwen3Sharp.Chat.Jinja;

namespace Qwen3Sharp.Tests.Chat.Jinja;

/// <summary>Core interpreter behaviour; expected strings are Python Jinja2's output with transformers' settings.</summary>
public class JinjaTemplateTests
{
    private static string Render(string source, params (string Name, JinjaValue Value)[] vars) =>
        JinjaTemplate.Parse(source).Render(vars.Select(v => new KeyValuePair<string, JinjaValue>(v.Name, v.Value)));

    [Theory]
    [InlineData("{% if true %}\nA\n{% endif %}\nB", "A\nB")]                   // trim_blocks eats the newline after %}
    [InlineData("x\n  {% if true %}\n  y\n  {% endif %}\n", "x\n  y\n")]      // lstrip_blocks eats indentation before {%
    [InlineData("x  {%- if true %} y {% endif -%}  \n z", "x y z")]           // "-" strips all whitespace on its side
    [InlineData("a {{ 'b' }}\nc", "a b\nc")]                                 // {{ }} keeps whitespace and newlines
    [InlineData("x\n  {%+ if true %}y{% endif %}", "x\n  y")]                // "+" disables lstrip
    [InlineData("{# note #}\nz", "z")]                                       // comments are trimmed like blocks
    [InlineData("end\n", "end")]                                             // one trailing newline is dropped
    public void Render_WhitespaceControl_MatchesTransformersEnvironment(string source, string expected) =>
        Assert.Equal(expected, Render(source));

    [Fact]
    public void Render_NamespaceInLoop_PersistsAcrossIterations()
    {
        var list = JinjaValue.FromList(new JinjaList([1L, 2L, 3L]));
        Assert.Equal("6|",
            Render("{% set ns = namespace(t=0) %}{% set plain = 0 %}{% for x in xs %}{% set ns.t = ns.t + x %}{% set plain = x %}{% endfor %}{{ ns.t }}|{{ plain if false }}", ("xs", list)));
    }

    [Fact]
    public void Render_ReverseSliceLoopIndex_LikeQwen3LastQueryScan()
    {
        var list = JinjaValue.FromList(new JinjaList(["a", "b", "c"]));
        Assert.Equal("c2 b1 a0 ", Render("{% for m in xs[::-1] %}{{ m }}{{ (xs|length - 1) - loop.index0 }} {% endfor %}", ("xs", list)));
    }

    [Fact]
    public void Render_UndefinedSemantics_FalsyEmptyAndDefinedTest()
    {
        Assert.Equal("[]|False|no|0", Render("[{{ missing }}]|{{ missing is defined }}|{{ 'yes' if missing else 'no' }}|{{ missing|length }}"));
    }

    [Fact]
    public void Parse_SameSource_ReturnsCachedTemplate()
    {
        const string source = "{{ 'cached' }}";
        Assert.Same(JinjaTemplate.Parse(source), JinjaTemplate.Parse(source));
    }

    [Fact]
    public void Render_LoopControls_BreakAndContinue()
    {
        Assert.Equal("0,1,3,", Render("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% elif i == 4 %}{% break %}{% endif %}{{ i }},{% endfor %}"));
    }

    [Fact]
    public void Parse_BreakOutsideLoop_IsSyntaxError()
    {
        var ex = Assert.Throws<ChatTemplateException>(() => JinjaTemplate.Parse("{% break %}"));
        Assert.Equal(ChatTemplateErrorKind.Syntax, ex.Kind);
    }

    [Fact]
    public void Render_MacroWithDefaultsAndCallBlock()
    {
        Assert.Equal("<p>hi</p>|[x=1,y=2]",
            Render("{% macro tag(name='p') %}<{{ name }}>{{ caller() }}</{{ name }}>{% endmacro %}{% call tag() %}hi{% endcall %}|" +
                   "{% macro pair(x, y=2) %}[x={{ x }},y={{ y }}]{% endmacro %}{{ pair(1) }}"));
    }
}
