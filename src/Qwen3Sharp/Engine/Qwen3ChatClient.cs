using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using Qwen3Sharp.Chat;
using AIChatFinishReason = Microsoft.Extensions.AI.ChatFinishReason;
using ChatFinishReason = Qwen3Sharp.Chat.ChatFinishReason;

namespace Qwen3Sharp.Engine;

/// <summary>
/// The engine as a Microsoft.Extensions.AI <see cref="IChatClient"/>, for .NET apps that embed Qwen3 without HTTP.
/// Reasoning comes back as <see cref="TextReasoningContent"/>, tool calls as <see cref="FunctionCallContent"/>.
/// Thinking follows <see cref="ChatOptions.Reasoning"/> (effort None = off; output None = reasoning omitted) or
/// <c>AdditionalProperties["enable_thinking"]</c>; <c>top_k</c>, <c>min_p</c>, <c>repetition_penalty</c>,
/// <c>thinking_budget</c> and <c>chat_template_kwargs</c> may also be given there.
/// </summary>
public sealed class Qwen3ChatClient(ChatService chat, string modelId) : IChatClient
{
    public ChatClientMetadata Metadata { get; } = new("qwen3sharp", null, modelId);

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ChatRequest request = ToRequest(messages, options, out bool returnReasoning);
        ChatResult result = await chat.CompleteAsync(request, cancellationToken);
        var contents = new List<AIContent>();
        if (returnReasoning && !string.IsNullOrEmpty(result.Reasoning))
        {
            contents.Add(new TextReasoningContent(result.Reasoning));
        }

        if (result.Content.Length > 0)
        {
            contents.Add(new TextContent(result.Content));
        }

        foreach (Chat.Parsing.ParsedToolCall call in result.ToolCalls)
        {
            contents.Add(ToFunctionCall(call.Id, call.Name, call.Arguments));
        }

