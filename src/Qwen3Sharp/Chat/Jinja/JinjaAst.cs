using System.Text;

namespace Qwen3Sharp.Chat.Jinja;

/// <summary>Control flow out of a statement: normal, or a <c>break</c>/<c>continue</c> heading for the enclosing loop.</summary>
internal enum Flow : byte
{
    Normal,
    Break,
    Continue,
}

internal abstract class Node(int line, int column)
{
    public readonly int Line = line;
    public readonly int Column = column;
}

// ───────────────────────────── expressions ─────────────────────────────

internal abstract class Expr(int line, int column) : Node(line, column)
{
    public abstract JinjaValue Eval(JinjaRenderContext ctx);
}

internal sealed class ConstExpr(JinjaValue value, int line, int column) : Expr(line, column)
{
    public readonly JinjaValue Value = value;
    public override JinjaValue Eval(JinjaRenderContext ctx) => Value;
}

internal sealed class NameExpr(string name, int line, int column) : Expr(line, column)
{
    public readonly string Name = name;
    private readonly JinjaValue _undefined = JinjaValue.UndefinedNamed($"'{name}' is undefined");

    public override JinjaValue Eval(JinjaRenderContext ctx) =>
        ctx.Scope.TryLookup(Name, out var v) ? v : _undefined;
}

internal sealed class ListExpr(Expr[] items, bool isTuple, int line, int column) : Expr(line, column)
{
    public readonly Expr[] Items = items;
    public readonly bool IsTuple = isTuple;

    public override JinjaValue Eval(JinjaRenderContext ctx)
    {
        var l = new JinjaList(Items.Length) { IsTuple = IsTuple };
        foreach (var e in Items) l.Add(e.Eval(ctx));
        return JinjaValue.FromList(l);
    }
}

internal sealed class DictExpr((Expr Key, Expr Value)[] pairs, int line, int column) : Expr(line, column)
{
    public override JinjaValue Eval(JinjaRenderContext ctx)
    {
        var d = new JinjaDict(pairs.Length);
        foreach (var (k, v) in pairs) d[k.Eval(ctx)] = v.Eval(ctx);
        return JinjaValue.FromDict(d);
    }
}

internal sealed class GetAttrExpr(Expr target, string name, int line, int column) : Expr(line, column)
{
    public readonly Expr Target = target;
    public readonly string Name = name;

    public override JinjaValue Eval(JinjaRenderContext ctx)
    {
        var obj = Target.Eval(ctx);
        ctx.Line = Line;
        ctx.Column = Column;
        return JinjaOps.GetAttr(obj, Name);
    }
}

internal sealed class GetItemExpr(Expr target, Expr key, int line, int column) : Expr(line, column)
{
    public override JinjaValue Eval(JinjaRenderContext ctx)
    {
        var obj = target.Eval(ctx);
        var k = key.Eval(ctx);
        ctx.Line = Line;
        ctx.Column = Column;
        return JinjaOps.GetItem(obj, k);
    }
}

internal sealed class SliceExpr(Expr target, Expr? start, Expr? stop, Expr? step, int line, int column) : Expr(line, column)
{
    public override JinjaValue Eval(JinjaRenderContext ctx)
    {
        var obj = target.Eval(ctx);
        var a = start?.Eval(ctx) ?? JinjaValue.None;
        var b = stop?.Eval(ctx) ?? JinjaValue.None;
        var c = step?.Eval(ctx) ?? JinjaValue.None;
        ctx.Line = Line;
        ctx.Column = Column;
        return JinjaOps.Slice(obj, a, b, c);
    }
}

internal sealed class ArgList(Expr[] positional, (string Name, Expr Value)[] named)
{
    public static readonly ArgList Empty = new([], []);
    public readonly Expr[] Positional = positional;
    public readonly (string Name, Expr Value)[] Named = named;

