using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Qwen3Sharp.Chat.Jinja;

/// <summary>Jinja2's builtin filters, tests and globals, plus the ones transformers adds (tojson, raise_exception, strftime_now).</summary>
internal static partial class JinjaBuiltins
{
    public static readonly Dictionary<string, FilterFunc> Filters = new(StringComparer.Ordinal)
    {
        ["tojson"] = ToJson,
        ["length"] = (_, v, _) => JinjaValue.FromInt(JinjaOps.Length(v)),
        ["count"] = (_, v, _) => JinjaValue.FromInt(JinjaOps.Length(v)),
        ["trim"] = (_, v, a) => PyStrings.Strip(PyFormat.Str(v), a.Get(0, "chars", JinjaValue.None) is { IsString: true } c ? c.AsString : null, true, true),
        ["items"] = Items,
        ["default"] = Default,
        ["d"] = Default,
        ["upper"] = (_, v, _) => PyFormat.Str(v).ToUpperInvariant(),
        ["lower"] = (_, v, _) => PyFormat.Str(v).ToLowerInvariant(),
        ["title"] = (_, v, _) => JinjaTitle(PyFormat.Str(v)),
        ["capitalize"] = (_, v, _) => PyStrings.Capitalize(PyFormat.Str(v)),
        ["join"] = Join,
        ["first"] = (_, v, _) => First(v),
        ["last"] = (_, v, _) => Last(v),
        ["list"] = (_, v, _) => JinjaValue.FromList(new JinjaList(JinjaOps.Iterate(v))),
        ["string"] = (_, v, _) => PyFormat.Str(v),
        ["int"] = ToInt,
        ["float"] = ToFloat,
        ["abs"] = Abs,
        ["replace"] = Replace,
        ["round"] = Round,
        ["map"] = Map,
        ["select"] = (c, v, a) => Select(c, v, a, keep: true),
        ["reject"] = (c, v, a) => Select(c, v, a, keep: false),
        ["selectattr"] = (c, v, a) => SelectAttr(c, v, a, keep: true),
        ["rejectattr"] = (c, v, a) => SelectAttr(c, v, a, keep: false),
        ["unique"] = Unique,
        ["sort"] = Sort,
        ["reverse"] = Reverse,
        ["safe"] = (_, v, _) => v,
        ["e"] = (_, v, _) => Escape(v),
        ["escape"] = (_, v, _) => Escape(v),
        ["forceescape"] = (_, v, _) => Escape(v),
        ["dictsort"] = DictSort,
        ["batch"] = Batch,
        ["slice"] = SliceFilter,
        ["min"] = (c, v, a) => MinMax(v, a, max: false),
        ["max"] = (c, v, a) => MinMax(v, a, max: true),
        ["sum"] = Sum,
        ["indent"] = Indent,
        ["center"] = (_, v, a) => PyMethods.Call(PyFormat.Str(v), "center", new JinjaArguments([a.Get(0, "width", JinjaValue.FromInt(80))], [])),
        ["format"] = (_, v, a) => a.Named.Length > 0
            ? PyStrings.PercentFormat(PyFormat.Str(v), DictOf(a.Named))
            : PyStrings.PercentFormat(PyFormat.Str(v), JinjaValue.FromList(JinjaList.Tuple(a.Positional))),
        ["wordcount"] = (_, v, _) => JinjaValue.FromInt(WordRegex().Count(PyFormat.Str(v))),
        ["truncate"] = Truncate,
        ["striptags"] = (_, v, _) => string.Join(' ', PyStrings.SplitWhitespace(TagRegex().Replace(PyFormat.Str(v), ""), -1, false)),
        ["pprint"] = (_, v, _) => PyFormat.Repr(v),
        ["attr"] = (_, v, a) => JinjaOps.GetAttr(v, a.Required(0, "name", "attr").AsString),
    };

