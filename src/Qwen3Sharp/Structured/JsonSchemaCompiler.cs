using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Qwen3Sharp.Structured;

/// <summary>A schema (or pattern, or grammar) that cannot be compiled; the message names the keyword and where.</summary>
public sealed class SchemaException(string message) : Exception(message);

/// <summary>
/// Compiles a JSON Schema to a byte grammar whose language is the JSON texts that validate against it (within the
/// keywords listed in API.md). Properties are written in schema order; whitespace between tokens is bounded.
/// Keywords that cannot be enforced are refused under <c>strict</c> and listed in <see cref="NotEnforced"/> otherwise.
/// </summary>
public sealed class JsonSchemaCompiler
{
    /// <summary>Most whitespace bytes between two JSON tokens.</summary>
    public const int MaxWhitespace = 20;

    /// <summary>Most grammar nodes one schema may compile to.</summary>
    public const int MaxNodes = 200_000;

    private static readonly HashSet<string> Annotations =
    [
        "title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly",
        "writeOnly", "$defs", "definitions", "discriminator", "nullable_", "markdownDescription",
    ];

    private static readonly HashSet<string> Enforced =
    [
        "type", "properties", "required", "additionalProperties", "enum", "const", "anyOf", "oneOf", "allOf", "items",
        "prefixItems", "minItems", "maxItems", "$ref", "minLength", "maxLength", "pattern", "format", "minimum",
        "maximum", "exclusiveMinimum", "exclusiveMaximum",
    ];

    private readonly JsonNode _root;
    private readonly bool _strict;
    private readonly Dictionary<string, GRef> _refs = [];
    private readonly List<(GRef Ref, JsonNode Schema, string Path)> _pending = [];
    private int _nodes;

    private JsonSchemaCompiler(JsonNode root, bool strict)
    {
        _root = root;
        _strict = strict;
    }

    /// <summary>Keywords present but not enforced (non-strict only), as "path: keyword".</summary>
    public List<string> NotEnforced { get; } = [];

    public static readonly GNode Ws = G.Repeat(G.Set((' ', ' '), ('\t', '\t'), ('\n', '\n'), ('\r', '\r')), 0, MaxWhitespace);

    /// <summary>Compiles <paramref name="schema"/> (a JSON object or boolean) to a grammar for one JSON value.</summary>
    public static GNode Compile(JsonNode? schema, bool strict, out List<string> notEnforced)
    {
        var c = new JsonSchemaCompiler(schema ?? throw new SchemaException("the schema must be a JSON object, not null"), strict);
        GNode root = c.Value(schema, "#");
        while (c._pending.Count > 0)
        {
            var (r, s, path) = c._pending[^1];
            c._pending.RemoveAt(c._pending.Count - 1);
            r.Target = c.Value(s, path);
        }

        notEnforced = c.NotEnforced;
        return root;
    }

    /// <summary>Any JSON value (json_object mode uses <see cref="AnyObject"/>).</summary>
    public static GNode AnyValue()
    {
        var value = new GRef();
        value.Target = G.Alt(ObjectOf(null, value), ArrayOf(value), JsonString(), Number(false), G.Lit("true"), G.Lit("false"), G.Lit("null"));
        return value;
    }

    public static GNode AnyObject()
    {
        var value = (GRef)AnyValue();
        return ObjectOf(null, value);
    }

    private SchemaException Error(string path, string why) => new($"{path}: {why}");

    private T Count<T>(T node) where T : GNode
    {
        if (++_nodes > MaxNodes)
        {
            throw new SchemaException($"the schema compiles to more than {MaxNodes} grammar nodes; simplify it");
        }

        return node;
    }

    private void Unenforced(string path, string keyword, string why)
    {
        if (_strict)
        {
            throw new SchemaException($"{path}: '{keyword}' cannot be enforced ({why}); remove it or set strict to false");
        }

        NotEnforced.Add($"{path}: {keyword} ({why})");
    }