    public JinjaArguments Eval(JinjaRenderContext ctx, JinjaValue? prepend = null)
    {
        if (Positional.Length == 0 && Named.Length == 0 && prepend is null) return JinjaArguments.Empty;
        int offset = prepend is null ? 0 : 1;
        var pos = new JinjaValue[Positional.Length + offset];
        if (prepend is JinjaValue p) pos[0] = p;
        for (int i = 0; i < Positional.Length; i++) pos[i + offset] = Positional[i].Eval(ctx);
        var named = Named.Length == 0 ? [] : new KeyValuePair<string, JinjaValue>[Named.Length];
        for (int i = 0; i < Named.Length; i++) named[i] = new(Named[i].Name, Named[i].Value.Eval(ctx));
        return new JinjaArguments(pos, named);
    }
}

internal sealed class CallExpr(Expr callee, ArgList args, int line, int column) : Expr(line, column)
{
    public readonly Expr Callee = callee;
    public readonly ArgList Args = args;

    public override JinjaValue Eval(JinjaRenderContext ctx) => Invoke(ctx, null);

    public JinjaValue Invoke(JinjaRenderContext ctx, JinjaValue? caller)
    {
        // Method calls (s.strip()) dispatch directly without materialising a bound method.
        if (Callee is GetAttrExpr ga && caller is null)
        {
            var target = ga.Target.Eval(ctx);
            if (target.Kind is JinjaKind.String or JinjaKind.Dict or JinjaKind.List && PyMethods.IsMethod(target, ga.Name))
            {
                var margs = Args.Eval(ctx);
                ctx.Line = Line;
                ctx.Column = Column;
                return PyMethods.Call(target, ga.Name, margs);
            }
            ctx.Line = ga.Line;
            ctx.Column = ga.Column;
            return CallValue(ctx, JinjaOps.GetAttr(target, ga.Name), Args.Eval(ctx));
        }
        var fn = Callee.Eval(ctx);
        var a = Args.Eval(ctx);
        if (caller is JinjaValue c)
        {
            var named = new KeyValuePair<string, JinjaValue>[a.Named.Length + 1];
            a.Named.CopyTo(named, 0);
            named[^1] = new("caller", c);
            a = new JinjaArguments(a.Positional, named);
        }
        return CallValue(ctx, fn, a);
    }

    private JinjaValue CallValue(JinjaRenderContext ctx, JinjaValue fn, JinjaArguments a)
    {
        ctx.Line = Line;
        ctx.Column = Column;
        if (fn.Kind == JinjaKind.Callable)
        {
            var result = fn.AsCallable.Invoke(ctx, a);
            ctx.Line = Line;
            ctx.Column = Column;
            return result;
        }
        if (fn.IsUndefined) throw JinjaOps.UndefinedError(fn);
        if (fn.Kind == JinjaKind.Object && fn.AsObject is JinjaLoop { Recurse: { } recurse }) return recurse.Invoke(ctx, a);
        throw new JinjaRuntimeException($"'{fn.TypeName}' object is not callable");
    }
}

internal delegate JinjaValue FilterFunc(JinjaRenderContext ctx, JinjaValue value, JinjaArguments args);

internal delegate bool TestFunc(JinjaRenderContext ctx, JinjaValue value, JinjaArguments args);

internal sealed class FilterExpr(Expr? target, string name, FilterFunc func, ArgList args, int line, int column) : Expr(line, column)
{
    public readonly Expr? Target = target; // null inside {% filter %} blocks, where the body is the input
    public readonly string Name = name;

    public override JinjaValue Eval(JinjaRenderContext ctx) => Apply(ctx, Target!.Eval(ctx));

    public JinjaValue Apply(JinjaRenderContext ctx, JinjaValue value)
    {
        var a = args.Eval(ctx);
        ctx.Line = Line;
        ctx.Column = Column;
        return func(ctx, value, a);
    }
}

