using System.Diagnostics;
using System.Text.Json.Nodes;
using Qwen3Sharp.Structured;
using Qwen3Sharp.Tokenization;

namespace Qwen3Sharp.Bench;

/// <summary>
/// Structured-output mask cost over the real 151,936-token Qwen3 vocabulary (assets/qwen3-tokenizer), with Stopwatch
/// figures: the time to the first mask of a new schema (compile + matcher + first trie walk, as a request pays it), and
/// per generated token the mask + advance cost, for states met for the first time (a fresh matcher: every mask is a trie
/// walk; a request with a schema the server has not seen) and for states seen before (the same matcher again: every mask
/// comes from the per-state cache; a request repeating a schema, which the chat service's GrammarCache serves). The outputs are
/// what a model writes for these schemas, pretty-printed or compact, tokenized by the tokenizer. Each case also names its
/// heaviest step (the most trie nodes walked) and times that step alone on fresh matchers (min / median), a figure a busy
/// machine disturbs less than the single largest step. MASKS_TRACE=1 prints every step over 5 ms with its trie nodes,
/// the matcher's state count and the garbage collections during it.
/// Run: dotnet run -c Release --project bench/Qwen3Sharp.Bench -- masks [reps]
/// </summary>
internal static class StructuredMaskBench
{
    private const int VocabSize = 151936;

    private sealed record Case(string Name, Func<Qwen3Tokenizer, GNode> Grammar, string Output);

    private const string WeatherSchema = """
        {"type":"object","properties":{"location":{"type":"string","description":"City and country, e.g. Bogotá, Colombia"},
         "unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["location","unit"],"additionalProperties":false}
        """;

    private const string SearchSchema = """
        {"type":"object","properties":{"query":{"type":"string"},"max_results":{"type":"integer","minimum":1,"maximum":50},
         "sites":{"type":"array","items":{"type":"string"}}},"required":["query"],"additionalProperties":false}
        """;

    private const string UserSchema = """
        {"$defs":{"Address":{"type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"},
           "zip":{"type":"string","pattern":"^[0-9]{5}$"}},"required":["street","city","zip"],"additionalProperties":false},
          "Role":{"enum":["admin","editor","viewer"]}},
         "type":"object","properties":{"name":{"type":"string","minLength":1,"maxLength":80},"age":{"type":"integer","minimum":0,"maximum":150},
          "email":{"anyOf":[{"type":"string","format":"email"},{"type":"null"}]},"signup":{"type":"string","format":"date"},
          "tags":{"type":"array","items":{"type":"string"},"maxItems":8},"address":{"$ref":"#/$defs/Address"},"role":{"$ref":"#/$defs/Role"}},
         "required":["name","age","email","signup","tags","address","role"],"additionalProperties":false}
        """;

    private const string ReportSchema = """
        {"type":"object","properties":{"title":{"type":"string"},"summary":{"type":"string"},
          "findings":{"type":"array","items":{"type":"object","properties":{"claim":{"type":"string"},"confidence":{"type":"number"}},
          "required":["claim","confidence"],"additionalProperties":false}}},"required":["title","summary","findings"],"additionalProperties":false}
        """;

    private static GNode Schema(string json) => G.Seq(JsonSchemaCompiler.Ws, JsonSchemaCompiler.Compile(JsonNode.Parse(json), strict: true, out _));