    public static readonly Dictionary<string, TestFunc> Tests = new(StringComparer.Ordinal)
    {
        ["defined"] = (_, v, _) => !v.IsUndefined,
        ["undefined"] = (_, v, _) => v.IsUndefined,
        ["none"] = (_, v, _) => v.IsNone,
        ["string"] = (_, v, _) => v.IsString,
        ["number"] = (_, v, _) => v.Kind is JinjaKind.Int or JinjaKind.Float or JinjaKind.Bool,
        ["integer"] = (_, v, _) => v.Kind == JinjaKind.Int,
        ["float"] = (_, v, _) => v.Kind == JinjaKind.Float,
        ["boolean"] = (_, v, _) => v.Kind == JinjaKind.Bool,
        ["true"] = (_, v, _) => v.Kind == JinjaKind.Bool && v.AsBool,
        ["false"] = (_, v, _) => v.Kind == JinjaKind.Bool && !v.AsBool,
        ["mapping"] = (_, v, _) => v.Kind == JinjaKind.Dict,
        ["iterable"] = (_, v, _) => v.Kind is JinjaKind.List or JinjaKind.Dict or JinjaKind.String or JinjaKind.Undefined,
        ["sequence"] = (_, v, _) => v.Kind is JinjaKind.List or JinjaKind.Dict or JinjaKind.String,
        ["callable"] = (_, v, _) => v.Kind == JinjaKind.Callable,
        ["even"] = (_, v, _) => IntOf(v, "even") % 2 == 0,
        ["odd"] = (_, v, _) => IntOf(v, "odd") % 2 != 0,
        ["divisibleby"] = (_, v, a) => IntOf(v, "divisibleby") % IntOf(a.Required(0, "num", "divisibleby"), "divisibleby") == 0,
        ["lower"] = (_, v, _) => v.IsString && v.AsString == v.AsString.ToLowerInvariant(),
        ["upper"] = (_, v, _) => v.IsString && v.AsString == v.AsString.ToUpperInvariant(),
        ["sameas"] = (_, v, a) => SameAs(v, a.Required(0, "other", "sameas")),
        ["escaped"] = (_, _, _) => false,
        ["in"] = (_, v, a) => JinjaOps.Contains(a.Required(0, "seq", "in"), v),
        ["eq"] = (_, v, a) => v.Equals(a.Required(0, "other", "eq")),
        ["equalto"] = (_, v, a) => v.Equals(a.Required(0, "other", "equalto")),
        ["=="] = (_, v, a) => v.Equals(a.Required(0, "other", "==")),
        ["ne"] = (_, v, a) => !v.Equals(a.Required(0, "other", "ne")),
        ["!="] = (_, v, a) => !v.Equals(a.Required(0, "other", "!=")),
        ["lt"] = (_, v, a) => JinjaOps.Compare(v, a.Required(0, "other", "lt"), "<") < 0,
        ["lessthan"] = (_, v, a) => JinjaOps.Compare(v, a.Required(0, "other", "lessthan"), "<") < 0,
        ["<"] = (_, v, a) => JinjaOps.Compare(v, a.Required(0, "other", "<"), "<") < 0,
        ["le"] = (_, v, a) => JinjaOps.Compare(v, a.Required(0, "other", "le"), "<=") <= 0,
        ["<="] = (_, v, a) => JinjaOps.Compare(v, a.Required(0, "other", "<="), "<=") <= 0,
        ["gt"] = (_, v, a) => JinjaOps.Compare(v, a.Required(0, "other", "gt"), ">") > 0,
        ["greaterthan"] = (_, v, a) => JinjaOps.Compare(v, a.Required(0, "other", "greaterthan"), ">") > 0,
        [">"] = (_, v, a) => JinjaOps.Compare(v, a.Required(0, "other", ">"), ">") > 0,
        ["ge"] = (_, v, a) => JinjaOps.Compare(v, a.Required(0, "other", "ge"), ">=") >= 0,
        [">="] = (_, v, a) => JinjaOps.Compare(v, a.Required(0, "other", ">="), ">=") >= 0,
        ["filter"] = (_, v, _) => v.IsString && Filters.ContainsKey(v.AsString),
        ["test"] = (_, v, _) => v.IsString && Tests!.ContainsKey(v.AsString),
    };

    private static bool SameAs(JinjaValue a, JinjaValue b)
    {
        if (a.Kind != b.Kind) return false;
        return a.Kind switch
        {
            JinjaKind.None or JinjaKind.Undefined => true,
            JinjaKind.Bool or JinjaKind.Int => a.AsInt == b.AsInt,
            JinjaKind.Float => a.AsFloat.Equals(b.AsFloat),
            JinjaKind.String => ReferenceEquals(a.AsString, b.AsString),
            JinjaKind.List => ReferenceEquals(a.AsList, b.AsList),
            JinjaKind.Dict => ReferenceEquals(a.AsDict, b.AsDict),
            JinjaKind.Object => ReferenceEquals(a.AsObject, b.AsObject),
            _ => ReferenceEquals(a.AsCallable, b.AsCallable),
        };
    }