internal sealed class TestExpr(Expr target, TestFunc func, ArgList args, bool negated, int line, int column) : Expr(line, column)
{
    public override JinjaValue Eval(JinjaRenderContext ctx)
    {
        var v = target.Eval(ctx);
        var a = args.Eval(ctx);
        ctx.Line = Line;
        ctx.Column = Column;
        return JinjaValue.FromBool(func(ctx, v, a) != negated);
    }
}

internal sealed class NegExpr(Expr operand, int line, int column) : Expr(line, column)
{
    public override JinjaValue Eval(JinjaRenderContext ctx)
    {
        var v = operand.Eval(ctx);
        ctx.Line = Line;
        ctx.Column = Column;
        return JinjaOps.Negate(v);
    }
}

internal sealed class PosExpr(Expr operand, int line, int column) : Expr(line, column)
{
    public override JinjaValue Eval(JinjaRenderContext ctx)
    {
        var v = operand.Eval(ctx);
        if (!v.IsNumber)
        {
            ctx.Line = Line;
            ctx.Column = Column;
            if (v.IsUndefined) throw JinjaOps.UndefinedError(v);
            throw new JinjaRuntimeException($"bad operand type for unary +: '{v.TypeName}'");
        }
        return v.Kind == JinjaKind.Bool ? JinjaValue.FromInt(v.AsInt) : v;
    }
}

internal sealed class NotExpr(Expr operand, int line, int column) : Expr(line, column)
{
    public override JinjaValue Eval(JinjaRenderContext ctx) => JinjaValue.FromBool(!operand.Eval(ctx).IsTruthy);
}

internal sealed class AndExpr(Expr left, Expr right, int line, int column) : Expr(line, column)
{
    public override JinjaValue Eval(JinjaRenderContext ctx)
    {
        var l = left.Eval(ctx);
        return l.IsTruthy ? right.Eval(ctx) : l;
    }
}

internal sealed class OrExpr(Expr left, Expr right, int line, int column) : Expr(line, column)
{
    public override JinjaValue Eval(JinjaRenderContext ctx)
    {
        var l = left.Eval(ctx);
        return l.IsTruthy ? l : right.Eval(ctx);
    }
}

internal sealed class BinaryExpr(string op, Expr left, Expr right, int line, int column) : Expr(line, column)
{
    public override JinjaValue Eval(JinjaRenderContext ctx)
    {
        var l = left.Eval(ctx);
        var r = right.Eval(ctx);
        ctx.Line = Line;
        ctx.Column = Column;
        return JinjaOps.Arithmetic(op, l, r);
    }
}

/// <summary><c>a ~ b ~ c</c>: string conversion and concatenation.</summary>
internal sealed class ConcatExpr(Expr[] parts, int line, int column) : Expr(line, column)
{
    public override JinjaValue Eval(JinjaRenderContext ctx)
    {
        var sb = new StringBuilder();
        foreach (var p in parts) PyFormat.AppendStr(sb, p.Eval(ctx));
        return sb.ToString();
    }
}

/// <summary>Chained comparison <c>a &lt; b &lt;= c</c>, also <c>in</c> / <c>not in</c>.</summary>
internal sealed class CompareExpr(Expr first, (string Op, Expr Right)[] rest, int line, int column) : Expr(line, column)
{
    public override JinjaValue Eval(JinjaRenderContext ctx)
    {
        var left = first.Eval(ctx);
        foreach (var (op, rightExpr) in rest)
        {
            var right = rightExpr.Eval(ctx);
            ctx.Line = Line;
            ctx.Column = Column;
            if (!JinjaOps.CompareOp(op, left, right)) return JinjaValue.False;
            left = right;
        }
        return JinjaValue.True;
    }
}

internal sealed class CondExpr(Expr cond, Expr then, Expr? otherwise, int line, int column) : Expr(line, column)
{
    public override JinjaValue Eval(JinjaRenderContext ctx)
    {
        if (cond.Eval(ctx).IsTruthy) return then.Eval(ctx);
        return otherwise is null
            ? JinjaValue.UndefinedNamed("the inline if-expression on line " + Line + " evaluated to false and no else section was defined.")
            : otherwise.Eval(ctx);
    }
}