    private static readonly Case[] Cases =
    [
        new("tool arguments (strict weather)", _ => Schema(WeatherSchema), """{"location": "Paris, France", "unit": "celsius"}"""),
        new("pydantic user ($defs, optional, formats)", _ => Schema(UserSchema), """
            {
              "name": "Ann Lee",
              "age": 34,
              "email": "ann.lee@example.com",
              "signup": "2024-03-18",
              "tags": ["beta", "newsletter"],
              "address": {
                "street": "12 Rue de Rivoli",
                "city": "Paris",
                "zip": "75004"
              },
              "role": "editor"
            }
            """),
        new("report (long free-text strings)", _ => Schema(ReportSchema), """
            {"title": "Quarterly energy use", "summary": "Consumption fell by about nine percent against the same quarter last year, mostly because the new heat pumps replaced the gas boilers in the two office buildings; the data centre's share grew slightly.",
             "findings": [{"claim": "Heat pumps cut gas use by roughly a third in the office buildings.", "confidence": 0.8},
              {"claim": "Cooling demand in the data centre rose with the July heat wave.", "confidence": 0.65}]}
            """),
        new("json_object (any object)", _ => G.Seq(JsonSchemaCompiler.Ws, JsonSchemaCompiler.AnyObject()), """
            {"order_id": 18234, "items": [{"sku": "A-113", "qty": 2, "price": 9.5}, {"sku": "B-7", "qty": 1, "price": 120.0}],
             "shipping": {"method": "express", "address": null}, "gift": false, "notes": "Leave at the door, please."}
            """),
        new("tool_choice required (2 functions)", t => ToolCallGrammar.Calls(
                [new ToolCallTarget("get_weather", JsonSchemaCompiler.Compile(JsonNode.Parse(WeatherSchema), true, out _)),
                 new ToolCallTarget("web_search", JsonSchemaCompiler.Compile(JsonNode.Parse(SearchSchema), true, out _))],
                new GToken(t.ToolCallStart!.Value), new GToken(t.ToolCallEnd!.Value), parallel: true),
            "<tool_call>\n{\"name\": \"web_search\", \"arguments\": {\"query\": \"heat pump efficiency winter\", \"max_results\": 5}}\n</tool_call>"),
    ];

    public static void Run(int reps)
    {
        string root = FindRepositoryRoot();
        var tokenizer = Qwen3Tokenizer.Load(Path.Combine(root, "assets", "qwen3-tokenizer"));
        long t0 = Stopwatch.GetTimestamp();
        TokenTrie trie = TokenTrie.FromTokenizer(tokenizer, VocabSize);
        double trieMs = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        int end = tokenizer.ImEnd!.Value;
        Console.WriteLine($"structured-output masks, vocabulary {VocabSize}; token trie built once per tokenizer in {trieMs:F0} ms; " +
            $"load {File.ReadAllText("/proc/loadavg").Trim()}; {reps} reps, medians");
        Console.WriteLine($"{"case",-42} {"tokens",6} {"first mask",11} {"new state/step",15} {"max step",9} {"repeat/step",12}  heaviest step: where, trie nodes walked; automaton states after the output");
        var logits = new float[VocabSize];
        var worst = new List<(Case, int[], int)>();

        foreach (Case c in Cases)
        {
            int[] ids = tokenizer.Encode(c.Output);
            var first = new List<double>();
            var fresh = new List<double>();
            var freshMax = new List<double>();
            var cached = new List<double>();
            string heaviest = "";
            int worstAt = 0;
            int states = 0;
            for (int r = 0; r < reps + 1; r++)   // the first repetition warms the JIT and is dropped
            {
                long start = Stopwatch.GetTimestamp();
                var matcher = new GrammarMatcher(c.Grammar(tokenizer), trie);
                var constraint = new TokenConstraint(matcher, [end], ConstraintStart.FirstToken);
                constraint.Prepare(TimeSpan.FromSeconds(30));
                double firstMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;

                (double total, double max, int heaviestAt, long heaviestEdges) = Walk(constraint, matcher, ids, end, logits);
                (double again, _, _, _) = Walk(new TokenConstraint(matcher, [end], ConstraintStart.FirstToken), matcher, ids, end, logits);
                if (r > 0)
                {
                    first.Add(firstMs);
                    fresh.Add(total / ids.Length);
                    freshMax.Add(max);
                    cached.Add(again / ids.Length);
                    worstAt = heaviestAt;
                    states = matcher.StateCount;
                    heaviest = $"#{heaviestAt} after {Quote(tokenizer.Decode(ids[..heaviestAt]), 12)}, {heaviestEdges:N0}";
                }
            }

            Console.WriteLine($"{c.Name,-42} {ids.Length,6} {Median(first),8:F2} ms {Median(fresh),12:F3} ms {Median(freshMax),6:F2} ms {Median(cached),9:F3} ms  {heaviest}; {states} states");
            worst.Add((c, ids, worstAt));
        }

        // The heaviest step again, alone: a fresh matcher is led to the state before it (advancing only), then that
        // state's mask is timed; repeated, so the figure is the step's cost rather than a scheduling accident.
        Console.WriteLine($"heaviest step of each case, recomputed on {4 * reps} fresh matchers: min / median");
        foreach ((Case c, int[] ids, int at) in worst)
        {
            var times = new List<double>();
            for (int r = 0; r < 4 * reps; r++)
            {
                var matcher = new GrammarMatcher(c.Grammar(tokenizer), trie);
                var constraint = new TokenConstraint(matcher, [end], ConstraintStart.FirstToken);
                foreach (int id in ids[..at])
                {
                    constraint.Accept(id);
                }

                logits.AsSpan().Fill(1f);
                long start = Stopwatch.GetTimestamp();
                constraint.Mask(logits);
                times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }

            Console.WriteLine($"{c.Name,-42} {times.Min(),8:F2} / {Median(times),6:F2} ms");
        }
    }

