using System.Runtime.CompilerServices;

namespace Qwen3Sharp.Chat.Jinja;

/// <summary>The kind of a <see cref="JinjaValue"/>, mirroring the Python types a Jinja2 template sees.</summary>
public enum JinjaKind : byte
{
    Undefined,
    None,
    Bool,
    Int,
    Float,
    String,
    List,
    Dict,
    Object,
    Callable,
}

/// <summary>
/// A template value with Python semantics. Scalars live inline (no allocation); strings, lists, dicts,
/// namespaces/loop objects and callables are references.
/// </summary>
public readonly struct JinjaValue : IEquatable<JinjaValue>
{
    private readonly object? _ref;
    private readonly long _bits;
    public readonly JinjaKind Kind;

    private JinjaValue(JinjaKind kind, long bits, object? reference)
    {
        Kind = kind;
        _bits = bits;
        _ref = reference;
    }

    public static readonly JinjaValue Undefined = default;
    public static readonly JinjaValue None = new(JinjaKind.None, 0, null);
    public static readonly JinjaValue True = new(JinjaKind.Bool, 1, null);
    public static readonly JinjaValue False = new(JinjaKind.Bool, 0, null);
    public static readonly JinjaValue EmptyString = new(JinjaKind.String, 0, "");

    /// <summary>An undefined value that remembers what was looked up, for error messages.</summary>
    public static JinjaValue UndefinedNamed(string hint) => new(JinjaKind.Undefined, 0, hint);

    public static JinjaValue FromBool(bool b) => b ? True : False;
    public static JinjaValue FromInt(long v) => new(JinjaKind.Int, v, null);
    public static JinjaValue FromFloat(double v) => new(JinjaKind.Float, BitConverter.DoubleToInt64Bits(v), null);
    public static JinjaValue FromString(string s) => new(JinjaKind.String, 0, s);
    public static JinjaValue FromList(JinjaList l) => new(JinjaKind.List, 0, l);
    public static JinjaValue FromDict(JinjaDict d) => new(JinjaKind.Dict, 0, d);
    public static JinjaValue FromObject(IJinjaObject o) => new(JinjaKind.Object, 0, o);
    public static JinjaValue FromCallable(JinjaCallable c) => new(JinjaKind.Callable, 0, c);

    public static implicit operator JinjaValue(string s) => FromString(s);
    public static implicit operator JinjaValue(long v) => FromInt(v);
    public static implicit operator JinjaValue(double v) => FromFloat(v);
    public static implicit operator JinjaValue(bool v) => FromBool(v);

    public bool IsUndefined => Kind == JinjaKind.Undefined;
    public bool IsNone => Kind == JinjaKind.None;
    public bool IsString => Kind == JinjaKind.String;
    public bool IsNumber => Kind is JinjaKind.Int or JinjaKind.Float or JinjaKind.Bool;

    public bool AsBool => _bits != 0;
    public long AsInt => _bits;
    public double AsFloat => BitConverter.Int64BitsToDouble(_bits);
    public string AsString => (string)_ref!;
    public JinjaList AsList => (JinjaList)_ref!;
    public JinjaDict AsDict => (JinjaDict)_ref!;
    public IJinjaObject AsObject => (IJinjaObject)_ref!;
    public JinjaCallable AsCallable => (JinjaCallable)_ref!;

    /// <summary>For undefined values: the name that was looked up (may be null).</summary>
    public string? UndefinedHint => Kind == JinjaKind.Undefined ? _ref as string : null;

    /// <summary>Numeric value as double (bool and int widen), as Python does in mixed arithmetic.</summary>
    public double ToDouble() => Kind == JinjaKind.Float ? AsFloat : _bits;

    /// <summary>Python truthiness; undefined is falsy.</summary>
    public bool IsTruthy
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Kind switch
        {
            JinjaKind.Undefined or JinjaKind.None => false,
            JinjaKind.Bool or JinjaKind.Int => _bits != 0,
            JinjaKind.Float => AsFloat != 0.0,
            JinjaKind.String => AsString.Length != 0,
            JinjaKind.List => AsList.Count != 0,
            JinjaKind.Dict => AsDict.Count != 0,
            _ => true,
        };
    }

    /// <summary>Python type name, used in error messages.</summary>
    public string TypeName => Kind switch
    {
        JinjaKind.Undefined => "Undefined",
        JinjaKind.None => "NoneType",
        JinjaKind.Bool => "bool",
        JinjaKind.Int => "int",
        JinjaKind.Float => "float",
        JinjaKind.String => "str",
        JinjaKind.List => AsList.IsTuple ? "tuple" : "list",
        JinjaKind.Dict => "dict",
        JinjaKind.Object => AsObject.TypeName,
        _ => "function",
    };

    /// <summary>Python <c>==</c>: numbers compare across int/float/bool, containers element-wise.</summary>
    public bool Equals(JinjaValue other)
    {
        if (IsNumber && other.IsNumber)
        {
            if (Kind != JinjaKind.Float && other.Kind != JinjaKind.Float) return _bits == other._bits;
            return ToDouble() == other.ToDouble();
        }
        if (Kind != other.Kind) return false;
        switch (Kind)
        {
            case JinjaKind.Undefined:
            case JinjaKind.None:
                return true;
            case JinjaKind.String:
                return string.Equals(AsString, other.AsString, StringComparison.Ordinal);
            case JinjaKind.List:
            {
                JinjaList a = AsList, b = other.AsList;
                if (a.Count != b.Count || a.IsTuple != b.IsTuple) return false;
                for (int i = 0; i < a.Count; i++)
                    if (!a[i].Equals(b[i])) return false;
                return true;
            }
            case JinjaKind.Dict:
            {
                JinjaDict a = AsDict, b = other.AsDict;
                if (a.Count != b.Count) return false;
                foreach (var kv in a)
                    if (!b.TryGetValue(kv.Key, out var bv) || !kv.Value.Equals(bv)) return false;
                return true;
            }
            default:
                return ReferenceEquals(_ref, other._ref);
        }
    }

    public override bool Equals(object? obj) => obj is JinjaValue v && Equals(v);

    public override int GetHashCode() => Kind switch
    {
        JinjaKind.Bool or JinjaKind.Int => _bits.GetHashCode(),
        JinjaKind.Float => AsFloat == Math.Floor(AsFloat) && Math.Abs(AsFloat) < 9e18
            ? ((long)AsFloat).GetHashCode()
            : AsFloat.GetHashCode(),
        JinjaKind.String => string.GetHashCode(AsString.AsSpan()),
        JinjaKind.None or JinjaKind.Undefined => (int)Kind,
        _ => RuntimeHelpers.GetHashCode(_ref),
    };

    public static bool operator ==(JinjaValue a, JinjaValue b) => a.Equals(b);
    public static bool operator !=(JinjaValue a, JinjaValue b) => !a.Equals(b);

    /// <summary>Python <c>str()</c> of the value, as Jinja2 prints it (undefined prints as empty).</summary>
    public override string ToString() => PyFormat.Str(this);
}

