using System.Globalization;
using System.Text;

namespace Qwen3Sharp.Chat.Jinja;

/// <summary>
/// Python's text conversions: <c>str()</c>, <c>repr()</c>, float repr and <c>json.dumps</c>
/// (as transformers calls it: <c>ensure_ascii=False</c>, separators <c>", "</c>/<c>": "</c>).
/// </summary>
public static class PyFormat
{
    /// <summary>Python <c>str(value)</c>; Jinja2 renders undefined as the empty string.</summary>
    public static string Str(JinjaValue value) => value.Kind switch
    {
        JinjaKind.Undefined => "",
        JinjaKind.String => value.AsString,
        JinjaKind.Int => value.AsInt.ToString(CultureInfo.InvariantCulture),
        _ => Repr(value),
    };

    public static void AppendStr(StringBuilder sb, JinjaValue value)
    {
        switch (value.Kind)
        {
            case JinjaKind.Undefined: return;
            case JinjaKind.String: sb.Append(value.AsString); return;
            case JinjaKind.Int: sb.Append(value.AsInt); return;
            default: AppendRepr(sb, value); return;
        }
    }

    /// <summary>Python <c>repr(value)</c>.</summary>
    public static string Repr(JinjaValue value)
    {
        var sb = new StringBuilder();
        AppendRepr(sb, value);
        return sb.ToString();
    }

    public static void AppendRepr(StringBuilder sb, JinjaValue value)
    {
        switch (value.Kind)
        {
            case JinjaKind.Undefined: return;
            case JinjaKind.None: sb.Append("None"); return;
            case JinjaKind.Bool: sb.Append(value.AsBool ? "True" : "False"); return;
            case JinjaKind.Int: sb.Append(value.AsInt); return;
            case JinjaKind.Float: sb.Append(FloatRepr(value.AsFloat)); return;
            case JinjaKind.String: AppendStringRepr(sb, value.AsString); return;
            case JinjaKind.List:
            {
                var list = value.AsList;
                sb.Append(list.IsTuple ? '(' : '[');
                for (int i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(", ");
                    AppendRepr(sb, list[i]);
                }
                if (list.IsTuple && list.Count == 1) sb.Append(',');
                sb.Append(list.IsTuple ? ')' : ']');
                return;
            }
            case JinjaKind.Dict:
            {
                sb.Append('{');
                bool first = true;
                foreach (var kv in value.AsDict)
                {
                    if (!first) sb.Append(", ");
                    first = false;
                    AppendRepr(sb, kv.Key);
                    sb.Append(": ");
                    AppendRepr(sb, kv.Value);
                }
                sb.Append('}');
                return;
            }
            case JinjaKind.Object:
                sb.Append('<').Append(value.AsObject.TypeName).Append(" object>");
                return;
            default:
                sb.Append("<function ").Append(value.AsCallable.Name).Append('>');
                return;
        }
    }

