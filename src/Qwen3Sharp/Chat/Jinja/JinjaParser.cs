using System.Globalization;

namespace Qwen3Sharp.Chat.Jinja;

/// <summary>Recursive-descent parser following Jinja2's <c>parser.py</c> grammar and operator precedence.</summary>
internal sealed class JinjaParser
{
    private readonly List<Token> _tokens;
    private int _i;
    private readonly List<string> _openBlocks = new();

    private JinjaParser(List<Token> tokens) => _tokens = tokens;

    public static Stmt[] Parse(string source)
    {
        var parser = new JinjaParser(JinjaLexer.Tokenize(source));
        var body = parser.ParseBody();
        parser.Expect(TokenType.Eof);
        return body;
    }

    private Token Current => _tokens[_i];
    private Token Peek(int n = 1) => _tokens[Math.Min(_i + n, _tokens.Count - 1)];
    private Token Next() => _tokens[_i++];

    private ChatTemplateException Error(string message, Token at) => ChatTemplateException.Syntax(message, at.Line, at.Column);

    private Token Expect(TokenType type, string? value = null)
    {
        var t = Current;
        if (t.Type != type || (value is not null && t.Value != value))
        {
            if (t.Type == TokenType.Eof && _openBlocks.Count > 0)
                throw Error($"Unexpected end of template. The innermost block that needs to be closed is '{_openBlocks[^1]}'.", t);
            // Jinja2's wording: "expected token ')', got 'integer'".
            string expected = value ?? Describe(type, null);
            throw Error($"expected token '{expected}', got '{Describe(t.Type, t.Value)}'", t);
        }
        _i++;
        return t;
    }

    private static string Describe(TokenType type, string? value) => type switch
    {
        TokenType.Name => value ?? "name",
        TokenType.Operator => value ?? "operator",
        TokenType.Integer => "integer",
        TokenType.Float => "float",
        TokenType.String => "string",
        TokenType.BlockEnd => "end of statement block",
        TokenType.VariableEnd => "end of print statement",
        TokenType.BlockBegin => "begin of statement block",
        TokenType.VariableBegin => "begin of print statement",
        TokenType.Data => "template data / text",
        _ => "end of template",
    };

    private bool SkipOp(string op)
    {
        if (!Current.IsOp(op)) return false;
        _i++;
        return true;
    }

    private bool SkipName(string name)
    {
        if (!Current.IsName(name)) return false;
        _i++;
        return true;
    }

    // ───────────────────────────── statements ─────────────────────────────

    /// <summary>Parses until end of input or a block tag whose name is in <paramref name="endTags"/> (left unconsumed).</summary>
    private Stmt[] ParseBody(params string[] endTags)
    {
        var body = new List<Stmt>();
        while (true)
        {
            var t = Current;
            switch (t.Type)
            {
                case TokenType.Data:
                    _i++;
                    body.Add(new DataStmt(t.Value, t.Line, t.Column));
                    break;
                case TokenType.VariableBegin:
                {
                    _i++;
                    var e = ParseTuple(withCondExpr: true);
                    Expect(TokenType.VariableEnd);
                    body.Add(new OutputStmt(e, e.Line, e.Column));
                    break;
                }
                case TokenType.BlockBegin:
                {
                    var name = Peek();
                    if (name.Type == TokenType.Name && Array.IndexOf(endTags, name.Value) >= 0) return body.ToArray();
                    _i++;
                    body.Add(ParseStatement(endTags));
                    break;
                }
                case TokenType.Eof:
                    if (endTags.Length > 0)
                    {
                        string looking = string.Join(" or ", endTags.Select(x => $"'{x}'"));
                        throw Error($"Unexpected end of template. Jinja was looking for the following tags: {looking}. " +
                                    $"The innermost block that needs to be closed is '{_openBlocks[^1]}'.", t);
                    }
                    return body.ToArray();
                default:
                    throw Error($"unexpected {t}", t);
            }
        }
    }

