using System.Text;

namespace Qwen3Sharp.Chat.Jinja;

/// <summary>A runtime error raised without a template position; the renderer adds line and column.</summary>
internal sealed class JinjaRuntimeException(string message) : Exception(message);

/// <summary>Raised by <c>raise_exception(msg)</c> inside a template.</summary>
internal sealed class JinjaRaisedException(string message) : Exception(message);

/// <summary>A variable scope. Loop bodies and macro calls get their own; <c>if</c> blocks do not.</summary>
internal sealed class Frame(Frame? parent)
{
    public readonly Frame? Parent = parent;
    public Dictionary<string, JinjaValue>? Vars;

    public bool TryLookup(string name, out JinjaValue value)
    {
        for (Frame? f = this; f is not null; f = f.Parent)
        {
            if (f.Vars is not null && f.Vars.TryGetValue(name, out value)) return true;
        }
        value = default;
        return false;
    }

    public void Set(string name, JinjaValue value) => (Vars ??= new Dictionary<string, JinjaValue>(StringComparer.Ordinal))[name] = value;

    public void Clear() => Vars?.Clear();
}

/// <summary>State of one render: output buffer, current scope and the position for error messages.</summary>
public sealed class JinjaRenderContext
{
    internal StringBuilder Output;
    internal Frame Scope;
    internal int Line;
    internal int Column;

    internal JinjaRenderContext(StringBuilder output, Frame scope, TimeProvider time)
    {
        Output = output;
        Scope = scope;
        Time = time;
    }

    /// <summary>Clock for <c>strftime_now</c>.</summary>
    public TimeProvider Time { get; }
}

/// <summary>Positional and keyword arguments of a call, filter or test.</summary>
public sealed class JinjaArguments
{
    public static readonly JinjaArguments Empty = new([], []);

    public JinjaArguments(JinjaValue[] positional, KeyValuePair<string, JinjaValue>[] named)
    {
        Positional = positional;
        Named = named;
    }

    public JinjaValue[] Positional { get; }
    public KeyValuePair<string, JinjaValue>[] Named { get; }

    public int Count => Positional.Length;

    /// <summary>The argument at <paramref name="index"/> or named <paramref name="name"/>, else <paramref name="fallback"/>.</summary>
    public JinjaValue Get(int index, string name, JinjaValue fallback)
    {
        if (index >= 0 && index < Positional.Length) return Positional[index];
        foreach (var kv in Named)
            if (kv.Key == name) return kv.Value;
        return fallback;
    }

    public bool Has(int index, string name)
    {
        if (index >= 0 && index < Positional.Length) return true;
        foreach (var kv in Named)
            if (kv.Key == name) return true;
        return false;
    }

    public JinjaValue Required(int index, string name, string function)
    {
        if (!Has(index, name)) throw new JinjaRuntimeException($"{function}() missing required argument '{name}'");
        return Get(index, name, JinjaValue.Undefined);
    }
}

/// <summary><c>namespace(...)</c>: the only object whose attributes templates may assign.</summary>
internal sealed class JinjaNamespace : IJinjaObject
{
    public readonly Dictionary<string, JinjaValue> Attributes = new(StringComparer.Ordinal);
    public string TypeName => "Namespace";
    public bool TryGetAttribute(string name, out JinjaValue value) => Attributes.TryGetValue(name, out value);
}

/// <summary>The <c>loop</c> variable of a for loop.</summary>
internal sealed class JinjaLoop : IJinjaObject
{
    public int Index0;
    public int Length;
    public JinjaList Items = null!;
    public int Depth0;
    public JinjaCallable? Recurse; // set in "for ... recursive" loops: loop(children)
    private JinjaValue _lastChanged = JinjaValue.Undefined;
    private bool _hasChanged;

    public string TypeName => "LoopContext";

    public bool TryGetAttribute(string name, out JinjaValue value)
    {
        switch (name)
        {
            case "index": value = JinjaValue.FromInt(Index0 + 1); return true;
            case "index0": value = JinjaValue.FromInt(Index0); return true;
            case "revindex": value = JinjaValue.FromInt(Length - Index0); return true;
            case "revindex0": value = JinjaValue.FromInt(Length - Index0 - 1); return true;
            case "first": value = JinjaValue.FromBool(Index0 == 0); return true;
            case "last": value = JinjaValue.FromBool(Index0 == Length - 1); return true;
            case "length": value = JinjaValue.FromInt(Length); return true;
            case "depth": value = JinjaValue.FromInt(Depth0 + 1); return true;
            case "depth0": value = JinjaValue.FromInt(Depth0); return true;
            case "previtem":
                value = Index0 > 0 ? Items[Index0 - 1] : JinjaValue.UndefinedNamed("there is no previous item");
                return true;
            case "nextitem":
                value = Index0 + 1 < Length ? Items[Index0 + 1] : JinjaValue.UndefinedNamed("there is no next item");
                return true;
            case "cycle": value = JinjaValue.FromCallable(new LoopCycle(this)); return true;
            case "changed": value = JinjaValue.FromCallable(new LoopChanged(this)); return true;
            default: value = default; return false;
        }
    }

    private sealed class LoopCycle(JinjaLoop loop) : JinjaCallable
    {
        public override string Name => "cycle";

        public override JinjaValue Invoke(JinjaRenderContext context, JinjaArguments args)
        {
            if (args.Count == 0) throw new JinjaRuntimeException("no items for cycling given");
            return args.Positional[loop.Index0 % args.Count];
        }
    }

    private sealed class LoopChanged(JinjaLoop loop) : JinjaCallable
    {
        public override string Name => "changed";

        public override JinjaValue Invoke(JinjaRenderContext context, JinjaArguments args)
        {
            var value = JinjaValue.FromList(new JinjaList(args.Positional));
            if (loop._hasChanged && value.Equals(loop._lastChanged)) return JinjaValue.False;
            loop._hasChanged = true;
            loop._lastChanged = value;
            return JinjaValue.True;
        }
    }
}
