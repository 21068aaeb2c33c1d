using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Qwen3Sharp.Chat;
using Qwen3Sharp.Engine;

namespace Qwen3Sharp.Server;

/// <summary>
/// POST /v1/completions: a raw prompt continued by the engine, with no chat template and no reasoning parser.
/// Prompts come in OpenAI's four shapes; choice <c>p * n + i</c> is the i-th sample of prompt p.
/// </summary>
internal static class CompletionsEndpoint
{
    /// <summary>Most prompts × n in one request.</summary>
    public const int MaxGenerations = 64;

    private sealed record Prompt(int[] Tokens, string Text);

    private sealed record Plan(string Model, IReadOnlyList<Prompt> Prompts, int N, bool Stream, bool IncludeUsage, bool Echo,
        int? Logprobs, IReadOnlyList<GenerationRequest> Generations);

    public static async Task HandleAsync(HttpContext context)
    {
        var server = context.RequestServices.GetRequiredService<Qwen3ServerState>();
        CompletionRequestDto dto = await Body.ReadAsync(context, ServerJson.Context.CompletionRequestDto);
        Plan plan = MakePlan(dto, server);
        if (plan.Stream)
        {
            await StreamAsync(context, server, plan);
        }
        else
        {
            await CompleteAsync(context, server, plan);
        }
    }

    private static Plan MakePlan(CompletionRequestDto dto, Qwen3ServerState server)
    {
        ChatService chat = server.Chat;
        string model = server.ResolveModel(dto.Model);
        IReadOnlyList<Prompt> prompts = Prompts(dto.Prompt, server);
        RequestFields.NotSupported(!string.IsNullOrEmpty(dto.Suffix), "suffix", "insertion (fill-in-the-middle) is not implemented.");
        int n = RequestFields.AtLeast(dto.N, "n", 1) ?? 1;
        if (n > server.Options.MaxChoices)
        {
            throw new RequestValidationException($"'n' must be at most {server.Options.MaxChoices}; got {n}.", "n", "invalid_value");
        }

        if (dto.BestOf is { } bestOf && bestOf != n)
        {
            throw new RequestValidationException(
                $"'best_of' other than n is not supported (this server does not rank candidates); got best_of={bestOf}, n={n}.", "best_of", "unsupported_value");
        }

        if (prompts.Count * n > MaxGenerations)
        {
            throw new RequestValidationException($"At most {MaxGenerations} prompts × n per request; got {prompts.Count * n}.", "prompt", "invalid_value");
        }

        bool echo = dto.Echo == true;
        int? logprobs = RequestFields.AtLeast(dto.Logprobs, "logprobs", 0);
        if (logprobs > 20)
        {
            throw new RequestValidationException($"'logprobs' must be at most 20; got {logprobs}.", "logprobs", "invalid_value");
        }

        RequestFields.NotSupported(echo && logprobs is not null, "logprobs",
            "with 'echo' it asks for prompt logprobs, which this engine does not compute.");
        bool stream = dto.Stream == true;
        bool includeUsage = RequestFields.IncludeUsage(stream, dto.StreamOptions);
        int maxTokens = RequestFields.AtLeast(dto.MaxTokens, "max_tokens", 0) ?? 16;  // OpenAI's default
        var sampling = new SamplingOverrides
        {
            Temperature = RequestFields.Range(dto.Temperature, "temperature", 0, 2),
            TopP = RequestFields.Range(dto.TopP, "top_p", 0, 1, minExclusive: true),
            TopK = RequestFields.TopK(dto.TopK),
            MinP = RequestFields.Range(dto.MinP, "min_p", 0, 1),
            PresencePenalty = RequestFields.Range(dto.PresencePenalty, "presence_penalty", -2, 2),
            FrequencyPenalty = RequestFields.Range(dto.FrequencyPenalty, "frequency_penalty", -2, 2),
            RepetitionPenalty = RequestFields.RepetitionPenalty(dto.RepetitionPenalty),
            LogitBias = RequestFields.LogitBias(dto.LogitBias, chat.Engine.VocabSize),
        };
        IReadOnlyList<string> stop = RequestFields.Stop(dto.Stop);

        var generations = new List<GenerationRequest>(prompts.Count * n);
        foreach (Prompt p in prompts)
        {
            for (int i = 0; i < n; i++)
            {
                generations.Add(new GenerationRequest
                {
                    PromptTokens = p.Tokens,
                    Sampling = chat.SamplingFor(sampling with { Seed = RequestFields.Seed(dto.Seed, i) }, thinking: false),
                    MaxTokens = maxTokens,
                    StopStrings = stop,
                    StopTokenIds = chat.StopTokenIds.ToArray(),
                    SkipSpecialTokens = true,
                    TopLogprobs = logprobs,
                });
            }
        }

        return new Plan(model, prompts, n, stream, includeUsage, echo, logprobs, generations);
    }