    private Stmt ParseStatement(string[] endTags)
    {
        var t = Current;
        if (t.Type != TokenType.Name) throw Error("tag name expected", t);
        _i++;
        _openBlocks.Add(t.Value);
        try
        {
            switch (t.Value)
            {
                case "if": return ParseIf(t);
                case "for": return ParseFor(t);
                case "set": return ParseSet(t);
                case "macro": return ParseMacro(t);
                case "call": return ParseCallBlock(t);
                case "filter": return ParseFilterBlock(t);
                case "with": return ParseWith(t);
                case "generation":
                {
                    Expect(TokenType.BlockEnd);
                    var body = ParseBody("endgeneration");
                    EndTag("endgeneration");
                    return new PassThroughStmt(body, t.Line, t.Column);
                }
                case "break":
                case "continue":
                    Expect(TokenType.BlockEnd);
                    if (!_openBlocks.Contains("for")) throw Error($"'{t.Value}' outside of a loop", t);
                    return new LoopControlStmt(t.Value == "break" ? Flow.Break : Flow.Continue, t.Line, t.Column);
            }
        }
        finally
        {
            _openBlocks.RemoveAt(_openBlocks.Count - 1);
        }
        if (t.Value.StartsWith("end", StringComparison.Ordinal) || t.Value is "elif" or "else")
        {
            string hint = endTags.Length > 0
                ? $" Jinja was looking for the following tags: {string.Join(" or ", endTags.Select(x => $"'{x}'"))}."
                : "";
            throw Error($"Encountered unknown tag '{t.Value}'.{hint}", t);
        }
        throw Error($"Encountered unknown tag '{t.Value}'.", t);
    }

    private void EndTag(string name)
    {
        Expect(TokenType.BlockBegin);
        Expect(TokenType.Name, name);
        Expect(TokenType.BlockEnd);
    }

    private IfStmt ParseIf(Token start)
    {
        var branches = new List<(Expr, Stmt[])>();
        Stmt[]? elseBody = null;
        var cond = ParseTuple(withCondExpr: true);
        Expect(TokenType.BlockEnd);
        while (true)
        {
            var body = ParseBody("elif", "else", "endif");
            branches.Add((cond, body));
            Expect(TokenType.BlockBegin);
            var tag = Expect(TokenType.Name);
            if (tag.Value == "elif")
            {
                cond = ParseTuple(withCondExpr: true);
                Expect(TokenType.BlockEnd);
                continue;
            }
            if (tag.Value == "else")
            {
                Expect(TokenType.BlockEnd);
                elseBody = ParseBody("endif");
                EndTag("endif");
            }
            else Expect(TokenType.BlockEnd);
            break;
        }
        return new IfStmt(branches.ToArray(), elseBody, start.Line, start.Column);
    }

    private ForStmt ParseFor(Token start)
    {
        var target = ParseAssignTarget(allowAttribute: false);
        Expect(TokenType.Name, "in");
        var iter = ParseTuple(withCondExpr: false);
        Expr? filter = null;
        if (SkipName("if")) filter = ParseTuple(withCondExpr: true);
        bool recursive = SkipName("recursive");
        Expect(TokenType.BlockEnd);
        var body = ParseBody("endfor", "else");
        Stmt[]? elseBody = null;
        Expect(TokenType.BlockBegin);
        if (Next().Value == "else")
        {
            Expect(TokenType.BlockEnd);
            elseBody = ParseBody("endfor");
            EndTag("endfor");
        }
        else Expect(TokenType.BlockEnd);
        return new ForStmt(target, iter, filter, body, elseBody, recursive, start.Line, start.Column);
    }

    private Target ParseAssignTarget(bool allowAttribute)
    {
        var first = Expect(TokenType.Name);
        if (allowAttribute && SkipOp("."))
        {
            var attr = Expect(TokenType.Name);
            return new Target([first.Value], attr.Value, first.Line, first.Column);
        }
        var names = new List<string> { first.Value };
        while (SkipOp(",")) names.Add(Expect(TokenType.Name).Value);
        return new Target(names.ToArray(), null, first.Line, first.Column);
    }