    private GNode Value(JsonNode? schema, string path)
    {
        Count(G.Empty);
        if (schema is JsonValue bv && bv.TryGetValue(out bool b))
        {
            return b ? AnyValue() : throw Error(path, "the schema is false, so nothing is valid");
        }

        if (schema is not JsonObject s)
        {
            throw Error(path, "a schema must be a JSON object or a boolean");
        }

        foreach (var (key, _) in s)
        {
            if (!Enforced.Contains(key) && !Annotations.Contains(key) && !IsTypeKeyword(key))
            {
                Unenforced(path, key, "not supported by the grammar compiler");
            }
        }

        if (s["$ref"] is { } refNode)
        {
            return Ref(refNode, path);
        }

        if (s["allOf"] is JsonArray all)
        {
            if (all.Count == 1 && s.Count(p => !Annotations.Contains(p.Key)) == 1)
            {
                return Value(all[0], path + "/allOf/0");
            }

            Unenforced(path, "allOf", "only a single-schema allOf can be enforced");
        }

        if (s["const"] is { } c)
        {
            return G.Lit(c.ToJsonString());
        }

        if (s["enum"] is { } e)
        {
            if (e is not JsonArray { Count: > 0 } values)
            {
                throw Error(path, "'enum' must be a non-empty array");
            }

            return G.Alt([.. values.Select(v => G.Lit(v?.ToJsonString() ?? "null")).Distinct()]);
        }

        JsonArray? any = s["anyOf"] as JsonArray ?? s["oneOf"] as JsonArray;
        if (any is not null)
        {
            string kw = s["anyOf"] is not null ? "anyOf" : "oneOf";
            if (any.Count == 0)
            {
                throw Error(path, $"'{kw}' must not be empty");
            }

            GNode branches = G.Alt([.. any.Select((x, i) => Value(x, $"{path}/{kw}/{i}"))]);
            if (kw == "oneOf" && !BranchesAreDisjoint(any))
            {
                // strict: a 400 (the issue's rule for keywords that cannot be enforced; OpenAI's strict mode refuses oneOf too)
                Unenforced(path, "oneOf", "exclusivity: its branches are not provably disjoint; handled as anyOf");
            }

            return branches;
        }

        List<string> types = Types(s, path);
        return G.Alt([.. types.Select(t => Typed(s, t, path))]);
    }

    private static bool IsTypeKeyword(string key) => false;

    // ---- oneOf ----
    // A oneOf is exactly its anyOf when no JSON value can validate against two branches, and that is what is checked
    // (as XGrammar does): every branch is a const/enum or has a `type`, and their values or types are pairwise
    // disjoint; or every branch is an object requiring one property whose const/enum values are pairwise disjoint
    // (a discriminated union, as Pydantic and Zod write them). $refs are followed. Anything else is not proven and
    // compiles as anyOf (XGrammar falls back the same way; llguidance refuses it).

    /// <summary>Whether no value can validate against two of <paramref name="branches"/> (false when not provable).</summary>
    private bool BranchesAreDisjoint(JsonArray branches)
    {
        var schemas = branches.Select(b => Deref(b) as JsonObject).ToList();
        if (schemas.Any(b => b is null))
        {
            return false;
        }

        return HasDiscriminator(schemas!) || PairwiseDisjoint(schemas.Select(b => KindsOf(b!)).ToList());
    }

    /// <summary><paramref name="node"/> with $refs followed (a few hops; null when one does not resolve).</summary>
    private JsonNode? Deref(JsonNode? node)
    {
        for (int hops = 0; hops < 8 && node is JsonObject o && o["$ref"] is JsonValue r && r.TryGetValue(out string? target); hops++)
        {
            if (o.Count(p => !Annotations.Contains(p.Key)) != 1)
            {
                return null;   // $ref with siblings: not simple enough to reason about
            }

            node = Resolve(target);
        }

        return node;
    }

