using System.Text;

namespace Qwen3Sharp.Structured;

/// <summary>
/// A regular expression (the ECMA-262 subset schemas use: literals, <c>.</c>, classes, <c>\d \w \s</c>, groups,
/// <c>|</c>, <c>* + ? {n,m}</c>, <c>^ $</c> at the ends) compiled to a byte grammar. In JSON-string mode the
/// grammar produces the JSON-escaped form of the matched text (classes then leave out <c>"</c>, <c>\</c> and
/// control characters). Look-arounds and back-references are refused.
/// </summary>
public sealed class RegexCompiler
{
    private readonly string _p;
    private readonly bool _json;
    private int _i;

    private RegexCompiler(string pattern, bool jsonString)
    {
        _p = pattern;
        _json = jsonString;
    }

    /// <summary>Compiles a pattern; unanchored ends (JSON Schema's search semantics) allow any text there.</summary>
    public static GNode Compile(string pattern, bool jsonString)
    {
        var c = new RegexCompiler(pattern, jsonString);
        bool start = pattern.StartsWith('^');
        if (start)
        {
            c._i = 1;
        }

        GNode body = c.ParseAlt();
        bool end = false;
        if (c._i < pattern.Length && pattern[c._i] == '$' && c._i == pattern.Length - 1)
        {
            end = true;
            c._i++;
        }

        if (c._i != pattern.Length)
        {
            throw new SchemaException($"pattern \"{pattern}\": unexpected '{pattern[c._i]}' at {c._i}");
        }

        GNode any = G.Star(c.AnyChar());
        return G.Seq(start ? G.Empty : any, body, end ? G.Empty : any);
    }

    private SchemaException Error(string why) => new($"pattern \"{_p}\": {why}");

    /// <summary>A set of code points (lo..hi, inclusive) as UTF-8 byte alternatives; surrogates are left out.</summary>
    internal static GNode CodePoints(List<(int Lo, int Hi)> ranges, bool negate) =>
        new RegexCompiler("", jsonString: false).ClassNode(negate ? Complement(ranges) : ranges);

    private GNode ParseAlt()
    {
        var alts = new List<GNode> { ParseSeq() };
        while (_i < _p.Length && _p[_i] == '|')
        {
            _i++;
            alts.Add(ParseSeq());
        }

        return G.Alt([.. alts]);
    }

    private GNode ParseSeq()
    {
        var items = new List<GNode>();
        while (_i < _p.Length && _p[_i] != '|' && _p[_i] != ')')
        {
            if (_p[_i] == '$' && _i == _p.Length - 1)
            {
                break;
            }

            GNode atom = ParseAtom();
            items.Add(ParseQuantifier(atom));
        }

        return G.Seq([.. items]);
    }

    private GNode ParseQuantifier(GNode atom)
    {
        if (_i >= _p.Length)
        {
            return atom;
        }

        int min, max;
        switch (_p[_i])
        {
            case '*': min = 0; max = -1; _i++; break;
            case '+': min = 1; max = -1; _i++; break;
            case '?': min = 0; max = 1; _i++; break;
            case '{':
                int close = _p.IndexOf('}', _i);
                if (close < 0)
                {
                    return atom;
                }

                string[] parts = _p[(_i + 1)..close].Split(',');
                if (!int.TryParse(parts[0], out min) || parts.Length > 2)
                {
                    throw Error("bad {n,m} quantifier");
                }

                max = parts.Length == 1 ? min : parts[1].Length == 0 ? -1 : int.TryParse(parts[1], out int m) ? m : throw Error("bad {n,m} quantifier");
                if (max >= 0 && max < min || min > 10000 || max > 10000)
                {
                    throw Error("bad {n,m} quantifier");
                }

                _i = close + 1;
                break;
            default: return atom;
        }

        if (_i < _p.Length && (_p[_i] == '?' || _p[_i] == '+'))
        {
            _i++;   // lazy / possessive: the same language
        }

        return G.Repeat(atom, min, max);
    }

