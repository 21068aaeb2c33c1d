using System.Text.Json.Nodes;
using Qwen3Sharp.Chat;

namespace Qwen3Sharp.Server;

/// <summary>Where reasoning goes in responses: vLLM/DeepSeek's <c>reasoning_content</c>, OpenRouter-style <c>reasoning</c>, or both.</summary>
public enum ReasoningFieldMode
{
    ReasoningContent,
    Reasoning,
    Both,
}

/// <summary>The <c>qwen3 serve</c> settings.</summary>
public sealed record ServerOptions
{
    /// <summary>Address to bind; loopback unless told otherwise.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>TCP port; 0 picks a free one (see <see cref="Qwen3Server.GetBoundAddress"/>).</summary>
    public int Port { get; init; } = 8000;

    /// <summary>When set, every endpoint but <c>/health</c> requires <c>Authorization: Bearer &lt;key&gt;</c>.</summary>
    public string? ApiKey { get; init; }

    /// <summary>Model names requests may use; the first is the id reported back (default: the model directory's name).</summary>
    public IReadOnlyList<string> ServedModelNames { get; init; } = ["qwen3"];

    /// <summary>Thinking when a request does not say in any form; null = the chat service's default (Qwen3: on).</summary>
    public bool? DefaultEnableThinking { get; init; }

    /// <summary>Which response field carries reasoning.</summary>
    public ReasoningFieldMode ReasoningField { get; init; } = ReasoningFieldMode.ReasoningContent;

    /// <summary>chat_template_kwargs applied under every request's own.</summary>
    public IReadOnlyDictionary<string, JsonNode?> DefaultTemplateKwargs { get; init; } = new Dictionary<string, JsonNode?>();

    /// <summary>Reasoning tokens allowed when a request sets no thinking_budget; null = unlimited.</summary>
    public int? DefaultThinkingBudget { get; init; }

    /// <summary>Parse a &lt;tool_call&gt; written inside reasoning as a call (applied through <see cref="ToChatServiceOptions"/>).</summary>
    public bool ParseToolCallsInReasoning { get; init; }

    /// <summary>Shape every tool call under tool_choice auto (<see cref="ChatServiceOptions.ConstrainToolCalls"/>); off: only strict functions'.</summary>
    public bool ConstrainToolCalls { get; init; } = true;

    /// <summary>Most time to compile a structured-output schema or tools' schemas and compute the first token mask; past it, 400.</summary>
    public TimeSpan StructuredCompileTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Largest request body accepted; larger ones get 413.</summary>
    public long MaxRequestBodyBytes { get; init; } = 8 * 1024 * 1024;

    /// <summary>Most choices one request may ask for (n, or prompts × n for completions).</summary>
    public int MaxChoices { get; init; } = 8;

    /// <summary>
    /// The name a model directory is served under: its folder name (<c>/models/Qwen3-1.7B</c> gives <c>Qwen3-1.7B</c>),
    /// or the repository name for a Hugging Face cache snapshot (<c>…/models--Qwen--Qwen3-1.7B/snapshots/&lt;hash&gt;</c>).
    /// </summary>
    public static string ModelNameFromDirectory(string directory)
    {
        string full = Path.GetFullPath(directory).TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar);
        string? parent = Path.GetDirectoryName(full);
        string? repo = parent is null ? null : Path.GetDirectoryName(parent);
        if (parent is not null && repo is not null && Path.GetFileName(parent) == "snapshots"
            && Path.GetFileName(repo) is { } cache && cache.StartsWith("models--", StringComparison.Ordinal))
        {
            return cache[(cache.LastIndexOf("--", StringComparison.Ordinal) + 2)..];
        }

        return Path.GetFileName(full);
    }

    /// <summary>The chat-layer settings these options imply, for building the <see cref="ChatService"/> the server runs on.</summary>
    public ChatServiceOptions ToChatServiceOptions() => new()
    {
        DefaultEnableThinking = DefaultEnableThinking ?? true,
        DefaultTemplateKwargs = DefaultTemplateKwargs,
        DefaultThinkingBudget = DefaultThinkingBudget,
        ParseToolCallsInReasoning = ParseToolCallsInReasoning,
        ConstrainToolCalls = ConstrainToolCalls,
        StructuredCompileTimeout = StructuredCompileTimeout,
    };

    internal void Validate()
    {
        if (ServedModelNames.Count == 0 || ServedModelNames.Any(string.IsNullOrWhiteSpace))
        {
            throw new ArgumentException("ServedModelNames must hold at least one non-empty name.", nameof(ServedModelNames));
        }

        if (Port is < 0 or > 65535)
        {
            throw new ArgumentOutOfRangeException(nameof(Port), Port, "Port must be 0..65535.");
        }

        if (MaxRequestBodyBytes <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxRequestBodyBytes), MaxRequestBodyBytes, "MaxRequestBodyBytes must be positive.");
        }

        if (MaxChoices < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxChoices), MaxChoices, "MaxChoices must be at least 1.");
        }
    }
}