    private static long IntOf(JinjaValue v, string test)
    {
        if (v.Kind is JinjaKind.Int or JinjaKind.Bool) return v.AsInt;
        if (v.Kind == JinjaKind.Float) return (long)v.AsFloat;
        if (v.IsUndefined) throw JinjaOps.UndefinedError(v);
        throw new JinjaRuntimeException($"unsupported operand type(s) for %: '{v.TypeName}' and 'int' (test '{test}')");
    }

    private static JinjaValue DictOf(KeyValuePair<string, JinjaValue>[] named)
    {
        var d = new JinjaDict();
        foreach (var kv in named) d.Set(kv.Key, kv.Value);
        return JinjaValue.FromDict(d);
    }

    /// <summary>transformers: <c>json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)</c>.</summary>
    private static JinjaValue ToJson(JinjaRenderContext ctx, JinjaValue v, JinjaArguments a)
    {
        var indentArg = a.Get(1, "indent", JinjaValue.None);
        int? indent = indentArg.IsNone ? null : indentArg.Kind is JinjaKind.Int or JinjaKind.Bool ? (int)indentArg.AsInt
            : throw new JinjaRuntimeException("tojson indent must be an integer");
        string? itemSep = null, keySep = null;
        var sepArg = a.Get(2, "separators", JinjaValue.None);
        if (sepArg.Kind == JinjaKind.List && sepArg.AsList.Count == 2)
        {
            itemSep = PyFormat.Str(sepArg.AsList[0]);
            keySep = PyFormat.Str(sepArg.AsList[1]);
        }
        bool sortKeys = a.Get(3, "sort_keys", JinjaValue.False).IsTruthy;
        bool ensureAscii = a.Get(0, "ensure_ascii", JinjaValue.False).IsTruthy;
        if (v.IsUndefined) throw new JinjaRuntimeException("Object of type Undefined is not JSON serializable");
        return PyFormat.JsonDumps(v, new PyFormat.JsonOptions(indent, itemSep, keySep, sortKeys, ensureAscii));
    }

    private static JinjaValue Items(JinjaRenderContext ctx, JinjaValue v, JinjaArguments a)
    {
        if (v.IsUndefined) return JinjaValue.FromList(new JinjaList());
        if (v.Kind != JinjaKind.Dict) throw new JinjaRuntimeException($"Can only get item pairs from a mapping, not {v.TypeName}");
        return PyMethods.Call(v, "items", JinjaArguments.Empty);
    }

    private static JinjaValue Default(JinjaRenderContext ctx, JinjaValue v, JinjaArguments a)
    {
        var fallback = a.Get(0, "default_value", JinjaValue.EmptyString);
        bool boolean = a.Get(1, "boolean", JinjaValue.False).IsTruthy;
        if (v.IsUndefined || (boolean && !v.IsTruthy)) return fallback;
        return v;
    }