    private GNode ParseAtom()
    {
        char ch = _p[_i++];
        switch (ch)
        {
            case '(':
                if (_i < _p.Length && _p[_i] == '?')
                {
                    if (_i + 1 < _p.Length && _p[_i + 1] == ':')
                    {
                        _i += 2;
                    }
                    else if (_i + 1 < _p.Length && _p[_i + 1] == '<' && _i + 2 < _p.Length && _p[_i + 2] is not ('=' or '!'))
                    {
                        _i = _p.IndexOf('>', _i) + 1;
                    }
                    else
                    {
                        throw Error("look-around groups are not supported");
                    }
                }

                GNode inner = ParseAlt();
                if (_i >= _p.Length || _p[_i] != ')')
                {
                    throw Error("missing ')'");
                }

                _i++;
                return inner;
            case '[':
                return ParseClass();
            case '.':
                return AnyChar(excludeNewline: true);
            case '\\':
                return ParseEscape(inClass: false, out _);
            case '^' or '$':
                throw Error("anchors are supported only at the ends");
            case ')' or '*' or '+' or '?':
                throw Error($"unexpected '{ch}'");
            default:
                if (char.IsHighSurrogate(ch) && _i < _p.Length)
                {
                    return Char(char.ConvertToUtf32(ch, _p[_i++]));
                }

                return Char(ch);
        }
    }

    private GNode ParseEscape(bool inClass, out List<(int, int)>? ranges)
    {
        ranges = null;
        if (_i >= _p.Length)
        {
            throw Error("trailing '\\'");
        }

        char e = _p[_i++];
        List<(int, int)>? cls = e switch
        {
            'd' => [('0', '9')],
            'w' => [('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')],
            's' => [('\t', '\r'), (' ', ' ')],
            'D' => Complement([('0', '9')]),
            'W' => Complement([('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')]),
            'S' => Complement([('\t', '\r'), (' ', ' ')]),
            _ => null,
        };
        if (cls is not null)
        {
            ranges = cls;
            return inClass ? G.Empty : ClassNode(cls);
        }

        int c = e switch
        {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'f' => '\f',
            'v' => '\v',
            '0' => 0,
            'u' when _i + 4 <= _p.Length => Convert.ToInt32(_p.Substring(_i, 4), 16),
            'x' when _i + 2 <= _p.Length => Convert.ToInt32(_p.Substring(_i, 2), 16),
            'b' or 'B' => throw Error("word boundaries are not supported"),
            >= '1' and <= '9' => throw Error("back-references are not supported"),
            _ => e,
        };
        _i += e == 'u' ? 4 : e == 'x' ? 2 : 0;
        ranges = [(c, c)];
        return inClass ? G.Empty : Char(c);
    }

    private GNode ParseClass()
    {
        bool negate = _i < _p.Length && _p[_i] == '^';
        if (negate)
        {
            _i++;
        }

        var ranges = new List<(int, int)>();
        bool first = true;
        while (_i < _p.Length && (_p[_i] != ']' || first))
        {
            first = false;
            int lo;
            if (_p[_i] == '\\')
            {
                _i++;
                ParseEscape(inClass: true, out List<(int, int)>? r);
                if (r!.Count != 1 || r[0].Item1 != r[0].Item2)
                {
                    ranges.AddRange(r);
                    continue;
                }

                lo = r[0].Item1;
            }
            else
            {
                lo = _p[_i++];
            }

            int hi = lo;
            if (_i + 1 < _p.Length && _p[_i] == '-' && _p[_i + 1] != ']')
            {
                _i++;
                if (_p[_i] == '\\')
                {
                    _i++;
                    ParseEscape(inClass: true, out List<(int, int)>? r);
                    hi = r![0].Item2;
                }
                else
                {
                    hi = _p[_i++];
                }
            }

            if (hi < lo)
            {
                throw Error("class range out of order");
            }

            ranges.Add((lo, hi));
        }

        if (_i >= _p.Length)
        {
            throw Error("missing ']'");
        }

        _i++;
        return ClassNode(negate ? Complement(ranges) : ranges);
    }

    private static List<(int, int)> Complement(List<(int, int)> ranges)
    {
        ranges.Sort();
        var result = new List<(int, int)>();
        int next = 0;
        foreach ((int lo, int hi) in ranges)
        {
            if (lo > next)
            {
                result.Add((next, lo - 1));
            }

            next = Math.Max(next, hi + 1);
        }

        if (next <= 0x10FFFF)
        {
            result.Add((next, 0x10FFFF));
        }

        return result;
    }

    /// <summary>Any character (in JSON mode: any JSON string character, escapes included).</summary>
    private GNode AnyChar(bool excludeNewline = false) =>
        ClassNode(excludeNewline ? [(0, '\n' - 1), ('\n' + 1, '\r' - 1), ('\r' + 1, 0x10FFFF)] : [(0, 0x10FFFF)]);

