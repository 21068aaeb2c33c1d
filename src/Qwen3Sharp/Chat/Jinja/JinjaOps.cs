using System.Text;

namespace Qwen3Sharp.Chat.Jinja;

/// <summary>Python operator semantics on <see cref="JinjaValue"/>s, plus Jinja2's attribute/item lookup.</summary>
internal static class JinjaOps
{
    public static JinjaRuntimeException UndefinedError(JinjaValue v) =>
        new(v.UndefinedHint ?? "value is undefined");

    private static void ThrowIfUndefined(JinjaValue v)
    {
        if (v.IsUndefined) throw UndefinedError(v);
    }

    private static JinjaRuntimeException Unsupported(string op, JinjaValue a, JinjaValue b) =>
        new($"unsupported operand type(s) for {(op == "**" ? "** or pow()" : op)}: '{a.TypeName}' and '{b.TypeName}'");

    public static JinjaValue Add(JinjaValue a, JinjaValue b)
    {
        ThrowIfUndefined(a);
        ThrowIfUndefined(b);
        if (a.IsNumber && b.IsNumber)
        {
            if (a.Kind == JinjaKind.Float || b.Kind == JinjaKind.Float) return a.ToDouble() + b.ToDouble();
            return JinjaValue.FromInt(unchecked(a.AsInt + b.AsInt));
        }
        if (a.IsString && b.IsString) return string.Concat(a.AsString, b.AsString);
        if (a.Kind == JinjaKind.List && b.Kind == JinjaKind.List)
        {
            var l = new JinjaList(a.AsList.Count + b.AsList.Count) { IsTuple = a.AsList.IsTuple };
            l.AddRange(a.AsList);
            l.AddRange(b.AsList);
            return JinjaValue.FromList(l);
        }
        if (a.IsString || a.Kind == JinjaKind.List)
            throw new JinjaRuntimeException($"can only concatenate {a.TypeName} (not \"{b.TypeName}\") to {a.TypeName}");
        throw Unsupported("+", a, b);
    }

    public static JinjaValue Arithmetic(string op, JinjaValue a, JinjaValue b)
    {
        ThrowIfUndefined(a);
        ThrowIfUndefined(b);
        if (op == "+") return Add(a, b);
        if (op == "%" && a.IsString) return PyStrings.PercentFormat(a.AsString, b);
        if (op == "*")
        {
            bool aSeq = a.Kind is JinjaKind.String or JinjaKind.List, bSeq = b.Kind is JinjaKind.String or JinjaKind.List;
            if (aSeq || bSeq)
            {
                var (seq, count) = aSeq ? (a, b) : (b, a);
                if (count.Kind is not (JinjaKind.Int or JinjaKind.Bool))
                    throw new JinjaRuntimeException($"can't multiply sequence by non-int of type '{count.TypeName}'");
                if (seq.IsString) return Repeat(seq.AsString, count.AsInt);
                var l = new JinjaList { IsTuple = seq.AsList.IsTuple };
                for (long i = 0; i < count.AsInt; i++) l.AddRange(seq.AsList);
                return JinjaValue.FromList(l);
            }
        }
        if (!a.IsNumber || !b.IsNumber) throw Unsupported(op, a, b);
        bool ints = a.Kind != JinjaKind.Float && b.Kind != JinjaKind.Float;
        switch (op)
        {
            case "-":
                return ints ? JinjaValue.FromInt(unchecked(a.AsInt - b.AsInt)) : a.ToDouble() - b.ToDouble();
            case "*":
                return ints ? JinjaValue.FromInt(unchecked(a.AsInt * b.AsInt)) : a.ToDouble() * b.ToDouble();
            case "/":
                if (b.ToDouble() == 0) throw new JinjaRuntimeException(ints ? "division by zero" : "float division by zero");
                return a.ToDouble() / b.ToDouble();
            case "//":
                if (ints)
                {
                    if (b.AsInt == 0) throw new JinjaRuntimeException("integer division or modulo by zero");
                    long q = a.AsInt / b.AsInt;
                    if ((a.AsInt % b.AsInt != 0) && ((a.AsInt < 0) != (b.AsInt < 0))) q--;
                    return JinjaValue.FromInt(q);
                }
                if (b.ToDouble() == 0) throw new JinjaRuntimeException("float floor division by zero");
                return Math.Floor(a.ToDouble() / b.ToDouble());
            case "%":
                if (ints)
                {
                    if (b.AsInt == 0) throw new JinjaRuntimeException("integer modulo by zero");
                    long r = a.AsInt % b.AsInt;
                    if (r != 0 && ((r < 0) != (b.AsInt < 0))) r += b.AsInt;
                    return JinjaValue.FromInt(r);
                }
                else
                {
                    double y = b.ToDouble();
                    if (y == 0) throw new JinjaRuntimeException("float modulo");
                    double r = a.ToDouble() % y;
                    if (r != 0 && ((r < 0) != (y < 0))) r += y;
                    return r;
                }
            case "**":
                if (a.ToDouble() == 0 && b.ToDouble() < 0) throw new JinjaRuntimeException("0.0 cannot be raised to a negative power");
                if (ints && b.AsInt >= 0)
                {
                    long result = 1, bas = a.AsInt;
                    for (long e = b.AsInt; e > 0; e--) result = unchecked(result * bas);
                    return JinjaValue.FromInt(result);
                }
                return Math.Pow(a.ToDouble(), b.ToDouble());
        }
        throw new JinjaRuntimeException($"unknown operator {op}");
    }

