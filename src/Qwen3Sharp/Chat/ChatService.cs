using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json.Nodes;
using Qwen3Sharp.Chat.Parsing;
using Qwen3Sharp.Engine;
using Qwen3Sharp.Loading;
using Qwen3Sharp.Sampling;
using Qwen3Sharp.Tokenization;

namespace Qwen3Sharp.Chat;

/// <summary>Server-wide chat settings (the <c>qwen3 serve</c> flags).</summary>
public sealed record ChatServiceOptions
{
    /// <summary>Thinking when a request does not say (Qwen3's default: on).</summary>
    public bool DefaultEnableThinking { get; init; } = true;

    /// <summary>Template variables applied to every request, under the request's own.</summary>
    public IReadOnlyDictionary<string, JsonNode?> DefaultTemplateKwargs { get; init; } = new Dictionary<string, JsonNode?>();

    /// <summary>Reasoning tokens allowed when a request does not say; null = unlimited.</summary>
    public int? DefaultThinkingBudget { get; init; }

    /// <summary>Most time to compile a structured-output schema and compute its first token mask (else 400).</summary>
    public TimeSpan StructuredCompileTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Parse a &lt;tool_call&gt; written inside the reasoning as a call (off: it stays reasoning, as in vLLM).</summary>
    public bool ParseToolCallsInReasoning { get; init; }

    /// <summary>
    /// Shape every tool call under <c>tool_choice: auto</c> once the model opens one (llama.cpp's lazy tool grammar):
    /// the name is one of the offered functions and the arguments follow its <c>parameters</c> where that schema
    /// compiles (any JSON object where it does not). Off: only <c>strict</c> functions are shaped under auto, as in vLLM
    /// and OpenAI.
    /// </summary>
    public bool ConstrainToolCalls { get; init; } = true;
}

/// <summary>A chat request turned into what the engine runs.</summary>
public sealed record PreparedChat(
    string Prompt,
    IReadOnlyList<int> PromptTokens,
    bool Thinking,
    ChatParserOptions ParserOptions,
    GenerationRequest Generation);

/// <summary>
/// The chat layer between the engine and its adapters (HTTP endpoints, <see cref="Qwen3ChatClient"/>): renders the
/// model's chat template, picks sampling defaults by the effective thinking mode, runs the engine and splits what the
/// model writes into reasoning, answer and tool calls as it streams.
/// </summary>
public sealed class ChatService
{
    /// <summary>Qwen's documented early-stop text for a spent thinking budget.</summary>
    public const string ThinkingBudgetCloseText =
        "\n\nConsidering the limited time by the user, I have to give the solution based on the thinking directly now.\n</think>\n\n";

    private readonly GenerationConfig? _generationConfig;
    private readonly int[] _stopTokenIds;
    private readonly int[] _budgetCloseTokens;
    private readonly Lazy<Structured.TokenTrie> _trie;

    public ChatService(InferenceEngine engine, Qwen3Tokenizer tokenizer, ChatTemplate template,
        GenerationConfig? generationConfig, ChatServiceOptions? options = null)
    {
        Engine = engine;
        Tokenizer = tokenizer;
        Template = template;
        _generationConfig = generationConfig;
        Options = options ?? new ChatServiceOptions();
        var stops = new HashSet<int>(generationConfig?.EosTokenId ?? []);
        if (tokenizer.ImEnd is { } imEnd)
        {
            stops.Add(imEnd);
        }

        if (tokenizer.EndOfText is { } eot)
        {
            stops.Add(eot);
        }

        _stopTokenIds = [.. stops];
        _budgetCloseTokens = tokenizer.Encode(ThinkingBudgetCloseText);
        _trie = new Lazy<Structured.TokenTrie>(() => Structured.TokenTrie.FromTokenizer(tokenizer, engine.VocabSize));
    }

    /// <summary>Compiled structured-output and tool-call matchers by schema, shared by the requests that repeat one.</summary>
    public Structured.GrammarCache Grammars { get; } = new();

    /// <summary>The tokenizer's vocabulary as a byte trie (built on first use of structured output, or by <see cref="WarmUpStructuredOutput"/>).</summary>
    public Structured.TokenTrie TokenTrie => _trie.Value;