/// <summary>A Python list (or tuple when <see cref="IsTuple"/>).</summary>
public sealed class JinjaList : List<JinjaValue>
{
    public JinjaList() { }
    public JinjaList(int capacity) : base(capacity) { }
    public JinjaList(IEnumerable<JinjaValue> items) : base(items) { }

    /// <summary>Only changes how the value prints (<c>(1, 2)</c> instead of <c>[1, 2]</c>).</summary>
    public bool IsTuple { get; init; }

    public static JinjaList Tuple(params JinjaValue[] items) => new(items) { IsTuple = true };
}

/// <summary>An insertion-ordered Python dict.</summary>
public sealed class JinjaDict : OrderedDictionary<JinjaValue, JinjaValue>
{
    public JinjaDict() { }
    public JinjaDict(int capacity) : base(capacity) { }

    public bool TryGetValue(string key, out JinjaValue value) => TryGetValue(JinjaValue.FromString(key), out value);

    public void Set(string key, JinjaValue value) => this[JinjaValue.FromString(key)] = value;
}

/// <summary>An object with attributes (loop, namespace): <c>x.name</c> works, <c>x['name']</c> too.</summary>
public interface IJinjaObject
{
    string TypeName { get; }
    bool TryGetAttribute(string name, out JinjaValue value);
}

/// <summary>A function value: builtin global, macro, bound method.</summary>
public abstract class JinjaCallable
{
    public abstract string Name { get; }
    public abstract JinjaValue Invoke(JinjaRenderContext context, JinjaArguments args);
}
