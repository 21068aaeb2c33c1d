using System.Globalization;
using System.Text;

namespace Qwen3Sharp.Chat.Jinja;

/// <summary>Python methods of str, dict and list that chat templates call (<c>s.startswith(..)</c>, <c>d.items()</c>).</summary>
internal static class PyMethods
{
    private static readonly HashSet<string> StringMethods = new(StringComparer.Ordinal)
    {
        "startswith", "endswith", "split", "rsplit", "splitlines", "strip", "lstrip", "rstrip", "upper", "lower",
        "title", "capitalize", "replace", "format", "join", "find", "rfind", "index", "count", "isdigit",
        "isalpha", "isalnum", "isspace", "isupper", "islower", "removeprefix", "removesuffix", "swapcase",
        "zfill", "center", "ljust", "rjust", "partition", "rpartition",
    };

    private static readonly HashSet<string> DictMethods = new(StringComparer.Ordinal)
    {
        "items", "keys", "values", "get", "copy",
        // Mutating methods exist on dict, but the immutable sandbox refuses to call them.
        "pop", "popitem", "update", "setdefault", "clear",
    };

    private static readonly HashSet<string> ListMethods = new(StringComparer.Ordinal)
    {
        "index", "count", "copy",
        "append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear",
    };

    private static readonly HashSet<string> Unsafe = new(StringComparer.Ordinal)
    {
        "pop", "popitem", "update", "setdefault", "clear", "append", "extend", "insert", "remove", "reverse", "sort",
    };

    public static bool IsMethod(JinjaValue target, string name) => target.Kind switch
    {
        JinjaKind.String => StringMethods.Contains(name),
        JinjaKind.Dict => DictMethods.Contains(name),
        JinjaKind.List => ListMethods.Contains(name),
        _ => false,
    };

    public static JinjaValue Call(JinjaValue target, string name, JinjaArguments args)
    {
        switch (target.Kind)
        {
            case JinjaKind.String: return CallString(target.AsString, name, args);
            case JinjaKind.Dict:
                if (Unsafe.Contains(name)) throw UnsafeError(target, name);
                return CallDict(target.AsDict, name, args);
            case JinjaKind.List:
                if (Unsafe.Contains(name)) throw UnsafeError(target, name);
                return CallList(target.AsList, name, args);
        }
        throw new JinjaRuntimeException($"'{target.TypeName}' object has no attribute '{name}'");
    }

    private static JinjaRuntimeException UnsafeError(JinjaValue target, string name) =>
        new($"access to attribute '{name}' of '{target.TypeName}' object is unsafe.");

    private static string Str(JinjaValue v, string method)
    {
        if (!v.IsString) throw new JinjaRuntimeException($"{method}() argument must be str, not {v.TypeName}");
        return v.AsString;
    }

