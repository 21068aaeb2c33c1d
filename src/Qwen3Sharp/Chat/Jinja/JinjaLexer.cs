using System.Globalization;
using System.Text;

namespace Qwen3Sharp.Chat.Jinja;

internal enum TokenType : byte
{
    Data,
    VariableBegin,
    VariableEnd,
    BlockBegin,
    BlockEnd,
    Name,
    String,
    Integer,
    Float,
    Operator,
    Eof,
}

internal readonly record struct Token(TokenType Type, string Value, int Line, int Column)
{
    public bool Is(TokenType type, string value) => Type == type && Value == value;
    public bool IsOp(string op) => Type == TokenType.Operator && Value == op;
    public bool IsName(string name) => Type == TokenType.Name && Value == name;

    public override string ToString() => Type switch
    {
        TokenType.Eof => "end of template",
        TokenType.Data => "template data",
        TokenType.VariableEnd => "'}}'",
        TokenType.BlockEnd => "'%}'",
        _ => $"'{Value}'",
    };
}

/// <summary>
/// Jinja2 lexer with the whitespace rules transformers configures: <c>trim_blocks=True</c> (drop the first
/// newline after a block or comment tag), <c>lstrip_blocks=True</c> (drop spaces/tabs before a block or
/// comment tag that starts a line), <c>-</c> markers strip all whitespace, <c>+</c> disables lstrip/trim,
/// and <c>keep_trailing_newline=False</c> (one final newline of the source is removed).
/// </summary>
internal sealed class JinjaLexer
{
    private readonly string _src;
    private readonly List<Token> _tokens = new();
    private int _pos;
    private bool _lineStarting = true;

    private JinjaLexer(string source)
    {
        // Jinja normalises \r\n and \r to \n and drops one trailing newline.
        string s = source.Replace("\r\n", "\n").Replace('\r', '\n');
        if (s.EndsWith('\n')) s = s[..^1];
        _src = s;
    }

    public static List<Token> Tokenize(string source)
    {
        var lexer = new JinjaLexer(source);
        lexer.Run();
        return lexer._tokens;
    }

    private int _lcPos, _lcLine = 1, _lcLineStart;

    /// <summary>1-based line and column of a source offset; incremental because tokens come in order.</summary>
    private (int Line, int Column) LineCol(int pos)
    {
        if (pos < _lcPos)
        {
            _lcPos = 0;
            _lcLine = 1;
            _lcLineStart = 0;
        }
        for (int i = _lcPos; i < pos && i < _src.Length; i++)
        {
            if (_src[i] == '\n')
            {
                _lcLine++;
                _lcLineStart = i + 1;
            }
        }
        _lcPos = Math.Max(_lcPos, Math.Min(pos, _src.Length));
        return (_lcLine, pos - _lcLineStart + 1);
    }

    private Token Make(TokenType type, string value, int pos)
    {
        var (line, col) = LineCol(pos);
        return new Token(type, value, line, col);
    }

    private ChatTemplateException Error(string message, int pos)
    {
        var (line, col) = LineCol(pos);
        return ChatTemplateException.Syntax(message, line, col);
    }

    private void Run()
    {
        while (_pos < _src.Length)
        {
            int tagStart = FindTagStart(_pos);
            if (tagStart < 0)
            {
                EmitData(_src[_pos..], _pos);
                _pos = _src.Length;
                break;
            }
            string text = _src[_pos..tagStart];
            char kind = _src[tagStart + 1];
            char sign = tagStart + 2 < _src.Length ? _src[tagStart + 2] : '\0';
            if (sign == '-')
            {
                text = text.TrimEnd();
            }
            else if (sign != '+' && kind != '{')
            {
                // lstrip_blocks: remove whitespace between the last newline (or line start) and the tag.
                int lPos = text.LastIndexOf('\n') + 1;
                if ((lPos > 0 || _lineStarting) && lPos < text.Length && IsAllWhitespace(text, lPos))
                    text = text[..lPos];
            }
            EmitData(text, _pos);
            int inner = tagStart + 2 + (sign is '-' or '+' ? 1 : 0);
            switch (kind)
            {
                case '#': LexComment(tagStart, inner); break;
                case '{': LexTag(tagStart, inner, isBlock: false); break;
                default:
                    if (!TryLexRaw(tagStart, inner)) LexTag(tagStart, inner, isBlock: true);
                    break;
            }
        }
        _tokens.Add(Make(TokenType.Eof, "", _src.Length));
    }

    private static bool IsAllWhitespace(string s, int from)
    {
        for (int i = from; i < s.Length; i++)
            if (!char.IsWhiteSpace(s[i])) return false;
        return true;
    }

    private int FindTagStart(int from)
    {
        for (int i = from; i < _src.Length - 1; i++)
        {
            if (_src[i] == '{')
            {
                char n = _src[i + 1];
                if (n is '{' or '%' or '#') return i;
            }
        }
        return -1;
    }