    private GNode Char(int c) => ClassNode([(c, c)]);

    /// <summary>A set of code points as UTF-8 (escaped for JSON strings in JSON mode).</summary>
    private GNode ClassNode(List<(int Lo, int Hi)> ranges)
    {
        var alts = new List<GNode>();
        var ascii = new List<(byte, byte)>();
        foreach ((int lo0, int hi0) in ranges)
        {
            int lo = lo0, hi = Math.Min(hi0, 0x10FFFF);
            if (lo > hi)
            {
                continue;
            }

            if (lo < 0x80)
            {
                int top = Math.Min(hi, 0x7F);
                for (int c = lo; c <= top; c++)
                {
                    if (_json && (c < 0x20 || c == '"' || c == '\\'))
                    {
                        alts.Add(G.Lit(JsonEscape(c)));
                    }
                    else
                    {
                        ascii.Add(((byte)c, (byte)c));
                    }
                }

                lo = 0x80;
            }

            if (lo <= hi)
            {
                Utf8Ranges(lo, hi, alts);
            }
        }

        if (ascii.Count > 0)
        {
            alts.Insert(0, new GByteSet(ascii.ToArray()));
        }

        if (alts.Count == 0)
        {
            throw Error("a character class matches nothing");
        }

        return G.Alt([.. alts]);
    }

    private static string JsonEscape(int c) => c switch
    {
        '"' => "\\\"",
        '\\' => "\\\\",
        '\n' => "\\n",
        '\t' => "\\t",
        '\r' => "\\r",
        '\b' => "\\b",
        '\f' => "\\f",
        _ => $"\\u{c:x4}",
    };

    /// <summary>UTF-8 byte-sequence alternatives for code points lo..hi (all ≥ 0x80), surrogates left out.</summary>
    private static void Utf8Ranges(int lo, int hi, List<GNode> into)
    {
        int[] limits = [0x7FF, 0xD7FF, 0xDFFF, 0xFFFF, 0x10FFFF];
        foreach (int limit in limits)
        {
            if (lo > hi)
            {
                return;
            }

            if (lo > limit)
            {
                continue;
            }

            int top = Math.Min(hi, limit);
            if (limit != 0xDFFF)
            {
                SameLength(Encode(lo), Encode(top), into);
            }

            lo = top + 1;
        }
    }

    private static byte[] Encode(int cp) => Encoding.UTF8.GetBytes(char.ConvertFromUtf32(cp));

    /// <summary>Byte sequences of one length between lo and hi (inclusive), as the utf8-ranges algorithm splits them.</summary>
    private static void SameLength(byte[] lo, byte[] hi, List<GNode> into)
    {
        into.Add(Split(lo, hi, 0));
    }

    private static GNode Split(byte[] lo, byte[] hi, int at)
    {
        if (at == lo.Length)
        {
            return G.Empty;
        }

        if (at == lo.Length - 1)
        {
            return G.Bytes((lo[at], hi[at]));
        }

        if (lo[at] == hi[at])
        {
            return G.Seq(G.Bytes((lo[at], lo[at])), Split(lo, hi, at + 1));
        }

        bool loMin = true, hiMax = true;
        for (int k = at + 1; k < lo.Length; k++)
        {
            loMin &= lo[k] == 0x80;
            hiMax &= hi[k] == 0xBF;
        }

        GNode Tail(int from)
        {
            var items = new List<GNode>();
            for (int k = from; k < lo.Length; k++)
            {
                items.Add(G.Bytes((0x80, 0xBF)));
            }

            return G.Seq([.. items]);
        }

        if (loMin && hiMax)
        {
            return G.Seq(G.Bytes((lo[at], hi[at])), Tail(at + 1));
        }

        var alts = new List<GNode>();
        byte[] loTop = (byte[])lo.Clone();
        for (int k = at + 1; k < lo.Length; k++)
        {
            loTop[k] = 0xBF;
        }

        alts.Add(Split(lo, loTop, at));
        if (hi[at] - lo[at] > 1)
        {
            alts.Add(G.Seq(G.Bytes(((byte)(lo[at] + 1), (byte)(hi[at] - 1))), Tail(at + 1)));
        }

        byte[] hiBottom = (byte[])hi.Clone();
        for (int k = at + 1; k < hi.Length; k++)
        {
            hiBottom[k] = 0x80;
        }

        alts.Add(Split(hiBottom, hi, at));
        return G.Alt([.. alts]);
    }
}