    /// <summary>Whether <see cref="TokenTrie"/> has been built.</summary>
    internal bool TokenTrieBuilt => _trie.IsValueCreated;

    /// <summary>
    /// The structured-output part of the start-up warm-up: builds <see cref="TokenTrie"/> and compiles a one-function
    /// tool-call grammar with its first masks, so that the first request with tools or a schema (every tools request is
    /// constrained under auto by default) does not pay them (~0.5 s on the demo model's full Qwen3 vocabulary, Zen 3).
    /// </summary>
    internal void WarmUpStructuredOutput()
    {
        if (Tokenizer.ToolCallStart is null)
        {
            _ = TokenTrie;
            return;
        }

        var request = new ChatRequest
        {
            Messages = [new JsonObject { ["role"] = "user", ["content"] = "warm-up" }],
            Tools = [new JsonObject
            {
                ["type"] = "function",
                ["function"] = new JsonObject
                {
                    ["name"] = "warm_up",
                    ["parameters"] = JsonNode.Parse("""{"type":"object","properties":{"text":{"type":"string"},"n":{"type":"integer"}},"required":["text"]}"""),
                },
            }],
            ToolChoice = new ToolChoice(ToolChoiceMode.Required),
        };
        _ = CompileToolConstraint(request, Structured.ConstraintStart.FirstToken);
    }

    /// <summary>
    /// Compiles a structured-output request to a token constraint and computes its first mask, within
    /// <see cref="ChatServiceOptions.StructuredCompileTimeout"/>. Throws <see cref="GenerationRequestException"/>.
    /// </summary>
    public Structured.TokenConstraint CompileConstraint(StructuredOutput format, Structured.ConstraintStart start)
    {
        Structured.TokenTrie trie = TokenTrie;   // built once per tokenizer, outside the schema's time
        long deadline = Deadline();
        string key = string.Join('\u0001', "format", format.Kind, format.Strict, format.Schema?.ToJsonString(), format.Pattern,
            string.Join('\u0002', format.Choices ?? []));
        try
        {
            if (Grammars.TryGet(key, out Structured.GrammarMatcher cached))
            {
                var again = new Structured.TokenConstraint(cached, _stopTokenIds, start, Tokenizer.ThinkStart ?? -1, Tokenizer.ThinkEnd ?? -1);
                again.Prepare(deadline);
                return again;
            }

            Structured.GNode value = format.Kind switch
            {
                StructuredOutputKind.JsonObject => Structured.JsonSchemaCompiler.AnyObject(),
                StructuredOutputKind.JsonSchema => Structured.JsonSchemaCompiler.Compile(format.Schema, format.Strict, out _),
                StructuredOutputKind.Regex => Structured.RegexCompiler.Compile("^(" + format.Pattern + ")$", jsonString: false),
                StructuredOutputKind.Grammar => Structured.GbnfCompiler.Compile(format.Pattern ?? ""),
                _ => Structured.G.Alt([.. (format.Choices ?? []).Select(Structured.G.Lit)]),
            };
            Structured.GNode root = format.Kind is StructuredOutputKind.JsonObject or StructuredOutputKind.JsonSchema
                ? Structured.G.Seq(Structured.JsonSchemaCompiler.Ws, value)
                : value;
            var matcher = new Structured.GrammarMatcher(root, trie);
            var constraint = new Structured.TokenConstraint(matcher, _stopTokenIds, start,
                Tokenizer.ThinkStart ?? -1, Tokenizer.ThinkEnd ?? -1);
            constraint.Prepare(deadline);
            Grammars.Add(key, matcher);
            return constraint;
        }
        catch (Structured.SchemaException ex)
        {
            throw new GenerationRequestException($"'{format.Param}': {ex.Message}", format.Param);
        }
        catch (Structured.GrammarTooComplexException ex)
        {
            throw TooComplex(format.Param, ex, "the schema");
        }
    }

