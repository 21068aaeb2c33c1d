using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Qwen3Sharp.Chat;
using Qwen3Sharp.Engine;

namespace Qwen3Sharp.Cli.Commands;

/// <summary><c>qwen3 run</c>: one answer to one prompt. The answer goes to stdout, reasoning to stderr.</summary>
public static partial class RunCommand
{
    public static async Task<int> RunAsync(RunOptions o, CancellationToken ct)
    {
        string prompt = o.Prompt == "-" ? await Console.In.ReadToEndAsync(ct) : o.Prompt;
        string directory = await ModelSource.ResolveAsync(o.Model, o.Context, ct);
        using Qwen3Host host = Qwen3Host.Load(directory,
            new HostOptions { MaxSequences = 1, MaxQueuedRequests = 1, Quantize = o.Quantize, KvCacheDType = o.KvCacheDType, BatchInvariant = o.BatchInvariant });
        var request = new ChatRequest
        {
            Messages = [new JsonObject { ["role"] = "user", ["content"] = prompt }],
            Tools = o.Tools,
            EnableThinking = o.NoThink ? false : null,
            MaxTokens = o.MaxTokens,
            Sampling = new SamplingOverrides { Temperature = o.Temperature, Seed = o.Seed },
        };

        var clock = Stopwatch.StartNew();
        if (o.Json)
        {
            ChatResult result = await host.Chat.CompleteAsync(request, ct);
            await o.Context.Out.WriteLineAsync(ToOpenAIJson(result, Server.ServerOptions.ModelNameFromDirectory(directory), clock.Elapsed).ToJsonString(
                new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
            return Qwen3Cli.ExitOk;
        }

        bool inReasoning = false, inCall = false, wroteContent = false;
        await foreach (ChatUpdate u in host.Chat.StreamAsync(request, ct))
        {
            switch (u)
            {
                case ReasoningDelta r:
                    inReasoning = true;
                    await o.Context.Error.WriteAsync(r.Text);
                    break;
                case ContentDelta c:
                    if (inReasoning)
                    {
                        await o.Context.Error.WriteLineAsync();
                        inReasoning = false;
                    }

                    await o.Context.Out.WriteAsync(c.Text);
                    await o.Context.Out.FlushAsync(ct);
                    wroteContent |= c.Text.Length > 0;
                    break;
                case ToolCallStarted s:
                    // a call reads as the function applied to its arguments, one per line: get_weather({"city": "Paris"})
                    await o.Context.Out.WriteAsync($"{(inCall ? ")\n" : wroteContent ? "\n" : "")}{s.Name}(");
                    inCall = true;
                    break;
                case ToolCallArgumentsDelta a:
                    await o.Context.Out.WriteAsync(a.Fragment);
                    await o.Context.Out.FlushAsync(ct);
                    break;
                case ChatFinished f:
                    if (inCall)
                    {
                        await o.Context.Out.WriteAsync(")");
                    }

                    if (f.Reason == ChatFinishReason.Length)
                    {
                        await o.Context.Error.WriteLineAsync("\n[stopped: max tokens or context reached]");
                    }

                    break;
            }
        }

        await o.Context.Out.WriteLineAsync();
        return Qwen3Cli.ExitOk;
    }

    /// <summary>The answer in the shape of an OpenAI chat.completion object.</summary>
    private static JsonObject ToOpenAIJson(ChatResult result, string model, TimeSpan elapsed)
    {
        // as the server writes it: no text beside calls is content null
        var message = new JsonObject { ["role"] = "assistant", ["content"] = result.Content.Length == 0 && result.ToolCalls.Count > 0 ? null : result.Content };
        if (result.Reasoning is not null)
        {
            message["reasoning_content"] = result.Reasoning;
        }

        if (result.ToolCalls.Count > 0)
        {
            message["tool_calls"] = new JsonArray(result.ToolCalls.Select(c => (JsonNode)new JsonObject
            {
                ["id"] = c.Id,
                ["type"] = "function",
                ["function"] = new JsonObject { ["name"] = c.Name, ["arguments"] = c.Arguments },
            }).ToArray());
        }

        return new JsonObject
        {
            ["id"] = "chatcmpl-" + Guid.NewGuid().ToString("N"),
            ["object"] = "chat.completion",
            ["created"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            ["model"] = model,
            ["choices"] = new JsonArray(new JsonObject
            {
                ["index"] = 0,
                ["message"] = message,
                ["finish_reason"] = result.FinishReason switch
                {
                    ChatFinishReason.Length => "length",
                    ChatFinishReason.ToolCalls => "tool_calls",
                    _ => "stop",
                },
            }),
            ["usage"] = new JsonObject
            {
                ["prompt_tokens"] = result.Usage.PromptTokens,
                ["completion_tokens"] = result.Usage.CompletionTokens,
                ["total_tokens"] = result.Usage.PromptTokens + result.Usage.CompletionTokens,
                ["completion_tokens_details"] = new JsonObject { ["reasoning_tokens"] = result.Usage.ReasoningTokens },
            },
            ["timings"] = new JsonObject { ["total_ms"] = Math.Round(elapsed.TotalMilliseconds, 1) },
        };
    }
}