    /// <summary>Jinja's <c>title</c> filter (not Python's): capitalise each chunk after spaces, dashes and brackets.</summary>
    private static string JinjaTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var item in WordBeginningSplit().Split(s))
        {
            if (item.Length == 0) continue;
            sb.Append(char.ToUpperInvariant(item[0])).Append(item[1..].ToLowerInvariant());
        }
        return sb.ToString();
    }

    [GeneratedRegex(@"([-\s({\[<]+)")]
    private static partial Regex WordBeginningSplit();

    [GeneratedRegex(@"\w+")]
    private static partial Regex WordRegex();

    [GeneratedRegex(@"(<!--.*?-->|<[^>]*>)", RegexOptions.Singleline)]
    private static partial Regex TagRegex();

    private static JinjaValue Attribute(JinjaValue item, JinjaValue attribute)
    {
        if (attribute.Kind is JinjaKind.Int or JinjaKind.Bool) return JinjaOps.GetItem(item, attribute);
        var v = item;
        foreach (var part in PyFormat.Str(attribute).Split('.'))
        {
            v = long.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out long idx)
                ? JinjaOps.GetItem(v, JinjaValue.FromInt(idx))
                : JinjaOps.GetItem(v, part);
            if (v.IsUndefined) break;
        }
        return v;
    }

    private static JinjaValue Join(JinjaRenderContext ctx, JinjaValue v, JinjaArguments a)
    {
        string sep = PyFormat.Str(a.Get(0, "d", JinjaValue.EmptyString));
        var attr = a.Get(1, "attribute", JinjaValue.None);
        var items = JinjaOps.Iterate(v);
        var sb = new StringBuilder();
        for (int i = 0; i < items.Count; i++)
        {
            if (i > 0) sb.Append(sep);
            PyFormat.AppendStr(sb, attr.IsNone ? items[i] : Attribute(items[i], attr));
        }
        return sb.ToString();
    }

    private static JinjaValue First(JinjaValue v)
    {
        var items = JinjaOps.Iterate(v);
        return items.Count > 0 ? items[0] : JinjaValue.UndefinedNamed("No first item, sequence was empty.");
    }

    private static JinjaValue Last(JinjaValue v)
    {
        var items = JinjaOps.Iterate(v);
        return items.Count > 0 ? items[^1] : JinjaValue.UndefinedNamed("No last item, sequence was empty.");
    }

    private static JinjaValue ToInt(JinjaRenderContext ctx, JinjaValue v, JinjaArguments a)
    {
        var fallback = a.Get(0, "default", JinjaValue.FromInt(0));
        int numberBase = (int)a.Get(1, "base", JinjaValue.FromInt(10)).AsInt;
        switch (v.Kind)
        {
            case JinjaKind.Int: return v;
            case JinjaKind.Bool: return JinjaValue.FromInt(v.AsInt);
            case JinjaKind.Float:
                return double.IsFinite(v.AsFloat) ? JinjaValue.FromInt((long)Math.Truncate(v.AsFloat)) : fallback;
            case JinjaKind.String:
            {
                string s = v.AsString.Trim().Replace("_", "");
                try
                {
                    if (numberBase == 10 && long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long l)) return JinjaValue.FromInt(l);
                    if (numberBase != 10) return JinjaValue.FromInt(Convert.ToInt64(s, numberBase));
                }
                catch (FormatException) { return fallback; }
                if (double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d))
                    return JinjaValue.FromInt((long)Math.Truncate(d));
                return fallback;
            }
            default: return fallback;
        }
    }

    private static JinjaValue ToFloat(JinjaRenderContext ctx, JinjaValue v, JinjaArguments a)
    {
        var fallback = a.Get(0, "default", JinjaValue.FromFloat(0.0));
        switch (v.Kind)
        {
            case JinjaKind.Float: return v;
            case JinjaKind.Int or JinjaKind.Bool: return JinjaValue.FromFloat(v.AsInt);
            case JinjaKind.String:
            {
                string s = v.AsString.Trim();
                string lower = s.ToLowerInvariant();
                if (lower is "inf" or "+inf" or "infinity" or "+infinity") return double.PositiveInfinity;
                if (lower is "-inf" or "-infinity") return double.NegativeInfinity;
                if (lower is "nan" or "+nan" or "-nan") return double.NaN;
                return double.TryParse(s.Replace("_", ""), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) ? d : fallback;
            }
            default: return fallback;
        }
    }

    private static JinjaValue Abs(JinjaRenderContext ctx, JinjaValue v, JinjaArguments a) => v.Kind switch
    {
        JinjaKind.Int or JinjaKind.Bool => JinjaValue.FromInt(Math.Abs(v.AsInt)),
        JinjaKind.Float => Math.Abs(v.AsFloat),
        JinjaKind.Undefined => throw JinjaOps.UndefinedError(v),
        _ => throw new JinjaRuntimeException($"bad operand type for abs(): '{v.TypeName}'"),
    };

    private static JinjaValue Replace(JinjaRenderContext ctx, JinjaValue v, JinjaArguments a)
    {
        string old = PyFormat.Str(a.Required(0, "old", "replace"));
        string @new = PyFormat.Str(a.Required(1, "new", "replace"));
        var count = a.Get(2, "count", JinjaValue.None);
        return PyStrings.Replace(PyFormat.Str(v), old, @new, count.IsNone ? -1 : count.AsInt);
    }

    /// <summary>Jinja's round: "common" uses Python's round() (banker's at exact halves), always returns a float.</summary>
    private static JinjaValue Round(JinjaRenderContext ctx, JinjaValue v, JinjaArguments a)
    {
        int precision = (int)a.Get(0, "precision", JinjaValue.FromInt(0)).AsInt;
        string method = PyFormat.Str(a.Get(1, "method", "common"));
        if (!v.IsNumber) throw new JinjaRuntimeException($"type {v.TypeName} doesn't define __round__ method");
        double d = v.ToDouble();
        double scale = Math.Pow(10, precision);
        if (method == "common" && v.Kind is JinjaKind.Int or JinjaKind.Bool && precision >= 0) return JinjaValue.FromInt(v.AsInt); // round(int, n) is an int
        return method switch
        {
            "common" => RoundHalfEven(d, precision),
            "ceil" => Math.Ceiling(d * scale) / scale,
            "floor" => Math.Floor(d * scale) / scale,
            _ => throw new JinjaRuntimeException("method must be common, ceil or floor"),
        };
    }

    private static double RoundHalfEven(double d, int precision)
    {
        if (precision >= 0 && precision <= 15)
        {
            // Python rounds the exact binary value (2.675 is 2.67499999…, so it rounds down): take 28 exact
            // decimals of the double (.NET formats doubles exactly) and round that half-to-even.
            try
            {
                decimal m = decimal.Parse(d.ToString("F28", CultureInfo.InvariantCulture), NumberStyles.Float, CultureInfo.InvariantCulture);
                return (double)Math.Round(m, precision, MidpointRounding.ToEven);
            }
            catch (OverflowException)
            {
            }
        }
        return Math.Round(d, Math.Clamp(precision, 0, 15), MidpointRounding.ToEven);
    }

    private static JinjaValue Map(JinjaRenderContext ctx, JinjaValue v, JinjaArguments a)
    {
        var items = JinjaOps.Iterate(v);
        var result = new JinjaList(items.Count);
        if (a.Has(-1, "attribute"))
        {
            var attr = a.Get(-1, "attribute", JinjaValue.None);
            var hasDefault = a.Has(-1, "default");
            var def = a.Get(-1, "default", JinjaValue.Undefined);
            foreach (var item in items)
            {
                var x = Attribute(item, attr);
                result.Add(x.IsUndefined && hasDefault ? def : x);
            }
            return JinjaValue.FromList(result);
        }
        if (a.Count == 0) throw new JinjaRuntimeException("map requires a filter argument");
        string name = PyFormat.Str(a.Positional[0]);
        if (!Filters.TryGetValue(name, out var f)) throw new JinjaRuntimeException($"No filter named '{name}'.");
        var rest = new JinjaArguments(a.Positional[1..], a.Named);
        foreach (var item in items) result.Add(f(ctx, item, rest));
        return JinjaValue.FromList(result);
    }

    private static bool RunTest(JinjaRenderContext ctx, JinjaValue item, JinjaArguments a, int testIndex)
    {
        if (a.Count <= testIndex) return item.IsTruthy;
        string name = PyFormat.Str(a.Positional[testIndex]);
        if (!Tests.TryGetValue(name, out var t)) throw new JinjaRuntimeException($"No test named '{name}'.");
        return t(ctx, item, new JinjaArguments(a.Positional[(testIndex + 1)..], a.Named));
    }

    private static JinjaValue Select(JinjaRenderContext ctx, JinjaValue v, JinjaArguments a, bool keep)
    {
        var result = new JinjaList();
        foreach (var item in JinjaOps.Iterate(v))
            if (RunTest(ctx, item, a, 0) == keep) result.Add(item);
        return JinjaValue.FromList(result);
    }

    private static JinjaValue SelectAttr(JinjaRenderContext ctx, JinjaValue v, JinjaArguments a, bool keep)
    {
        var attr = a.Required(0, "attribute", keep ? "selectattr" : "rejectattr");
        var result = new JinjaList();
        foreach (var item in JinjaOps.Iterate(v))
            if (RunTest(ctx, Attribute(item, attr), a, 1) == keep) result.Add(item);
        return JinjaValue.FromList(result);
    }

    private static JinjaValue SortKey(JinjaValue item, JinjaValue attribute, bool caseSensitive)
    {
        var key = attribute.IsNone ? item : Attribute(item, attribute);
        return !caseSensitive && key.IsString ? key.AsString.ToLowerInvariant() : key;
    }

    private static JinjaValue Unique(JinjaRenderContext ctx, JinjaValue v, JinjaArguments a)
    {
        bool caseSensitive = a.Get(0, "case_sensitive", JinjaValue.False).IsTruthy;
        var attr = a.Get(1, "attribute", JinjaValue.None);
        var seen = new HashSet<JinjaValue>();
        var result = new JinjaList();
        foreach (var item in JinjaOps.Iterate(v))
            if (seen.Add(SortKey(item, attr, caseSensitive))) result.Add(item);
        return JinjaValue.FromList(result);
    }

    private static JinjaValue Sort(JinjaRenderContext ctx, JinjaValue v, JinjaArguments a)
    {
        bool reverse = a.Get(0, "reverse", JinjaValue.False).IsTruthy;
        bool caseSensitive = a.Get(1, "case_sensitive", JinjaValue.False).IsTruthy;
        var attr = a.Get(2, "attribute", JinjaValue.None);
        var items = JinjaOps.Iterate(v);
        var keyed = items.Select((item, i) => (Key: SortKey(item, attr, caseSensitive), Item: item, Index: i)).ToList();
        keyed.Sort((x, y) =>
        {
            int c = JinjaOps.Compare(x.Key, y.Key, "<");
            if (reverse) c = -c;
            return c != 0 ? c : x.Index.CompareTo(y.Index); // stable, as Python's sort
        });
        var result = new JinjaList(keyed.Count);
        foreach (var k in keyed) result.Add(k.Item);
        return JinjaValue.FromList(result);
    }

    private static JinjaValue Reverse(JinjaRenderContext ctx, JinjaValue v, JinjaArguments a)
    {
        if (v.IsString)
        {
            var cps = JinjaOps.CodePoints(v.AsString);
            Array.Reverse(cps);
            return string.Concat(cps);
        }
        var l = new JinjaList(JinjaOps.Iterate(v));
        l.Reverse();
        return JinjaValue.FromList(l);
    }

    private static JinjaValue Escape(JinjaValue v)
    {
        string s = PyFormat.Str(v);
        var sb = new StringBuilder(s.Length);
        foreach (char c in s)
        {
            sb.Append(c switch
            {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&#34;",
                '\'' => "&#39;",
                _ => null,
            } ?? c.ToString());
        }
        return sb.ToString();
    }

    private static JinjaValue DictSort(JinjaRenderContext ctx, JinjaValue v, JinjaArguments a)
    {
        if (v.Kind != JinjaKind.Dict) throw new JinjaRuntimeException("dictsort requires a mapping");
        bool caseSensitive = a.Get(0, "case_sensitive", JinjaValue.False).IsTruthy;
        string by = PyFormat.Str(a.Get(1, "by", "key"));
        bool reverse = a.Get(2, "reverse", JinjaValue.False).IsTruthy;
        var pairs = v.AsDict.Select((kv, i) => (kv.Key, kv.Value, Index: i)).ToList();
        pairs.Sort((x, y) =>
        {
            var kx = by == "value" ? x.Value : x.Key;
            var ky = by == "value" ? y.Value : y.Key;
            if (!caseSensitive && kx.IsString && ky.IsString) { kx = kx.AsString.ToLowerInvariant(); ky = ky.AsString.ToLowerInvariant(); }
            int c = JinjaOps.Compare(kx, ky, "<");
            if (reverse) c = -c;
            return c != 0 ? c : x.Index.CompareTo(y.Index);
        });
        var result = new JinjaList(pairs.Count);
        foreach (var p in pairs) result.Add(JinjaValue.FromList(JinjaList.Tuple(p.Key, p.Value)));
        return JinjaValue.FromList(result);
    }

    private static JinjaValue Batch(JinjaRenderContext ctx, JinjaValue v, JinjaArguments a)
    {
        long size = a.Required(0, "linecount", "batch").AsInt;
        if (size <= 0) throw new JinjaRuntimeException("batch size must be positive");
        bool hasFill = a.Has(1, "fill_with");
        var fill = a.Get(1, "fill_with", JinjaValue.None);
        var result = new JinjaList();
        JinjaList? current = null;
        foreach (var item in JinjaOps.Iterate(v))
        {
            if (current is null || current.Count == size)
            {
                current = new JinjaList();
                result.Add(JinjaValue.FromList(current));
            }
            current.Add(item);
        }
        if (hasFill && current is not null)
            while (current.Count < size) current.Add(fill);
        return JinjaValue.FromList(result);
    }

    private static JinjaValue SliceFilter(JinjaRenderContext ctx, JinjaValue v, JinjaArguments a)
    {
        long slices = a.Required(0, "slices", "slice").AsInt;
        bool hasFill = a.Has(1, "fill_with");
        var fill = a.Get(1, "fill_with", JinjaValue.None);
        var seq = JinjaOps.Iterate(v);
        long perSlice = seq.Count / slices, extra = seq.Count % slices;
        long offset = 0;
        var result = new JinjaList();
        for (long i = 0; i < slices; i++)
        {
            long start = offset + i * perSlice;
            if (i < extra) offset++;
            long end = offset + (i + 1) * perSlice;
            var part = new JinjaList(seq.Skip((int)start).Take((int)(end - start)));
            if (hasFill && i >= extra) part.Add(fill);
            result.Add(JinjaValue.FromList(part));
        }
        return JinjaValue.FromList(result);
    }

    private static JinjaValue MinMax(JinjaValue v, JinjaArguments a, bool max)
    {
        bool caseSensitive = a.Get(0, "case_sensitive", JinjaValue.False).IsTruthy;
        var attr = a.Get(1, "attribute", JinjaValue.None);
        var items = JinjaOps.Iterate(v);
        if (items.Count == 0) return JinjaValue.UndefinedNamed($"No aggregated item, sequence was empty.");
        var best = items[0];
        var bestKey = SortKey(best, attr, caseSensitive);
        for (int i = 1; i < items.Count; i++)
        {
            var k = SortKey(items[i], attr, caseSensitive);
            int c = JinjaOps.Compare(k, bestKey, "<");
            if (max ? c > 0 : c < 0)
            {
                best = items[i];
                bestKey = k;
            }
        }
        return best;
    }

    private static JinjaValue Sum(JinjaRenderContext ctx, JinjaValue v, JinjaArguments a)
    {
        var attr = a.Get(0, "attribute", JinjaValue.None);
        var total = a.Get(1, "start", JinjaValue.FromInt(0));
        foreach (var item in JinjaOps.Iterate(v)) total = JinjaOps.Add(total, attr.IsNone ? item : Attribute(item, attr));
        return total;
    }

    private static JinjaValue Indent(JinjaRenderContext ctx, JinjaValue v, JinjaArguments a)
    {
        var widthArg = a.Get(0, "width", JinjaValue.FromInt(4));
        string indent = widthArg.IsString ? widthArg.AsString : new string(' ', (int)widthArg.AsInt);
        bool first = a.Get(1, "first", JinjaValue.False).IsTruthy;
        bool blank = a.Get(2, "blank", JinjaValue.False).IsTruthy;
        string s = PyFormat.Str(v) + "\n";
        var lines = s.Split('\n').ToList();
        lines.RemoveAt(lines.Count - 1);
        var sb = new StringBuilder();
        for (int i = 0; i < lines.Count; i++)
        {
            if (i > 0) sb.Append('\n');
            string line = lines[i];
            bool doIndent = i == 0 ? first : (blank || line.Length > 0);
            if (i == 0 && first && !blank && line.Length == 0) doIndent = true;
            if (doIndent) sb.Append(indent);
            sb.Append(line);
        }
        return sb.ToString();
    }

    private static JinjaValue Truncate(JinjaRenderContext ctx, JinjaValue v, JinjaArguments a)
    {
        string s = PyFormat.Str(v);
        int length = (int)a.Get(0, "length", JinjaValue.FromInt(255)).AsInt;
        bool killwords = a.Get(1, "killwords", JinjaValue.False).IsTruthy;
        string end = PyFormat.Str(a.Get(2, "end", "..."));
        int leeway = (int)a.Get(3, "leeway", JinjaValue.FromInt(5)).AsInt;
        if (s.Length <= length + leeway) return s;
        if (killwords) return s[..(length - end.Length)] + end;
        string cut = s[..(length - end.Length)];
        int space = cut.LastIndexOf(' ');
        return (space >= 0 ? cut[..space] : cut) + end;
    }

    // ───────────────────────────── globals ─────────────────────────────

    /// <summary>Globals every template sees: Jinja's (range, namespace, dict, cycler-free) and transformers' additions.</summary>
    public static void AddGlobals(Frame frame)
    {
        frame.Set("range", Fn("range", Range));
        frame.Set("namespace", Fn("namespace", Namespace));
        frame.Set("dict", Fn("dict", Dict));
        frame.Set("raise_exception", Fn("raise_exception", (_, a) =>
            throw new JinjaRaisedException(PyFormat.Str(a.Get(0, "message", JinjaValue.EmptyString)))));
        frame.Set("strftime_now", Fn("strftime_now", (ctx, a) =>
            PyDate.Strftime(ctx.Time.GetLocalNow().DateTime, PyFormat.Str(a.Required(0, "format", "strftime_now")))));
    }

    private static JinjaValue Fn(string name, Func<JinjaRenderContext, JinjaArguments, JinjaValue> f) =>
        JinjaValue.FromCallable(new BuiltinFunction(name, f));

    private static JinjaValue Range(JinjaRenderContext ctx, JinjaArguments a)
    {
        long start = 0, stop, step = 1;
        if (a.Count == 1) stop = a.Positional[0].AsInt;
        else if (a.Count >= 2)
        {
            start = a.Positional[0].AsInt;
            stop = a.Positional[1].AsInt;
            if (a.Count >= 3) step = a.Positional[2].AsInt;
        }
        else throw new JinjaRuntimeException("range expected at least 1 argument, got 0");
        if (step == 0) throw new JinjaRuntimeException("range() arg 3 must not be zero");
        long count = step > 0 ? Math.Max(0, (stop - start + step - 1) / step) : Math.Max(0, (start - stop - step - 1) / -step);
        if (count > 100_000) throw new JinjaRuntimeException("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
        var l = new JinjaList((int)count);
        for (long i = 0; i < count; i++) l.Add(JinjaValue.FromInt(start + i * step));
        return JinjaValue.FromList(l);
    }

    private static JinjaValue Namespace(JinjaRenderContext ctx, JinjaArguments a)
    {
        var ns = new JinjaNamespace();
        foreach (var p in a.Positional)
        {
            if (p.Kind != JinjaKind.Dict) throw new JinjaRuntimeException("namespace() positional argument must be a mapping");
            foreach (var kv in p.AsDict) ns.Attributes[PyFormat.Str(kv.Key)] = kv.Value;
        }
        foreach (var kv in a.Named) ns.Attributes[kv.Key] = kv.Value;
        return JinjaValue.FromObject(ns);
    }

    private static JinjaValue Dict(JinjaRenderContext ctx, JinjaArguments a)
    {
        var d = new JinjaDict();
        foreach (var p in a.Positional)
        {
            if (p.Kind == JinjaKind.Dict)
                foreach (var kv in p.AsDict) d[kv.Key] = kv.Value;
            else
                foreach (var pair in JinjaOps.Iterate(p))
                {
                    var kv = JinjaOps.Iterate(pair);
                    if (kv.Count != 2) throw new JinjaRuntimeException("dictionary update sequence element has wrong length");
                    d[kv[0]] = kv[1];
                }
        }
        foreach (var kv in a.Named) d.Set(kv.Key, kv.Value);
        return JinjaValue.FromDict(d);
    }

    private sealed class BuiltinFunction(string name, Func<JinjaRenderContext, JinjaArguments, JinjaValue> f) : JinjaCallable
    {
        public override string Name => name;
        public override JinjaValue Invoke(JinjaRenderContext context, JinjaArguments args) => f(context, args);
    }
}