    private bool HasDiscriminator(List<JsonObject> branches)
    {
        foreach (string key in RequiredNames(branches[0]))
        {
            var values = new List<List<JsonNode?>>();
            foreach (JsonObject b in branches)
            {
                if (b["type"] is not JsonValue t || !t.TryGetValue(out string? type) || type != "object" ||
                    !RequiredNames(b).Contains(key) || b["properties"] is not JsonObject props || Deref(props[key]) is not JsonObject prop ||
                    FiniteValues(prop) is not { } v)
                {
                    values.Clear();
                    break;
                }

                values.Add(v);
            }

            if (values.Count == branches.Count && PairwiseDisjoint(values.Select(v => (Types: (HashSet<string>?)null, Values: (List<JsonNode?>?)v)).ToList()))
            {
                return true;
            }
        }

        return false;
    }

    private static HashSet<string> RequiredNames(JsonObject s) =>
        s["required"] is JsonArray r ? [.. r.Select(x => x is JsonValue v && v.TryGetValue(out string? n) ? n : "")] : [];

    private static List<JsonNode?>? FiniteValues(JsonObject s) =>
        s.ContainsKey("const") ? [s["const"]] : s["enum"] is JsonArray { Count: > 0 } e ? [.. e] : null;

    /// <summary>What a branch's values can be: a finite list (const/enum), else the JSON types it allows (null: anything).</summary>
    private static (HashSet<string>? Types, List<JsonNode?>? Values) KindsOf(JsonObject s)
    {
        if (s["anyOf"] is not null || s["oneOf"] is not null || s["allOf"] is not null || s["$ref"] is not null)
        {
            return (null, null);
        }

        if (FiniteValues(s) is { } values)
        {
            return (null, values);
        }

        return s["type"] switch
        {
            JsonValue v when v.TryGetValue(out string? t) => ([t], null),
            JsonArray a when a.Count > 0 => ([.. a.Select(x => x is JsonValue xv && xv.TryGetValue(out string? t) ? t : "?")], null),
            _ => (null, null),
        };
    }

    private static bool PairwiseDisjoint(List<(HashSet<string>? Types, List<JsonNode?>? Values)> kinds)
    {
        for (int i = 0; i < kinds.Count; i++)
        {
            for (int j = i + 1; j < kinds.Count; j++)
            {
                if (MayOverlap(kinds[i], kinds[j]))
                {
                    return false;
                }
            }
        }

        return true;
    }

    private static bool MayOverlap((HashSet<string>? Types, List<JsonNode?>? Values) a, (HashSet<string>? Types, List<JsonNode?>? Values) b)
    {
        if (a.Values is { } av && b.Values is { } bv)
        {
            return av.Any(x => bv.Any(y => ValuesMayBeEqual(x, y)));
        }

        if (a.Values is { } va && b.Types is { } tb)
        {
            return va.Any(v => tb.Any(t => TypeAdmits(t, v)));
        }

        if (b.Values is { } vb && a.Types is { } ta)
        {
            return vb.Any(v => ta.Any(t => TypeAdmits(t, v)));
        }

        if (a.Types is { } xs && b.Types is { } ys)
        {
            return xs.Any(x => ys.Any(y => x == y || x is "integer" or "number" && y is "integer" or "number"));
        }

        return true;
    }

    private static string JsonTypeOf(JsonNode? v) => v?.GetValueKind() switch
    {
        null or JsonValueKind.Null => "null",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        JsonValueKind.Array => "array",
        _ => "object",
    };

    private static bool TypeAdmits(string type, JsonNode? value)
    {
        string actual = JsonTypeOf(value);
        return type == actual || type == "integer" && actual == "number";   // 2.0 is an integer to a validator
    }

    /// <summary>Whether two const/enum values may be the same JSON value (numbers by value: 1 and 1.0 are equal).</summary>
    private static bool ValuesMayBeEqual(JsonNode? x, JsonNode? y)
    {
        string tx = JsonTypeOf(x), ty = JsonTypeOf(y);
        if (tx != ty)
        {
            return false;
        }

        if (tx == "number")
        {
            return !(x!.AsValue().TryGetValue(out decimal dx) && y!.AsValue().TryGetValue(out decimal dy)) || dx == dy;
        }

        return tx is "array" or "object" || JsonNode.DeepEquals(x, y);   // containers: not compared, assumed equal
    }