    /// <summary>
    /// The constraint of a request's tool calls, or null when they are free: <c>required</c> and a named function make
    /// the whole answer calls (after the optional reasoning), each naming an offered function (the named one) with
    /// arguments valid against its <c>parameters</c>; under <c>auto</c>, every call is shaped once the model opens one
    /// (<see cref="ChatServiceOptions.ConstrainToolCalls"/>: an offered name, arguments against the schema, which a
    /// non-strict function's may fall back to any JSON object; off: only when a function has <c>strict: true</c>), and
    /// <c>parallel_tool_calls: false</c> ends the turn after the first call.
    /// </summary>
    public Structured.TokenConstraint? CompileToolConstraint(ChatRequest request, Structured.ConstraintStart start) =>
        CompileToolConstraint(request, start, Options.ConstrainToolCalls);

    private Structured.TokenConstraint? CompileToolConstraint(ChatRequest request, Structured.ConstraintStart start, bool shapeAuto)
    {
        if (request.Tools is not { Count: > 0 } tools || request.ToolChoice.Mode == ToolChoiceMode.None)
        {
            return null;
        }

        bool forced = request.ToolChoice.Mode is ToolChoiceMode.Required or ToolChoiceMode.Function;
        bool anyStrict = tools.Any(t => IsStrict(t?["function"]));
        bool shaped = forced || anyStrict || (shapeAuto && Tokenizer.ToolCallStart is not null);
        if (!shaped && request.ParallelToolCalls)
        {
            return null;
        }

        Structured.TokenTrie trie = TokenTrie;
        long deadline = Deadline();
        Structured.GNode open = Tokenizer.ToolCallStart is { } o ? new Structured.GToken(o) : Structured.G.Lit(ChatTags.ToolCallStart);
        Structured.GNode close = Tokenizer.ToolCallEnd is { } c ? new Structured.GToken(c) : Structured.G.Lit(ChatTags.ToolCallEnd);
        string param = "tools";
        int trigger = Tokenizer.ToolCallStart ?? -1;
        if (!forced && trigger < 0)
        {
            throw new GenerationRequestException("strict tools and 'parallel_tool_calls': false need a vocabulary with a <tool_call> token; this model's has none.", "tools");
        }

        string key = string.Join('\u0001', "tools", request.ToolChoice.Mode, request.ToolChoice.FunctionName, request.ParallelToolCalls, shaped, tools.ToJsonString());
        try
        {
            bool fresh = !Grammars.TryGet(key, out Structured.GrammarMatcher matcher);
            if (fresh)
            {
                var targets = new List<Structured.ToolCallTarget>();
                for (int i = 0; i < tools.Count; i++)
                {
                    JsonNode? fn = tools[i]?["function"];
                    string name = fn?["name"]?.GetValue<string>() ?? "";
                    if (request.ToolChoice.Mode == ToolChoiceMode.Function && name != request.ToolChoice.FunctionName)
                    {
                        continue;
                    }

                    param = $"tools[{i}].function.parameters";
                    bool strict = IsStrict(fn);
                    Structured.GNode arguments = (forced || strict) && fn?["parameters"] is JsonNode parameters
                        ? Structured.JsonSchemaCompiler.Compile(parameters, strict, out _)
                        : shaped ? LenientArguments(fn?["parameters"])
                        : Structured.JsonSchemaCompiler.AnyObject();
                    targets.Add(new Structured.ToolCallTarget(name, arguments));
                }

                param = "tools";
                if (targets.Count == 0)
                {
                    throw new GenerationRequestException($"'tool_choice' names function \"{request.ToolChoice.FunctionName}\", which is not in 'tools'.", "tool_choice");
                }

                Structured.GNode root = forced ? Structured.ToolCallGrammar.Calls(targets, open, close, request.ParallelToolCalls)
                    : shaped ? Structured.ToolCallGrammar.Body(targets, close)
                    : Structured.ToolCallGrammar.AnyBody(close);
                matcher = new Structured.GrammarMatcher(root, trie);
            }

            Structured.TokenConstraint constraint = forced
                ? new Structured.TokenConstraint(matcher, _stopTokenIds, start, Tokenizer.ThinkStart ?? -1, Tokenizer.ThinkEnd ?? -1)
                : new Structured.TokenConstraint(matcher, _stopTokenIds, start, Tokenizer.ThinkStart ?? -1, Tokenizer.ThinkEnd ?? -1,
                    trigger, repeat: request.ParallelToolCalls, triggerText: ChatTags.ToolCallStart);
            constraint.Prepare(deadline);
            if (fresh)
            {
                Grammars.Add(key, matcher);
            }

            return constraint;
        }
        catch (Structured.SchemaException ex)
        {
            throw new GenerationRequestException($"'{param}': {ex.Message}", param);
        }
        catch (Structured.GrammarTooComplexException) when (!forced && !anyStrict && shaped)
        {
            // shaped only by the server's default: schemas the client did not ask to be enforced leave the calls free
            return CompileToolConstraint(request, start, shapeAuto: false);
        }
        catch (Structured.GrammarTooComplexException ex)
        {
            throw TooComplex(param, ex, "the tools' schemas");
        }
    }