    private static JinjaValue CallString(string s, string name, JinjaArguments a)
    {
        switch (name)
        {
            case "startswith":
            case "endswith":
            {
                var prefix = a.Required(0, "prefix", name);
                bool ends = name == "endswith";
                if (prefix.Kind == JinjaKind.List)
                {
                    foreach (var p in prefix.AsList)
                        if (ends ? s.EndsWith(Str(p, name), StringComparison.Ordinal) : s.StartsWith(Str(p, name), StringComparison.Ordinal))
                            return JinjaValue.True;
                    return JinjaValue.False;
                }
                string t = Str(prefix, name);
                return ends ? s.EndsWith(t, StringComparison.Ordinal) : s.StartsWith(t, StringComparison.Ordinal);
            }
            case "split":
            case "rsplit":
            {
                var sep = a.Get(0, "sep", JinjaValue.None);
                long max = a.Get(1, "maxsplit", JinjaValue.FromInt(-1)).AsInt;
                var parts = sep.IsNone
                    ? PyStrings.SplitWhitespace(s, max, name == "rsplit")
                    : PyStrings.Split(s, Str(sep, name), max, name == "rsplit");
                var l = new JinjaList(parts.Count);
                foreach (var p in parts) l.Add(p);
                return JinjaValue.FromList(l);
            }
            case "splitlines":
            {
                var l = new JinjaList();
                bool keep = a.Get(0, "keepends", JinjaValue.False).IsTruthy;
                int start = 0;
                for (int i = 0; i < s.Length; i++)
                {
                    char c = s[i];
                    if (c is '\n' or '\r' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029')
                    {
                        int end = i;
                        if (c == '\r' && i + 1 < s.Length && s[i + 1] == '\n') i++;
                        l.Add(s[start..(keep ? i + 1 : end)]);
                        start = i + 1;
                    }
                }
                if (start < s.Length) l.Add(s[start..]);
                return JinjaValue.FromList(l);
            }
            case "strip":
            case "lstrip":
            case "rstrip":
            {
                var chars = a.Get(0, "chars", JinjaValue.None);
                string? set = chars.IsNone ? null : Str(chars, name);
                return PyStrings.Strip(s, set, name != "rstrip", name != "lstrip");
            }
            case "upper": return s.ToUpperInvariant();
            case "lower": return s.ToLowerInvariant();
            case "title": return PyStrings.PyTitle(s);
            case "capitalize": return PyStrings.Capitalize(s);
            case "swapcase":
            {
                var sb = new StringBuilder(s.Length);
                foreach (char c in s) sb.Append(char.IsUpper(c) ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
                return sb.ToString();
            }
            case "replace":
            {
                string old = Str(a.Required(0, "old", name), name);
                string @new = Str(a.Required(1, "new", name), name);
                long count = a.Get(2, "count", JinjaValue.FromInt(-1)).AsInt;
                return PyStrings.Replace(s, old, @new, count);
            }
            case "format": return PyStrings.Format(s, a);
            case "join":
            {
                var items = JinjaOps.Iterate(a.Required(0, "iterable", name));
                var sb = new StringBuilder();
                for (int i = 0; i < items.Count; i++)
                {
                    if (i > 0) sb.Append(s);
                    if (!items[i].IsString)
                        throw new JinjaRuntimeException($"sequence item {i}: expected str instance, {items[i].TypeName} found");
                    sb.Append(items[i].AsString);
                }
                return sb.ToString();
            }
            case "find": return JinjaValue.FromInt(s.IndexOf(Str(a.Required(0, "sub", name), name), StringComparison.Ordinal));
            case "rfind": return JinjaValue.FromInt(s.LastIndexOf(Str(a.Required(0, "sub", name), name), StringComparison.Ordinal));
            case "index":
            {
                int i = s.IndexOf(Str(a.Required(0, "sub", name), name), StringComparison.Ordinal);
                if (i < 0) throw new JinjaRuntimeException("substring not found");
                return JinjaValue.FromInt(i);
            }
            case "count":
            {
                string sub = Str(a.Required(0, "sub", name), name);
                if (sub.Length == 0) return JinjaValue.FromInt(s.Length + 1);
                int n = 0;
                for (int i = s.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = s.IndexOf(sub, i + sub.Length, StringComparison.Ordinal)) n++;
                return JinjaValue.FromInt(n);
            }
            case "isdigit": return s.Length > 0 && s.All(char.IsDigit);
            case "isalpha": return s.Length > 0 && s.All(char.IsLetter);
            case "isalnum": return s.Length > 0 && s.All(char.IsLetterOrDigit);
            case "isspace": return s.Length > 0 && s.All(PyStrings.IsPySpace);
            case "isupper": return s.Any(char.IsLetter) && !s.Any(char.IsLower);
            case "islower": return s.Any(char.IsLetter) && !s.Any(char.IsUpper);
            case "removeprefix":
            {
                string p = Str(a.Required(0, "prefix", name), name);
                return s.StartsWith(p, StringComparison.Ordinal) ? s[p.Length..] : s;
            }
            case "removesuffix":
            {
                string p = Str(a.Required(0, "suffix", name), name);
                return p.Length > 0 && s.EndsWith(p, StringComparison.Ordinal) ? s[..^p.Length] : s;
            }
            case "zfill":
            {
                int width = (int)a.Required(0, "width", name).AsInt;
                if (s.Length >= width) return s;
                int signLen = s.Length > 0 && s[0] is '+' or '-' ? 1 : 0;
                return s[..signLen] + new string('0', width - s.Length) + s[signLen..];
            }
            case "center":
            case "ljust":
            case "rjust":
            {
                int width = (int)a.Required(0, "width", name).AsInt;
                string fill = a.Get(1, "fillchar", " ").AsString;
                if (s.Length >= width) return s;
                int pad = width - s.Length;
                if (name == "ljust") return s + new string(fill[0], pad);
                if (name == "rjust") return new string(fill[0], pad) + s;
                int left = pad / 2 + (pad & width & 1);
                return new string(fill[0], left) + s + new string(fill[0], pad - left);
            }
            case "partition":
            case "rpartition":
            {
                string sep = Str(a.Required(0, "sep", name), name);
                int i = name == "partition" ? s.IndexOf(sep, StringComparison.Ordinal) : s.LastIndexOf(sep, StringComparison.Ordinal);
                if (i < 0)
                    return name == "partition"
                        ? JinjaValue.FromList(JinjaList.Tuple(s, "", ""))
                        : JinjaValue.FromList(JinjaList.Tuple("", "", s));
                return JinjaValue.FromList(JinjaList.Tuple(s[..i], sep, s[(i + sep.Length)..]));
            }
        }
        throw new JinjaRuntimeException($"'str' object has no attribute '{name}'");
    }

    private static JinjaValue CallDict(JinjaDict d, string name, JinjaArguments a)
    {
        switch (name)
        {
            case "items":
            {
                var l = new JinjaList(d.Count);
                foreach (var kv in d) l.Add(JinjaValue.FromList(JinjaList.Tuple(kv.Key, kv.Value)));
                return JinjaValue.FromList(l);
            }
            case "keys":
            {
                var l = new JinjaList(d.Count);
                foreach (var kv in d) l.Add(kv.Key);
                return JinjaValue.FromList(l);
            }
            case "values":
            {
                var l = new JinjaList(d.Count);
                foreach (var kv in d) l.Add(kv.Value);
                return JinjaValue.FromList(l);
            }
            case "get":
                return d.TryGetValue(a.Required(0, "key", name), out var v) ? v : a.Get(1, "default", JinjaValue.None);
            case "copy":
            {
                var c = new JinjaDict(d.Count);
                foreach (var kv in d) c.Add(kv.Key, kv.Value);
                return JinjaValue.FromDict(c);
            }
        }
        throw new JinjaRuntimeException($"'dict' object has no attribute '{name}'");
    }

    private static JinjaValue CallList(JinjaList l, string name, JinjaArguments a)
    {
        switch (name)
        {
            case "index":
            {
                var x = a.Required(0, "value", name);
                for (int i = 0; i < l.Count; i++)
                    if (l[i].Equals(x)) return JinjaValue.FromInt(i);
                throw new JinjaRuntimeException($"{PyFormat.Repr(x)} is not in list");
            }
            case "count":
            {
                var x = a.Required(0, "value", name);
                return JinjaValue.FromInt(l.Count(v => v.Equals(x)));
            }
            case "copy":
                return JinjaValue.FromList(new JinjaList(l));
        }
        throw new JinjaRuntimeException($"'list' object has no attribute '{name}'");
    }
}

/// <summary>Python string algorithms whose details differ from .NET's (split, strip, title, formatting).</summary>
internal static class PyStrings
{
    /// <summary>Python <c>str.isspace</c> for one character (includes the \x1c-\x1f separators).</summary>
    public static bool IsPySpace(char c) => char.IsWhiteSpace(c) || c is >= '\x1c' and <= '\x1f';

    public static string Strip(string s, string? chars, bool left, bool right)
    {
        int start = 0, end = s.Length;
        if (left)
            while (start < end && (chars is null ? IsPySpace(s[start]) : chars.Contains(s[start]))) start++;
        if (right)
            while (end > start && (chars is null ? IsPySpace(s[end - 1]) : chars.Contains(s[end - 1]))) end--;
        return start == 0 && end == s.Length ? s : s[start..end];
    }

    public static List<string> Split(string s, string sep, long max, bool fromRight)
    {
        if (sep.Length == 0) throw new JinjaRuntimeException("empty separator");
        var parts = new List<string>();
        if (!fromRight)
        {
            int start = 0;
            while (max < 0 || parts.Count < max)
            {
                int i = s.IndexOf(sep, start, StringComparison.Ordinal);
                if (i < 0) break;
                parts.Add(s[start..i]);
                start = i + sep.Length;
            }
            parts.Add(s[start..]);
            return parts;
        }
        int end = s.Length;
        while (max < 0 || parts.Count < max)
        {
            int i = end - sep.Length < 0 ? -1 : s.LastIndexOf(sep, end - 1, end, StringComparison.Ordinal);
            if (i < 0) break;
            parts.Add(s[(i + sep.Length)..end]);
            end = i;
        }
        parts.Add(s[..end]);
        parts.Reverse();
        return parts;
    }

    public static List<string> SplitWhitespace(string s, long max, bool fromRight)
    {
        var parts = new List<string>();
        if (!fromRight)
        {
            int i = 0;
            while (true)
            {
                while (i < s.Length && IsPySpace(s[i])) i++;
                if (i >= s.Length) break;
                if (max >= 0 && parts.Count >= max)
                {
                    parts.Add(Strip(s[i..], null, false, true));
                    break;
                }
                int start = i;
                while (i < s.Length && !IsPySpace(s[i])) i++;
                parts.Add(s[start..i]);
            }
            return parts;
        }
        int j = s.Length;
        while (true)
        {
            while (j > 0 && IsPySpace(s[j - 1])) j--;
            if (j <= 0) break;
            if (max >= 0 && parts.Count >= max)
            {
                parts.Add(Strip(s[..j], null, true, false));
                break;
            }
            int end = j;
            while (j > 0 && !IsPySpace(s[j - 1])) j--;
            parts.Add(s[j..end]);
        }
        parts.Reverse();
        return parts;
    }

    public static string Replace(string s, string old, string @new, long count)
    {
        if (count < 0) return old.Length == 0 ? InsertEverywhere(s, @new, long.MaxValue) : s.Replace(old, @new, StringComparison.Ordinal);
        if (old.Length == 0) return InsertEverywhere(s, @new, count);
        var sb = new StringBuilder();
        int start = 0;
        for (long n = 0; n < count; n++)
        {
            int i = s.IndexOf(old, start, StringComparison.Ordinal);
            if (i < 0) break;
            sb.Append(s, start, i - start).Append(@new);
            start = i + old.Length;
        }
        return sb.Append(s, start, s.Length - start).ToString();
    }

    private static string InsertEverywhere(string s, string ins, long count)
    {
        var sb = new StringBuilder();
        long n = 0;
        for (int i = 0; i <= s.Length; i++)
        {
            if (n < count) { sb.Append(ins); n++; }
            if (i < s.Length) sb.Append(s[i]);
        }
        return sb.ToString();
    }

    /// <summary>Python <c>str.title()</c>: upper-case a cased char that follows an uncased one.</summary>
    public static string PyTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool prevCased = false;
        foreach (char c in s)
        {
            bool cased = char.IsUpper(c) || char.IsLower(c) || CharUnicodeInfo.GetUnicodeCategory(c) == UnicodeCategory.TitlecaseLetter;
            sb.Append(cased ? (prevCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c)) : c);
            prevCased = cased;
        }
        return sb.ToString();
    }

