using System.Globalization;
using System.Text;

namespace Qwen3Sharp.Structured;

/// <summary>
/// llama.cpp's GBNF (grammars/README.md) compiled to a byte grammar: rules <c>name ::= …</c> (the output matches
/// <c>root</c>), string literals, character classes (<c>[a-z]</c>, <c>[^"\\]</c>), <c>.</c>, rule references (recursive
/// too), groups, alternation, <c>* + ?</c> and <c>{m}</c> <c>{m,}</c> <c>{m,n}</c>, <c>#</c> comments; escapes
/// <c>\n \r \t \\ \" \[ \] \xHH \uHHHH \UHHHHHHHH</c>. As in llama.cpp, a sequence ends at a line end unless inside
/// parentheses or after <c>|</c>. Repeating something that can match empty, and left recursion, are refused when the
/// first mask is computed.
/// </summary>
public sealed class GbnfCompiler
{
    private readonly string _g;
    private readonly Dictionary<string, GRef> _rules = [];
    private readonly HashSet<string> _defined = [];
    private int _i;

    private GbnfCompiler(string grammar) => _g = grammar;

    public static GNode Compile(string grammar)
    {
        var c = new GbnfCompiler(grammar);
        c.SkipSpace(newlines: true);
        while (c._i < grammar.Length)
        {
            c.ParseRule();
            c.SkipSpace(newlines: true);
        }

        if (!c._defined.Contains("root"))
        {
            throw new SchemaException("the grammar has no 'root' rule");
        }

        foreach ((string name, GRef r) in c._rules)
        {
            if (r.Target is null)
            {
                throw new SchemaException($"rule '{name}' is used but not defined");
            }
        }

        return c._rules["root"];
    }

    private SchemaException Error(string why)
    {
        int line = 1 + _g.AsSpan(0, Math.Min(_i, _g.Length)).Count('\n');
        return new SchemaException($"grammar line {line}: {why}");
    }

    private GRef Rule(string name)
    {
        if (!_rules.TryGetValue(name, out GRef? r))
        {
            r = new GRef();
            _rules.Add(name, r);
        }

        return r;
    }

    private void ParseRule()
    {
        string name = ParseName();
        SkipSpace(newlines: false);
        if (!_g.AsSpan(_i).StartsWith("::="))
        {
            throw Error($"expected '::=' after rule name '{name}'");
        }

        _i += 3;
        if (!_defined.Add(name))
        {
            throw Error($"rule '{name}' is defined twice");
        }

        SkipSpace(newlines: true);
        Rule(name).Target = ParseAlternates(nested: false);
        SkipSpace(newlines: false);
        if (_i < _g.Length && _g[_i] is not ('\n' or '\r'))
        {
            throw Error($"unexpected '{_g[_i]}'");
        }
    }

    private string ParseName()
    {
        int start = _i;
        while (_i < _g.Length && (char.IsAsciiLetterOrDigit(_g[_i]) || _g[_i] is '-' or '_'))
        {
            _i++;
        }

        if (_i == start)
        {
            throw Error(_i < _g.Length ? $"expected a rule name, got '{_g[_i]}'" : "expected a rule name at the end");
        }

        return _g[start.._i];
    }

    private GNode ParseAlternates(bool nested)
    {
        var alts = new List<GNode> { ParseSequence(nested) };
        while (_i < _g.Length && _g[_i] == '|')
        {
            _i++;
            SkipSpace(newlines: true);
            alts.Add(ParseSequence(nested));
        }

        return G.Alt([.. alts]);
    }

    private GNode ParseSequence(bool nested)
    {
        var items = new List<GNode>();
        while (_i < _g.Length)
        {
            char ch = _g[_i];
            GNode item;
            if (ch == '"')
            {
                item = ParseLiteral();
            }
            else if (ch == '[')
            {
                item = ParseClass();
            }
            else if (ch == '.')
            {
                _i++;
                item = RegexCompiler.CodePoints([(0, 0x10FFFF)], negate: false);
            }
            else if (ch == '(')
            {
                _i++;
                SkipSpace(newlines: true);
                item = ParseAlternates(nested: true);
                if (_i >= _g.Length || _g[_i] != ')')
                {
                    throw Error("missing ')'");
                }

                _i++;
            }
            else if (char.IsAsciiLetterOrDigit(ch) || ch is '-' or '_')
            {
                int save = _i;
                string name = ParseName();
                SkipSpace(newlines: false);
                if (_g.AsSpan(_i).StartsWith("::="))
                {
                    _i = save;   // the next rule starts here (after a line end inside parentheses is not allowed)
                    break;
                }

                _i = save + name.Length;
                item = Rule(name);
            }
            else
            {
                break;
            }

            SkipSpace(nested);
            item = ParsePostfix(item, nested);
            items.Add(item);
        }

        return G.Seq([.. items]);
    }