    /// <summary>OpenAI's prompt shapes: a string, strings, token ids, or arrays of token ids.</summary>
    private static IReadOnlyList<Prompt> Prompts(JsonNode? prompt, Qwen3ServerState server)
    {
        var tokenizer = server.Chat.Tokenizer;
        switch (prompt)
        {
            case null:
                throw new RequestValidationException("'prompt' is required.", "prompt", "missing_required_parameter");
            case JsonValue v when v.TryGetValue(out string? text):
                return [new Prompt(tokenizer.Encode(text), text)];
            case JsonArray { Count: 0 }:
                throw new RequestValidationException("'prompt' must not be an empty array.", "prompt", "invalid_value");
            case JsonArray a when a.All(x => x is JsonValue xv && xv.TryGetValue(out string? _)):
                return a.Select(x => (string)x!).Select(text => new Prompt(tokenizer.Encode(text), text)).ToList();
            case JsonArray a when a.All(x => x is JsonValue):
                int[] ids = TokenIds(a, "prompt", server);
                return [new Prompt(ids, tokenizer.Decode(ids))];
            case JsonArray a when a.All(x => x is JsonArray):
                return a.Select((x, i) => TokenIds((JsonArray)x!, $"prompt[{i}]", server))
                    .Select(ids => new Prompt(ids, tokenizer.Decode(ids))).ToList();
            default:
                throw new RequestValidationException(
                    "'prompt' must be a string, an array of strings, an array of token ids or an array of token-id arrays.", "prompt", "invalid_type");
        }
    }

    private static int[] TokenIds(JsonArray array, string param, Qwen3ServerState server)
    {
        int vocab = server.Chat.Engine.VocabSize;
        var ids = new int[array.Count];
        for (int i = 0; i < ids.Length; i++)
        {
            if (array[i] is not JsonValue v || !v.TryGetValue(out int id) || (uint)id >= (uint)vocab)
            {
                throw new RequestValidationException($"'{param}[{i}]' must be a token id in 0..{vocab - 1}.", param, "invalid_value");
            }

            ids[i] = id;
        }

        return ids;
    }

    private static async Task CompleteAsync(HttpContext context, Qwen3ServerState server, Plan plan)
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        var outputs = plan.Generations.Select((g, k) => new ChoiceOutput(server, plan, k)).ToArray();
        Task[] runs = plan.Generations.Select((g, k) => RunAsync(server, g, outputs[k], cancel)).ToArray();
        try
        {
            await Task.WhenAll(runs);
        }
        catch
        {
            await cancel.CancelAsync();
            throw;
        }

        var usage = new UsageAccumulator();
        for (int i = 0; i < plan.Prompts.Count; i++)
        {
            usage.AddPrompt(plan.Prompts[i].Tokens.Length, CachedTokens(outputs, plan.N, i));
        }

        foreach (ChoiceOutput o in outputs)
        {
            usage.AddCompletion(o.CompletionTokens);
        }

