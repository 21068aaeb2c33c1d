using Microsoft.AspNetCore.Builder;
using Qwen3Sharp.Cache;
using Qwen3Sharp.Engine;
using Qwen3Sharp.Server;

namespace Qwen3Sharp.Cli.Commands;

/// <summary><c>qwen3 serve</c>: the OpenAI-compatible HTTP server. SIGINT or SIGTERM stops it.</summary>
public static partial class ServeCommand
{
    public static async Task<int> RunAsync(ServeOptions o, CancellationToken ct)
    {
        string directory = await ModelSource.ResolveAsync(o.Model, o.Context, ct);
        var server = new ServerOptions
        {
            Host = o.Host,
            Port = o.Port,
            ApiKey = o.ApiKey,
            ServedModelNames = [ServerOptions.ModelNameFromDirectory(directory), .. o.ServedModelNames],
            DefaultEnableThinking = o.Reasoning,
            ReasoningField = o.ReasoningField switch
            {
                ReasoningField.Reasoning => ReasoningFieldMode.Reasoning,
                ReasoningField.Both => ReasoningFieldMode.Both,
                _ => ReasoningFieldMode.ReasoningContent,
            },
            DefaultTemplateKwargs = o.ChatTemplateKwargs?.ToDictionary(p => p.Key, p => p.Value?.DeepClone())
                ?? new Dictionary<string, System.Text.Json.Nodes.JsonNode?>(),
            DefaultThinkingBudget = o.ThinkingBudget,
            ParseToolCallsInReasoning = o.ToolCallsInReasoning == ToolCallsInReasoning.Parse,
            ConstrainToolCalls = o.ConstrainToolCalls,
        };

        using Qwen3Host host = Qwen3Host.Load(directory, new HostOptions
        {
            ThreadCount = o.Threads ?? Environment.ProcessorCount,
            ContextSize = o.CtxSize,
            MaxQueuedRequests = o.MaxQueue,
            WeightPlacement = o.Weights,
            Quantize = o.Quantize,
            MaxSequences = o.MaxNumSeqs,
            MaxBatchedTokens = o.MaxNumBatchedTokens,
            KvCacheMemory = o.KvCacheMemory,
            KvCacheDType = o.KvCacheDType,
            BatchInvariant = o.BatchInvariant,
            PrefillFirst = o.PrefillFirst,
            Chat = server.ToChatServiceOptions(),
            WarmUp = !o.NoWarmup,
        });
        if (host.WarmUp is { } warm)
        {
            await o.Context.Out.WriteLineAsync(
                $"qwen3 serve: warmed up in {warm.Elapsed.TotalSeconds:F1} s ({warm.PromptTokens}-token prefill, {warm.DecodeSteps} decode steps; " +
                $"a decode step {warm.FirstDecodeStep.TotalMilliseconds:F0} ms first, {warm.LastDecodeStep.TotalMilliseconds:F0} ms last; " +
                $"{warm.LateJitCompilations} methods JIT-compiled in its last 10 steps)");
        }

        await using WebApplication app = Qwen3Server.Build(server, host.Chat);
        await app.StartAsync(ct);
        await o.Context.Out.WriteLineAsync(
            $"qwen3 serve: {server.ServedModelNames[0]} ({host.Config.NumHiddenLayers} layers, context {host.Engine.ContextSize}, " +
            $"KV cache {host.KvCacheDType.Name()}: {host.KvBlockCount} blocks of {host.KvBlockSize} = {(long)host.KvBlockCount * host.KvBlockSize} tokens " +
            $"in {host.KvPoolBytes / (1024.0 * 1024):F0} MiB) " +
            $"on {app.GetBoundAddress()}v1 — OpenAI-compatible; Ctrl+C stops");
        await o.Context.Out.FlushAsync(ct);
        try
        {
            await Task.Delay(Timeout.Infinite, ct);
        }
        catch (OperationCanceledException)
        {
            // SIGINT/SIGTERM: end the generations first, so open streams finish at once, then stop listening
        }

        host.Engine.Dispose();
        using var stopTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await app.StopAsync(stopTimeout.Token);
        await o.Context.Out.WriteLineAsync("qwen3 serve: stopped");
        return Qwen3Cli.ExitOk;
    }
}