    private static bool IsStrict(JsonNode? function) => function?["strict"] is JsonValue v && v.TryGetValue(out bool b) && b;

    /// <summary>
    /// The arguments grammar of a non-strict function under auto: its schema with the keywords that can be enforced, or
    /// any JSON object when the schema is missing or does not compile. A request the template renders is never refused
    /// for a schema the client did not ask to be enforced.
    /// </summary>
    private static Structured.GNode LenientArguments(JsonNode? parameters)
    {
        if (parameters is JsonObject)
        {
            try
            {
                return Structured.JsonSchemaCompiler.Compile(parameters, strict: false, out _);
            }
            catch (Structured.SchemaException)
            {
            }
        }

        return Structured.JsonSchemaCompiler.AnyObject();
    }

    private long Deadline() =>
        System.Diagnostics.Stopwatch.GetTimestamp() + (long)(Options.StructuredCompileTimeout.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);

    private GenerationRequestException TooComplex(string param, Structured.GrammarTooComplexException ex, string what) =>
        new($"'{param}': {ex.Message} (limit {Options.StructuredCompileTimeout.TotalSeconds:0.###} s to compile and compute the first token mask); simplify {what}", param);

    public InferenceEngine Engine { get; }

    public Qwen3Tokenizer Tokenizer { get; }

    public ChatTemplate Template { get; }

    public ChatServiceOptions Options { get; }

    /// <summary>End-of-turn and end-of-text ids that end a generation.</summary>
    public IReadOnlyList<int> StopTokenIds => _stopTokenIds;

    /// <summary>The template variables for a request: server kwargs, then the request's, then its enable_thinking.</summary>
    public Dictionary<string, JsonNode?> TemplateVariables(ChatRequest request)
    {
        var vars = new Dictionary<string, JsonNode?>();
        foreach (var (k, v) in Options.DefaultTemplateKwargs)
        {
            vars[k] = v?.DeepClone();
        }

        if (request.TemplateKwargs is not null)
        {
            foreach (var (k, v) in request.TemplateKwargs)
            {
                vars[k] = v?.DeepClone();
            }
        }

        bool thinking = request.EnableThinking
            ?? (vars.TryGetValue("enable_thinking", out JsonNode? flag) && flag is JsonValue fv && fv.TryGetValue(out bool b) ? b : Options.DefaultEnableThinking);
        vars["enable_thinking"] = thinking;
        return vars;
    }

    /// <summary>Renders, tokenizes and sets up the generation of a request. Throws <see cref="GenerationRequestException"/> on bad input.</summary>
    public PreparedChat Prepare(ChatRequest request)
    {
        if (request.Messages.Count == 0)
        {
            throw new GenerationRequestException("messages must not be empty.", "messages");
        }

        Dictionary<string, JsonNode?> vars = TemplateVariables(request);
        bool flag = vars["enable_thinking"]!.GetValue<bool>();
        bool thinking = flag && SoftSwitch(request.Messages) != false;
        bool toolsOn = request.Tools is { Count: > 0 } && request.ToolChoice.Mode != ToolChoiceMode.None;
        string prompt;
        try
        {
            prompt = Template.Render(request.Messages, toolsOn ? request.Tools : null, addGenerationPrompt: true, vars);
        }
        catch (ChatTemplateException ex)
        {
            throw new GenerationRequestException($"The chat template could not render these messages: {ex.Message}", "messages");
        }

        ChatParserOptions parser = ChatParserOptions.ForPrompt(prompt, toolsOn, Options.ParseToolCallsInReasoning);
        int[] tokens = Tokenizer.Encode(prompt);
        int? budget = request.ThinkingBudget ?? Options.DefaultThinkingBudget;
        var generation = new GenerationRequest
        {
            PromptTokens = tokens,
            Sampling = SamplingFor(request.Sampling, thinking),
            MaxTokens = request.MaxTokens,
            StopStrings = request.Stop,
            StopTokenIds = _stopTokenIds,
            SkipSpecialTokens = true,
            TopLogprobs = request.TopLogprobs,
            StartsInsideReasoning = parser.StartsInsideReasoning,
            ThinkingBudget = budget is { } max && thinking ? new ThinkingBudget(max, _budgetCloseTokens) : null,
            Constraint = Constraint(request, toolsOn, !thinking ? Structured.ConstraintStart.FirstToken
                : parser.StartsInsideReasoning ? Structured.ConstraintStart.AfterReasoning
                : Structured.ConstraintStart.AfterOptionalReasoning),
        };
        return new PreparedChat(prompt, tokens, thinking, parser, generation);
    }

