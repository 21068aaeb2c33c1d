using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Qwen3Sharp.Server;

// Wire shapes of OpenAI's API (snake_case through ServerJsonContext). Polymorphic request fields are JsonNode and are
// checked by hand; unknown fields are skipped.

public sealed class StreamOptionsDto
{
    public bool? IncludeUsage { get; set; }
}

/// <summary>POST /v1/chat/completions body.</summary>
public sealed class ChatCompletionRequestDto
{
    public string? Model { get; set; }
    public JsonArray? Messages { get; set; }
    public double? Temperature { get; set; }
    public double? TopP { get; set; }
    public int? N { get; set; }
    public bool? Stream { get; set; }
    public StreamOptionsDto? StreamOptions { get; set; }
    public JsonNode? Stop { get; set; }
    public int? MaxTokens { get; set; }
    public int? MaxCompletionTokens { get; set; }
    public double? PresencePenalty { get; set; }
    public double? FrequencyPenalty { get; set; }
    public Dictionary<string, double>? LogitBias { get; set; }
    public bool? Logprobs { get; set; }
    public int? TopLogprobs { get; set; }
    public long? Seed { get; set; }
    public JsonArray? Tools { get; set; }
    public JsonNode? ToolChoice { get; set; }
    public bool? ParallelToolCalls { get; set; }
    public JsonObject? ResponseFormat { get; set; }
    public string? User { get; set; }
    public string? SafetyIdentifier { get; set; }
    public string? PromptCacheKey { get; set; }
    public string? ServiceTier { get; set; }
    public bool? Store { get; set; }
    public JsonObject? Metadata { get; set; }
    public string? ReasoningEffort { get; set; }
    public string? Verbosity { get; set; }
    public JsonArray? Modalities { get; set; }
    public JsonNode? Audio { get; set; }
    public JsonNode? Prediction { get; set; }
    public JsonNode? WebSearchOptions { get; set; }
    public JsonNode? Functions { get; set; }
    public JsonNode? FunctionCall { get; set; }

    // Extensions (vLLM, DashScope, Qwen)
    public int? TopK { get; set; }
    public double? MinP { get; set; }
    public double? RepetitionPenalty { get; set; }
    public bool? EnableThinking { get; set; }
    public JsonObject? ChatTemplateKwargs { get; set; }
    public bool? ReturnReasoning { get; set; }
    public int? ThinkingBudget { get; set; }
    public JsonObject? StructuredOutputs { get; set; }

    /// <summary>llama.cpp extension: a GBNF grammar the answer must match.</summary>
    public string? Grammar { get; set; }
}

/// <summary>POST /v1/completions body.</summary>
public sealed class CompletionRequestDto
{
    public string? Model { get; set; }
    public JsonNode? Prompt { get; set; }
    public int? BestOf { get; set; }
    public bool? Echo { get; set; }
    public double? FrequencyPenalty { get; set; }
    public Dictionary<string, double>? LogitBias { get; set; }
    public int? Logprobs { get; set; }
    public int? MaxTokens { get; set; }
    public int? N { get; set; }
    public double? PresencePenalty { get; set; }
    public long? Seed { get; set; }
    public JsonNode? Stop { get; set; }
    public bool? Stream { get; set; }
    public StreamOptionsDto? StreamOptions { get; set; }
    public string? Suffix { get; set; }
    public double? Temperature { get; set; }
    public double? TopP { get; set; }
    public string? User { get; set; }

    // Extensions (vLLM)
    public int? TopK { get; set; }
    public double? MinP { get; set; }
    public double? RepetitionPenalty { get; set; }
}

public sealed class UsageDto
{
    public int PromptTokens { get; set; }
    public int CompletionTokens { get; set; }
    public int TotalTokens { get; set; }
    public CompletionTokensDetailsDto? CompletionTokensDetails { get; set; }
    public PromptTokensDetailsDto? PromptTokensDetails { get; set; }
}

/// <summary>OpenAI's usage.prompt_tokens_details: prompt tokens whose KV came from the prefix cache.</summary>
public sealed class PromptTokensDetailsDto
{
    public int CachedTokens { get; set; }
}

public sealed class CompletionTokensDetailsDto
{
    public int ReasoningTokens { get; set; }
}

public sealed class ChatCompletionResponse
{
    public required string Id { get; set; }
    public string Object { get; set; } = "chat.completion";
    public long Created { get; set; }
    public required string Model { get; set; }
    public string? SystemFingerprint { get; set; }
    public required List<ChatChoiceDto> Choices { get; set; }
    public UsageDto? Usage { get; set; }
}

