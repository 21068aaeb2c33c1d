using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Qwen3Sharp.Chat;
using Qwen3Sharp.Chat.Parsing;
using Qwen3Sharp.Engine;

namespace Qwen3Sharp.Server;

/// <summary>A validated chat completion request: what to run and how to answer.</summary>
internal sealed record ChatPlan(
    string Model,
    int N,
    bool Stream,
    bool IncludeUsage,
    bool ReturnReasoning,
    bool ParallelToolCalls,
    bool Logprobs,
    Func<int, ChatRequest> RequestFor);

/// <summary>POST /v1/chat/completions: binds and checks the body, maps it to <see cref="ChatRequest"/>s and writes the answer.</summary>
internal static class ChatCompletionsEndpoint
{
    public static async Task HandleAsync(HttpContext context)
    {
        var server = context.RequestServices.GetRequiredService<Qwen3ServerState>();
        ChatCompletionRequestDto dto = await Body.ReadAsync(context, ServerJson.Context.ChatCompletionRequestDto);
        ChatPlan plan = Plan(dto, server);
        PreparedChat[] prepared = Enumerable.Range(0, plan.N).Select(i => server.Chat.Prepare(plan.RequestFor(i))).ToArray();
        if (plan.Stream)
        {
            await StreamAsync(context, server, plan, prepared);
        }
        else
        {
            await CompleteAsync(context, server, plan, prepared);
        }
    }

