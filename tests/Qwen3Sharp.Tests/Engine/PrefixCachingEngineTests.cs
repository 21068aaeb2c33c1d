using Qwen3Sharp.Engine;
using Qwen3Sharp.Loading;
using Qwen3Sharp.Sampling;

namespace Qwen3Sharp.Tests.Engine;

/// <summary>Automatic prefix caching through the engine on the demo model (real vocabulary, random weights).</summary>
public sealed class PrefixCachingEngineTests
{
    private static readonly SamplingParams Greedy = new() { Temperature = 0 };

    private static Qwen3Host Host(string directory, int maxBatchedTokens = 512)
    {
        ModelSynthesizer.Write(directory, "tiny", new SynthesisOptions
        {
            Seed = 7,
            TokenizerDirectory = Path.Combine(AppContext.BaseDirectory, "Fixtures", "qwen3-tokenizer"),
        });
        return Qwen3Host.Load(directory, new HostOptions { ThreadCount = 2, ContextSize = 256, MaxSequences = 4, MaxBatchedTokens = maxBatchedTokens });
    }

    private static int[] Prompt(int vocab, int length, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => rng.Next(vocab)).ToArray();
    }

    private static async Task<(List<int> Tokens, GenerationUsage Usage)> Run(InferenceEngine engine, int[] prompt, int maxTokens = 12)
    {
        var tokens = new List<int>();
        GenerationUsage? usage = null;
        await foreach (GenerationEvent e in engine.GenerateAsync(new GenerationRequest { PromptTokens = prompt, Sampling = Greedy, MaxTokens = maxTokens }))
        {
            if (e is TokenGenerated g)
            {
                tokens.Add(g.TokenId);
            }
            else if (e is GenerationFinished f)
            {
                usage = f.Usage;
            }
        }

        return (tokens, usage!);
    }

    [Theory]
    [InlineData(40)]
    [InlineData(48)]   // a whole number of blocks: the last block still holds the token computed for logits
    [InlineData(15)]   // shorter than a block: nothing to reuse
    public async Task SecondIdenticalPrompt_ReusesFullBlocksExceptTheLastToken_SameGreedyOutput(int length)
    {
        using var temp = new TempDir();
        using Qwen3Host host = Host(temp.Path);
        InferenceEngine engine = host.Engine;
        int[] prompt = Prompt(engine.VocabSize, length, seed: length);

        var (first, firstUsage) = await Run(engine, prompt);
        var (second, secondUsage) = await Run(engine, prompt);

        int expected = (length - 1) / 16 * 16;
        Assert.Equal(0, firstUsage.CachedPromptTokenCount);
        Assert.Equal(expected, secondUsage.CachedPromptTokenCount);
        Assert.Equal(length, secondUsage.PromptTokens);
        Assert.Equal(first, second);   // reused KV gives the uncached greedy output
        Assert.Equal(2L * length, engine.Stats.PrefixCacheQueriedTokens);
        Assert.Equal(expected, engine.Stats.PrefixCacheHitTokens);
        Assert.Equal(0, engine.Stats.KvBlocksUsed);   // cached blocks are unreferenced once both finished
    }

    [Fact]
    public async Task SamePromptFourTimesAtOnce_LaterOnesWaitForThePrefillAndShareItsBlocks()
    {
        // n = 4 choices of one prompt arrive together; the prompt (100 tokens) is prefilled in chunks of 32, so without
        // sharing each would compute and store all 7 of its blocks. The scheduler holds the 3 later ones until the first
        // has registered its 6 full blocks: each then reuses 96 tokens and computes 4.
        using var temp = new TempDir();
        ModelSynthesizer.Write(temp.Path, "tiny", new SynthesisOptions
        {
            Seed = 7,
            TokenizerDirectory = Path.Combine(AppContext.BaseDirectory, "Fixtures", "qwen3-tokenizer"),
        });
        using Qwen3Host host = Qwen3Host.Load(temp.Path, new HostOptions
        {
            ThreadCount = 2, ContextSize = 256, MaxSequences = 4, MaxBatchedTokens = 32, KvCacheDType = Cache.KvCacheDType.F32,
        });
        InferenceEngine engine = host.Engine;
        int[] prompt = Prompt(engine.VocabSize, 100, seed: 4);
        int peakBlocks = 0;
        using var done = new CancellationTokenSource();
        Task watch = Task.Run(async () =>
        {
            while (!done.IsCancellationRequested)
            {
                peakBlocks = Math.Max(peakBlocks, engine.Stats.KvBlocksUsed);
                await Task.Delay(1);
            }
        });
        var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Run(engine, prompt, maxTokens: 8)));
        await done.CancelAsync();
        await watch;

        Assert.All(results, r => Assert.Equal(results[0].Tokens, r.Tokens));
        Assert.Equal([0, 96, 96, 96], results.Select(r => r.Usage.CachedPromptTokenCount).Order().ToArray());
        Assert.Equal(3 * 96, engine.Stats.PrefixCacheHitTokens);
        // 6 shared full blocks + each sequence's own last block (positions 96..107): at most 10 at once, against 28 unshared.
        Assert.InRange(peakBlocks, 1, 10);
        Assert.Equal(0, engine.Stats.KvBlocksUsed);
    }

    [Fact]
    public async Task BlocksFilledDuringDecode_AreCached_ForTheNextTurnsPrompt()
    {
        using var temp = new TempDir();
        using Qwen3Host host = Host(temp.Path);
        InferenceEngine engine = host.Engine;
        int[] prompt = Prompt(engine.VocabSize, 10, seed: 1);
        var (reply, _) = await Run(engine, prompt, maxTokens: 24);   // 10 + 23 computed tokens: 2 full blocks
        int[] next = [.. prompt, .. reply, .. Prompt(engine.VocabSize, 5, seed: 2)];
        var (cachedOut, usage) = await Run(engine, next);
        Assert.Equal(32, usage.CachedPromptTokenCount);

        // The same continuation on a fresh engine (nothing cached) gives the same greedy tokens.
        using var temp2 = new TempDir();
        using Qwen3Host fresh = Host(temp2.Path);
        var (uncachedOut, freshUsage) = await Run(fresh.Engine, next);
        Assert.Equal(0, freshUsage.CachedPromptTokenCount);
        Assert.Equal(uncachedOut, cachedOut);
    }

    [Fact]
    public async Task ConcurrentSamePrompt_WithChunkedPrefill_LaterRequestsShareTheFirstOnesBlocks()
    {
        using var temp = new TempDir();
        using Qwen3Host host = Host(temp.Path, maxBatchedTokens: 16);   // the first prompt takes every step's budget
        InferenceEngine engine = host.Engine;
        int[] prompt = Prompt(engine.VocabSize, 50, seed: 3);
        var results = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => Run(engine, prompt, maxTokens: 6)));
        Assert.Equal(0, results[0].Usage.CachedPromptTokenCount);
        Assert.Equal(48, results[1].Usage.CachedPromptTokenCount);
        Assert.Equal(48, results[2].Usage.CachedPromptTokenCount);
        Assert.Equal(results[0].Tokens, results[1].Tokens);
        Assert.Equal(results[0].Tokens, results[2].Tokens);
    }
}