    private static JinjaValue Repeat(string s, long n)
    {
        if (n <= 0) return JinjaValue.EmptyString;
        var sb = new StringBuilder(s.Length * (int)n);
        for (long i = 0; i < n; i++) sb.Append(s);
        return sb.ToString();
    }

    public static JinjaValue Negate(JinjaValue v)
    {
        ThrowIfUndefined(v);
        return v.Kind switch
        {
            JinjaKind.Int or JinjaKind.Bool => JinjaValue.FromInt(-v.AsInt),
            JinjaKind.Float => -v.AsFloat,
            _ => throw new JinjaRuntimeException($"bad operand type for unary -: '{v.TypeName}'"),
        };
    }

    /// <summary>Python ordering (<c>&lt;</c> etc.): numbers, strings (by code point) and sequences.</summary>
    public static int Compare(JinjaValue a, JinjaValue b, string op)
    {
        if (a.IsNumber && b.IsNumber)
        {
            if (a.Kind != JinjaKind.Float && b.Kind != JinjaKind.Float) return a.AsInt.CompareTo(b.AsInt);
            return a.ToDouble().CompareTo(b.ToDouble());
        }
        if (a.IsString && b.IsString) return string.CompareOrdinal(a.AsString, b.AsString);
        if (a.Kind == JinjaKind.List && b.Kind == JinjaKind.List && a.AsList.IsTuple == b.AsList.IsTuple)
        {
            var x = a.AsList;
            var y = b.AsList;
            for (int i = 0; i < x.Count && i < y.Count; i++)
            {
                if (x[i].Equals(y[i])) continue;
                return Compare(x[i], y[i], op);
            }
            return x.Count.CompareTo(y.Count);
        }
        ThrowIfUndefined(a);
        ThrowIfUndefined(b);
        throw new JinjaRuntimeException($"'{op}' not supported between instances of '{a.TypeName}' and '{b.TypeName}'");
    }

    public static bool CompareOp(string op, JinjaValue a, JinjaValue b) => op switch
    {
        "==" => a.Equals(b),
        "!=" => !a.Equals(b),
        "<" => Compare(a, b, op) < 0,
        "<=" => Compare(a, b, op) <= 0,
        ">" => Compare(a, b, op) > 0,
        ">=" => Compare(a, b, op) >= 0,
        "in" => Contains(b, a),
        "notin" => !Contains(b, a),
        _ => throw new JinjaRuntimeException($"unknown comparison {op}"),
    };

    /// <summary>Python <c>item in container</c>.</summary>
    public static bool Contains(JinjaValue container, JinjaValue item)
    {
        switch (container.Kind)
        {
            case JinjaKind.String:
                if (!item.IsString)
                    throw new JinjaRuntimeException($"'in <string>' requires string as left operand, not {item.TypeName}");
                return container.AsString.Contains(item.AsString, StringComparison.Ordinal);
            case JinjaKind.List:
                foreach (var v in container.AsList)
                    if (v.Equals(item)) return true;
                return false;
            case JinjaKind.Dict:
                return container.AsDict.ContainsKey(item);
            case JinjaKind.Undefined:
                return false; // Jinja's Undefined iterates as empty
            case JinjaKind.Object when item.IsString:
                return container.AsObject.TryGetAttribute(item.AsString, out _);
            default:
                throw new JinjaRuntimeException($"argument of type '{container.TypeName}' is not iterable");
        }
    }