    public static string Capitalize(string s) =>
        s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    /// <summary>printf-style <c>"%s and %d" % (a, b)</c>: %s %r %d %i %f %x %X %o %e %g %% with flags, width, precision.</summary>
    public static JinjaValue PercentFormat(string format, JinjaValue args)
    {
        var values = args.Kind == JinjaKind.List && args.AsList.IsTuple ? args.AsList : new JinjaList { args };
        var sb = new StringBuilder();
        int argIndex = 0;
        for (int i = 0; i < format.Length; i++)
        {
            char c = format[i];
            if (c != '%')
            {
                sb.Append(c);
                continue;
            }
            if (++i >= format.Length) throw new JinjaRuntimeException("incomplete format");
            string? key = null;
            if (format[i] == '(')
            {
                int close = format.IndexOf(')', i);
                if (close < 0) throw new JinjaRuntimeException("incomplete format key");
                key = format[(i + 1)..close];
                i = close + 1;
            }
            string flags = "";
            while (i < format.Length && format[i] is '-' or '+' or ' ' or '#' or '0') flags += format[i++];
            int width = 0;
            while (i < format.Length && char.IsAsciiDigit(format[i])) width = width * 10 + (format[i++] - '0');
            int precision = -1;
            if (i < format.Length && format[i] == '.')
            {
                i++;
                precision = 0;
                while (i < format.Length && char.IsAsciiDigit(format[i])) precision = precision * 10 + (format[i++] - '0');
            }
            if (i >= format.Length) throw new JinjaRuntimeException("incomplete format");
            char conv = format[i];
            if (conv == '%')
            {
                sb.Append('%');
                continue;
            }
            JinjaValue v;
            if (key is not null)
            {
                if (args.Kind != JinjaKind.Dict) throw new JinjaRuntimeException("format requires a mapping");
                if (!args.AsDict.TryGetValue(key, out v)) throw new JinjaRuntimeException($"KeyError: '{key}'");
            }
            else
            {
                if (argIndex >= values.Count) throw new JinjaRuntimeException("not enough arguments for format string");
                v = values[argIndex++];
            }
            string text = FormatOne(conv, v, precision, flags);
            bool leftAlign = flags.Contains('-');
            if (text.Length < width)
            {
                char pad = flags.Contains('0') && !leftAlign && conv is not ('s' or 'r') ? '0' : ' ';
                if (leftAlign) text = text.PadRight(width);
                else if (pad == '0' && text.Length > 0 && text[0] is '-' or '+') text = text[0] + text[1..].PadLeft(width - 1, '0');
                else text = text.PadLeft(width, pad);
            }
            sb.Append(text);
        }
        // Python only checks leftovers for tuples and plain values; a list or dict argument may go unused.
        bool checkLeftovers = args.Kind != JinjaKind.Dict && !(args.Kind == JinjaKind.List && !args.AsList.IsTuple);
        if (checkLeftovers && argIndex < values.Count) throw new JinjaRuntimeException("not all arguments converted during string formatting");
        return sb.ToString();
    }

