using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Qwen3Sharp.Chat.Jinja;

/// <summary>
/// A parsed Jinja2 template, configured as transformers configures its chat-template environment:
/// <c>ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])</c>,
/// default <c>Undefined</c>, and the <c>tojson</c>/<c>raise_exception</c>/<c>strftime_now</c> additions.
/// Parse once; <see cref="Render"/> is thread-safe.
/// </summary>
public sealed class JinjaTemplate
{
    private const int CacheCapacity = 64;
    private static readonly ConcurrentDictionary<string, JinjaTemplate> Cache = new(StringComparer.Ordinal);

    private readonly Stmt[] _body;

    /// <summary>Builtin globals, shared read-only by every render (templates assign into their own root frame).</summary>
    private static readonly Frame Globals = CreateGlobals();

    private static Frame CreateGlobals()
    {
        var globals = new Frame(null);
        JinjaBuiltins.AddGlobals(globals);
        return globals;
    }

    private JinjaTemplate(string source, Stmt[] body)
    {
        Source = source;
        _body = body;
    }

    public string Source { get; }

    /// <summary>Parses <paramref name="source"/>; throws <see cref="ChatTemplateException"/> (kind Syntax) with line and column.</summary>
    public static JinjaTemplate Parse(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (Cache.TryGetValue(source, out var cached)) return cached;
        var template = new JinjaTemplate(source, JinjaParser.Parse(source));
        if (Cache.Count >= CacheCapacity) Cache.Clear();
        Cache.TryAdd(source, template);
        return template;
    }

    /// <summary>Renders with the given top-level variables (which shadow the builtin globals).</summary>
    public string Render(IEnumerable<KeyValuePair<string, JinjaValue>> variables, TimeProvider? time = null)
    {
        var root = new Frame(Globals);
        foreach (var kv in variables) root.Set(kv.Key, kv.Value);
        var ctx = new JinjaRenderContext(new StringBuilder(1024), root, time ?? TimeProvider.System);
        try
        {
            Stmt.RenderAll(_body, ctx);
        }
        catch (JinjaRaisedException e)
        {
            throw new ChatTemplateException(ChatTemplateErrorKind.Raised, e.Message, ctx.Line, ctx.Column, e);
        }
        catch (JinjaRuntimeException e)
        {
            throw new ChatTemplateException(ChatTemplateErrorKind.Runtime, e.Message, ctx.Line, ctx.Column, e);
        }
        catch (Exception e) when (e is InvalidCastException or ArgumentException or IndexOutOfRangeException
                                      or FormatException or OverflowException or InvalidOperationException)
        {
            throw new ChatTemplateException(ChatTemplateErrorKind.Runtime, e.Message, ctx.Line, ctx.Column, e);
        }
        return ctx.Output.ToString();
    }
}

/// <summary>Converts System.Text.Json nodes to template values the way Python's <c>json.loads</c> would.</summary>
public static class JinjaJson
{
    /// <summary>
    /// JSON null → None, objects → insertion-ordered dicts, arrays → lists, and numbers → int when the
    /// literal has no fraction or exponent (<c>1</c>), float otherwise (<c>1.0</c>, <c>1e-5</c>).
    /// </summary>
    public static JinjaValue FromNode(JsonNode? node)
    {
        switch (node)
        {
            case null:
                return JinjaValue.None;
            case JsonObject obj:
            {
                var d = new JinjaDict(obj.Count);
                foreach (var kv in obj) d.Set(kv.Key, FromNode(kv.Value));
                return JinjaValue.FromDict(d);
            }
            case JsonArray arr:
            {
                var l = new JinjaList(arr.Count);
                foreach (var item in arr) l.Add(FromNode(item));
                return JinjaValue.FromList(l);
            }
            case JsonValue value:
                return FromValue(value);
        }
        throw new ArgumentException($"unsupported JSON node {node.GetType().Name}");
    }

    private static JinjaValue FromValue(JsonValue value)
    {
        if (value.TryGetValue(out JsonElement element)) return FromElement(element);
        switch (value.GetValueKind())
        {
            case JsonValueKind.String: return value.GetValue<string>();
            case JsonValueKind.True: return JinjaValue.True;
            case JsonValueKind.False: return JinjaValue.False;
            case JsonValueKind.Null: return JinjaValue.None;
            case JsonValueKind.Number:
                // CLR-typed values: floating types stay floats even when integral (C# 1.0 is Python 1.0).
                if (value.TryGetValue(out double d)) return d;
                if (value.TryGetValue(out float f)) return (double)f;
                if (value.TryGetValue(out decimal m)) return (double)m;
                return FromNumberText(value.ToJsonString());
        }
        return FromElement(JsonSerializer.SerializeToElement(value));
    }

    public static JinjaValue FromElement(JsonElement e)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Null:
            case JsonValueKind.Undefined: return JinjaValue.None;
            case JsonValueKind.True: return JinjaValue.True;
            case JsonValueKind.False: return JinjaValue.False;
            case JsonValueKind.String: return e.GetString()!;
            case JsonValueKind.Number: return FromNumberText(e.GetRawText());
            case JsonValueKind.Array:
            {
                var l = new JinjaList(e.GetArrayLength());
                foreach (var item in e.EnumerateArray()) l.Add(FromElement(item));
                return JinjaValue.FromList(l);
            }
            default:
            {
                var d = new JinjaDict();
                foreach (var p in e.EnumerateObject()) d.Set(p.Name, FromElement(p.Value));
                return JinjaValue.FromDict(d);
            }
        }
    }

    private static JinjaValue FromNumberText(string raw)
    {
        if (raw.AsSpan().IndexOfAny('.', 'e', 'E') < 0 &&
            long.TryParse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long l))
            return JinjaValue.FromInt(l);
        return double.Parse(raw, NumberStyles.Float, CultureInfo.InvariantCulture);
    }
}
