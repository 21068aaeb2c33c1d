using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Qwen3Sharp.Chat;

namespace Qwen3Sharp.Server;

/// <summary>
/// The OpenAI-compatible HTTP server over a <see cref="ChatService"/>. <c>qwen3 serve</c> calls
/// <see cref="Build"/> then <c>RunAsync()</c>; a host of its own composes the same pieces:
/// <code>
/// builder.Services.AddQwen3Engine(options, chat);
/// app.UseQwen3Server();            // error mapper, API key
/// app.MapChatCompletions(); app.MapCompletions(); app.MapModels(); app.MapUtility(); app.MapMetrics();
/// </code>
/// </summary>
public static class Qwen3Server
{
    /// <summary>A ready-to-run server listening on <see cref="ServerOptions.Host"/>:<see cref="ServerOptions.Port"/>.</summary>
    public static WebApplication Build(ServerOptions options, ChatService chat, string[]? args = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(chat);
        options.Validate();
        WebApplicationBuilder builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args ?? [] });
        string host = IPAddress.TryParse(options.Host, out IPAddress? ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
            ? $"[{options.Host}]" : options.Host;
        builder.WebHost.UseUrls($"http://{host}:{options.Port}");
        builder.Services.AddQwen3Engine(options, chat);
        WebApplication app = builder.Build();
        app.UseQwen3Server();
        app.MapChatCompletions();
        app.MapCompletions();
        app.MapModels();
        app.MapUtility();
        app.MapMetrics();
        app.MapFallback(UnknownUrl);
        return app;
    }

    /// <summary>OpenAI's answer to a path it does not serve, in its error shape rather than an empty 404.</summary>
    public static Task UnknownUrl(HttpContext context) =>
        throw new ApiException(StatusCodes.Status404NotFound, "invalid_request_error",
            $"Invalid URL ({context.Request.Method} {context.Request.Path}).", code: "unknown_url");

    /// <summary>The address the started server listens on (e.g. <c>http://127.0.0.1:53211</c> when the port was 0).</summary>
    public static Uri GetBoundAddress(this WebApplication app)
    {
        string address = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>()
            .Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
            ?? throw new InvalidOperationException("The server is not started.");
        return new Uri(address);
    }

    /// <summary>Registers the chat service, the server state and the Kestrel body-size limit.</summary>
    public static IServiceCollection AddQwen3Engine(this IServiceCollection services, ServerOptions options, ChatService chat)
    {
        services.AddSingleton(chat);
        services.AddSingleton(new Qwen3ServerState(options, chat));
        services.Configure<KestrelServerOptions>(k => k.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes);
        services.ConfigureHttpJsonOptions(j => j.SerializerOptions.TypeInfoResolverChain.Insert(0, ServerJsonContext.Default));
        return services;
    }

    /// <summary>The error mapper (every failure in OpenAI's error shape) and, when configured, the API key check.</summary>
    public static IApplicationBuilder UseQwen3Server(this IApplicationBuilder app)
    {
        app.Use((context, next) => ErrorMapper.InvokeAsync(context, next));
        app.Use(RequireApiKey);
        return app;
    }

    public static IEndpointRouteBuilder MapChatCompletions(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapPost("/v1/chat/completions", ChatCompletionsEndpoint.HandleAsync);
        return endpoints;
    }

    public static IEndpointRouteBuilder MapCompletions(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapPost("/v1/completions", CompletionsEndpoint.HandleAsync);
        return endpoints;
    }

    public static IEndpointRouteBuilder MapModels(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/v1/models", ModelEndpoints.ListAsync);
        endpoints.MapGet("/v1/models/{**id}", ModelEndpoints.GetAsync);
        endpoints.MapGet("/health", ModelEndpoints.HealthAsync);
        return endpoints;
    }

    /// <summary><c>GET /metrics</c> (Prometheus text), open without the API key as vLLM's is.</summary>
    public static IEndpointRouteBuilder MapMetrics(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/metrics", MetricsEndpoint.HandleAsync);
        return endpoints;
    }

    public static IEndpointRouteBuilder MapUtility(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapPost("/tokenize", UtilityEndpoints.TokenizeAsync);
        endpoints.MapPost("/detokenize", UtilityEndpoints.DetokenizeAsync);
        endpoints.MapPost("/apply-template", UtilityEndpoints.ApplyTemplateAsync);
        return endpoints;
    }

    private static async Task RequireApiKey(HttpContext context, RequestDelegate next)
    {
        string? key = context.RequestServices.GetRequiredService<Qwen3ServerState>().Options.ApiKey;
        if (string.IsNullOrEmpty(key) || context.Request.Path.Equals("/health", StringComparison.OrdinalIgnoreCase)
            || context.Request.Path.Equals("/metrics", StringComparison.OrdinalIgnoreCase))
        {
            await next(context);
            return;
        }

        string authorization = context.Request.Headers.Authorization.ToString();
        const string Bearer = "Bearer ";
        bool ok = authorization.StartsWith(Bearer, StringComparison.OrdinalIgnoreCase)
                  && KeysEqual(authorization.AsSpan(Bearer.Length).Trim().ToString(), key);
        if (!ok)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            await ErrorMapper.WriteAsync(context, new ApiException(StatusCodes.Status401Unauthorized, "invalid_request_error",
                authorization.Length == 0 ? "You didn't provide an API key (Authorization: Bearer <key>)." : "Incorrect API key provided.",
                code: "invalid_api_key"));
            return;
        }

        await next(context);
    }

    /// <summary>Constant-time: both sides are hashed to equal length first, so neither content nor length leaks through timing.</summary>
    private static bool KeysEqual(string given, string expected) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(given)), SHA256.HashData(Encoding.UTF8.GetBytes(expected)));
}