    private GNode Ref(JsonNode refNode, string path)
    {
        string r = refNode is JsonValue v && v.TryGetValue(out string? str) ? str : throw Error(path, "'$ref' must be a string");
        if (_refs.TryGetValue(r, out GRef? known))
        {
            return known;
        }

        JsonNode? target = Resolve(r) ?? throw Error(path, $"'$ref' \"{r}\" does not point into this schema's $defs or definitions");
        var g = Count(new GRef());
        _refs[r] = g;
        _pending.Add((g, target, r));
        return g;
    }

    private JsonNode? Resolve(string r)
    {
        if (r == "#")
        {
            return _root;
        }

        if (!r.StartsWith("#/", StringComparison.Ordinal))
        {
            return null;
        }

        JsonNode? node = _root;
        foreach (string raw in r[2..].Split('/'))
        {
            string part = Uri.UnescapeDataString(raw).Replace("~1", "/").Replace("~0", "~");
            node = node is JsonObject o && o.TryGetPropertyValue(part, out JsonNode? next) ? next : null;
            if (node is null)
            {
                return null;
            }
        }

        return node;
    }

    private List<string> Types(JsonObject s, string path)
    {
        switch (s["type"])
        {
            case null:
                if (s["properties"] is not null || s["required"] is not null || s["additionalProperties"] is not null)
                {
                    return ["object"];
                }

                if (s["items"] is not null || s["prefixItems"] is not null || s["minItems"] is not null || s["maxItems"] is not null)
                {
                    return ["array"];
                }

                if (s["minLength"] is not null || s["maxLength"] is not null || s["pattern"] is not null || s["format"] is not null)
                {
                    return ["string"];
                }

                if (s["minimum"] is not null || s["maximum"] is not null || s["exclusiveMinimum"] is not null || s["exclusiveMaximum"] is not null)
                {
                    return ["number"];
                }

                return ["object", "array", "string", "number", "boolean", "null"];
            case JsonValue v when v.TryGetValue(out string? t):
                return [CheckType(t, path)];
            case JsonArray a when a.Count > 0:
                return [.. a.Select(x => CheckType(x is JsonValue xv && xv.TryGetValue(out string? t) ? t : "", path)).Distinct()];
            default:
                throw Error(path, "'type' must be a type name or a non-empty array of them");
        }
    }

    private string CheckType(string t, string path) => t is "object" or "array" or "string" or "number" or "integer" or "boolean" or "null"
        ? t
        : throw Error(path, $"unknown type \"{t}\"");

    private GNode Typed(JsonObject s, string type, string path) => type switch
    {
        "null" => G.Lit("null"),
        "boolean" => G.Alt(G.Lit("true"), G.Lit("false")),
        "string" => StringSchema(s, path),
        "integer" => NumberSchema(s, path, integer: true),
        "number" => NumberSchema(s, path, integer: false),
        "array" => ArraySchema(s, path),
        _ => ObjectSchema(s, path),
    };

    private static int? Int(JsonObject s, string key, string path)
    {
        if (s[key] is null)
        {
            return null;
        }

        if (s[key] is JsonValue v && v.TryGetValue(out double d) && d >= 0 && d == Math.Floor(d))
        {
            return d > 100_000 ? throw new SchemaException($"{path}: '{key}' {d} is larger than this server allows (100000)") : (int)d;
        }

        throw new SchemaException($"{path}: '{key}' must be a non-negative integer");
    }

    // ---- strings ----