    private static string FormatOne(char conv, JinjaValue v, int precision, string flags)
    {
        string sign = flags.Contains('+') ? "+" : flags.Contains(' ') ? " " : "";
        switch (conv)
        {
            case 's':
            {
                string s = PyFormat.Str(v);
                return precision >= 0 && s.Length > precision ? s[..precision] : s;
            }
            case 'r': return PyFormat.Repr(v);
            case 'd' or 'i' or 'u':
            {
                if (!v.IsNumber) throw new JinjaRuntimeException($"%{conv} format: a real number is required, not {v.TypeName}");
                long n = v.Kind == JinjaKind.Float ? (long)Math.Truncate(v.AsFloat) : v.AsInt;
                return (n >= 0 ? sign : "") + n.ToString(CultureInfo.InvariantCulture);
            }
            case 'f' or 'F' or 'e' or 'E' or 'g' or 'G':
            {
                if (!v.IsNumber) throw new JinjaRuntimeException($"must be real number, not {v.TypeName}");
                return (v.ToDouble() >= 0 ? sign : "") + FormatFloat(v.ToDouble(), conv, precision < 0 ? 6 : precision);
            }
            case 'x' or 'X' or 'o':
            {
                if (v.Kind is not (JinjaKind.Int or JinjaKind.Bool)) throw new JinjaRuntimeException($"%{conv} format: an integer is required, not {v.TypeName}");
                long n = v.AsInt;
                string body = conv == 'o' ? Convert.ToString(Math.Abs(n), 8) : Math.Abs(n).ToString(conv == 'x' ? "x" : "X", CultureInfo.InvariantCulture);
                return (n < 0 ? "-" : sign) + body;
            }
        }
        throw new JinjaRuntimeException($"unsupported format character '{conv}'");
    }