    /// <summary>Streams one answer: reasoning, content and tool-call deltas, then <see cref="ChatFinished"/>.</summary>
    public async IAsyncEnumerable<ChatUpdate> StreamAsync(ChatRequest request,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        PreparedChat prepared = Prepare(request);
        await foreach (ChatUpdate u in StreamAsync(prepared, cancellationToken))
        {
            yield return u;
        }
    }

    public async IAsyncEnumerable<ChatUpdate> StreamAsync(PreparedChat prepared,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var parser = new ChatStreamParser(prepared.ParserOptions);
        var deltas = new List<ChatDelta>();
        bool sawToolCall = false;

        await foreach (GenerationEvent e in Engine.GenerateAsync(prepared.Generation, cancellationToken))
        {
            switch (e)
            {
                case TokenGenerated t:
                    if (t.Logprobs is { } lp)
                    {
                        yield return LogprobsUpdate(lp);
                    }

                    parser.Append(t.TextDelta, deltas);
                    break;
                case GenerationFinished f:
                    parser.Append(f.TextDelta, deltas);
                    parser.Finish(deltas);
                    foreach (ChatUpdate u in Drain(deltas))
                    {
                        sawToolCall |= u is ToolCallStarted;
                        yield return u;
                    }

                    ChatFinishReason reason = f.Reason switch
                    {
                        FinishReason.Length => ChatFinishReason.Length,
                        FinishReason.Cancelled => ChatFinishReason.Cancelled,
                        _ => sawToolCall ? ChatFinishReason.ToolCalls : ChatFinishReason.Stop,
                    };
                    yield return new ChatFinished(reason, f.Usage);
                    yield break;
            }

            foreach (ChatUpdate u in Drain(deltas))
            {
                sawToolCall |= u is ToolCallStarted;
                yield return u;
            }
        }
    }

    /// <summary>Generates a whole answer.</summary>
    public async Task<ChatResult> CompleteAsync(ChatRequest request, CancellationToken cancellationToken = default) =>
        await CompleteAsync(Prepare(request), cancellationToken);

    public async Task<ChatResult> CompleteAsync(PreparedChat prepared, CancellationToken cancellationToken = default)
    {
        var reasoning = new StringBuilder();
        var content = new StringBuilder();
        var calls = new List<(string Id, string Name, StringBuilder Arguments)>();
        var logprobs = new List<TokenLogprobsUpdate>();
        bool anyReasoning = false;
        ChatFinished? finished = null;
        await foreach (ChatUpdate u in StreamAsync(prepared, cancellationToken))
        {
            switch (u)
            {
                case ReasoningDelta d: reasoning.Append(d.Text); anyReasoning = true; break;
                case ContentDelta d: content.Append(d.Text); break;
                case ToolCallStarted s: calls.Add((s.Id, s.Name, new StringBuilder())); break;
                case ToolCallArgumentsDelta a: calls[a.Index].Arguments.Append(a.Fragment); break;
                case TokenLogprobsUpdate l: logprobs.Add(l); break;
                case ChatFinished f: finished = f; break;
            }
        }

        return new ChatResult(
            anyReasoning || prepared.Thinking ? reasoning.ToString() : null,
            content.ToString(),
            calls.Select(c => new ParsedToolCall(c.Id, c.Name, c.Arguments.ToString())).ToList(),
            finished!.Reason,
            finished.Usage,
            logprobs);
    }