    private static GNode StringChar() => G.Alt(
        G.Bytes((0x20, 0x21), (0x23, 0x5B), (0x5D, 0x7F)),
        G.Seq(G.Bytes((0xC2, 0xDF)), G.Bytes((0x80, 0xBF))),
        G.Seq(G.Bytes((0xE0, 0xEF)), G.Bytes((0x80, 0xBF)), G.Bytes((0x80, 0xBF))),
        G.Seq(G.Bytes((0xF0, 0xF4)), G.Bytes((0x80, 0xBF)), G.Bytes((0x80, 0xBF)), G.Bytes((0x80, 0xBF))),
        G.Seq(G.Lit("\\"), G.Alt(G.Set(('"', '"'), ('\\', '\\'), ('/', '/'), ('b', 'b'), ('f', 'f'), ('n', 'n'), ('r', 'r'), ('t', 't')),
            G.Seq(G.Lit("u"), G.Repeat(G.Set(('0', '9'), ('a', 'f'), ('A', 'F')), 4, 4)))));

    public static GNode JsonString(int min = 0, int max = -1) => G.Seq(G.Lit("\""), G.Repeat(StringChar(), min, max), G.Lit("\""));

    /// <summary>A calendar date: days per month, and 29 February in leap years only.</summary>
    private const string Date =
        @"(\d{4}-((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)|02-(0[1-9]|1\d|2[0-8]))"
        + @"|(\d\d(0[48]|[2468][048]|[13579][26])|([02468][048]|[13579][26])00)-02-29)";

