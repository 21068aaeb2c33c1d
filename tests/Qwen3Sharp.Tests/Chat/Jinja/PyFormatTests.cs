using Qwen3Sharp.Chat.Jinja;

namespace Qwen3Sharp.Tests.Chat.Jinja;

/// <summary>Python's repr(float) and json.dumps formatting; expected strings are what CPython 3 prints.</summary>
public class PyFormatTests
{
    [Theory]
    [InlineData(1.0, "1.0")]
    [InlineData(0.1, "0.1")]
    [InlineData(1e-5, "1e-05")]
    [InlineData(0.0001, "0.0001")]
    [InlineData(0.00012345, "0.00012345")]
    [InlineData(1.5e-7, "1.5e-07")]
    [InlineData(1e16, "1e+16")]
    [InlineData(1e15, "1000000000000000.0")]
    [InlineData(123456789012345678.0, "1.2345678901234568e+17")]
    [InlineData(9999999999999998.0, "9999999999999998.0")]
    [InlineData(0.30000000000000004, "0.30000000000000004")]
    [InlineData(-2.5, "-2.5")]
    [InlineData(-0.0, "-0.0")]
    [InlineData(1.7976931348623157e308, "1.7976931348623157e+308")]
    [InlineData(5e-324, "5e-324")]
    [InlineData(100.0, "100.0")]
    [InlineData(3.14159, "3.14159")]
    [InlineData(double.PositiveInfinity, "inf")]
    [InlineData(double.NaN, "nan")]
    public void FloatRepr_KnownValues_MatchCPython(double value, string expected) =>
        Assert.Equal(expected, PyFormat.FloatRepr(value));

    private static JinjaValue Obj(params (string Key, JinjaValue Value)[] entries)
    {
        var d = new JinjaDict();
        foreach (var (k, v) in entries) d.Set(k, v);
        return JinjaValue.FromDict(d);
    }

    private static JinjaValue List(params JinjaValue[] items) => JinjaValue.FromList(new JinjaList(items));

    [Fact]
    public void JsonDumps_DefaultSeparators_MatchPythonJsonDumps()
    {
        // json.dumps({"b": 1, "a": [1.0, None, True, "x"], "c": {}}, ensure_ascii=False)
        var v = Obj(("b", 1L), ("a", List(1.0, JinjaValue.None, true, "x")), ("c", Obj()));
        Assert.Equal("{\"b\": 1, \"a\": [1.0, null, true, \"x\"], \"c\": {}}", PyFormat.JsonDumps(v));
    }

    [Fact]
    public void JsonDumps_Strings_EscapeLikePythonWithoutEnsureAscii()
    {
        // json.dumps('q"b\\s/n\nt\tc\x01\x7fé😀\u2028', ensure_ascii=False)
        Assert.Equal("\"q\\\"b\\\\s/n\\nt\\tc\\u0001\u007fé😀\u2028\"", PyFormat.JsonDumps("q\"b\\s/n\nt\tc\u0001\u007fé😀\u2028"));
        // ensure_ascii=True escapes non-ASCII as UTF-16 units: json.dumps('é😀') == '"\\u00e9\\ud83d\\ude00"'
        Assert.Equal("\"\\u00e9\\ud83d\\ude00\"", PyFormat.JsonDumps("é😀", new PyFormat.JsonOptions(null, null, null, false, true)));
    }

    [Fact]
    public void JsonDumps_Indent_UsesCommaWithoutSpaceAndNestedIndent()
    {
        // json.dumps({"a": [1, {"b": []}], "c": "d"}, indent=2)
        var v = Obj(("a", List(1L, Obj(("b", List())))), ("c", "d"));
        Assert.Equal("{\n  \"a\": [\n    1,\n    {\n      \"b\": []\n    }\n  ],\n  \"c\": \"d\"\n}",
            PyFormat.JsonDumps(v, new PyFormat.JsonOptions(2, null, null, false, false)));
    }

    [Fact]
    public void JsonDumps_SortKeysAndNonStringKeys_MatchPython()
    {
        // json.dumps({"b": 1, 2: "x", "a": 0}, sort_keys=False) -> keys stringified: {"b": 1, "2": "x", "a": 0}
        var d = new JinjaDict { [JinjaValue.FromString("b")] = 1L, [JinjaValue.FromInt(2)] = "x", [JinjaValue.FromString("a")] = 0L };
        Assert.Equal("{\"b\": 1, \"2\": \"x\", \"a\": 0}", PyFormat.JsonDumps(JinjaValue.FromDict(d)));
        var s = Obj(("b", 1L), ("a", 2L));
        Assert.Equal("{\"a\": 2, \"b\": 1}", PyFormat.JsonDumps(s, new PyFormat.JsonOptions(null, null, null, true, false)));
        Assert.Equal("{\"b\":1,\"a\":2}", PyFormat.JsonDumps(s, new PyFormat.JsonOptions(null, ",", ":", false, false)));
    }

    [Fact]
    public void JsonDumps_Undefined_Throws()
    {
        Assert.Throws<JinjaRuntimeException>(() => PyFormat.JsonDumps(List(JinjaValue.Undefined)));
    }

    [Theory]
    [InlineData("abc", "'abc'")]
    [InlineData("it's", "\"it's\"")]
    [InlineData("both ' \"", "'both \\' \"'")]
    [InlineData("nl\n\ttab\\", "'nl\\n\\ttab\\\\'")]
    [InlineData("\u0001\u007f\u00a0é\u200b😀", "'\\x01\\x7f\\xa0é\\u200b😀'")]
    public void Repr_Strings_MatchPythonRepr(string value, string expected) => Assert.Equal(expected, PyFormat.Repr(value));

    [Fact]
    public void Str_Containers_MatchPythonStr()
    {
        var v = List(1L, "a", JinjaValue.None, true, 2.0, JinjaValue.FromList(JinjaList.Tuple(1L)), Obj(("k", List())));
        Assert.Equal("[1, 'a', None, True, 2.0, (1,), {'k': []}]", PyFormat.Str(v));
        Assert.Equal("", PyFormat.Str(JinjaValue.Undefined));
    }
}
