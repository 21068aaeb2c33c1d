using System.Text.Encodings.Web;
using System.Text.Json;

namespace Qwen3Sharp.Structured;

/// <summary>A function a tool call may name, with the grammar of its <c>arguments</c> value.</summary>
public sealed record ToolCallTarget(string Name, GNode Arguments);

/// <summary>
/// Grammars of Qwen3's Hermes tool calls, byte for byte as its chat template writes them (and as
/// <see cref="Chat.Parsing.HermesToolCall"/> reads them): <c>&lt;tool_call&gt;\n{"name": "NAME", "arguments": ARGS}\n&lt;/tool_call&gt;</c>,
/// calls separated by <c>\n</c>. The tags are passed in as nodes: the added tokens by id when the vocabulary has them.
/// </summary>
public static class ToolCallGrammar
{
    private static readonly JsonSerializerOptions RawText = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>What follows the opening tag: <c>\n{"name": "…", "arguments": …}\n&lt;/tool_call&gt;</c>, one branch per target.</summary>
    public static GNode Body(IReadOnlyList<ToolCallTarget> targets, GNode callEnd)
    {
        if (targets.Count == 0)
        {
            throw new ArgumentException("a tool call needs at least one function to name", nameof(targets));
        }

        GNode[] branches = [.. targets.Select(t => G.Seq(G.Lit(JsonStringContent(t.Name) + "\", \"arguments\": "), t.Arguments))];
        return G.Seq(G.Lit("\n{\"name\": \""), G.Alt(branches), G.Lit("}\n"), callEnd);
    }

    /// <summary>
    /// A whole answer of calls: bounded whitespace, one call, then (<paramref name="parallel"/>) any number of further
    /// calls, each after <c>\n</c>.
    /// </summary>
    public static GNode Calls(IReadOnlyList<ToolCallTarget> targets, GNode callStart, GNode callEnd, bool parallel)
    {
        GNode call = G.Seq(callStart, Body(targets, callEnd));
        return G.Seq(JsonSchemaCompiler.Ws, call, parallel ? G.Star(G.Seq(G.Lit("\n"), call)) : G.Empty);
    }

    /// <summary>An unconstrained call body: any bytes up to the closing tag (to count calls without shaping them).</summary>
    public static GNode AnyBody(GNode callEnd) => G.Seq(G.Star(G.Bytes((0, 255))), callEnd);

    /// <summary>The JSON string literal of <paramref name="text"/> without its quotes (escaped only where JSON requires, as the template's raw name reads).</summary>
    private static string JsonStringContent(string text)
    {
        string quoted = JsonSerializer.Serialize(text, RawText);
        return quoted[1..^1];
    }
}