// ───────────────────────────── statements ─────────────────────────────

internal abstract class Stmt(int line, int column) : Node(line, column)
{
    public abstract Flow Render(JinjaRenderContext ctx);

    public static Flow RenderAll(Stmt[] body, JinjaRenderContext ctx)
    {
        foreach (var s in body)
        {
            var f = s.Render(ctx);
            if (f != Flow.Normal) return f;
        }
        return Flow.Normal;
    }
}

internal sealed class DataStmt(string text, int line, int column) : Stmt(line, column)
{
    public readonly string Text = text;

    public override Flow Render(JinjaRenderContext ctx)
    {
        ctx.Output.Append(Text);
        return Flow.Normal;
    }
}

internal sealed class OutputStmt(Expr expr, int line, int column) : Stmt(line, column)
{
    public override Flow Render(JinjaRenderContext ctx)
    {
        ctx.Line = Line;
        ctx.Column = Column;
        PyFormat.AppendStr(ctx.Output, expr.Eval(ctx));
        return Flow.Normal;
    }
}

internal sealed class IfStmt((Expr Cond, Stmt[] Body)[] branches, Stmt[]? elseBody, int line, int column) : Stmt(line, column)
{
    public override Flow Render(JinjaRenderContext ctx)
    {
        foreach (var (cond, body) in branches)
        {
            ctx.Line = cond.Line;
            ctx.Column = cond.Column;
            if (cond.Eval(ctx).IsTruthy) return RenderAll(body, ctx);
        }
        return elseBody is null ? Flow.Normal : RenderAll(elseBody, ctx);
    }
}

/// <summary>An assignment target: a name, <c>ns.attr</c>, or a tuple of names to unpack.</summary>
internal sealed class Target(string[] names, string? attribute, int line, int column)
{
    public readonly string[] Names = names;
    public readonly string? Attribute = attribute; // set when Names[0].Attribute is assigned (namespace)
    public readonly int Line = line;
    public readonly int Column = column;

    public void Assign(JinjaRenderContext ctx, Frame frame, JinjaValue value)
    {
        if (Attribute is not null)
        {
            if (!ctx.Scope.TryLookup(Names[0], out var ns) || ns.Kind != JinjaKind.Object || ns.AsObject is not JinjaNamespace n)
                throw new JinjaRuntimeException("cannot assign attribute on non-namespace object");
            n.Attributes[Attribute] = value;
            return;
        }
        if (Names.Length == 1)
        {
            frame.Set(Names[0], value);
            return;
        }
        var items = JinjaOps.Iterate(value);
        if (items.Count != Names.Length)
            throw new JinjaRuntimeException(items.Count > Names.Length
                ? $"too many values to unpack (expected {Names.Length})"
                : $"not enough values to unpack (expected {Names.Length}, got {items.Count})");
        for (int i = 0; i < Names.Length; i++) frame.Set(Names[i], items[i]);
    }
}