    public static ChatPlan Plan(ChatCompletionRequestDto dto, Qwen3ServerState server)
    {
        ServerOptions options = server.Options;
        string model = server.ResolveModel(dto.Model);
        var messages = RequestFields.Messages(dto.Messages);
        var tools = RequestFields.Tools(dto.Tools);
        ToolChoice toolChoice = RequestFields.ToolChoice(dto.ToolChoice, tools);

        RequestFields.NotSupported(dto.Functions is not null, "functions", "it is deprecated; use 'tools'.");
        RequestFields.NotSupported(dto.FunctionCall is not null, "function_call", "it is deprecated; use 'tool_choice'.");
        RequestFields.NotSupported(dto.Audio is not null, "audio", "this model writes text only.");
        RequestFields.NotSupported(dto.Modalities?.Any(m => m is not System.Text.Json.Nodes.JsonValue v || !v.TryGetValue(out string? s) || s != "text") == true, "modalities", "this model writes text only.");
        RequestFields.NotSupported(dto.Prediction is not null, "prediction", "predicted outputs are not implemented.");
        RequestFields.NotSupported(dto.WebSearchOptions is not null, "web_search_options", "this server has no web search.");
        RequestFields.NotSupported(dto.Verbosity is not null, "verbosity", "the model has no verbosity control.");
        RequestFields.NotSupported(dto.Store == true, "store", "this server keeps no completions; send false or leave it out.");
        StructuredOutput? structured = RequestFields.ResponseFormat(dto.ResponseFormat, dto.StructuredOutputs, dto.Grammar);

        if (dto.ServiceTier is not (null or "auto" or "default" or "flex" or "scale" or "priority"))
        {
            throw new RequestValidationException($"'service_tier' must be auto, default, flex, scale or priority; got \"{dto.ServiceTier}\".", "service_tier", "invalid_value");
        }

        int n = RequestFields.AtLeast(dto.N, "n", 1) ?? 1;
        if (n > options.MaxChoices)
        {
            throw new RequestValidationException($"'n' must be at most {options.MaxChoices}; got {n}.", "n", "invalid_value");
        }

        bool stream = dto.Stream == true;
        bool includeUsage = RequestFields.IncludeUsage(stream, dto.StreamOptions);
        int? maxTokens = RequestFields.AtLeast(dto.MaxCompletionTokens, "max_completion_tokens", 0)
                         ?? RequestFields.AtLeast(dto.MaxTokens, "max_tokens", 0);
        int? topLogprobs = RequestFields.AtLeast(dto.TopLogprobs, "top_logprobs", 0);
        if (topLogprobs > 20)
        {
            throw new RequestValidationException($"'top_logprobs' must be at most 20; got {topLogprobs}.", "top_logprobs", "invalid_value");
        }

        if (topLogprobs > 0 && dto.Logprobs != true)
        {
            throw new RequestValidationException("'top_logprobs' needs 'logprobs' set to true.", "top_logprobs", "invalid_value");
        }

        int? thinkingBudget = RequestFields.AtLeast(dto.ThinkingBudget, "thinking_budget", 0) ?? options.DefaultThinkingBudget;
        var sampling = new SamplingOverrides
        {
            Temperature = RequestFields.Range(dto.Temperature, "temperature", 0, 2),
            TopP = RequestFields.Range(dto.TopP, "top_p", 0, 1, minExclusive: true),
            TopK = RequestFields.TopK(dto.TopK),
            MinP = RequestFields.Range(dto.MinP, "min_p", 0, 1),
            PresencePenalty = RequestFields.Range(dto.PresencePenalty, "presence_penalty", -2, 2),
            FrequencyPenalty = RequestFields.Range(dto.FrequencyPenalty, "frequency_penalty", -2, 2),
            RepetitionPenalty = RequestFields.RepetitionPenalty(dto.RepetitionPenalty),
            LogitBias = RequestFields.LogitBias(dto.LogitBias, server.Chat.Engine.VocabSize),
        };
        bool? thinking = RequestFields.Thinking(dto.EnableThinking, dto.ChatTemplateKwargs, dto.ReasoningEffort, options.DefaultEnableThinking);
        var kwargs = RequestFields.TemplateKwargs(options, dto.ChatTemplateKwargs);
        IReadOnlyList<string> stop = RequestFields.Stop(dto.Stop);
        RequestFields.NotSupported(dto.Metadata?.Any(p => p.Value is not System.Text.Json.Nodes.JsonValue v || !v.TryGetValue(out string? _)) == true,
            "metadata", "values must be strings.");

        ChatRequest RequestFor(int choice) => new()
        {
            Messages = choice == 0 ? messages : (System.Text.Json.Nodes.JsonArray)messages.DeepClone(),
            Tools = tools is null ? null : choice == 0 ? tools : (System.Text.Json.Nodes.JsonArray)tools.DeepClone(),
            ToolChoice = toolChoice,
            ParallelToolCalls = dto.ParallelToolCalls ?? true,
            EnableThinking = thinking,
            TemplateKwargs = kwargs,
            Sampling = sampling with { Seed = RequestFields.Seed(dto.Seed, choice) },
            MaxTokens = maxTokens,
            Stop = stop,
            TopLogprobs = dto.Logprobs == true ? topLogprobs ?? 0 : null,
            ThinkingBudget = thinkingBudget,
            ResponseFormat = structured,
        };

        return new ChatPlan(model, n, stream, includeUsage, dto.ReturnReasoning ?? true, dto.ParallelToolCalls ?? true,
            dto.Logprobs == true, RequestFor);
    }

    private static async Task CompleteAsync(HttpContext context, Qwen3ServerState server, ChatPlan plan, PreparedChat[] prepared)
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        Task<ChatResult>[] runs = prepared.Select(p => RunAsync(server.Chat, p, cancel)).ToArray();
        ChatResult[] results;
        try
        {
            results = await Task.WhenAll(runs);
        }
        catch
        {
            await cancel.CancelAsync();
            throw;
        }