    private void EmitData(string text, int pos)
    {
        if (text.Length > 0) _tokens.Add(Make(TokenType.Data, text, pos));
    }

    /// <summary>After a tag end: <c>-</c> eats all whitespace, otherwise trim_blocks eats one newline.</summary>
    private void AfterTagEnd(bool minus, bool plus, bool trimBlocks)
    {
        int start = _pos;
        if (minus)
        {
            while (_pos < _src.Length && char.IsWhiteSpace(_src[_pos])) _pos++;
        }
        else if (trimBlocks && !plus && _pos < _src.Length && _src[_pos] == '\n')
        {
            _pos++;
        }
        // Jinja tracks whether the last consumed token ended with a newline (for lstrip of the next tag).
        _lineStarting = _pos > start ? _src[_pos - 1] == '\n' : false;
    }

    private void LexComment(int tagStart, int inner)
    {
        int end = _src.IndexOf("#}", inner, StringComparison.Ordinal);
        if (end < 0) throw Error("Missing end of comment tag", tagStart);
        bool minus = _src[end - 1] == '-' && end - 1 >= inner;
        bool plus = _src[end - 1] == '+' && end - 1 >= inner;
        _pos = end + 2;
        AfterTagEnd(minus, plus, trimBlocks: true);
    }

    /// <summary><c>{% raw %}…{% endraw %}</c> is passed through verbatim.</summary>
    private bool TryLexRaw(int tagStart, int inner)
    {
        int p = inner;
        while (p < _src.Length && char.IsWhiteSpace(_src[p])) p++;
        if (string.CompareOrdinal(_src, p, "raw", 0, 3) != 0) return false;
        p += 3;
        while (p < _src.Length && char.IsWhiteSpace(_src[p])) p++;
        bool minus = false;
        if (p < _src.Length && _src[p] is '-' or '+') { minus = _src[p] == '-'; p++; }
        if (string.CompareOrdinal(_src, p, "%}", 0, 2) != 0) return false;
        _pos = p + 2;
        AfterTagEnd(minus, plus: false, trimBlocks: true);
        int bodyStart = _pos;
        int search = bodyStart;
        while (true)
        {
            int open = _src.IndexOf("{%", search, StringComparison.Ordinal);
            if (open < 0) throw Error("Missing end of raw directive", tagStart);
            int q = open + 2;
            char sign = q < _src.Length ? _src[q] : '\0';
            if (sign is '-' or '+') q++;
            while (q < _src.Length && char.IsWhiteSpace(_src[q])) q++;
            if (string.CompareOrdinal(_src, q, "endraw", 0, 6) == 0)
            {
                q += 6;
                while (q < _src.Length && char.IsWhiteSpace(_src[q])) q++;
                bool endMinus = false;
                if (q < _src.Length && _src[q] is '-' or '+') { endMinus = _src[q] == '-'; q++; }
                if (string.CompareOrdinal(_src, q, "%}", 0, 2) == 0)
                {
                    string body = _src[bodyStart..open];
                    if (sign == '-') body = body.TrimEnd();
                    else if (sign != '+')
                    {
                        int lPos = body.LastIndexOf('\n') + 1;
                        if (lPos < body.Length && IsAllWhitespace(body, lPos)) body = body[..lPos];
                    }
                    EmitData(body, bodyStart);
                    _pos = q + 2;
                    AfterTagEnd(endMinus, plus: false, trimBlocks: true);
                    return true;
                }
            }
            search = open + 2;
        }
    }

    private void LexTag(int tagStart, int inner, bool isBlock)
    {
        _tokens.Add(Make(isBlock ? TokenType.BlockBegin : TokenType.VariableBegin, isBlock ? "{%" : "{{", tagStart));
        _pos = inner;
        int depth = 0;
        while (true)
        {
            while (_pos < _src.Length && char.IsWhiteSpace(_src[_pos])) _pos++;
            if (_pos >= _src.Length)
                throw Error(isBlock ? "Unexpected end of template, expected '%}'" : "Unexpected end of template, expected '}}'", tagStart);

            // Tag end (only when all brackets opened inside the tag are closed).
            if (depth == 0 && TryTagEnd(isBlock)) return;

            char c = _src[_pos];
            int start = _pos;
            if (char.IsAsciiLetter(c) || c == '_')
            {
                while (_pos < _src.Length && (char.IsAsciiLetterOrDigit(_src[_pos]) || _src[_pos] == '_')) _pos++;
                _tokens.Add(Make(TokenType.Name, _src[start.._pos], start));
            }
            else if (char.IsAsciiDigit(c))
            {
                LexNumber(start);
            }
            else if (c is '\'' or '"')
            {
                _tokens.Add(Make(TokenType.String, LexString(start), start));
            }
            else
            {
                string op = LexOperator(start);
                if (op is "(" or "[" or "{") depth++;
                else if (op is ")" or "]" or "}")
                {
                    if (depth == 0) throw Error($"unexpected '{op}'", start);
                    depth--;
                }
                _tokens.Add(Make(TokenType.Operator, op, start));
            }
        }
    }