    private Stmt ParseSet(Token start)
    {
        var target = ParseAssignTarget(allowAttribute: true);
        if (SkipOp("="))
        {
            var value = ParseTuple(withCondExpr: true);
            Expect(TokenType.BlockEnd);
            return new SetStmt(target, value, start.Line, start.Column);
        }
        var filters = ParseFilterChain();
        Expect(TokenType.BlockEnd);
        var body = ParseBody("endset");
        EndTag("endset");
        return new SetBlockStmt(target, body, filters, start.Line, start.Column);
    }

    private FilterExpr[] ParseFilterChain()
    {
        var filters = new List<FilterExpr>();
        while (SkipOp("|")) filters.Add(ParseFilterCall(null));
        return filters.ToArray();
    }

    private Stmt ParseFilterBlock(Token start)
    {
        var filters = new List<FilterExpr> { ParseFilterCall(null) };
        filters.AddRange(ParseFilterChain());
        Expect(TokenType.BlockEnd);
        var body = ParseBody("endfilter");
        EndTag("endfilter");
        return new FilterBlockStmt(body, filters.ToArray(), start.Line, start.Column);
    }

    private Stmt ParseWith(Token start)
    {
        var assignments = new List<(Target, Expr)>();
        while (Current.Type != TokenType.BlockEnd)
        {
            if (assignments.Count > 0) Expect(TokenType.Operator, ",");
            var target = ParseAssignTarget(allowAttribute: false);
            Expect(TokenType.Operator, "=");
            assignments.Add((target, ParseExpression(withCondExpr: true)));
        }
        Expect(TokenType.BlockEnd);
        var body = ParseBody("endwith");
        EndTag("endwith");
        return new WithStmt(assignments.ToArray(), body, start.Line, start.Column);
    }

    private MacroParam[] ParseSignature()
    {
        var ps = new List<MacroParam>();
        Expect(TokenType.Operator, "(");
        while (!SkipOp(")"))
        {
            if (ps.Count > 0) Expect(TokenType.Operator, ",");
            if (SkipOp(")")) break;
            var name = Expect(TokenType.Name);
            Expr? def = SkipOp("=") ? ParseExpression(withCondExpr: true) : null;
            if (def is null && ps.Count > 0 && ps[^1].Default is not null)
                throw Error("non-default argument follows default argument", name);
            ps.Add(new MacroParam(name.Value, def));
        }
        return ps.ToArray();
    }

    private MacroStmt ParseMacro(Token start)
    {
        var name = Expect(TokenType.Name);
        var ps = ParseSignature();
        Expect(TokenType.BlockEnd);
        var body = ParseBody("endmacro");
        EndTag("endmacro");
        return new MacroStmt(name.Value, ps, body, start.Line, start.Column);
    }

    private CallBlockStmt ParseCallBlock(Token start)
    {
        var ps = Current.IsOp("(") ? ParseSignature() : [];
        var call = ParseExpression(withCondExpr: true) as CallExpr
                   ?? throw Error("expected call", start);
        Expect(TokenType.BlockEnd);
        var body = ParseBody("endcall");
        EndTag("endcall");
        return new CallBlockStmt(call, new MacroStmt("caller", ps, body, start.Line, start.Column), start.Line, start.Column);
    }

    // ───────────────────────────── expressions ─────────────────────────────

    /// <summary>An expression, or an unparenthesised tuple <c>a, b</c>.</summary>
    private Expr ParseTuple(bool withCondExpr)
    {
        var t = Current;
        var first = ParseExpression(withCondExpr);
        if (!Current.IsOp(",")) return first;
        var items = new List<Expr> { first };
        while (SkipOp(","))
        {
            if (Current.Type is TokenType.BlockEnd or TokenType.VariableEnd || Current.IsOp(")")) break;
            items.Add(ParseExpression(withCondExpr));
        }
        return new ListExpr(items.ToArray(), isTuple: true, t.Line, t.Column);
    }