        return new ChatResponse(new ChatMessage(ChatRole.Assistant, contents))
        {
            ModelId = modelId,
            CreatedAt = DateTimeOffset.UtcNow,
            FinishReason = ToFinishReason(result.FinishReason),
            Usage = ToUsage(result.Usage),
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages,
        ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ChatRequest request = ToRequest(messages, options, out bool returnReasoning);
        string responseId = "chatcmpl-" + Guid.NewGuid().ToString("N");
        var calls = new List<(string Id, string Name, System.Text.StringBuilder Arguments)>();
        await foreach (ChatUpdate u in chat.StreamAsync(request, cancellationToken))
        {
            AIContent? content = null;
            switch (u)
            {
                case ReasoningDelta r when returnReasoning: content = new TextReasoningContent(r.Text); break;
                case ContentDelta c: content = new TextContent(c.Text); break;
                case ToolCallStarted s: calls.Add((s.Id, s.Name, new System.Text.StringBuilder())); break;
                case ToolCallArgumentsDelta a: calls[a.Index].Arguments.Append(a.Fragment); break;
                case ChatFinished f:
                    var last = new List<AIContent>();
                    foreach (var call in calls)
                    {
                        last.Add(ToFunctionCall(call.Id, call.Name, call.Arguments.ToString()));
                    }

                    last.Add(new UsageContent(ToUsage(f.Usage)));
                    yield return new ChatResponseUpdate(ChatRole.Assistant, last)
                    {
                        ResponseId = responseId, ModelId = modelId, FinishReason = ToFinishReason(f.Reason),
                    };
                    break;
            }

            if (content is not null)
            {
                yield return new ChatResponseUpdate(ChatRole.Assistant, [content]) { ResponseId = responseId, ModelId = modelId };
            }
        }
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null
        : serviceType == typeof(ChatClientMetadata) ? Metadata
        : serviceType.IsInstanceOfType(this) ? this
        : serviceType.IsInstanceOfType(chat) ? chat
        : null;

    public void Dispose()
    {
    }

    /// <summary>Maps Microsoft.Extensions.AI messages and options to the OpenAI-shaped request the template expects.</summary>
    internal static ChatRequest ToRequest(IEnumerable<ChatMessage> messages, ChatOptions? options, out bool returnReasoning)
    {
        var array = new JsonArray();
        if (options?.Instructions is { Length: > 0 } instructions)
        {
            array.Add(new JsonObject { ["role"] = "system", ["content"] = instructions });
        }

        foreach (ChatMessage m in messages)
        {
            AddMessage(array, m);
        }

        IDictionary<string, object?>? extra = options?.AdditionalProperties;
        StructuredOutput? structured = options?.ResponseFormat is ChatResponseFormatJson json
            ? json.Schema is { } schema
                ? new StructuredOutput(StructuredOutputKind.JsonSchema, JsonNode.Parse(schema.GetRawText()), Strict: false, Param: "ResponseFormat")
                : new StructuredOutput(StructuredOutputKind.JsonObject, Param: "ResponseFormat")
            : null;

        bool? thinking = options?.Reasoning?.Effort switch
        {
            ReasoningEffort.None => false,
            null => null,
            _ => true,
        };
        if (Get<bool>(extra, "enable_thinking") is { } flag)
        {
            thinking = flag;
        }

        returnReasoning = options?.Reasoning?.Output != ReasoningOutput.None;
        ToolChoice toolChoice = options?.ToolMode switch
        {
            NoneChatToolMode => new ToolChoice(ToolChoiceMode.None),
            RequiredChatToolMode { RequiredFunctionName: { } name } => new ToolChoice(ToolChoiceMode.Function, name),
            RequiredChatToolMode => new ToolChoice(ToolChoiceMode.Required),
            _ => ToolChoice.Auto,
        };
        JsonArray? tools = null;
        if (options?.Tools is { Count: > 0 })
        {
            tools = [];
            foreach (AITool tool in options.Tools)
            {
                if (tool is AIFunctionDeclaration f)
                {
                    tools.Add(new JsonObject
                    {
                        ["type"] = "function",
                        ["function"] = new JsonObject
                        {
                            ["name"] = f.Name,
                            ["description"] = f.Description,
                            ["parameters"] = JsonNode.Parse(f.JsonSchema.GetRawText()),
                        },
                    });
                }
            }
        }

        Dictionary<string, JsonNode?>? kwargs = null;
        if (extra is not null && extra.TryGetValue("chat_template_kwargs", out object? raw) && raw is not null)
        {
            kwargs = JsonSerializer.SerializeToNode(raw, AIJsonUtilities.DefaultOptions) is JsonObject o
                ? o.ToDictionary(p => p.Key, p => p.Value?.DeepClone())
                : throw new ArgumentException("chat_template_kwargs must be an object.");
        }

        return new ChatRequest
        {
            Messages = array,
            Tools = tools,
            ToolChoice = toolChoice,
            ParallelToolCalls = options?.AllowMultipleToolCalls ?? true,
            EnableThinking = thinking,
            TemplateKwargs = kwargs,
            MaxTokens = options?.MaxOutputTokens,
            Stop = options?.StopSequences?.ToList() ?? [],
            ThinkingBudget = Get<int>(extra, "thinking_budget"),
            ResponseFormat = structured,
            Sampling = new SamplingOverrides
            {
                Temperature = options?.Temperature,
                TopP = options?.TopP,
                TopK = options?.TopK ?? Get<int>(extra, "top_k"),
                MinP = Get<float>(extra, "min_p"),
                PresencePenalty = options?.PresencePenalty,
                FrequencyPenalty = options?.FrequencyPenalty,
                RepetitionPenalty = Get<float>(extra, "repetition_penalty"),
                Seed = options?.Seed is { } seed ? unchecked((ulong)seed) : null,
            },
        };
    }

    private static void AddMessage(JsonArray array, ChatMessage m)
    {
        string role = m.Role.Value;
        var text = new System.Text.StringBuilder();
        var reasoning = new System.Text.StringBuilder();
        JsonArray? toolCalls = null;
        foreach (AIContent c in m.Contents)
        {
            switch (c)
            {
                case TextContent t: text.Append(t.Text); break;
                case TextReasoningContent r: reasoning.Append(r.Text); break;
                case FunctionCallContent call:
                    toolCalls ??= [];
                    toolCalls.Add(new JsonObject
                    {
                        ["id"] = call.CallId,
                        ["type"] = "function",
                        ["function"] = new JsonObject
                        {
                            ["name"] = call.Name,
                            ["arguments"] = JsonSerializer.SerializeToNode(
                                call.Arguments ?? new Dictionary<string, object?>(), AIJsonUtilities.DefaultOptions),
                        },
                    });
                    break;
                case FunctionResultContent result:
                    array.Add(new JsonObject
                    {
                        ["role"] = "tool",
                        ["tool_call_id"] = result.CallId,
                        ["content"] = result.Result as string
                            ?? JsonSerializer.Serialize(result.Result, AIJsonUtilities.DefaultOptions),
                    });
                    break;
            }
        }

        if (role == "tool")
        {
            if (!m.Contents.Any(c => c is FunctionResultContent))
            {
                array.Add(new JsonObject { ["role"] = "tool", ["content"] = text.ToString() });
            }

            return;  // results were added above, one tool message each
        }

        var message = new JsonObject { ["role"] = role, ["content"] = text.ToString() };
        if (reasoning.Length > 0 && role == "assistant")
        {
            message["reasoning_content"] = reasoning.ToString();
        }

        if (toolCalls is not null)
        {
            message["tool_calls"] = toolCalls;
        }

        array.Add(message);
    }

    private static T? Get<T>(IDictionary<string, object?>? extra, string key) where T : struct
    {
        if (extra is null || !extra.TryGetValue(key, out object? value) || value is null)
        {
            return null;
        }

        return value switch
        {
            T t => t,
            JsonElement e => e.Deserialize<T>(),
            IConvertible c => (T)c.ToType(typeof(T), System.Globalization.CultureInfo.InvariantCulture),
            _ => throw new ArgumentException($"AdditionalProperties[\"{key}\"] must be a {typeof(T).Name}."),
        };
    }

    private static FunctionCallContent ToFunctionCall(string id, string name, string arguments)
    {
        Dictionary<string, object?>? args = null;
        Exception? error = null;
        try
        {
            args = JsonSerializer.Deserialize<Dictionary<string, object?>>(arguments, AIJsonUtilities.DefaultOptions);
        }
        catch (JsonException ex)
        {
            error = ex;
        }

        return new FunctionCallContent(id, name, args) { Exception = error };
    }

    private static AIChatFinishReason ToFinishReason(ChatFinishReason reason) => reason switch
    {
        ChatFinishReason.Length => AIChatFinishReason.Length,
        ChatFinishReason.ToolCalls => AIChatFinishReason.ToolCalls,
        _ => AIChatFinishReason.Stop,
    };

    private static UsageDetails ToUsage(GenerationUsage u) => new()
    {
        InputTokenCount = u.PromptTokens,
        OutputTokenCount = u.CompletionTokens,
        TotalTokenCount = u.PromptTokens + u.CompletionTokens,
        ReasoningTokenCount = u.ReasoningTokens,
    };
}