/// <summary>Python's <c>datetime.strftime</c> for the directives templates use (glibc's <c>%-d</c> style included).</summary>
internal static class PyDate
{
    private static readonly string[] Days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
    private static readonly string[] Months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

    public static string Strftime(DateTime t, string format)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            char c = format[i];
            if (c != '%' || i + 1 >= format.Length)
            {
                sb.Append(c);
                continue;
            }
            char d = format[++i];
            bool noPad = false;
            if (d == '-' && i + 1 < format.Length)
            {
                noPad = true;
                d = format[++i];
            }
            string Pad(int v, int width) => noPad ? v.ToString(CultureInfo.InvariantCulture) : v.ToString(new string('0', width), CultureInfo.InvariantCulture);
            int weekday = ((int)t.DayOfWeek + 6) % 7; // Monday = 0
            string day = Days[weekday];
            string month = Months[t.Month - 1];
            sb.Append(d switch
            {
                'Y' => t.Year.ToString(CultureInfo.InvariantCulture),
                'y' => Pad(t.Year % 100, 2),
                'm' => Pad(t.Month, 2),
                'd' => Pad(t.Day, 2),
                'e' => t.Day.ToString(CultureInfo.InvariantCulture).PadLeft(2),
                'H' => Pad(t.Hour, 2),
                'I' => Pad(t.Hour % 12 == 0 ? 12 : t.Hour % 12, 2),
                'M' => Pad(t.Minute, 2),
                'S' => Pad(t.Second, 2),
                'f' => (t.Ticks % TimeSpan.TicksPerSecond / 10).ToString("000000", CultureInfo.InvariantCulture),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'a' => day[..3],
                'A' => day,
                'b' or 'h' => month[..3],
                'B' => month,
                'j' => Pad(t.DayOfYear, 3),
                'w' => ((int)t.DayOfWeek).ToString(CultureInfo.InvariantCulture),
                'u' => (weekday + 1).ToString(CultureInfo.InvariantCulture),
                'F' => t.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
                'T' => t.ToString("HH:mm:ss", CultureInfo.InvariantCulture),
                'D' => t.ToString("MM/dd/yy", CultureInfo.InvariantCulture),
                'R' => t.ToString("HH:mm", CultureInfo.InvariantCulture),
                'n' => "\n",
                't' => "\t",
                '%' => "%",
                _ => "%" + (noPad ? "-" : "") + d,
            });
        }
        return sb.ToString();
    }
}
