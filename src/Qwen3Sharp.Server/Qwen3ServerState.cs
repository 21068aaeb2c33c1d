using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;
using Qwen3Sharp.Chat;

namespace Qwen3Sharp.Server;

/// <summary>What every endpoint shares: the chat service, the options and the model names (a DI singleton).</summary>
public sealed class Qwen3ServerState
{
    internal const string SystemFingerprint = "fp_qwen3sharp";

    private readonly HashSet<int> _stopTokenIds;

    public Qwen3ServerState(ServerOptions options, ChatService chat)
    {
        options.Validate();
        Options = options;
        Chat = chat;
        Created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        _stopTokenIds = [.. chat.StopTokenIds];
    }

    public ServerOptions Options { get; }

    public ChatService Chat { get; }

    /// <summary>The model id reported back: the first served name.</summary>
    public string ModelId => Options.ServedModelNames[0];

    /// <summary>Start time, reported as the model's creation time.</summary>
    public long Created { get; }

    /// <summary>The served id for a requested model name (the id or an alias); 400 when missing, 404 when unknown.</summary>
    public string ResolveModel(string? requested)
    {
        RequestFields.Require(requested, "model");
        if (!Options.ServedModelNames.Contains(requested!, StringComparer.Ordinal))
        {
            throw new ApiException(StatusCodes.Status404NotFound, "invalid_request_error",
                $"The model '{requested}' does not exist. This server serves '{string.Join("', '", Options.ServedModelNames)}'.",
                "model", "model_not_found");
        }

        return ModelId;
    }

    internal void SetReasoning(ChatMessageDto message, string text)
    {
        if (Options.ReasoningField != ReasoningFieldMode.Reasoning)
        {
            message.ReasoningContent = text;
        }

        if (Options.ReasoningField != ReasoningFieldMode.ReasoningContent)
        {
            message.Reasoning = text;
        }
    }

    internal void SetReasoning(ChatDeltaDto delta, string text)
    {
        if (Options.ReasoningField != ReasoningFieldMode.Reasoning)
        {
            delta.ReasoningContent = text;
        }

        if (Options.ReasoningField != ReasoningFieldMode.ReasoningContent)
        {
            delta.Reasoning = text;
        }
    }

    /// <summary>False for the end-of-turn token, which is not part of the answer and gets no logprobs entry.</summary>
    internal bool IsOutputToken(TokenLogprobsUpdate update) => !_stopTokenIds.Contains(update.Logprobs.TokenId);

    internal bool IsStopToken(int tokenId) => _stopTokenIds.Contains(tokenId);
}

internal static class Body
{
    /// <summary>Reads a JSON body; malformed JSON and wrong-typed fields become 400 naming the field.</summary>
    public static async Task<T> ReadAsync<T>(HttpContext context, JsonTypeInfo<T> typeInfo) where T : class
    {
        T? value;
        try
        {
            value = await JsonSerializer.DeserializeAsync(context.Request.Body, typeInfo, context.RequestAborted);
        }
        catch (JsonException ex)
        {
            throw ErrorMapper.FromJson(ex);
        }

        return value ?? throw new RequestValidationException("The request body must be a JSON object.", null, "invalid_json");
    }
}