        var usage = new UsageAccumulator();
        var choices = new List<ChatChoiceDto>(results.Length);
        for (int i = 0; i < results.Length; i++)
        {
            ChatResult r = results[i];
            usage.Add(r.Usage);
            IEnumerable<ParsedToolCall> calls = plan.ParallelToolCalls ? r.ToolCalls : r.ToolCalls.Take(1);
            var message = new ChatMessageDto
            {
                Content = r.Content.Length == 0 && r.ToolCalls.Count > 0 ? null : r.Content,
                ToolCalls = r.ToolCalls.Count == 0 ? null : calls.Select(c => new ToolCallDto
                {
                    Id = c.Id,
                    Type = "function",
                    Function = new FunctionCallDto { Name = c.Name, Arguments = c.Arguments },
                }).ToList(),
            };
            if (plan.ReturnReasoning && !string.IsNullOrEmpty(r.Reasoning))
            {
                server.SetReasoning(message, r.Reasoning);
            }

            choices.Add(new ChatChoiceDto
            {
                Index = i,
                Message = message,
                FinishReason = FinishReasonText(r.FinishReason),
                Logprobs = plan.Logprobs ? new ChatLogprobsDto { Content = r.Logprobs.Where(server.IsOutputToken).Select(Logprob).ToList() } : null,
            });
        }