        var response = new CompletionResponse
        {
            Id = NewId(),
            Created = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            Model = plan.Model,
            SystemFingerprint = Qwen3ServerState.SystemFingerprint,
            Choices = outputs.Select((o, k) => new CompletionChoiceDto
            {
                Index = k,
                Text = o.Text.ToString(),
                Logprobs = o.Logprobs,
                FinishReason = o.FinishReason,
            }).ToList(),
            Usage = usage.ToDto(),
        };
        await context.Response.WriteAsJsonAsync(response, ServerJson.Context.CompletionResponse, cancellationToken: context.RequestAborted);
    }

    private static async Task RunAsync(Qwen3ServerState server, GenerationRequest generation, ChoiceOutput output, CancellationTokenSource cancel)
    {
        try
        {
            await foreach (GenerationEvent e in server.Chat.Engine.GenerateAsync(generation, cancel.Token))
            {
                output.Add(e);
            }
        }
        catch
        {
            await cancel.CancelAsync();
            throw;
        }
    }

    private static async Task StreamAsync(HttpContext context, Qwen3ServerState server, Plan plan)
    {
        ChatService chat = server.Chat;
        var sources = plan.Generations
            .Select(g => (Func<CancellationToken, IAsyncEnumerable<GenerationEvent>>)(ct => chat.Engine.GenerateAsync(g, ct))).ToList();
        await using var merger = new StreamMerger<GenerationEvent>(sources, context.RequestAborted);
        await merger.StartAsync();

        var sse = new SseWriter(context);
        await sse.StartAsync();
        string id = NewId();
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        CompletionResponse Chunk(int index, string text, CompletionLogprobsDto? logprobs, string? finish) => new()
        {
            Id = id,
            Created = created,
            Model = plan.Model,
            SystemFingerprint = Qwen3ServerState.SystemFingerprint,
            Choices = [new CompletionChoiceDto { Index = index, Text = text, Logprobs = logprobs, FinishReason = finish }],
        };

        var outputs = plan.Generations.Select((g, k) => new ChoiceOutput(server, plan, k)).ToArray();
        if (plan.Echo)
        {
            for (int k = 0; k < outputs.Length; k++)
            {
                await sse.WriteAsync(Chunk(k, plan.Prompts[k / plan.N].Text, null, null), ServerJson.Context.CompletionResponse);
            }
        }

        try
        {
            await foreach ((int k, GenerationEvent e) in merger.ReadAllAsync())
            {
                ChoiceOutput o = outputs[k];
                int logprobsBefore = o.Logprobs?.Tokens.Count ?? 0;
                string text = o.Add(e);
                CompletionLogprobsDto? logprobs = o.Logprobs is { } all && all.Tokens.Count > logprobsBefore ? all.Since(logprobsBefore) : null;
                if (e is GenerationFinished || text.Length > 0 || logprobs is not null)
                {
                    await sse.WriteAsync(Chunk(k, text, logprobs, o.FinishReason), ServerJson.Context.CompletionResponse);
                }
            }
        }
        catch (Exception ex) when (!context.RequestAborted.IsCancellationRequested && ex is not OperationCanceledException)
        {
            await sse.WriteAsync(ErrorMapper.ToBody(ErrorMapper.Map(ex, context)), ServerJson.Context.ErrorResponse);
            await sse.WriteDoneAsync();
            return;
        }

        if (plan.IncludeUsage)
        {
            var usage = new UsageAccumulator();
            for (int i = 0; i < plan.Prompts.Count; i++)
            {
                usage.AddPrompt(plan.Prompts[i].Tokens.Length, CachedTokens(outputs, plan.N, i));
            }

            foreach (ChoiceOutput o in outputs)
            {
                usage.AddCompletion(o.CompletionTokens);
            }

            await sse.WriteAsync(new CompletionResponse
            {
                Id = id,
                Created = created,
                Model = plan.Model,
                SystemFingerprint = Qwen3ServerState.SystemFingerprint,
                Choices = [],
                Usage = usage.ToDto(),
            }, ServerJson.Context.CompletionResponse);
        }

        await sse.WriteDoneAsync();
    }

    private static string NewId() => "cmpl-" + Guid.NewGuid().ToString("N");

    /// <summary>The most prompt tokens any of prompt <paramref name="prompt"/>'s <paramref name="n"/> choices found cached.</summary>
    private static int CachedTokens(ChoiceOutput[] outputs, int n, int prompt)
    {
        int cached = 0;
        for (int k = prompt * n; k < (prompt + 1) * n; k++)
        {
            cached = Math.Max(cached, outputs[k].CachedPromptTokens);
        }

        return cached;
    }

    /// <summary>One choice's text, logprobs and finish as its events come in.</summary>
    private sealed class ChoiceOutput
    {
        private readonly Qwen3ServerState _server;
        private int _tokenTextLength;

        public ChoiceOutput(Qwen3ServerState server, Plan plan, int index)
        {
            _server = server;
            if (plan.Echo)
            {
                Text.Append(plan.Prompts[index / plan.N].Text);
            }

            _tokenTextLength = Text.Length;
            Logprobs = plan.Logprobs is null ? null : new CompletionLogprobsDto();
        }

        public StringBuilder Text { get; } = new();

        public CompletionLogprobsDto? Logprobs { get; }

        public string? FinishReason { get; private set; }

        public int CompletionTokens { get; private set; }

        public int CachedPromptTokens { get; private set; }

        /// <summary>Takes an event; returns the text it adds.</summary>
        public string Add(GenerationEvent e)
        {
            switch (e)
            {
                case TokenGenerated t:
                    if (Logprobs is not null && t.Logprobs is { } lp && !_server.IsStopToken(t.TokenId))
                    {
                        string token = _server.Chat.Tokenizer.Decode([t.TokenId]);
                        Logprobs.Tokens.Add(token);
                        Logprobs.TokenLogprobs.Add(ChatCompletionsEndpoint.Finite(lp.Logprob));
                        var top = new Dictionary<string, float>();
                        foreach (var alternative in lp.Top)
                        {
                            top.TryAdd(_server.Chat.Tokenizer.Decode([alternative.TokenId]), ChatCompletionsEndpoint.Finite(alternative.Logprob));
                        }

                        Logprobs.TopLogprobs.Add(top);
                        Logprobs.TextOffset.Add(_tokenTextLength);
                        _tokenTextLength += token.Length;
                    }

                    Text.Append(t.TextDelta);
                    return t.TextDelta;
                case GenerationFinished f:
                    CompletionTokens = f.Usage.CompletionTokens;
                    CachedPromptTokens = f.Usage.CachedPromptTokenCount;
                    FinishReason = f.Reason == Engine.FinishReason.Length ? "length" : "stop";
                    Text.Append(f.TextDelta);
                    return f.TextDelta;
                default:
                    return "";
            }
        }
    }
}

internal static class CompletionLogprobsExtensions
{
    public static CompletionLogprobsDto Since(this CompletionLogprobsDto all, int start) => new()
    {
        Tokens = all.Tokens[start..],
        TokenLogprobs = all.TokenLogprobs[start..],
        TopLogprobs = all.TopLogprobs[start..],
        TextOffset = all.TextOffset[start..],
    };
}