    private IEnumerable<ChatUpdate> Drain(List<ChatDelta> deltas)
    {
        foreach (ChatDelta d in deltas)
        {
            switch (d.Kind)
            {
                case ChatDeltaKind.Reasoning when d.Text.Length > 0: yield return new ReasoningDelta(d.Text); break;
                case ChatDeltaKind.Content when d.Text.Length > 0: yield return new ContentDelta(d.Text); break;
                case ChatDeltaKind.ToolCallStart: yield return new ToolCallStarted(d.ToolCallIndex, d.ToolCallId!, d.ToolCallName!); break;
                case ChatDeltaKind.ToolCallArguments: yield return new ToolCallArgumentsDelta(d.ToolCallIndex, d.Text); break;
            }
        }

        deltas.Clear();
    }

    private TokenLogprobsUpdate LogprobsUpdate(TokenLogprobs lp) =>
        new(Tokenizer.Decode([lp.TokenId]), lp, lp.Top.Select(t => Tokenizer.Decode([t.TokenId])).ToList(),
            Tokenizer.TokenBytes(lp.TokenId), lp.Top.Select(t => Tokenizer.TokenBytes(t.TokenId)).ToList());

    /// <summary>The sampling settings for a request: the model's and the mode's defaults under the request's overrides.</summary>
    public SamplingParams SamplingFor(SamplingOverrides o, bool thinking)
    {
        SamplingParams d = SamplingDefaults.Resolve(thinking, _generationConfig is { } g
            ? new ModelSamplingDefaults
            {
                DoSample = g.DoSample,
                Temperature = (float?)g.Temperature,
                TopP = (float?)g.TopP,
                TopK = g.TopK,
                MinP = (float?)g.MinP,
                RepetitionPenalty = (float?)g.RepetitionPenalty,
                PresencePenalty = (float?)g.PresencePenalty,
                FrequencyPenalty = (float?)g.FrequencyPenalty,
            }
            : null);
        return d with
        {
            Temperature = o.Temperature ?? d.Temperature,
            TopP = o.TopP ?? d.TopP,
            TopK = o.TopK ?? d.TopK,
            MinP = o.MinP ?? d.MinP,
            PresencePenalty = o.PresencePenalty ?? d.PresencePenalty,
            FrequencyPenalty = o.FrequencyPenalty ?? d.FrequencyPenalty,
            RepetitionPenalty = o.RepetitionPenalty ?? d.RepetitionPenalty,
            Seed = o.Seed ?? d.Seed,
            LogitBias = o.LogitBias ?? d.LogitBias,
        };
    }

    /// <summary>The latest <c>/think</c> or <c>/no_think</c> in user or system messages: true, false, or null if none.</summary>
    internal static bool? SoftSwitch(JsonArray messages)
    {
        bool? latest = null;
        foreach (JsonNode? m in messages)
        {
            if (m?["role"]?.GetValue<string>() is not ("user" or "system") || m["content"] is not JsonValue v
                || !v.TryGetValue(out string? text))
            {
                continue;
            }

            int think = text.LastIndexOf("/think", StringComparison.Ordinal);
            int noThink = text.LastIndexOf("/no_think", StringComparison.Ordinal);
            if (think >= 0 || noThink >= 0)
            {
                latest = think > noThink;
            }
        }

        return latest;
    }

    /// <summary>
    /// The request's constraint: a forced tool call (required / named) over response_format, which applies to a
    /// content answer; response_format over the auto-mode tool constraint (a JSON answer leaves no room for a call).
    /// </summary>
    private Structured.TokenConstraint? Constraint(ChatRequest request, bool toolsOn, Structured.ConstraintStart start)
    {
        bool forcedCall = toolsOn && request.ToolChoice.Mode is ToolChoiceMode.Required or ToolChoiceMode.Function;
        if (!forcedCall && request.ResponseFormat is { } format)
        {
            return CompileConstraint(format, start);
        }

        return toolsOn ? CompileToolConstraint(request, start) : null;
    }
}