    private static readonly Dictionary<string, string> Formats = new()
    {
        ["date"] = "^" + Date + "$",
        ["time"] = @"^([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$",
        ["date-time"] = "^" + Date + @"T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$",
        ["uuid"] = @"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        ["email"] = @"^[a-z0-9]{1,16}([._+-][a-z0-9]{1,16}){0,2}@([a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\.){1,3}[a-z]{2,10}$",   // a conservative subset
    };

    private GNode StringSchema(JsonObject s, string path)
    {
        int min = Int(s, "minLength", path) ?? 0;
        int? max = Int(s, "maxLength", path);
        if (max < min)
        {
            throw Error(path, $"'minLength' {min} is greater than 'maxLength' {max}; no string is valid");
        }

        string? pattern = s["pattern"] is JsonValue pv && pv.TryGetValue(out string? p) ? p
            : s["pattern"] is null ? null : throw Error(path, "'pattern' must be a string");
        string? format = s["format"] is JsonValue fv && fv.TryGetValue(out string? f) ? f
            : s["format"] is null ? null : throw Error(path, "'format' must be a string");
        if (format is not null && !Formats.ContainsKey(format))
        {
            Unenforced(path, "format", $"format \"{format}\" is not one of {string.Join(", ", Formats.Keys)}");
            format = null;
        }

        if (pattern is not null && format is not null)
        {
            Unenforced(path, "pattern", "'pattern' together with 'format'");
            pattern = null;
        }

        string? regex = pattern ?? (format is null ? null : Formats[format]);
        if (regex is null)
        {
            return Count(JsonString(min, max ?? -1));
        }

        if (min > 0 || max is not null)
        {
            Unenforced(path, "minLength/maxLength", "lengths together with 'pattern' or 'format'");
        }

        return G.Seq(G.Lit("\""), Count(RegexCompiler.Compile(regex, jsonString: true)), G.Lit("\""));
    }

    // ---- numbers ----

    private static GNode Digits(int min, int max) => G.Repeat(G.Set(('0', '9')), min, max);

    private static GNode Number(bool integer)
    {
        GNode intPart = G.Seq(G.Opt(G.Lit("-")), G.Alt(G.Lit("0"), G.Seq(G.Set(('1', '9')), Digits(0, 18))));
        return integer ? intPart
            : G.Seq(intPart, G.Opt(G.Seq(G.Lit("."), Digits(1, 18))), G.Opt(G.Seq(G.Set(('e', 'e'), ('E', 'E')), G.Opt(G.Set(('+', '+'), ('-', '-'))), Digits(1, 3))));
    }

    private static decimal? Dec(JsonObject s, string key, string path)
    {
        if (s[key] is null)
        {
            return null;
        }

        if (s[key] is JsonValue v && v.TryGetValue(out decimal d))
        {
            return d;
        }

        if (s[key] is JsonValue bv && bv.TryGetValue(out bool _))
        {
            throw new SchemaException($"{path}: '{key}' as a boolean (draft-4) is not supported; give the bound as a number");
        }

        throw new SchemaException($"{path}: '{key}' must be a number");
    }

    private GNode NumberSchema(JsonObject s, string path, bool integer)
    {
        decimal? min = Dec(s, "minimum", path), max = Dec(s, "maximum", path);
        decimal? xmin = Dec(s, "exclusiveMinimum", path), xmax = Dec(s, "exclusiveMaximum", path);
        if (min is null && max is null && xmin is null && xmax is null)
        {
            return Number(integer);
        }

        if (integer)
        {
            long lo = Math.Max(min is { } a ? (long)Math.Ceiling(a) : long.MinValue / 2, xmin is { } b ? (long)Math.Floor(b) + 1 : long.MinValue / 2);
            long hi = Math.Min(max is { } c ? (long)Math.Floor(c) : long.MaxValue / 2, xmax is { } d ? (long)Math.Ceiling(d) - 1 : long.MaxValue / 2);
            if (lo > hi)
            {
                throw Error(path, "'minimum'/'maximum' leave no integer valid");
            }

            return Count(IntRange(lo, hi));
        }

        // number: whole-number inclusive bounds are enforced (integer part ranges + a free fraction where safe).
        if (xmin is not null || xmax is not null || min is { } m1 && m1 != decimal.Floor(m1) || max is { } m2 && m2 != decimal.Floor(m2))
        {
            Unenforced(path, "minimum/maximum", "only whole-number, inclusive bounds are enforced for type number");
            return Number(false);
        }

        long nlo = min is { } x ? (long)x : long.MinValue / 2, nhi = max is { } y ? (long)y : long.MaxValue / 2;
        if (nlo > nhi)
        {
            throw Error(path, "'minimum' is greater than 'maximum'; no number is valid");
        }

        var alts = new List<GNode> { IntRange(nlo, nhi) };
        GNode fraction = G.Seq(G.Lit("."), Digits(1, 18));
        // k.fff with k >= 0 lies in [k, k+1): valid when k >= lo and k + 1 <= hi.
        long posLo = Math.Max(nlo, 0), posHi = nhi - 1;
        if (posLo <= posHi)
        {
            alts.Add(G.Seq(IntRange(posLo, posHi), fraction));
        }

        // -k.fff with k >= 1 lies in (-k-1, -k]: valid when -k-1 >= lo and -k <= hi.
        long negLo = Math.Max(nlo + 1, long.MinValue / 2), negHi = Math.Min(nhi, -1);
        if (negLo <= negHi)
        {
            alts.Add(G.Seq(IntRange(negLo, negHi), fraction));
        }

        // -0.fff lies in (-1, 0): valid when lo <= -1 and hi >= 0.
        if (nlo <= -1 && nhi >= 0)
        {
            alts.Add(G.Seq(G.Lit("-0"), fraction));
        }

        return Count(G.Alt([.. alts]));
    }

    /// <summary>Decimal integers (no leading zeros, no "-0") between lo and hi inclusive.</summary>
    public static GNode IntRange(long lo, long hi)
    {
        var alts = new List<GNode>();
        if (lo < 0)
        {
            // -a for a in [max(1, -hi), -lo]
            long aLo = Math.Max(1, hi < 0 ? -hi : 1), aHi = -lo;
            if (aLo <= aHi)
            {
                alts.Add(G.Seq(G.Lit("-"), NonNegative(aLo, aHi)));
            }
        }

        if (hi >= 0)
        {
            alts.Add(NonNegative(Math.Max(lo, 0), hi));
        }

        return G.Alt([.. alts]);
    }

    private static GNode NonNegative(long lo, long hi)
    {
        var alts = new List<GNode>();
        string los = lo.ToString(CultureInfo.InvariantCulture), his = hi.ToString(CultureInfo.InvariantCulture);
        for (int len = los.Length; len <= his.Length; len++)
        {
            long a = len == los.Length ? lo : Pow10(len - 1);
            long b = len == his.Length ? hi : Pow10(len) - 1;
            if (len > 1 && a < Pow10(len - 1))
            {
                a = Pow10(len - 1);
            }

            if (a <= b)
            {
                alts.Add(FixedRange(a.ToString(CultureInfo.InvariantCulture).PadLeft(len, '0'), b.ToString(CultureInfo.InvariantCulture).PadLeft(len, '0')));
            }
        }

        return G.Alt([.. alts]);
    }

    private static long Pow10(int n)
    {
        long p = 1;
        for (int i = 0; i < n; i++)
        {
            p = p > long.MaxValue / 10 ? long.MaxValue : p * 10;
        }

        return p;
    }

    /// <summary>Digit strings of one length between a and b.</summary>
    private static GNode FixedRange(string a, string b)
    {
        if (a.Length == 0)
        {
            return G.Empty;
        }

        if (a == b)
        {
            return G.Lit(a);
        }

        if (a[0] == b[0])
        {
            return G.Seq(G.Lit(a[..1]), FixedRange(a[1..], b[1..]));
        }

        string zeros = new('0', a.Length - 1), nines = new('9', a.Length - 1);
        if (a[1..] == zeros && b[1..] == nines)
        {
            return G.Seq(G.Set((a[0], b[0])), Digits(a.Length - 1, a.Length - 1));
        }

        var alts = new List<GNode> { G.Seq(G.Lit(a[..1]), FixedRange(a[1..], nines)) };
        if (b[0] - a[0] > 1)
        {
            alts.Add(G.Seq(G.Set(((char)(a[0] + 1), (char)(b[0] - 1))), Digits(a.Length - 1, a.Length - 1)));
        }

        alts.Add(G.Seq(G.Lit(b[..1]), FixedRange(zeros, b[1..])));
        return G.Alt([.. alts]);
    }

    // ---- arrays ----

    private static GNode ArrayOf(GNode item) =>
        G.Seq(G.Lit("["), Ws, G.Alt(G.Lit("]"), G.Seq(item, G.Star(G.Seq(Ws, G.Lit(","), Ws, item)), Ws, G.Lit("]"))));

    private GNode ArraySchema(JsonObject s, string path)
    {
        int min = Int(s, "minItems", path) ?? 0;
        int? max = Int(s, "maxItems", path);
        if (max < min)
        {
            throw Error(path, $"'minItems' {min} is greater than 'maxItems' {max}; no array is valid");
        }

        var prefix = new List<GNode>();
        if (s["prefixItems"] is JsonArray pa)
        {
            for (int i = 0; i < pa.Count; i++)
            {
                prefix.Add(Value(pa[i], $"{path}/prefixItems/{i}"));
            }
        }
        else if (s["prefixItems"] is not null)
        {
            throw Error(path, "'prefixItems' must be an array of schemas");
        }

        JsonNode? itemsNode = s["items"];
        GNode? item = itemsNode is JsonValue iv && iv.TryGetValue(out bool ib) && !ib ? null
            : itemsNode is JsonArray ? throw Error(path, "'items' as an array (draft-4 tuples) is not supported; use 'prefixItems'")
            : Value(itemsNode ?? JsonValue.Create(true), path + "/items");
        int maxCount = item is null ? Math.Min(max ?? prefix.Count, prefix.Count) : max ?? -1;
        if (min > maxCount && maxCount >= 0)
        {
            throw Error(path, $"'minItems' {min} is more than the array can hold");
        }

        // Elements 0..n-1: element i is prefix[i] when i < prefix.Count, else item.
        GNode Sep(int i) => i == 0 ? G.Empty : G.Seq(Ws, G.Lit(","), Ws);
        GNode Tail(int i)
        {
            // Elements from i on, at least max(0, min - i), at most maxCount - i.
            if (maxCount >= 0 && i >= maxCount)
            {
                return G.Empty;
            }

            if (i >= prefix.Count)
            {
                int rmin = Math.Max(0, min - i), rmax = maxCount < 0 ? -1 : maxCount - i;
                return i == 0 ? FirstThenRest(item!, rmin, rmax) : G.Repeat(G.Seq(Sep(1), item!), rmin, rmax);
            }

            GNode here = G.Seq(Sep(i), prefix[i], Tail(i + 1));
            return i >= min ? G.Opt(here) : here;
        }

        GNode FirstThenRest(GNode it, int rmin, int rmax)
        {
            GNode rest = G.Repeat(G.Seq(Sep(1), it), Math.Max(0, rmin - 1), rmax < 0 ? -1 : rmax - 1);
            GNode one = G.Seq(it, rest);
            return rmin > 0 ? one : G.Opt(one);
        }

        return Count(G.Seq(G.Lit("["), Ws, Tail(0), Ws, G.Lit("]")));
    }

    // ---- objects ----

    private static GNode ObjectOf(GNode? keyValue, GNode value)
    {
        GNode kv = keyValue ?? G.Seq(JsonString(), Ws, G.Lit(":"), Ws, value);
        return G.Seq(G.Lit("{"), Ws, G.Alt(G.Lit("}"), G.Seq(kv, G.Star(G.Seq(Ws, G.Lit(","), Ws, kv)), Ws, G.Lit("}"))));
    }

    private GNode ObjectSchema(JsonObject s, string path)
    {
        var props = s["properties"] as JsonObject;
        if (s["properties"] is not null && props is null)
        {
            throw Error(path, "'properties' must be an object");
        }

        var required = new HashSet<string>();
        if (s["required"] is JsonArray ra)
        {
            foreach (JsonNode? r in ra)
            {
                required.Add(r is JsonValue rv && rv.TryGetValue(out string? name) ? name : throw Error(path, "'required' must be an array of names"));
            }
        }

        JsonNode? additional = s["additionalProperties"];
        bool closed = additional is JsonValue av && av.TryGetValue(out bool ab) && !ab;
        if (props is null || props.Count == 0)
        {
            if (required.Count > 0)
            {
                if (closed)
                {
                    throw Error(path, $"'required' names \"{required.First()}\", which 'additionalProperties': false forbids");
                }

                Unenforced(path, "required", "required properties without 'properties'");
            }

            if (closed)
            {
                return G.Seq(G.Lit("{"), Ws, G.Lit("}"));
            }

            GNode valueSchema = additional is JsonObject ? Value(additional, path + "/additionalProperties") : AnyValue();
            return Count(ObjectOf(null, valueSchema));
        }

        foreach (string r in required)
        {
            if (!props.ContainsKey(r))
            {
                if (closed)
                {
                    throw Error(path, $"'required' names \"{r}\", which is not in 'properties' and 'additionalProperties' is false");
                }

                Unenforced(path, "required", $"required property \"{r}\" is not in 'properties'");
            }
        }

        if (!closed && additional is not null && !(additional is JsonValue tv && tv.TryGetValue(out bool t) && t))
        {
            if (!_strict)
            {
                NotEnforced.Add($"{path}: additionalProperties (no extra properties are generated)");
            }
        }

        var names = props.Select(p => p.Key).ToList();
        var values = props.Select((p, i) => G.Seq(G.Lit(JsonSerializer.Serialize(p.Key)), Ws, G.Lit(":"), Ws, Value(p.Value, $"{path}/properties/{p.Key}"))).ToList();
        int n = names.Count;
        // First(i): the members from property i on, none written yet; Rest(i): after at least one member.
        var first = new GNode[n + 1];
        var rest = new GNode[n + 1];
        first[n] = G.Empty;
        rest[n] = G.Empty;
        for (int i = n - 1; i >= 0; i--)
        {
            bool req = required.Contains(names[i]);
            GNode withI = G.Seq(G.Seq(Ws, G.Lit(","), Ws), values[i], rest[i + 1]);
            rest[i] = req ? withI : G.Alt(withI, rest[i + 1]);
            GNode startI = G.Seq(values[i], rest[i + 1]);
            first[i] = req ? startI : G.Alt(startI, first[i + 1]);
        }

        return Count(G.Seq(G.Lit("{"), Ws, first[0], Ws, G.Lit("}")));
    }
}