    /// <summary>
    /// Masks and advances over <paramref name="ids"/> then the end token; total and largest per-step milliseconds (logit
    /// refills excluded), and the heaviest step (the most trie nodes walked: the largest step on a quiet machine) with its node count.
    /// </summary>
    private static (double Total, double Max, int HeaviestAt, long HeaviestEdges) Walk(TokenConstraint constraint, GrammarMatcher matcher, int[] ids, int end, float[] logits)
    {
        double total = 0, max = 0;
        int heaviestAt = 0;
        long heaviestEdges = -1;
        for (int i = 0; i <= ids.Length; i++)
        {
            int id = i < ids.Length ? ids[i] : end;
            logits.AsSpan().Fill(1f);
            long edges = matcher.WalkedTrieNodes;
            int gc0 = GC.CollectionCount(0), gc1 = GC.CollectionCount(1), gc2 = GC.CollectionCount(2);
            long start = Stopwatch.GetTimestamp();
            constraint.Mask(logits);
            if (float.IsNegativeInfinity(logits[id]))
            {
                throw new InvalidOperationException($"the benchmark output is not valid for its grammar at token {i}");
            }

            constraint.Accept(id);
            double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if (ms > 5 && Environment.GetEnvironmentVariable("MASKS_TRACE") == "1")
            {
                Console.WriteLine($"  step {i}: {ms:F1} ms, {matcher.WalkedTrieNodes - edges} nodes, {matcher.StateCount} states, GCs {GC.CollectionCount(0) - gc0}/{GC.CollectionCount(1) - gc1}/{GC.CollectionCount(2) - gc2}");
            }

            total += ms;
            max = Math.Max(max, ms);
            if (matcher.WalkedTrieNodes - edges > heaviestEdges)
            {
                (heaviestAt, heaviestEdges) = (i, matcher.WalkedTrieNodes - edges);
            }
        }

        return (total, max, heaviestAt, heaviestEdges);
    }

    private static string Quote(string text, int tail) =>
        "\"…" + (text.Length > tail ? text[^tail..] : text).ReplaceLineEndings("⏎") + "\"";

    private static double Median(List<double> xs)
    {
        xs.Sort();
        return xs[xs.Count / 2];
    }

    private static string FindRepositoryRoot()
    {
        for (string? dir = AppContext.BaseDirectory; dir is not null; dir = Path.GetDirectoryName(dir))
        {
            if (Directory.Exists(Path.Combine(dir, "assets", "qwen3-tokenizer")))
            {
                return dir;
            }
        }

        throw new DirectoryNotFoundException("assets/qwen3-tokenizer not found above " + AppContext.BaseDirectory);
    }
}
