using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Qwen3Sharp.Chat;

namespace Qwen3Sharp.Server;

/// <summary>GET /v1/models, /v1/models/{id} and /health.</summary>
internal static class ModelEndpoints
{
    public static Task ListAsync(HttpContext context)
    {
        var server = context.RequestServices.GetRequiredService<Qwen3ServerState>();
        var list = new ModelListResponse { Data = [Card(server)] };
        return context.Response.WriteAsJsonAsync(list, ServerJson.Context.ModelListResponse, cancellationToken: context.RequestAborted);
    }

    public static Task GetAsync(HttpContext context)
    {
        var server = context.RequestServices.GetRequiredService<Qwen3ServerState>();
        server.ResolveModel(context.Request.RouteValues["id"] as string);
        return context.Response.WriteAsJsonAsync(Card(server), ServerJson.Context.ModelCardDto, cancellationToken: context.RequestAborted);
    }

    public static Task HealthAsync(HttpContext context) =>
        context.Response.WriteAsJsonAsync(new HealthResponse(), ServerJson.Context.HealthResponse, cancellationToken: context.RequestAborted);

    private static ModelCardDto Card(Qwen3ServerState server) => new() { Id = server.ModelId, Created = server.Created };
}

/// <summary>llama.cpp's utility endpoints: /tokenize, /detokenize and /apply-template.</summary>
internal static class UtilityEndpoints
{
    public static async Task TokenizeAsync(HttpContext context)
    {
        var server = context.RequestServices.GetRequiredService<Qwen3ServerState>();
        TokenizeRequestDto dto = await Body.ReadAsync(context, ServerJson.Context.TokenizeRequestDto);
        if (dto.Content is null)
        {
            throw new RequestValidationException("'content' is required.", "content", "missing_required_parameter");
        }

        // Qwen3 adds no BOS or EOS, so add_special changes nothing. parse_special (default true, as llama.cpp):
        // whether text like <|im_end|> becomes its special token or is tokenized as plain text.
        var ids = new List<int>();
        server.Chat.Tokenizer.Encode(dto.Content, ids, parseAddedTokens: dto.ParseSpecial ?? true);
        int[] tokens = [.. ids];
        if (dto.WithPieces == true)
        {
            var pieces = tokens.Select(id => new TokenPieceDto { Id = id, Piece = server.Chat.Tokenizer.Decode([id]) }).ToList();
            await context.Response.WriteAsJsonAsync(new TokenizeWithPiecesResponse { Tokens = pieces },
                ServerJson.Context.TokenizeWithPiecesResponse, cancellationToken: context.RequestAborted);
            return;
        }

        await context.Response.WriteAsJsonAsync(new TokenizeResponse { Tokens = tokens },
            ServerJson.Context.TokenizeResponse, cancellationToken: context.RequestAborted);
    }

    public static async Task DetokenizeAsync(HttpContext context)
    {
        var server = context.RequestServices.GetRequiredService<Qwen3ServerState>();
        DetokenizeRequestDto dto = await Body.ReadAsync(context, ServerJson.Context.DetokenizeRequestDto);
        int[] tokens = dto.Tokens ?? throw new RequestValidationException("'tokens' is required.", "tokens", "missing_required_parameter");
        int vocab = server.Chat.Engine.VocabSize;
        for (int i = 0; i < tokens.Length; i++)
        {
            if ((uint)tokens[i] >= (uint)vocab)
            {
                throw new RequestValidationException($"'tokens[{i}]' must be a token id in 0..{vocab - 1}; got {tokens[i]}.", "tokens", "invalid_value");
            }
        }

        await context.Response.WriteAsJsonAsync(new DetokenizeResponse { Content = server.Chat.Tokenizer.Decode(tokens) },
            ServerJson.Context.DetokenizeResponse, cancellationToken: context.RequestAborted);
    }

    /// <summary>The prompt a chat request renders to (the same template variables and thinking resolution as /v1/chat/completions).</summary>
    public static async Task ApplyTemplateAsync(HttpContext context)
    {
        var server = context.RequestServices.GetRequiredService<Qwen3ServerState>();
        ApplyTemplateRequestDto dto = await Body.ReadAsync(context, ServerJson.Context.ApplyTemplateRequestDto);
        JsonArray messages = RequestFields.Messages(dto.Messages);
        JsonArray? tools = RequestFields.Tools(dto.Tools);
        var request = new ChatRequest
        {
            Messages = messages,
            Tools = tools,
            ToolChoice = RequestFields.ToolChoice(dto.ToolChoice, tools),
            EnableThinking = RequestFields.Thinking(dto.EnableThinking, dto.ChatTemplateKwargs, dto.ReasoningEffort, server.Options.DefaultEnableThinking),
            TemplateKwargs = RequestFields.TemplateKwargs(server.Options, dto.ChatTemplateKwargs),
        };
        PreparedChat prepared = server.Chat.Prepare(request);
        await context.Response.WriteAsJsonAsync(new ApplyTemplateResponse { Prompt = prepared.Prompt },
            ServerJson.Context.ApplyTemplateResponse, cancellationToken: context.RequestAborted);
    }
}