public sealed class ChatChoiceDto
{
    public int Index { get; set; }
    public required ChatMessageDto Message { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ChatLogprobsDto? Logprobs { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string? FinishReason { get; set; }
}

public sealed class ChatMessageDto
{
    public string Role { get; set; } = "assistant";
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string? Content { get; set; }
    public string? ReasoningContent { get; set; }
    public string? Reasoning { get; set; }
    public List<ToolCallDto>? ToolCalls { get; set; }
}

public sealed class ToolCallDto
{
    public int? Index { get; set; }
    public string? Id { get; set; }
    public string? Type { get; set; }
    public required FunctionCallDto Function { get; set; }
}

public sealed class FunctionCallDto
{
    public string? Name { get; set; }
    public string? Arguments { get; set; }
}

public sealed class ChatLogprobsDto
{
    public required List<TokenLogprobDto> Content { get; set; }
}

public sealed class TokenLogprobDto
{
    public required string Token { get; set; }
    public float Logprob { get; set; }
    public int[]? Bytes { get; set; }
    public List<TopLogprobDto>? TopLogprobs { get; set; }
}

public sealed class TopLogprobDto
{
    public required string Token { get; set; }
    public float Logprob { get; set; }
    public int[]? Bytes { get; set; }
}

public sealed class ChatCompletionChunk
{
    public required string Id { get; set; }
    public string Object { get; set; } = "chat.completion.chunk";
    public long Created { get; set; }
    public required string Model { get; set; }
    public string? SystemFingerprint { get; set; }
    public required List<ChatChunkChoiceDto> Choices { get; set; }
    public UsageDto? Usage { get; set; }
}

public sealed class ChatChunkChoiceDto
{
    public int Index { get; set; }
    public required ChatDeltaDto Delta { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ChatLogprobsDto? Logprobs { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string? FinishReason { get; set; }
}

public sealed class ChatDeltaDto
{
    public string? Role { get; set; }
    public string? Content { get; set; }
    public string? ReasoningContent { get; set; }
    public string? Reasoning { get; set; }
    public List<ToolCallDto>? ToolCalls { get; set; }
}

/// <summary>A /v1/completions answer or stream chunk (the same shape, object "text_completion").</summary>
public sealed class CompletionResponse
{
    public required string Id { get; set; }
    public string Object { get; set; } = "text_completion";
    public long Created { get; set; }
    public required string Model { get; set; }
    public string? SystemFingerprint { get; set; }
    public required List<CompletionChoiceDto> Choices { get; set; }
    public UsageDto? Usage { get; set; }
}

public sealed class CompletionChoiceDto
{
    public int Index { get; set; }
    public required string Text { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public CompletionLogprobsDto? Logprobs { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string? FinishReason { get; set; }
}

/// <summary>The legacy completions logprobs shape.</summary>
public sealed class CompletionLogprobsDto
{
    public List<string> Tokens { get; set; } = [];
    public List<float?> TokenLogprobs { get; set; } = [];
    public List<Dictionary<string, float>?> TopLogprobs { get; set; } = [];
    public List<int> TextOffset { get; set; } = [];
}

public sealed class ModelListResponse
{
    public string Object { get; set; } = "list";
    public required List<ModelCardDto> Data { get; set; }
}

public sealed class ModelCardDto
{
    public required string Id { get; set; }
    public string Object { get; set; } = "model";
    public long Created { get; set; }
    public string OwnedBy { get; set; } = "qwen3sharp";
}

public sealed class HealthResponse
{
    public string Status { get; set; } = "ok";
}

public sealed class TokenizeRequestDto
{
    public string? Content { get; set; }
    public bool? AddSpecial { get; set; }
    public bool? ParseSpecial { get; set; }
    public bool? WithPieces { get; set; }
}

public sealed class TokenizeResponse
{
    public required int[] Tokens { get; set; }
}

public sealed class TokenizeWithPiecesResponse
{
    public required List<TokenPieceDto> Tokens { get; set; }
}

/// <summary>A token and its text (a partial UTF-8 character shows as U+FFFD).</summary>
public sealed class TokenPieceDto
{
    public int Id { get; set; }
    public required string Piece { get; set; }
}

public sealed class DetokenizeRequestDto
{
    public int[]? Tokens { get; set; }
}

public sealed class DetokenizeResponse
{
    public required string Content { get; set; }
}

public sealed class ApplyTemplateRequestDto
{
    public JsonArray? Messages { get; set; }
    public JsonArray? Tools { get; set; }
    public JsonNode? ToolChoice { get; set; }
    public JsonObject? ChatTemplateKwargs { get; set; }
    public bool? EnableThinking { get; set; }
    public string? ReasoningEffort { get; set; }
}

public sealed class ApplyTemplateResponse
{
    public required string Prompt { get; set; }
}

public sealed class ErrorResponse
{
    public required ErrorBody Error { get; set; }
}

public sealed class ErrorBody
{
    public required string Message { get; set; }
    public required string Type { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string? Param { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string? Code { get; set; }
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip)]
[JsonSerializable(typeof(ChatCompletionRequestDto))]
[JsonSerializable(typeof(CompletionRequestDto))]
[JsonSerializable(typeof(ChatCompletionResponse))]
[JsonSerializable(typeof(ChatCompletionChunk))]
[JsonSerializable(typeof(CompletionResponse))]
[JsonSerializable(typeof(ModelListResponse))]
[JsonSerializable(typeof(ModelCardDto))]
[JsonSerializable(typeof(HealthResponse))]
[JsonSerializable(typeof(TokenizeRequestDto))]
[JsonSerializable(typeof(TokenizeResponse))]
[JsonSerializable(typeof(TokenizeWithPiecesResponse))]
[JsonSerializable(typeof(DetokenizeRequestDto))]
[JsonSerializable(typeof(DetokenizeResponse))]
[JsonSerializable(typeof(ApplyTemplateRequestDto))]
[JsonSerializable(typeof(ApplyTemplateResponse))]
[JsonSerializable(typeof(ErrorResponse))]
public sealed partial class ServerJsonContext : JsonSerializerContext;

/// <summary>The context the endpoints use: <see cref="ServerJsonContext"/> writing non-ASCII text and tags as they are (as vLLM and llama.cpp do) rather than as \u escapes.</summary>
internal static class ServerJson
{
    public static ServerJsonContext Context { get; } = new(new System.Text.Json.JsonSerializerOptions(ServerJsonContext.Default.Options)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}