internal sealed class ForStmt(Target target, Expr iter, Expr? filter, Stmt[] body, Stmt[]? elseBody, bool recursive, int line, int column)
    : Stmt(line, column)
{
    public override Flow Render(JinjaRenderContext ctx)
    {
        ctx.Line = Line;
        ctx.Column = Column;
        return RenderLoop(ctx, iter.Eval(ctx), 0);
    }

    private Flow RenderLoop(JinjaRenderContext ctx, JinjaValue iterable, int depth)
    {
        ctx.Line = Line;
        ctx.Column = Column;
        if (iterable.Kind is not (JinjaKind.List or JinjaKind.Dict or JinjaKind.String or JinjaKind.Undefined))
            throw new JinjaRuntimeException($"'{iterable.TypeName}' object is not iterable");
        var items = JinjaOps.Iterate(iterable);
        var outer = ctx.Scope;
        var frame = new Frame(outer);
        if (filter is not null)
        {
            // "for x in xs if cond": the filter sees the loop variable but not "loop"; loop.length counts kept items.
            var kept = new JinjaList();
            ctx.Scope = frame;
            try
            {
                foreach (var item in items)
                {
                    frame.Clear();
                    target.Assign(ctx, frame, item);
                    if (filter.Eval(ctx).IsTruthy) kept.Add(item);
                }
            }
            finally
            {
                ctx.Scope = outer;
            }
            items = kept;
        }
        if (items.Count == 0)
            return elseBody is null ? Flow.Normal : RenderAll(elseBody, ctx);

        var loop = new JinjaLoop
        {
            Items = items,
            Length = items.Count,
            Depth0 = depth,
            Recurse = recursive ? new LoopRecurse(this, depth) : null,
        };
        var loopValue = JinjaValue.FromObject(loop);
        ctx.Scope = frame;
        try
        {
            for (int i = 0; i < items.Count; i++)
            {
                frame.Clear();
                loop.Index0 = i;
                frame.Set("loop", loopValue);
                target.Assign(ctx, frame, items[i]);
                if (RenderAll(body, ctx) == Flow.Break) break;
            }
        }
        finally
        {
            ctx.Scope = outer;
        }
        return Flow.Normal;
    }

    /// <summary><c>loop(children)</c> inside a recursive loop renders the body for the children.</summary>
    private sealed class LoopRecurse(ForStmt stmt, int depth) : JinjaCallable
    {
        public override string Name => "loop";

        public override JinjaValue Invoke(JinjaRenderContext ctx, JinjaArguments args)
        {
            var saved = ctx.Output;
            ctx.Output = new StringBuilder();
            try
            {
                stmt.RenderLoop(ctx, args.Required(0, "iterable", "loop"), depth + 1);
                return ctx.Output.ToString();
            }
            finally
            {
                ctx.Output = saved;
            }
        }
    }
}

internal sealed class SetStmt(Target target, Expr value, int line, int column) : Stmt(line, column)
{
    public override Flow Render(JinjaRenderContext ctx)
    {
        var v = value.Eval(ctx);
        ctx.Line = Line;
        ctx.Column = Column;
        target.Assign(ctx, ctx.Scope, v);
        return Flow.Normal;
    }
}

/// <summary><c>{% set x %}body{% endset %}</c>, optionally <c>{% set x | filter %}</c>.</summary>
internal sealed class SetBlockStmt(Target target, Stmt[] body, FilterExpr[] filters, int line, int column) : Stmt(line, column)
{
    public override Flow Render(JinjaRenderContext ctx)
    {
        JinjaValue v = RenderToString(body, ctx);
        foreach (var f in filters) v = f.Apply(ctx, v);
        target.Assign(ctx, ctx.Scope, v);
        return Flow.Normal;
    }

    public static string RenderToString(Stmt[] body, JinjaRenderContext ctx)
    {
        var saved = ctx.Output;
        ctx.Output = new StringBuilder();
        try
        {
            RenderAll(body, ctx);
            return ctx.Output.ToString();
        }
        finally
        {
            ctx.Output = saved;
        }
    }
}

internal sealed class FilterBlockStmt(Stmt[] body, FilterExpr[] filters, int line, int column) : Stmt(line, column)
{
    public override Flow Render(JinjaRenderContext ctx)
    {
        JinjaValue v = SetBlockStmt.RenderToString(body, ctx);
        foreach (var f in filters) v = f.Apply(ctx, v);
        PyFormat.AppendStr(ctx.Output, v);
        return Flow.Normal;
    }
}

internal sealed class LoopControlStmt(Flow flow, int line, int column) : Stmt(line, column)
{
    public override Flow Render(JinjaRenderContext ctx) => flow;
}

/// <summary>A block that renders its body in place (transformers' <c>{% generation %}</c>).</summary>
internal sealed class PassThroughStmt(Stmt[] body, int line, int column) : Stmt(line, column)
{
    public override Flow Render(JinjaRenderContext ctx) => RenderAll(body, ctx);
}