    private GNode ParsePostfix(GNode item, bool nested)
    {
        while (_i < _g.Length)
        {
            char ch = _g[_i];
            if (ch is '*' or '+' or '?')
            {
                _i++;
                item = ch switch { '*' => G.Star(item), '+' => G.Repeat(item, 1, -1), _ => G.Opt(item) };
            }
            else if (ch == '{')
            {
                _i++;
                SkipSpace(newlines: false);
                int min = ParseInt();
                int max = min;
                SkipSpace(newlines: false);
                if (_i < _g.Length && _g[_i] == ',')
                {
                    _i++;
                    SkipSpace(newlines: false);
                    max = _i < _g.Length && char.IsAsciiDigit(_g[_i]) ? ParseInt() : -1;
                    SkipSpace(newlines: false);
                }

                if (_i >= _g.Length || _g[_i] != '}')
                {
                    throw Error("missing '}' in a repetition");
                }

                _i++;
                if (max >= 0 && max < min)
                {
                    throw Error($"repetition {{{min},{max}}}: the maximum is below the minimum");
                }

                item = min == 0 && max == 0 ? G.Empty : G.Repeat(item, min, max);
            }
            else
            {
                break;
            }

            SkipSpace(nested);
        }

        return item;
    }

    private int ParseInt()
    {
        int start = _i;
        while (_i < _g.Length && char.IsAsciiDigit(_g[_i]))
        {
            _i++;
        }

        if (_i == start || !int.TryParse(_g.AsSpan(start, _i - start), NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n > 100_000)
        {
            throw Error("expected a repetition count (at most 100000)");
        }

        return n;
    }

    private GNode ParseLiteral()
    {
        _i++;
        var sb = new StringBuilder();
        while (true)
        {
            if (_i >= _g.Length || _g[_i] is '\n' or '\r')
            {
                throw Error("unterminated string literal");
            }

            if (_g[_i] == '"')
            {
                _i++;
                break;
            }

            sb.Append(char.ConvertFromUtf32(ParseChar()));
        }

        return G.Lit(sb.ToString());
    }

    private GNode ParseClass()
    {
        _i++;
        bool negate = _i < _g.Length && _g[_i] == '^';
        if (negate)
        {
            _i++;
        }

        var ranges = new List<(int, int)>();
        while (true)
        {
            if (_i >= _g.Length)
            {
                throw Error("missing ']'");
            }

            if (_g[_i] == ']')
            {
                _i++;
                break;
            }

            int lo = ParseChar();
            int hi = lo;
            if (_i + 1 < _g.Length && _g[_i] == '-' && _g[_i + 1] != ']')
            {
                _i++;
                hi = ParseChar();
                if (hi < lo)
                {
                    throw Error("a character range runs backwards");
                }
            }

            ranges.Add((lo, hi));
        }

        if (ranges.Count == 0 && !negate)
        {
            throw Error("an empty character class matches nothing");
        }

        return RegexCompiler.CodePoints(ranges, negate);
    }

    /// <summary>One character of a literal or class, escapes decoded, as a code point.</summary>
    private int ParseChar()
    {
        if (_g[_i] != '\\')
        {
            int cp = char.ConvertToUtf32(_g, _i);
            _i += char.IsSurrogatePair(_g, _i) ? 2 : 1;
            return cp;
        }

        if (_i + 1 >= _g.Length)
        {
            throw Error("a '\\' at the end");
        }

        char e = _g[_i + 1];
        _i += 2;
        switch (e)
        {
            case 'n': return '\n';
            case 'r': return '\r';
            case 't': return '\t';
            case '\\' or '"' or '[' or ']' or '-' or '^' or '/': return e;
            case 'x': return Hex(2);
            case 'u': return Hex(4);
            case 'U': return Hex(8);
            default: throw Error($"unknown escape '\\{e}'");
        }
    }

    private int Hex(int digits)
    {
        if (_i + digits > _g.Length || !int.TryParse(_g.AsSpan(_i, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int cp)
            || cp > 0x10FFFF || cp is >= 0xD800 and <= 0xDFFF)
        {
            throw Error($"a \\x/\\u/\\U escape needs {digits} hex digits of a valid code point");
        }

        _i += digits;
        return cp;
    }

    /// <summary>Skips spaces, tabs, comments and (when <paramref name="newlines"/>) line ends.</summary>
    private void SkipSpace(bool newlines)
    {
        while (_i < _g.Length)
        {
            char ch = _g[_i];
            if (ch is ' ' or '\t' || (newlines && ch is '\n' or '\r'))
            {
                _i++;
            }
            else if (ch == '#')
            {
                while (_i < _g.Length && _g[_i] is not ('\n' or '\r'))
                {
                    _i++;
                }
            }
            else
            {
                break;
            }
        }
    }
}
