using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Qwen3Sharp.Engine;

namespace Qwen3Sharp.Server;

/// <summary>An error the client caused, returned in OpenAI's shape with <paramref name="statusCode"/>.</summary>
public class ApiException(int statusCode, string type, string message, string? param = null, string? code = null) : Exception(message)
{
    public int StatusCode { get; } = statusCode;

    /// <summary>OpenAI's error.type.</summary>
    public string Type { get; } = type;

    /// <summary>The request field at fault (OpenAI's error.param).</summary>
    public string? Param { get; } = param;

    /// <summary>OpenAI's error.code.</summary>
    public string? Code { get; } = code;
}

/// <summary>A request that breaks the API contract: 400 <c>invalid_request_error</c>.</summary>
public sealed class RequestValidationException(string message, string? param = null, string? code = null)
    : ApiException(StatusCodes.Status400BadRequest, "invalid_request_error", message, param, code);

/// <summary>The one error mapper (llama.cpp's ex_wrapper): every failure becomes an OpenAI-shaped error body.</summary>
internal static class ErrorMapper
{
    public static async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        try
        {
            await next(context);
        }
        catch (Exception) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client left (a cancelled write or a reset connection); nothing to answer.
        }
        catch (Exception ex) when (!context.Response.HasStarted)
        {
            ApiException error = Map(ex, context);
            if (error.Code == "server_overloaded")
            {
                context.Response.Headers.RetryAfter = "1";
            }

            await WriteAsync(context, error);
        }
    }

    public static ApiException Map(Exception ex, HttpContext context)
    {
        switch (ex)
        {
            case ApiException api:
                return api;
            case GenerationRequestException g:
                return new RequestValidationException(g.Message, g.Param);
            case EngineOverloadedException o:
                // 503 as vLLM's --max-num-queued-reqs and OpenAI's own "overloaded" answer; OpenAI SDKs retry it after Retry-After.
                return new ApiException(StatusCodes.Status503ServiceUnavailable, "server_error", o.Message, code: "server_overloaded");
            case BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge }:
                return new ApiException(StatusCodes.Status413PayloadTooLarge, "invalid_request_error",
                    "The request body is larger than this server accepts.", code: "request_too_large");
            case BadHttpRequestException b:
                return new ApiException(b.StatusCode, "invalid_request_error", b.Message);
            case JsonException j:
                return FromJson(j);
            default:
                context.RequestServices.GetService<ILoggerFactory>()?.CreateLogger("Qwen3Sharp.Server")
                    .LogError(ex, "Request {Path} failed", context.Request.Path.Value);
                return new ApiException(StatusCodes.Status500InternalServerError, "server_error",
                    "The server had an error while processing your request.");
        }
    }

    public static RequestValidationException FromJson(JsonException ex)
    {
        string? param = ParamFromPath(ex.Path);
        if (ex.Message.StartsWith("The JSON value could not be converted", StringComparison.Ordinal) && param is not null)
        {
            return new RequestValidationException($"Invalid type for '{param}'.", param, "invalid_type");
        }

        string detail = ex.Message;
        int cut = detail.IndexOf(" Path:", StringComparison.Ordinal);
        detail = cut > 0 ? detail[..cut] : detail;
        return new RequestValidationException(
            $"We could not parse the JSON body of your request: {detail}", param, "invalid_json");
    }

    private static string? ParamFromPath(string? path) =>
        path is null or "$" ? null : path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path.TrimStart('$');

    public static Task WriteAsync(HttpContext context, ApiException error)
    {
        context.Response.StatusCode = error.StatusCode;
        return context.Response.WriteAsJsonAsync(ToBody(error), ServerJson.Context.ErrorResponse);
    }

    public static ErrorResponse ToBody(ApiException error) =>
        new() { Error = new ErrorBody { Message = error.Message, Type = error.Type, Param = error.Param, Code = error.Code } };
}