/// <summary><c>{% with a = 1 %}…{% endwith %}</c>: a nested scope.</summary>
internal sealed class WithStmt((Target Target, Expr Value)[] assignments, Stmt[] body, int line, int column) : Stmt(line, column)
{
    public override Flow Render(JinjaRenderContext ctx)
    {
        var outer = ctx.Scope;
        var frame = new Frame(outer);
        foreach (var (t, e) in assignments) t.Assign(ctx, frame, e.Eval(ctx));
        ctx.Scope = frame;
        try
        {
            return RenderAll(body, ctx);
        }
        finally
        {
            ctx.Scope = outer;
        }
    }
}

internal sealed class MacroParam(string name, Expr? defaultValue)
{
    public readonly string Name = name;
    public readonly Expr? Default = defaultValue;
}

internal sealed class MacroStmt(string name, MacroParam[] parameters, Stmt[] body, int line, int column) : Stmt(line, column)
{
    public readonly string Name = name;
    public readonly MacroParam[] Parameters = parameters;
    public readonly Stmt[] Body = body;

    public override Flow Render(JinjaRenderContext ctx)
    {
        ctx.Scope.Set(Name, JinjaValue.FromCallable(new JinjaMacro(this, ctx.Scope)));
        return Flow.Normal;
    }
}

/// <summary>A macro value: closes over the scope it was defined in.</summary>
internal sealed class JinjaMacro(MacroStmt def, Frame closure) : JinjaCallable
{
    public override string Name => def.Name;

    public override JinjaValue Invoke(JinjaRenderContext ctx, JinjaArguments args)
    {
        var frame = new Frame(closure);
        var ps = def.Parameters;
        var varargs = new JinjaList { IsTuple = true };
        for (int i = 0; i < args.Positional.Length; i++)
        {
            if (i < ps.Length) frame.Set(ps[i].Name, args.Positional[i]);
            else varargs.Add(args.Positional[i]);
        }
        var kwargs = new JinjaDict();
        foreach (var kv in args.Named)
        {
            int idx = Array.FindIndex(ps, p => p.Name == kv.Key);
            if (idx >= 0)
            {
                if (idx < args.Positional.Length)
                    throw new JinjaRuntimeException($"macro '{def.Name}' got multiple values for argument '{kv.Key}'");
                frame.Set(kv.Key, kv.Value);
            }
            else if (kv.Key == "caller") frame.Set("caller", kv.Value);
            else kwargs.Set(kv.Key, kv.Value);
        }
        var outerScope = ctx.Scope;
        ctx.Scope = frame;
        try
        {
            for (int i = args.Positional.Length; i < ps.Length; i++)
            {
                if (frame.Vars is not null && frame.Vars.ContainsKey(ps[i].Name)) continue;
                frame.Set(ps[i].Name, ps[i].Default is null
                    ? JinjaValue.UndefinedNamed($"parameter '{ps[i].Name}' was not provided")
                    : ps[i].Default!.Eval(ctx));
            }
            frame.Set("varargs", JinjaValue.FromList(varargs));
            frame.Set("kwargs", JinjaValue.FromDict(kwargs));
            return SetBlockStmt.RenderToString(def.Body, ctx);
        }
        finally
        {
            ctx.Scope = outerScope;
        }
    }
}

/// <summary><c>{% call(args) macro(...) %}body{% endcall %}</c>: body becomes the macro's <c>caller()</c>.</summary>
internal sealed class CallBlockStmt(CallExpr call, MacroStmt callerDef, int line, int column) : Stmt(line, column)
{
    public override Flow Render(JinjaRenderContext ctx)
    {
        var caller = JinjaValue.FromCallable(new JinjaMacro(callerDef, ctx.Scope));
        ctx.Line = Line;
        ctx.Column = Column;
        PyFormat.AppendStr(ctx.Output, call.Invoke(ctx, caller));
        return Flow.Normal;
    }
}