    /// <summary>C-style <c>%f</c>/<c>%e</c>/<c>%g</c> as Python prints them.</summary>
    public static string FormatFloat(double d, char conv, int precision)
    {
        if (double.IsNaN(d)) return char.IsUpper(conv) ? "NAN" : "nan";
        if (double.IsInfinity(d)) return (d < 0 ? "-" : "") + (char.IsUpper(conv) ? "INF" : "inf");
        switch (conv)
        {
            case 'f' or 'F':
                return d.ToString("F" + precision.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
            case 'e' or 'E':
            {
                string s = d.ToString((conv == 'e' ? "e" : "E") + precision.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
                // .NET prints a three-digit exponent (1.0e+005); Python uses at least two digits.
                int ePos = s.IndexOfAny(['e', 'E']);
                string mant = s[..ePos];
                int exp = int.Parse(s.AsSpan(ePos + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
                return mant + s[ePos] + (exp < 0 ? "-" : "+") + Math.Abs(exp).ToString("00", CultureInfo.InvariantCulture);
            }
            default:
            {
                int p = precision == 0 ? 1 : precision;
                if (d == 0) return "0";
                int exp = (int)Math.Floor(Math.Log10(Math.Abs(d)));
                string e = FormatFloat(d, conv == 'g' ? 'e' : 'E', p - 1);
                int realExp = int.Parse(e.AsSpan(e.IndexOfAny(['e', 'E']) + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
                exp = realExp;
                if (exp < -4 || exp >= p)
                {
                    int ePos = e.IndexOfAny(['e', 'E']);
                    string mant = e[..ePos];
                    if (mant.Contains('.')) mant = mant.TrimEnd('0').TrimEnd('.');
                    return mant + e[ePos..];
                }
                string f = FormatFloat(d, 'f', Math.Max(p - 1 - exp, 0));
                if (f.Contains('.')) f = f.TrimEnd('0').TrimEnd('.');
                return f;
            }
        }
    }

    /// <summary>
    /// <c>str.format</c>: <c>{}</c>, <c>{0}</c>, <c>{name}</c>, attribute/index access (<c>{0.x}</c>, <c>{a[k]}</c>),
    /// conversions <c>!r</c>/<c>!s</c>, and specs with fill, align, sign, width and <c>.Nf</c>/<c>d</c>/<c>s</c>.
    /// </summary>
    public static JinjaValue Format(string format, JinjaArguments args)
    {
        var sb = new StringBuilder();
        int auto = 0;
        for (int i = 0; i < format.Length; i++)
        {
            char c = format[i];
            if (c == '{')
            {
                if (i + 1 < format.Length && format[i + 1] == '{')
                {
                    sb.Append('{');
                    i++;
                    continue;
                }
                int close = format.IndexOf('}', i);
                if (close < 0) throw new JinjaRuntimeException("Single '{' encountered in format string");
                string field = format[(i + 1)..close];
                i = close;
                string? spec = null;
                char conversion = '\0';
                int colon = field.IndexOf(':');
                if (colon >= 0)
                {
                    spec = field[(colon + 1)..];
                    field = field[..colon];
                }
                int bang = field.IndexOf('!');
                if (bang >= 0)
                {
                    conversion = field[bang + 1];
                    field = field[..bang];
                }
                int nameEnd = 0;
                while (nameEnd < field.Length && field[nameEnd] is not ('.' or '[')) nameEnd++;
                string head = field[..nameEnd];
                JinjaValue v;
                if (head.Length == 0) v = ArgAt(args, auto++);
                else if (int.TryParse(head, NumberStyles.None, CultureInfo.InvariantCulture, out int idx)) v = ArgAt(args, idx);
                else
                {
                    v = JinjaValue.Undefined;
                    bool found = false;
                    foreach (var kv in args.Named)
                        if (kv.Key == head) { v = kv.Value; found = true; }
                    if (!found) throw new JinjaRuntimeException($"KeyError: '{head}'");
                }
                string rest = field[nameEnd..];
                while (rest.Length > 0)
                {
                    if (rest[0] == '.')
                    {
                        int end = 1;
                        while (end < rest.Length && rest[end] is not ('.' or '[')) end++;
                        v = JinjaOps.GetAttr(v, rest[1..end]);
                        rest = rest[end..];
                    }
                    else
                    {
                        int end = rest.IndexOf(']');
                        string key = rest[1..end];
                        v = JinjaOps.GetItem(v, long.TryParse(key, NumberStyles.None, CultureInfo.InvariantCulture, out long k) ? JinjaValue.FromInt(k) : key);
                        rest = rest[(end + 1)..];
                    }
                }
                string text;
                if (conversion == 'r') { text = PyFormat.Repr(v); v = text; }
                else if (conversion == 's') { text = PyFormat.Str(v); v = text; }
                sb.Append(ApplySpec(v, spec));
            }
            else if (c == '}')
            {
                if (i + 1 < format.Length && format[i + 1] == '}') i++;
                else throw new JinjaRuntimeException("Single '}' encountered in format string");
                sb.Append('}');
            }
            else sb.Append(c);
        }
        return sb.ToString();
    }

    private static JinjaValue ArgAt(JinjaArguments args, int index) =>
        index < args.Count ? args.Positional[index] : throw new JinjaRuntimeException($"Replacement index {index} out of range for positional args tuple");

    private static string ApplySpec(JinjaValue v, string? spec)
    {
        if (string.IsNullOrEmpty(spec)) return PyFormat.Str(v);
        int i = 0;
        char fill = ' ', align = '\0';
        if (spec.Length >= 2 && spec[1] is '<' or '>' or '^' or '=') { fill = spec[0]; align = spec[1]; i = 2; }
        else if (spec[0] is '<' or '>' or '^' or '=') { align = spec[0]; i = 1; }
        string sign = "";
        if (i < spec.Length && spec[i] is '+' or '-' or ' ') sign = spec[i++].ToString();
        if (i < spec.Length && spec[i] == '0' && align == '\0') { fill = '0'; align = '='; i++; }
        int width = 0;
        while (i < spec.Length && char.IsAsciiDigit(spec[i])) width = width * 10 + (spec[i++] - '0');
        if (i < spec.Length && spec[i] == ',') i++;
        int precision = -1;
        if (i < spec.Length && spec[i] == '.')
        {
            i++;
            precision = 0;
            while (i < spec.Length && char.IsAsciiDigit(spec[i])) precision = precision * 10 + (spec[i++] - '0');
        }
        char type = i < spec.Length ? spec[i] : '\0';
        string text;
        bool numeric = v.IsNumber;
        switch (type)
        {
            case 'f' or 'F' or 'e' or 'E' or 'g' or 'G' or '%':
                if (!v.IsNumber) throw new JinjaRuntimeException($"Unknown format code '{type}' for object of type '{v.TypeName}'");
                text = type == '%' ? FormatFloat(v.ToDouble() * 100, 'f', precision < 0 ? 6 : precision) + "%" : FormatFloat(v.ToDouble(), type, precision < 0 ? 6 : precision);
                break;
            case 'd':
                if (v.Kind is not (JinjaKind.Int or JinjaKind.Bool)) throw new JinjaRuntimeException($"Unknown format code 'd' for object of type '{v.TypeName}'");
                text = v.AsInt.ToString(CultureInfo.InvariantCulture);
                break;
            case 'x' or 'X' or 'b' or 'o':
                if (v.Kind is not (JinjaKind.Int or JinjaKind.Bool)) throw new JinjaRuntimeException($"Unknown format code '{type}' for object of type '{v.TypeName}'");
                text = type switch
                {
                    'b' => Convert.ToString(v.AsInt, 2),
                    'o' => Convert.ToString(v.AsInt, 8),
                    _ => v.AsInt.ToString(type == 'x' ? "x" : "X", CultureInfo.InvariantCulture),
                };
                break;
            default:
                text = v.Kind == JinjaKind.Float && precision >= 0 ? FormatFloat(v.AsFloat, 'g', precision) : PyFormat.Str(v);
                if (v.IsString && precision >= 0 && text.Length > precision) text = text[..precision];
                break;
        }
        if (numeric && sign is "+" or " " && !text.StartsWith('-')) text = sign + text;
        if (text.Length >= width) return text;
        if (align == '\0') align = numeric ? '>' : '<';
        int pad = width - text.Length;
        return align switch
        {
            '<' => text + new string(fill, pad),
            '>' => new string(fill, pad) + text,
            '^' => new string(fill, pad / 2) + text + new string(fill, pad - pad / 2),
            _ => text.Length > 0 && text[0] is '-' or '+' or ' ' ? text[0] + new string(fill, pad) + text[1..] : new string(fill, pad) + text,
        };
    }
}
