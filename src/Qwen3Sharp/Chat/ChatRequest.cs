using System.Text.Json.Nodes;
using Qwen3Sharp.Engine;

namespace Qwen3Sharp.Chat;

public enum ToolChoiceMode
{
    /// <summary>The model decides (OpenAI's default when tools are given).</summary>
    Auto,

    /// <summary>No tool is called: tools are left out of the prompt and no call is parsed.</summary>
    None,

    /// <summary>The model must call some tool: after the optional reasoning the answer is constrained to calls of offered functions with valid arguments.</summary>
    Required,

    /// <summary>The model must call <see cref="ToolChoice.FunctionName"/>: as <see cref="Required"/>, naming that function only.</summary>
    Function,
}

public sealed record ToolChoice(ToolChoiceMode Mode, string? FunctionName = null)
{
    public static ToolChoice Auto { get; } = new(ToolChoiceMode.Auto);
}

public enum StructuredOutputKind
{
    /// <summary>Any JSON object (OpenAI json_object).</summary>
    JsonObject,

    /// <summary>JSON valid against <see cref="StructuredOutput.Schema"/> (OpenAI json_schema).</summary>
    JsonSchema,

    /// <summary>Text matching <see cref="StructuredOutput.Pattern"/> in full (vLLM structured_outputs.regex).</summary>
    Regex,

    /// <summary>Exactly one of <see cref="StructuredOutput.Choices"/> (vLLM structured_outputs.choice).</summary>
    Choice,

    /// <summary>Text in the language of the GBNF grammar <see cref="StructuredOutput.Pattern"/> (llama.cpp grammar).</summary>
    Grammar,
}

/// <summary>What the answer must be; decoding is constrained token by token (see Structured/).</summary>
public sealed record StructuredOutput(StructuredOutputKind Kind, JsonNode? Schema = null, bool Strict = false,
    string? Pattern = null, IReadOnlyList<string>? Choices = null, string Param = "response_format");

/// <summary>Sampling settings a request may set; null means "use the model's and the mode's defaults".</summary>
public sealed record SamplingOverrides
{
    public float? Temperature { get; init; }
    public float? TopP { get; init; }
    public int? TopK { get; init; }
    public float? MinP { get; init; }
    public float? PresencePenalty { get; init; }
    public float? FrequencyPenalty { get; init; }
    public float? RepetitionPenalty { get; init; }
    public ulong? Seed { get; init; }
    public IReadOnlyDictionary<int, float>? LogitBias { get; init; }
}

/// <summary>One chat turn to generate, as the HTTP server and <see cref="Qwen3ChatClient"/> hand it over.</summary>
public sealed class ChatRequest
{
    /// <summary>OpenAI-shaped messages, passed to the chat template as transformers passes its dicts.</summary>
    public required JsonArray Messages { get; init; }

    /// <summary>OpenAI-shaped tools (<c>{"type": "function", "function": {...}}</c>), or null.</summary>
    public JsonArray? Tools { get; init; }

    public ToolChoice ToolChoice { get; init; } = ToolChoice.Auto;

    /// <summary>More than one call per turn allowed (OpenAI parallel_tool_calls); false: the turn ends after the first call.</summary>
    public bool ParallelToolCalls { get; init; } = true;

    /// <summary>Thinking on or off; null = the server's default.</summary>
    public bool? EnableThinking { get; init; }

    /// <summary>Extra template variables (chat_template_kwargs), merged over the server's.</summary>
    public IReadOnlyDictionary<string, JsonNode?>? TemplateKwargs { get; init; }

    public SamplingOverrides Sampling { get; init; } = new();

    public int? MaxTokens { get; init; }

    public IReadOnlyList<string> Stop { get; init; } = [];

    /// <summary>Alternatives per token to report; null = no logprobs.</summary>
    public int? TopLogprobs { get; init; }

    /// <summary>Reasoning tokens allowed before the reasoning is closed; null = the server's default (unlimited).</summary>
    public int? ThinkingBudget { get; init; }

    /// <summary>Structured output (response_format / structured_outputs); null = free text.</summary>
    public StructuredOutput? ResponseFormat { get; init; }
}

/// <summary>What streams out of a chat generation.</summary>
public abstract record ChatUpdate;

public sealed record ReasoningDelta(string Text) : ChatUpdate;

public sealed record ContentDelta(string Text) : ChatUpdate;

public sealed record ToolCallStarted(int Index, string Id, string Name) : ChatUpdate;

public sealed record ToolCallArgumentsDelta(int Index, string Fragment) : ChatUpdate;

/// <summary>A generated token's log-probabilities (only when requested), in output order.</summary>
/// <param name="TokenText">The token decoded alone (U+FFFD where it holds part of a UTF-8 character).</param>
/// <param name="TokenBytes">The token's raw bytes (<see cref="Tokenization.Qwen3Tokenizer.TokenBytes"/>), whole or partial UTF-8.</param>
public sealed record TokenLogprobsUpdate(string TokenText, TokenLogprobs Logprobs, IReadOnlyList<string> TopTokenTexts,
    byte[] TokenBytes, IReadOnlyList<byte[]> TopTokenBytes) : ChatUpdate;

public enum ChatFinishReason
{
    Stop,
    Length,
    ToolCalls,
    Cancelled,
}

public sealed record ChatFinished(ChatFinishReason Reason, GenerationUsage Usage) : ChatUpdate;

/// <summary>A whole chat answer.</summary>
public sealed record ChatResult(
    string? Reasoning,
    string Content,
    IReadOnlyList<Parsing.ParsedToolCall> ToolCalls,
    ChatFinishReason FinishReason,
    GenerationUsage Usage,
    IReadOnlyList<TokenLogprobsUpdate> Logprobs);