    private Expr ParseExpression(bool withCondExpr) => withCondExpr ? ParseCondExpr() : ParseOr();

    private Expr ParseCondExpr()
    {
        var t = Current;
        var expr = ParseOr();
        while (SkipName("if"))
        {
            var cond = ParseOr();
            Expr? otherwise = SkipName("else") ? ParseCondExpr() : null;
            expr = new CondExpr(cond, expr, otherwise, t.Line, t.Column);
        }
        return expr;
    }

    private Expr ParseOr()
    {
        var t = Current;
        var left = ParseAnd();
        while (SkipName("or")) left = new OrExpr(left, ParseAnd(), t.Line, t.Column);
        return left;
    }

    private Expr ParseAnd()
    {
        var t = Current;
        var left = ParseNot();
        while (SkipName("and")) left = new AndExpr(left, ParseNot(), t.Line, t.Column);
        return left;
    }

    private Expr ParseNot()
    {
        var t = Current;
        if (SkipName("not")) return new NotExpr(ParseNot(), t.Line, t.Column);
        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        var t = Current;
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            var c = Current;
            if (c.Type == TokenType.Operator && c.Value is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                _i++;
                rest.Add((c.Value, ParseMath1()));
            }
            else if (c.IsName("in"))
            {
                _i++;
                rest.Add(("in", ParseMath1()));
            }
            else if (c.IsName("not") && Peek().IsName("in"))
            {
                _i += 2;
                rest.Add(("notin", ParseMath1()));
            }
            else break;
        }
        return rest.Count == 0 ? first : new CompareExpr(first, rest.ToArray(), t.Line, t.Column);
    }

    private Expr ParseMath1()
    {
        var left = ParseConcat();
        while (Current.Type == TokenType.Operator && Current.Value is "+" or "-")
        {
            var op = Next();
            left = new BinaryExpr(op.Value, left, ParseConcat(), op.Line, op.Column);
        }
        return left;
    }

    private Expr ParseConcat()
    {
        var t = Current;
        var first = ParseMath2();
        if (!Current.IsOp("~")) return first;
        var parts = new List<Expr> { first };
        while (SkipOp("~")) parts.Add(ParseMath2());
        return new ConcatExpr(parts.ToArray(), t.Line, t.Column);
    }

    private Expr ParseMath2()
    {
        var left = ParsePow();
        while (Current.Type == TokenType.Operator && Current.Value is "*" or "/" or "//" or "%")
        {
            var op = Next();
            left = new BinaryExpr(op.Value, left, ParsePow(), op.Line, op.Column);
        }
        return left;
    }

    private Expr ParsePow()
    {
        var left = ParseUnary(withFilter: true);
        while (Current.IsOp("**"))
        {
            var op = Next();
            left = new BinaryExpr("**", left, ParseUnary(withFilter: true), op.Line, op.Column);
        }
        return left;
    }

    private Expr ParseUnary(bool withFilter)
    {
        var t = Current;
        Expr node;
        if (SkipOp("-"))
        {
            var operand = ParseUnary(withFilter: false);
            node = operand is ConstExpr { Value.IsNumber: true } c
                ? new ConstExpr(JinjaOps.Negate(c.Value), t.Line, t.Column)
                : new NegExpr(operand, t.Line, t.Column);
        }
        else if (SkipOp("+")) node = new PosExpr(ParseUnary(withFilter: false), t.Line, t.Column);
        else node = ParsePrimary();
        node = ParsePostfix(node);
        if (withFilter) node = ParseFilterExpr(node);
        return node;
    }

    private Expr ParsePrimary()
    {
        var t = Next();
        switch (t.Type)
        {
            case TokenType.Name:
                return t.Value switch
                {
                    "true" or "True" => new ConstExpr(JinjaValue.True, t.Line, t.Column),
                    "false" or "False" => new ConstExpr(JinjaValue.False, t.Line, t.Column),
                    "none" or "None" => new ConstExpr(JinjaValue.None, t.Line, t.Column),
                    _ => new NameExpr(t.Value, t.Line, t.Column),
                };
            case TokenType.String:
            {
                string s = t.Value;
                while (Current.Type == TokenType.String) s += Next().Value;
                return new ConstExpr(s, t.Line, t.Column);
            }
            case TokenType.Integer:
                if (!long.TryParse(t.Value, NumberStyles.None, CultureInfo.InvariantCulture, out long l))
                    throw Error($"integer literal too large: {t.Value}", t);
                return new ConstExpr(JinjaValue.FromInt(l), t.Line, t.Column);
            case TokenType.Float:
                return new ConstExpr(double.Parse(t.Value, CultureInfo.InvariantCulture), t.Line, t.Column);
            case TokenType.Operator when t.Value == "(":
            {
                if (SkipOp(")")) return new ListExpr([], isTuple: true, t.Line, t.Column);
                var first = ParseExpression(withCondExpr: true);
                if (SkipOp(")")) return first;
                var items = new List<Expr> { first };
                while (SkipOp(","))
                {
                    if (Current.IsOp(")")) break;
                    items.Add(ParseExpression(withCondExpr: true));
                }
                Expect(TokenType.Operator, ")");
                return new ListExpr(items.ToArray(), isTuple: true, t.Line, t.Column);
            }
            case TokenType.Operator when t.Value == "[":
            {
                var items = new List<Expr>();
                while (!SkipOp("]"))
                {
                    if (items.Count > 0)
                    {
                        Expect(TokenType.Operator, ",");
                        if (SkipOp("]")) break;
                    }
                    items.Add(ParseExpression(withCondExpr: true));
                }
                return new ListExpr(items.ToArray(), isTuple: false, t.Line, t.Column);
            }
            case TokenType.Operator when t.Value == "{":
            {
                var pairs = new List<(Expr, Expr)>();
                while (!SkipOp("}"))
                {
                    if (pairs.Count > 0)
                    {
                        Expect(TokenType.Operator, ",");
                        if (SkipOp("}")) break;
                    }
                    var key = ParseExpression(withCondExpr: true);
                    Expect(TokenType.Operator, ":");
                    pairs.Add((key, ParseExpression(withCondExpr: true)));
                }
                return new DictExpr(pairs.ToArray(), t.Line, t.Column);
            }
        }
        throw Error($"unexpected {t}", t);
    }

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            var t = Current;
            if (t.IsOp("."))
            {
                _i++;
                var attr = Next();
                if (attr.Type == TokenType.Name) node = new GetAttrExpr(node, attr.Value, attr.Line, attr.Column);
                else if (attr.Type == TokenType.Integer)
                    node = new GetItemExpr(node, new ConstExpr(JinjaValue.FromInt(long.Parse(attr.Value, CultureInfo.InvariantCulture)), attr.Line, attr.Column), attr.Line, attr.Column);
                else throw Error("expected name or number after '.'", attr);
            }
            else if (t.IsOp("["))
            {
                _i++;
                node = ParseSubscript(node, t);
            }
            else if (t.IsOp("("))
            {
                node = ParseCall(node);
            }
            else return node;
        }
    }

    private Expr ParseSubscript(Expr node, Token open)
    {
        Expr? start = null, stop = null, step = null;
        bool isSlice = false;
        if (SkipOp("]")) // x[] is x[()] in Jinja
            return new GetItemExpr(node, new ListExpr([], isTuple: true, open.Line, open.Column), open.Line, open.Column);
        if (!Current.IsOp(":")) start = ParseExpression(withCondExpr: true);
        if (SkipOp(":"))
        {
            isSlice = true;
            if (!Current.IsOp("]") && !Current.IsOp(":")) stop = ParseExpression(withCondExpr: true);
            if (SkipOp(":") && !Current.IsOp("]")) step = ParseExpression(withCondExpr: true);
        }
        else if (Current.IsOp(","))
        {
            var items = new List<Expr> { start! };
            while (SkipOp(",") && !Current.IsOp("]")) items.Add(ParseExpression(withCondExpr: true));
            start = new ListExpr(items.ToArray(), isTuple: true, open.Line, open.Column);
        }
        Expect(TokenType.Operator, "]");
        return isSlice
            ? new SliceExpr(node, start, stop, step, open.Line, open.Column)
            : new GetItemExpr(node, start!, open.Line, open.Column);
    }

    private CallExpr ParseCall(Expr callee)
    {
        var open = Expect(TokenType.Operator, "(");
        return new CallExpr(callee, ParseArgs(), open.Line, open.Column);
    }

    /// <summary>Arguments after an already consumed <c>(</c>, through the closing <c>)</c>.</summary>
    private ArgList ParseArgs()
    {
        var pos = new List<Expr>();
        var named = new List<(string, Expr)>();
        while (!SkipOp(")"))
        {
            if (pos.Count + named.Count > 0)
            {
                Expect(TokenType.Operator, ",");
                if (SkipOp(")")) break;
            }
            if (Current.Type == TokenType.Name && Peek().IsOp("="))
            {
                string name = Next().Value;
                _i++;
                named.Add((name, ParseExpression(withCondExpr: true)));
            }
            else
            {
                if (named.Count > 0) throw Error("positional argument follows keyword argument", Current);
                pos.Add(ParseExpression(withCondExpr: true));
            }
        }
        return pos.Count == 0 && named.Count == 0 ? ArgList.Empty : new ArgList(pos.ToArray(), named.ToArray());
    }

    private Expr ParseFilterExpr(Expr node)
    {
        while (true)
        {
            if (SkipOp("|")) node = ParseFilterCall(node);
            else if (Current.IsName("is")) node = ParseTest(node);
            else if (Current.IsOp("(")) node = ParseCall(node);
            else return node;
        }
    }

    private FilterExpr ParseFilterCall(Expr? target)
    {
        var name = Expect(TokenType.Name);
        string fullName = name.Value;
        while (Current.IsOp(".") && Peek().Type == TokenType.Name)
        {
            _i++;
            fullName += "." + Next().Value;
        }
        if (!JinjaBuiltins.Filters.TryGetValue(fullName, out var func))
            throw Error($"No filter named '{fullName}'.", name);
        var args = ArgList.Empty;
        if (SkipOp("(")) args = ParseArgs();
        return new FilterExpr(target, fullName, func, args, name.Line, name.Column);
    }

    private Expr ParseTest(Expr node)
    {
        var isTok = Next();
        bool negated = SkipName("not");
        var name = Current;
        string testName;
        if (name.Type == TokenType.Name) testName = name.Value;
        else if (name.Type == TokenType.Operator && name.Value is "==" or "!=" or "<" or ">" or "<=" or ">=") testName = name.Value;
        else throw Error("expected test name", name);
        _i++;
        while (Current.IsOp(".") && Peek().Type == TokenType.Name)
        {
            _i++;
            testName += "." + Next().Value;
        }
        if (!JinjaBuiltins.Tests.TryGetValue(testName, out var func))
            throw Error($"No test named '{testName}'.", name);
        var args = ArgList.Empty;
        var c = Current;
        if (SkipOp("("))
        {
            args = ParseArgs();
        }
        else if ((c.Type is TokenType.Name or TokenType.String or TokenType.Integer or TokenType.Float
                  || c.IsOp("[") || c.IsOp("{"))
                 && !(c.IsName("else") || c.IsName("or") || c.IsName("and")))
        {
            if (c.IsName("is")) throw Error("You cannot chain multiple tests with is", c);
            var arg = ParsePostfix(ParsePrimary());
            args = new ArgList([arg], []);
        }
        return new TestExpr(node, func, args, negated, isTok.Line, isTok.Column);
    }
}