        var response = new ChatCompletionResponse
        {
            Id = NewId(),
            Created = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            Model = plan.Model,
            SystemFingerprint = Qwen3ServerState.SystemFingerprint,
            Choices = choices,
            Usage = usage.ToDto(),
        };
        await context.Response.WriteAsJsonAsync(response, ServerJson.Context.ChatCompletionResponse, cancellationToken: context.RequestAborted);
    }

    private static async Task<ChatResult> RunAsync(ChatService chat, PreparedChat prepared, CancellationTokenSource cancel)
    {
        try
        {
            return await chat.CompleteAsync(prepared, cancel.Token);
        }
        catch
        {
            await cancel.CancelAsync();  // one failed choice ends its siblings
            throw;
        }
    }

    private static async Task StreamAsync(HttpContext context, Qwen3ServerState server, ChatPlan plan, PreparedChat[] prepared)
    {
        var sources = prepared.Select(p => (Func<CancellationToken, IAsyncEnumerable<ChatUpdate>>)(ct => server.Chat.StreamAsync(p, ct))).ToList();
        await using var merger = new StreamMerger<ChatUpdate>(sources, context.RequestAborted);
        await merger.StartAsync();

        var sse = new SseWriter(context);
        await sse.StartAsync();
        string id = NewId();
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        ChatCompletionChunk Chunk(int index, ChatDeltaDto delta, string? finish = null, ChatLogprobsDto? logprobs = null) => new()
        {
            Id = id,
            Created = created,
            Model = plan.Model,
            SystemFingerprint = Qwen3ServerState.SystemFingerprint,
            Choices = [new ChatChunkChoiceDto { Index = index, Delta = delta, FinishReason = finish, Logprobs = logprobs }],
        };

        for (int i = 0; i < plan.N; i++)
        {
            await sse.WriteAsync(Chunk(i, new ChatDeltaDto { Role = "assistant", Content = "" }), ServerJson.Context.ChatCompletionChunk);
        }

        var pending = new List<TokenLogprobDto>?[plan.N];
        var usage = new UsageAccumulator();
        try
        {
            await foreach ((int i, ChatUpdate update) in merger.ReadAllAsync())
            {
                ChatDeltaDto? delta = null;
                string? finish = null;
                switch (update)
                {
                    case TokenLogprobsUpdate l:
                        if (plan.Logprobs && server.IsOutputToken(l))
                        {
                            (pending[i] ??= []).Add(Logprob(l));
                        }

                        continue;
                    case ReasoningDelta r when plan.ReturnReasoning:
                        delta = new ChatDeltaDto();
                        server.SetReasoning(delta, r.Text);
                        break;
                    case ContentDelta c:
                        delta = new ChatDeltaDto { Content = c.Text };
                        break;
                    case ToolCallStarted s when plan.ParallelToolCalls || s.Index == 0:
                        delta = new ChatDeltaDto
                        {
                            ToolCalls = [new ToolCallDto { Index = s.Index, Id = s.Id, Type = "function", Function = new FunctionCallDto { Name = s.Name, Arguments = "" } }],
                        };
                        break;
                    case ToolCallArgumentsDelta a when plan.ParallelToolCalls || a.Index == 0:
                        delta = new ChatDeltaDto
                        {
                            ToolCalls = [new ToolCallDto { Index = a.Index, Function = new FunctionCallDto { Arguments = a.Fragment } }],
                        };
                        break;
                    case ChatFinished f:
                        usage.Add(f.Usage);
                        delta = new ChatDeltaDto();
                        finish = FinishReasonText(f.Reason);
                        break;
                    default:
                        continue;  // reasoning the client asked to omit, or a call beyond the first without parallel_tool_calls
                }

                ChatLogprobsDto? logprobs = pending[i] is { Count: > 0 } p ? new ChatLogprobsDto { Content = p } : null;
                pending[i] = null;
                await sse.WriteAsync(Chunk(i, delta, finish, logprobs), ServerJson.Context.ChatCompletionChunk);
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
            await sse.WriteAsync(new ChatCompletionChunk
            {
                Id = id,
                Created = created,
                Model = plan.Model,
                SystemFingerprint = Qwen3ServerState.SystemFingerprint,
                Choices = [],
                Usage = usage.ToDto(),
            }, ServerJson.Context.ChatCompletionChunk);
        }

        await sse.WriteDoneAsync();
    }

    internal static TokenLogprobDto Logprob(TokenLogprobsUpdate l) => new()
    {
        Token = l.TokenText,
        Logprob = Finite(l.Logprobs.Logprob),
        Bytes = Bytes(l.TokenBytes),
        TopLogprobs = l.Logprobs.Top.Select((t, k) => new TopLogprobDto
        {
            Token = l.TopTokenTexts[k],
            Logprob = Finite(t.Logprob),
            Bytes = Bytes(l.TopTokenBytes[k]),
        }).ToList(),
    };

    /// <summary>JSON has no -Infinity; vLLM reports -9999 for impossible tokens.</summary>
    internal static float Finite(float logprob) => float.IsFinite(logprob) ? logprob : -9999f;

    /// <summary>The token's raw bytes, not the UTF-8 of its decoded text: a token holding part of a character has no text of its own.</summary>
    private static int[] Bytes(byte[] bytes) => bytes.Select(b => (int)b).ToArray();

    internal static string FinishReasonText(ChatFinishReason reason) => reason switch
    {
        ChatFinishReason.Length => "length",
        ChatFinishReason.ToolCalls => "tool_calls",
        _ => "stop",
    };

    private static string NewId() => "chatcmpl-" + Guid.NewGuid().ToString("N");
}

/// <summary>
/// Usage over all choices: the prompt counted once (OpenAI), completions summed; cached prompt tokens are the most
/// any choice of that prompt found in the prefix cache.
/// </summary>
internal sealed class UsageAccumulator
{
    private int _prompt;
    private int _cached;
    private int _completion;
    private int _reasoning;

    public void Add(GenerationUsage usage)
    {
        _prompt = Math.Max(_prompt, usage.PromptTokens);
        _cached = Math.Max(_cached, usage.CachedPromptTokenCount);
        _completion += usage.CompletionTokens;
        _reasoning += usage.ReasoningTokens;
    }

    public void AddPrompt(int promptTokens, int cachedTokens)
    {
        _prompt += promptTokens;
        _cached += cachedTokens;
    }

    public void AddCompletion(int completionTokens) => _completion += completionTokens;

    public UsageDto ToDto() => new()
    {
        PromptTokens = _prompt,
        CompletionTokens = _completion,
        TotalTokens = _prompt + _completion,
        CompletionTokensDetails = new CompletionTokensDetailsDto { ReasoningTokens = _reasoning },
        PromptTokensDetails = new PromptTokensDetailsDto { CachedTokens = _cached },
    };
}
