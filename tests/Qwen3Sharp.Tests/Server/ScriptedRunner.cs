using Qwen3Sharp.Engine;
using Qwen3Sharp.Tokenization;

namespace Qwen3Sharp.Tests.Server;

/// <summary>What the scripted model writes after a prompt.</summary>
internal abstract record Script
{
    /// <summary>These tokens, in order, then &lt;|im_end|&gt;.</summary>
    public sealed record Tokens(int[] Ids) : Script;

    /// <summary><paramref name="Count"/> digits drawn uniformly by the sampler (so seeds matter), then &lt;|im_end|&gt;.</summary>
    public sealed record RandomDigits(int Count) : Script;

    /// <summary>The forward pass throws once <paramref name="AfterTokens"/> tokens are out (an engine failure, not the client's).</summary>
    public sealed record Fail(int AfterTokens) : Script;
}

/// <summary>
/// A model of Qwen3's vocabulary (151936) that writes a script chosen from its decoded prompt: at output position k the
/// script's token gets logit 0, a fixed runner-up -30 and every other token -100, so any sampling setting picks the
/// script (greedy exactly) and logprobs are known in closed form. The prompt must arrive in one forward call
/// (the tests' engine has a large step budget).
/// </summary>
internal sealed class ScriptedRunner(Qwen3Tokenizer tokenizer, Func<string, Script> choose, int contextSize, int maxSequences) : IModelRunner
{
    public const int Vocab = 151936;

    /// <summary>Far enough below the script's 0 that no sampling setting picks it, close enough for logprobs to see it.</summary>
    public const float RunnerUpLogit = -30f;

    private readonly int _imEnd = tokenizer.ImEnd!.Value;
    private readonly int[] _digits = Enumerable.Range(0, 10).Select(d => tokenizer.Encode(d.ToString())[0]).ToArray();

    public int RunnerUp { get; } = tokenizer.Encode("?")[0];

    public int RunnerUpAlternative { get; } = tokenizer.Encode("!")[0];

    public int VocabSize => Vocab;

    public int ContextSize { get; } = contextSize;

    public int MaxSequences { get; } = maxSequences;

    public int LiveSequences;

    /// <summary>Delay per forward call, to keep a generation running while a test acts.</summary>
    public TimeSpan ForwardDelay { get; set; }

    /// <summary>Reset to hold every forward call (fills the queue).</summary>
    public ManualResetEventSlim Gate { get; } = new(initialState: true);

    public ISequenceState? TryAllocateSequence()
    {
        if (Interlocked.Increment(ref LiveSequences) > MaxSequences)
        {
            Interlocked.Decrement(ref LiveSequences);
            return null;
        }

        return new Sequence(this);
    }

    public void Forward(ISequenceState sequence, ReadOnlySpan<int> tokenIds, Span<float> logits)
    {
        Gate.Wait();
        if (ForwardDelay > TimeSpan.Zero)
        {
            Thread.Sleep(ForwardDelay);
        }

        var s = (Sequence)sequence;
        s.Tokens.AddRange(tokenIds);
        if (s.Script is null)
        {
            s.PromptLength = s.Tokens.Count;
            s.Script = choose(tokenizer.Decode(s.Tokens.ToArray()));
        }

        int k = s.Tokens.Count - s.PromptLength;
        logits.Fill(-100f);
        switch (s.Script)
        {
            case Script.Fail f when k >= f.AfterTokens:
                throw new InvalidOperationException("scripted model failure");
            case Script.Fail:
                logits[RunnerUp] = 0;
                return;
            case Script.RandomDigits r when k < r.Count:
                foreach (int d in _digits)
                {
                    logits[d] = 0;
                }

                return;
            case Script.RandomDigits:
                logits[_imEnd] = 0;
                return;
            case Script.Tokens t:
                int target = k < t.Ids.Length ? t.Ids[k] : _imEnd;
                logits[target] = 0;
                logits[target == RunnerUp ? RunnerUpAlternative : RunnerUp] = RunnerUpLogit;
                return;
        }
    }

    public void Dispose()
    {
    }

    private sealed class Sequence(ScriptedRunner owner) : ISequenceState
    {
        public readonly List<int> Tokens = [];

        public int PromptLength;

        public Script? Script;

        public int Length => Tokens.Count;

        public void Dispose() => Interlocked.Decrement(ref owner.LiveSequences);
    }
}
