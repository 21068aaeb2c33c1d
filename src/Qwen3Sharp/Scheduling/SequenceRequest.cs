using System.Threading.Channels;
using Qwen3Sharp.Engine;

namespace Qwen3Sharp.Scheduling;

/// <summary>The engine's running state of one request (vLLM's Request): tokens so far and how many are computed.</summary>
internal sealed class SequenceRequest
{
    private readonly List<int> _tokens;

    public SequenceRequest(long id, GenerationRequest request, int maxNewTokens, Channel<GenerationEvent> output)
    {
        Id = id;
        Request = request;
        MaxNewTokens = maxNewTokens;
        Output = output;
        _tokens = new List<int>(request.PromptTokens.Count + Math.Min(maxNewTokens, 4096));
        _tokens.AddRange(request.PromptTokens);
        PromptTokenCount = request.PromptTokens.Count;
        InsideReasoning = request.StartsInsideReasoning;
    }

    public long Id { get; }

    /// <summary>When the request was submitted (<see cref="System.Diagnostics.Stopwatch"/> ticks), for the metrics.</summary>
    public long ArrivalTimestamp { get; } = System.Diagnostics.Stopwatch.GetTimestamp();

    /// <summary>When its latest token was produced (Stopwatch ticks).</summary>
    public long LastTokenTimestamp { get; set; }

    public GenerationRequest Request { get; }

    public Channel<GenerationEvent> Output { get; }

    public int PromptTokenCount { get; }

    public int MaxNewTokens { get; }

    /// <summary>Prompt and generated tokens.</summary>
    public IReadOnlyList<int> Tokens => _tokens;

    public int TokenCount => _tokens.Count;

    /// <summary>Tokens whose keys and values are in <see cref="Sequence"/>.</summary>
    public int ComputedTokenCount { get; set; }

    public int GeneratedTokenCount => _tokens.Count - PromptTokenCount;

    public ISequenceState? Sequence { get; set; }

    public ITokenSampler? Sampler { get; set; }

    public ITextDecoder? Decoder { get; set; }

    public StopStringMatcher? StopMatcher { get; set; }

    /// <summary>Forced tokens still to emit (thinking budget close), in order.</summary>
    public Queue<int> ForcedTokens { get; } = new();

    public bool InsideReasoning { get; set; }

    public int ReasoningTokenCount { get; set; }

    public bool BudgetSpent { get; set; }

    /// <summary>Times this request gave its KV blocks back to let older ones go on.</summary>
    public int PreemptionCount { get; set; }

    /// <summary>Prompt tokens whose KV came from the prefix cache at first admission.</summary>
    public int CachedPromptTokenCount { get; set; }

    public volatile bool CancelRequested;

    public void AppendToken(int tokenId) => _tokens.Add(tokenId);
}