    /// <summary>Python's repr of a str: single quotes unless the text has ' and no ".</summary>
    public static void AppendStringRepr(StringBuilder sb, string s)
    {
        char quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        sb.Append(quote);
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c == quote || c == '\\') sb.Append('\\').Append(c);
            else if (c == '\n') sb.Append("\\n");
            else if (c == '\r') sb.Append("\\r");
            else if (c == '\t') sb.Append("\\t");
            else if (c < 0x20 || c == 0x7f) sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
            else if (c < 0x7f) sb.Append(c);
            else
            {
                // Python escapes non-printable code points: categories Cc, Cf, Cs, Co, Cn, Zl, Zp, Zs (but ' ').
                int cp = c;
                int width = 1;
                if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
                {
                    cp = char.ConvertToUtf32(c, s[i + 1]);
                    width = 2;
                }
                var cat = CharUnicodeInfo.GetUnicodeCategory(cp);
                bool printable = cat is not (UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate
                    or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned or UnicodeCategory.LineSeparator
                    or UnicodeCategory.ParagraphSeparator or UnicodeCategory.SpaceSeparator);
                if (printable) sb.Append(s, i, width);
                else if (cp < 0x100) sb.Append("\\x").Append(cp.ToString("x2", CultureInfo.InvariantCulture));
                else if (cp < 0x10000) sb.Append("\\u").Append(cp.ToString("x4", CultureInfo.InvariantCulture));
                else sb.Append("\\U").Append(cp.ToString("x8", CultureInfo.InvariantCulture));
                i += width - 1;
            }
        }
        sb.Append(quote);
    }

    /// <summary>
    /// Python <c>repr(float)</c>: the shortest round-trip digits, positional when the decimal exponent is
    /// in [-4, 16), else scientific with a two-digit minimum exponent (<c>1e-05</c>, <c>1e+16</c>).
    /// </summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsPositiveInfinity(d)) return "inf";
        if (double.IsNegativeInfinity(d)) return "-inf";
        if (d == 0) return double.IsNegative(d) ? "-0.0" : "0.0";

        // "E16" is not shortest; "R" is shortest round-trip on .NET Core 3.0+. Normalise it to digits+exponent.
        string r = d.ToString("R", CultureInfo.InvariantCulture);
        bool negative = r[0] == '-';
        if (negative) r = r[1..];
        int exp = 0;
        int ePos = r.IndexOfAny(['E', 'e']);
        if (ePos >= 0)
        {
            exp = int.Parse(r.AsSpan(ePos + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            r = r[..ePos];
        }
        int dot = r.IndexOf('.');
        string intPart = dot >= 0 ? r[..dot] : r;
        string fracPart = dot >= 0 ? r[(dot + 1)..] : "";
        string digits = (intPart + fracPart).TrimStart('0');
        int leadingZeros = (intPart + fracPart).Length - digits.Length;
        // value = 0.digits * 10^decpt
        int decpt = intPart.Length + exp - leadingZeros;
        digits = digits.TrimEnd('0');
        if (digits.Length == 0) digits = "0";

        var sb = new StringBuilder(24);
        if (negative) sb.Append('-');
        if (decpt > -4 && decpt <= 16)
        {
            if (decpt <= 0)
            {
                sb.Append("0.").Append('0', -decpt).Append(digits);
            }
            else if (decpt >= digits.Length)
            {
                sb.Append(digits).Append('0', decpt - digits.Length).Append(".0");
            }
            else
            {
                sb.Append(digits, 0, decpt).Append('.').Append(digits, decpt, digits.Length - decpt);
            }
        }
        else
        {
            int e = decpt - 1;
            sb.Append(digits[0]);
            if (digits.Length > 1) sb.Append('.').Append(digits, 1, digits.Length - 1);
            sb.Append('e').Append(e < 0 ? '-' : '+');
            int ae = Math.Abs(e);
            if (ae < 10) sb.Append('0');
            sb.Append(ae);
        }
        return sb.ToString();
    }

    /// <summary>Options of Python's <c>json.dumps</c> that transformers' <c>tojson</c> filter exposes.</summary>
    public readonly record struct JsonOptions(int? Indent, string? ItemSeparator, string? KeySeparator, bool SortKeys, bool EnsureAscii);

    /// <summary><c>json.dumps(value, ensure_ascii=False)</c> with Python's default separators.</summary>
    public static string JsonDumps(JinjaValue value) => JsonDumps(value, new JsonOptions(null, null, null, false, false));

    public static string JsonDumps(JinjaValue value, JsonOptions options)
    {
        var sb = new StringBuilder();
        string itemSep = options.ItemSeparator ?? (options.Indent is null ? ", " : ",");
        string keySep = options.KeySeparator ?? ": ";
        WriteJson(sb, value, options, itemSep, keySep, 0);
        return sb.ToString();
    }

    private static void WriteJson(StringBuilder sb, JinjaValue value, in JsonOptions o, string itemSep, string keySep, int depth)
    {
        switch (value.Kind)
        {
            case JinjaKind.None: sb.Append("null"); return;
            case JinjaKind.Bool: sb.Append(value.AsBool ? "true" : "false"); return;
            case JinjaKind.Int: sb.Append(value.AsInt); return;
            case JinjaKind.Float:
            {
                double d = value.AsFloat;
                sb.Append(double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity"
                    : double.IsNegativeInfinity(d) ? "-Infinity" : FloatRepr(d));
                return;
            }
            case JinjaKind.String: AppendJsonString(sb, value.AsString, o.EnsureAscii); return;
            case JinjaKind.List:
            {
                var list = value.AsList;
                if (list.Count == 0) { sb.Append("[]"); return; }
                sb.Append('[');
                for (int i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(itemSep);
                    NewLine(sb, o, depth + 1);
                    WriteJson(sb, list[i], o, itemSep, keySep, depth + 1);
                }
                NewLine(sb, o, depth);
                sb.Append(']');
                return;
            }
            case JinjaKind.Dict:
            {
                var dict = value.AsDict;
                if (dict.Count == 0) { sb.Append("{}"); return; }
                IEnumerable<KeyValuePair<JinjaValue, JinjaValue>> entries = dict;
                if (o.SortKeys)
                    entries = dict.OrderBy(kv => JsonKey(kv.Key), StringComparer.Ordinal).ToList();
                sb.Append('{');
                bool first = true;
                foreach (var kv in entries)
                {
                    if (!first) sb.Append(itemSep);
                    first = false;
                    NewLine(sb, o, depth + 1);
                    AppendJsonString(sb, JsonKey(kv.Key), o.EnsureAscii);
                    sb.Append(keySep);
                    WriteJson(sb, kv.Value, o, itemSep, keySep, depth + 1);
                }
                NewLine(sb, o, depth);
                sb.Append('}');
                return;
            }
            default:
                throw new JinjaRuntimeException($"Object of type {value.TypeName} is not JSON serializable");
        }
    }

    private static string JsonKey(JinjaValue key) => key.Kind switch
    {
        JinjaKind.String => key.AsString,
        JinjaKind.None => "null",
        JinjaKind.Bool => key.AsBool ? "true" : "false",
        JinjaKind.Int => key.AsInt.ToString(CultureInfo.InvariantCulture),
        JinjaKind.Float => FloatRepr(key.AsFloat),
        _ => throw new JinjaRuntimeException($"keys must be str, int, float, bool or None, not {key.TypeName}"),
    };

    private static void NewLine(StringBuilder sb, in JsonOptions o, int depth)
    {
        if (o.Indent is int indent)
        {
            sb.Append('\n');
            sb.Append(' ', indent * depth);
        }
    }

    /// <summary>Python json string escaping: <c>\" \\ \n \r \t \b \f</c>, other controls as <c>\u00XX</c>.</summary>
    public static void AppendJsonString(StringBuilder sb, string s, bool ensureAscii = false)
    {
        sb.Append('"');
        int start = 0;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            string? esc = c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '\b' => "\\b",
                '\f' => "\\f",
                _ => null,
            };
            if (esc is null && (c < 0x20 || (ensureAscii && c > 0x7e)))
                esc = "\\u" + ((int)c).ToString("x4", CultureInfo.InvariantCulture);
            if (esc is null) continue;
            sb.Append(s, start, i - start).Append(esc);
            start = i + 1;
        }
        sb.Append(s, start, s.Length - start);
        sb.Append('"');
    }
}