    /// <summary>Materialises an iterable: list items, dict keys, string characters; undefined is empty.</summary>
    public static JinjaList Iterate(JinjaValue v)
    {
        switch (v.Kind)
        {
            case JinjaKind.List: return v.AsList;
            case JinjaKind.Dict:
            {
                var l = new JinjaList(v.AsDict.Count);
                foreach (var kv in v.AsDict) l.Add(kv.Key);
                return l;
            }
            case JinjaKind.String:
            {
                var s = v.AsString;
                var l = new JinjaList(s.Length);
                for (int i = 0; i < s.Length; i++)
                {
                    if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
                    {
                        l.Add(s.Substring(i, 2));
                        i++;
                    }
                    else l.Add(s[i].ToString());
                }
                return l;
            }
            case JinjaKind.Undefined: return new JinjaList();
            default: throw new JinjaRuntimeException($"'{v.TypeName}' object is not iterable");
        }
    }

    private static string ObjectTypeRepr(JinjaValue obj) => obj.Kind switch
    {
        JinjaKind.None => "None",
        _ => obj.TypeName + " object",
    };

    /// <summary>Jinja2 sandboxed <c>obj.name</c>: Python attribute (methods) first, then <c>obj[name]</c>.</summary>
    public static JinjaValue GetAttr(JinjaValue obj, string name)
    {
        switch (obj.Kind)
        {
            case JinjaKind.Undefined:
                throw UndefinedError(obj);
            case JinjaKind.Dict:
                if (PyMethods.IsMethod(obj, name)) return JinjaValue.FromCallable(new BoundMethod(obj, name));
                if (obj.AsDict.TryGetValue(name, out var v)) return v;
                break;
            case JinjaKind.Object:
                if (obj.AsObject.TryGetAttribute(name, out var a)) return a;
                break;
            default:
                if (PyMethods.IsMethod(obj, name)) return JinjaValue.FromCallable(new BoundMethod(obj, name));
                break;
        }
        return JinjaValue.UndefinedNamed($"'{ObjectTypeRepr(obj)}' has no attribute '{name}'");
    }

    /// <summary>Jinja2 <c>obj[key]</c>: item first, then attribute for string keys; missing is undefined.</summary>
    public static JinjaValue GetItem(JinjaValue obj, JinjaValue key)
    {
        switch (obj.Kind)
        {
            case JinjaKind.Undefined:
                throw UndefinedError(obj);
            case JinjaKind.Dict:
                if (obj.AsDict.TryGetValue(key, out var v)) return v;
                break;
            case JinjaKind.List:
                if (key.Kind is JinjaKind.Int or JinjaKind.Bool)
                {
                    var l = obj.AsList;
                    long i = key.AsInt;
                    if (i < 0) i += l.Count;
                    if (i >= 0 && i < l.Count) return l[(int)i];
                    return JinjaValue.UndefinedNamed($"'{ObjectTypeRepr(obj)}' has no element {key.AsInt}");
                }
                break;
            case JinjaKind.String:
                if (key.Kind is JinjaKind.Int or JinjaKind.Bool)
                {
                    var s = obj.AsString;
                    long i = key.AsInt;
                    if (HasSurrogates(s))
                    {
                        var cps = CodePoints(s);
                        if (i < 0) i += cps.Length;
                        if (i >= 0 && i < cps.Length) return cps[(int)i];
                        return JinjaValue.UndefinedNamed($"'{ObjectTypeRepr(obj)}' has no element {key.AsInt}");
                    }
                    if (i < 0) i += s.Length;
                    if (i >= 0 && i < s.Length) return s[(int)i].ToString();
                    return JinjaValue.UndefinedNamed($"'{ObjectTypeRepr(obj)}' has no element {key.AsInt}");
                }
                break;
        }
        if (key.IsString) return GetAttr(obj, key.AsString);
        return JinjaValue.UndefinedNamed($"'{ObjectTypeRepr(obj)}' has no element {PyFormat.Repr(key)}");
    }