    private bool TryTagEnd(bool isBlock)
    {
        int p = _pos;
        bool minus = false, plus = false;
        if (_src[p] == '-') { minus = true; p++; }
        else if (_src[p] == '+' && isBlock) { plus = true; p++; }
        string end = isBlock ? "%}" : "}}";
        if (string.CompareOrdinal(_src, p, end, 0, 2) != 0) return false;
        // "-" directly followed by a tag end is a strip marker, not a minus operator.
        _tokens.Add(Make(isBlock ? TokenType.BlockEnd : TokenType.VariableEnd, end, _pos));
        _pos = p + 2;
        AfterTagEnd(minus, plus, trimBlocks: isBlock);
        return true;
    }

    private static readonly string[] Operators =
    [
        "//", "**", "==", "!=", "<=", ">=",
        "+", "-", "*", "/", "%", "~", "<", ">", "=", ".", ",", ":", "|", "(", ")", "[", "]", "{", "}",
    ];

    private string LexOperator(int start)
    {
        foreach (string op in Operators)
        {
            if (string.CompareOrdinal(_src, start, op, 0, op.Length) == 0)
            {
                _pos = start + op.Length;
                return op;
            }
        }
        throw Error($"unexpected char '{_src[start]}'", start);
    }

    private void LexNumber(int start)
    {
        int p = start;
        while (p < _src.Length && (char.IsAsciiDigit(_src[p]) || _src[p] == '_')) p++;
        bool isFloat = false;
        if (p + 1 < _src.Length && _src[p] == '.' && char.IsAsciiDigit(_src[p + 1]))
        {
            // "x.0.1"-style attribute chains are rare; Jinja lexes "1.5" as a float when preceded by no dot.
            bool precededByDot = start > 0 && _src[start - 1] == '.';
            if (!precededByDot)
            {
                isFloat = true;
                p++;
                while (p < _src.Length && (char.IsAsciiDigit(_src[p]) || _src[p] == '_')) p++;
            }
        }
        if (p < _src.Length && _src[p] is 'e' or 'E')
        {
            int q = p + 1;
            if (q < _src.Length && _src[q] is '+' or '-') q++;
            if (q < _src.Length && char.IsAsciiDigit(_src[q]))
            {
                isFloat = true;
                p = q;
                while (p < _src.Length && (char.IsAsciiDigit(_src[p]) || _src[p] == '_')) p++;
            }
        }
        _pos = p;
        string text = _src[start..p].Replace("_", "");
        _tokens.Add(Make(isFloat ? TokenType.Float : TokenType.Integer, text, start));
    }

    /// <summary>A Python string literal: <c>\n \t \r \\ \' \" \xNN \uNNNN \UNNNNNNNN</c> and octal escapes.</summary>
    private string LexString(int start)
    {
        char quote = _src[start];
        var sb = new StringBuilder();
        int p = start + 1;
        while (true)
        {
            if (p >= _src.Length) throw Error("unexpected end of string", start);
            char c = _src[p];
            if (c == quote) break;
            if (c != '\\')
            {
                sb.Append(c);
                p++;
                continue;
            }
            if (p + 1 >= _src.Length) throw Error("unexpected end of string", start);
            char e = _src[p + 1];
            p += 2;
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case 'a': sb.Append('\a'); break;
                case '0' or '1' or '2' or '3' or '4' or '5' or '6' or '7':
                {
                    int v = e - '0';
                    for (int k = 0; k < 2 && p < _src.Length && _src[p] is >= '0' and <= '7'; k++, p++) v = v * 8 + (_src[p] - '0');
                    sb.Append((char)v);
                    break;
                }
                case 'x': sb.Append((char)ParseHex(ref p, 2, start)); break;
                case 'u': sb.Append((char)ParseHex(ref p, 4, start)); break;
                case 'U': sb.Append(char.ConvertFromUtf32(ParseHex(ref p, 8, start))); break;
                case '\n': break; // line continuation
                case '\\' or '\'' or '"': sb.Append(e); break;
                default: sb.Append('\\').Append(e); break; // Python keeps unknown escapes verbatim
            }
        }
        _pos = p + 1;
        return sb.ToString();
    }

    private int ParseHex(ref int p, int count, int start)
    {
        if (p + count > _src.Length || !int.TryParse(_src.AsSpan(p, count), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int v))
            throw Error("truncated \\x/\\u escape in string", start);
        p += count;
        return v;
    }
}