    /// <summary>Python slicing <c>obj[start:stop:step]</c> on lists and strings.</summary>
    public static JinjaValue Slice(JinjaValue obj, JinjaValue start, JinjaValue stop, JinjaValue step)
    {
        ThrowIfUndefined(obj);
        long st = step.IsNone || step.IsUndefined ? 1 : AsIndex(step);
        if (st == 0) throw new JinjaRuntimeException("slice step cannot be zero");
        if (obj.IsString && HasSurrogates(obj.AsString))
        {
            // Python indexes code points: slice the code-point list, then join.
            var cps = new JinjaList(CodePoints(obj.AsString).Select(JinjaValue.FromString));
            var sliced = Slice(JinjaValue.FromList(cps), start, stop, step).AsList;
            return string.Concat(sliced.Select(x => x.AsString));
        }
        int len = obj.Kind switch
        {
            JinjaKind.List => obj.AsList.Count,
            JinjaKind.String => obj.AsString.Length,
            _ => throw new JinjaRuntimeException($"'{obj.TypeName}' object is not subscriptable"),
        };
        long lo, hi;
        if (st > 0)
        {
            lo = start.IsNone || start.IsUndefined ? 0 : Clamp(AsIndex(start), len, 0, len);
            hi = stop.IsNone || stop.IsUndefined ? len : Clamp(AsIndex(stop), len, 0, len);
        }
        else
        {
            lo = start.IsNone || start.IsUndefined ? len - 1 : Clamp(AsIndex(start), len, -1, len - 1);
            hi = stop.IsNone || stop.IsUndefined ? -1 : Clamp(AsIndex(stop), len, -1, len - 1);
        }
        if (obj.Kind == JinjaKind.List)
        {
            var src = obj.AsList;
            var l = new JinjaList { IsTuple = src.IsTuple };
            if (st > 0) for (long i = lo; i < hi; i += st) l.Add(src[(int)i]);
            else for (long i = lo; i > hi; i += st) l.Add(src[(int)i]);
            return JinjaValue.FromList(l);
        }
        var s = obj.AsString;
        if (st == 1) return hi > lo ? s.Substring((int)lo, (int)(hi - lo)) : "";
        var sb = new StringBuilder();
        if (st > 0) for (long i = lo; i < hi; i += st) sb.Append(s[(int)i]);
        else for (long i = lo; i > hi; i += st) sb.Append(s[(int)i]);
        return sb.ToString();
    }

    /// <summary>True when the UTF-16 text has surrogates, i.e. Python's code-point indexing differs from .NET's.</summary>
    public static bool HasSurrogates(string s) => s.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') >= 0;

    /// <summary>The text split into code points (a surrogate pair stays together), as Python indexes a str.</summary>
    public static string[] CodePoints(string s)
    {
        var list = new List<string>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                list.Add(s.Substring(i, 2));
                i++;
            }
            else list.Add(s[i].ToString());
        }
        return list.ToArray();
    }

    private static long Clamp(long index, int len, long min, long max)
    {
        if (index < 0) index += len;
        return Math.Clamp(index, min, max);
    }

    private static long AsIndex(JinjaValue v) => v.Kind is JinjaKind.Int or JinjaKind.Bool
        ? v.AsInt
        : throw new JinjaRuntimeException("slice indices must be integers or None");

    /// <summary>Python <c>len()</c>; undefined has length 0.</summary>
    public static long Length(JinjaValue v) => v.Kind switch
    {
        JinjaKind.String => HasSurrogates(v.AsString) ? CodePoints(v.AsString).Length : v.AsString.Length,
        JinjaKind.List => v.AsList.Count,
        JinjaKind.Dict => v.AsDict.Count,
        JinjaKind.Undefined => 0,
        _ => throw new JinjaRuntimeException($"object of type '{v.TypeName}' has no len()"),
    };
}

/// <summary>A method looked up as an attribute (<c>s.upper</c>) and called later.</summary>
internal sealed class BoundMethod(JinjaValue target, string name) : JinjaCallable
{
    public override string Name => name;

    public override JinjaValue Invoke(JinjaRenderContext context, JinjaArguments args) =>
        PyMethods.Call(target, name, args);
}
