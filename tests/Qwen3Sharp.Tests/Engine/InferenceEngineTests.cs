using Qwen3Sharp.Engine;

namespace Qwen3Sharp.Tests.Engine;

public class InferenceEngineTests
{
    private static InferenceEngine CreateEngine(FakeRunner runner, EngineOptions? options = null) =>
        new(runner, _ => new ArgMaxSampler(), _ => new LetterDecoder(), options);

    internal static async Task<(List<TokenGenerated> Tokens, GenerationFinished Finished)> Collect(
        IAsyncEnumerable<GenerationEvent> events)
    {
        var tokens = new List<TokenGenerated>();
        GenerationFinished? finished = null;
        await foreach (GenerationEvent e in events)
        {
            Assert.Null(finished);  // nothing after the finish event
            switch (e)
            {
                case TokenGenerated t: tokens.Add(t); break;
                case GenerationFinished f: finished = f; break;
            }
        }

        Assert.NotNull(finished);
        return (tokens, finished!);
    }

    [Fact]
    public async Task Generate_MaxTokens_FinishesWithLengthAndUsage()
    {
        var runner = new FakeRunner();
        using var engine = CreateEngine(runner);
        var (tokens, finished) = await Collect(engine.GenerateAsync(new GenerationRequest { PromptTokens = [1, 2, 3], MaxTokens = 4 }));
        Assert.Equal([4, 5, 6, 7], tokens.Select(t => t.TokenId));
        Assert.Equal("efgh", string.Concat(tokens.Select(t => t.TextDelta)));
        Assert.Equal(FinishReason.Length, finished.Reason);
        Assert.Equal(new GenerationUsage(3, 4, 0), finished.Usage);
        // prefill as one chunk, then one token per decode step; the last sampled token is never computed
        Assert.Equal([3, 1, 1, 1], runner.Calls.Select(c => c.TokenCount));
        Assert.Equal(0, runner.LiveSequences);
    }

    [Fact]
    public async Task Generate_StopToken_FinishesWithStopAndNoText()
    {
        using var engine = CreateEngine(new FakeRunner());
        var (tokens, finished) = await Collect(engine.GenerateAsync(
            new GenerationRequest { PromptTokens = [1], MaxTokens = 10, StopTokenIds = [4] }));
        Assert.Equal([2, 3, 4], tokens.Select(t => t.TokenId));
        Assert.Equal("cd", string.Concat(tokens.Select(t => t.TextDelta)) + finished.TextDelta);
        Assert.Equal(FinishReason.Stop, finished.Reason);
        Assert.Equal(4, finished.StopTokenId);
    }

    [Fact]
    public async Task Generate_StopStringAcrossTokens_TextEndsBeforeIt()
    {
        using var engine = CreateEngine(new FakeRunner());
        // output letters: b c d e f ...; "de" spans two tokens, "dx" is a false start that must be released
        var (tokens, finished) = await Collect(engine.GenerateAsync(
            new GenerationRequest { PromptTokens = [0], MaxTokens = 10, StopStrings = ["dx", "de"] }));
        Assert.Equal("bc", string.Concat(tokens.Select(t => t.TextDelta)) + finished.TextDelta);
        Assert.Equal(FinishReason.Stop, finished.Reason);
        Assert.Equal("de", finished.StopString);
        Assert.Equal(4, tokens.Count);
    }

    [Fact]
    public async Task Generate_PossibleStopPrefixAtEnd_IsReleasedAtFinish()
    {
        using var engine = CreateEngine(new FakeRunner());
        var (tokens, finished) = await Collect(engine.GenerateAsync(
            new GenerationRequest { PromptTokens = [0], MaxTokens = 3, StopStrings = ["dz"] }));
        Assert.Equal("bc", string.Concat(tokens.Select(t => t.TextDelta)));
        Assert.Equal("d", finished.TextDelta);
        Assert.Equal(FinishReason.Length, finished.Reason);
    }

    [Fact]
    public async Task Generate_Cancelled_StopsAndFreesSequence()
    {
        var runner = new FakeRunner(contextSize: 100_000);
        using var engine = CreateEngine(runner);
        using var cts = new CancellationTokenSource();
        int seen = 0;
        GenerationFinished? finished = null;
        await foreach (GenerationEvent e in engine.GenerateAsync(new GenerationRequest { PromptTokens = [1] }, cts.Token))
        {
            if (e is TokenGenerated && ++seen == 5)
            {
                cts.Cancel();
            }

            finished = e as GenerationFinished ?? finished;
        }

        Assert.Equal(FinishReason.Cancelled, finished!.Reason);
        Assert.Equal(5, seen);  // nothing is delivered after the cancel but the finish
        Assert.Equal(0, runner.LiveSequences);
    }

    [Fact]
    public async Task Generate_ReaderLeavesEarly_FreesSequence()
    {
        var runner = new FakeRunner(contextSize: 100_000);
        using var engine = CreateEngine(runner);
        await foreach (GenerationEvent e in engine.GenerateAsync(new GenerationRequest { PromptTokens = [1] }))
        {
            break;
        }

        for (int i = 0; i < 200 && Volatile.Read(ref runner.LiveSequences) != 0; i++)
        {
            await Task.Delay(10);
        }

        Assert.Equal(0, runner.LiveSequences);
        Assert.Equal(0, engine.PendingRequestCount);
    }

    [Fact]
    public async Task Generate_PromptFillsContext_Throws()
    {
        using var engine = CreateEngine(new FakeRunner(contextSize: 8));
        var ex = await Assert.ThrowsAsync<GenerationRequestException>(() =>
            Collect(engine.GenerateAsync(new GenerationRequest { PromptTokens = new int[8] })));
        Assert.Contains("8 tokens", ex.Message);
    }

    [Fact]
    public async Task Generate_MaxTokensBeyondContext_StopsAtContext()
    {
        using var engine = CreateEngine(new FakeRunner(contextSize: 8));
        var (tokens, finished) = await Collect(engine.GenerateAsync(new GenerationRequest { PromptTokens = [1, 2, 3], MaxTokens = 100 }));
        Assert.Equal(5, tokens.Count);
        Assert.Equal(FinishReason.Length, finished.Reason);
    }

    [Fact]
    public async Task Generate_TokenOutsideVocabulary_Throws()
    {
        using var engine = CreateEngine(new FakeRunner());
        await Assert.ThrowsAsync<GenerationRequestException>(() =>
            Collect(engine.GenerateAsync(new GenerationRequest { PromptTokens = [1, 99] })));
    }

    [Fact]
    public async Task Generate_QueueFull_ThrowsOverloaded()
    {
        var runner = new FakeRunner(maxSequences: 1);
        runner.Gate.Reset();
        using var engine = CreateEngine(runner, new EngineOptions { MaxQueuedRequests = 2 });
        var running = Enumerable.Range(0, 3)
            .Select(_ => Collect(engine.GenerateAsync(new GenerationRequest { PromptTokens = [1], MaxTokens = 2 })))
            .ToList();
        await Task.Delay(50);
        await Assert.ThrowsAsync<EngineOverloadedException>(() =>
            Collect(engine.GenerateAsync(new GenerationRequest { PromptTokens = [1], MaxTokens = 2 })));
        runner.Gate.Set();
        foreach (var r in running)
        {
            Assert.Equal(2, (await r).Tokens.Count);
        }
    }

    [Fact]
    public async Task Generate_ManyConcurrent_EachGetsItsOwnContinuation()
    {
        var runner = new FakeRunner(vocabSize: 64, contextSize: 64, maxSequences: 3);
        using var engine = CreateEngine(runner);
        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(i =>
            Collect(engine.GenerateAsync(new GenerationRequest { PromptTokens = [i, i + 1], MaxTokens = 6 }))));
        for (int i = 0; i < 8; i++)
        {
            Assert.Equal(Enumerable.Range(i + 2, 6), results[i].Tokens.Select(t => t.TokenId));
        }

        Assert.Equal(0, runner.LiveSequences);
    }

    [Fact]
    public async Task Generate_ThinkingBudget_ForcesCloseTokensThenContinues()
    {
        // vocab 16: token 3 = <think>, 9 = </think>; prompt ends inside reasoning
        using var engine = CreateEngine(new FakeRunner(),
            new EngineOptions { ThinkStartTokenId = 3, ThinkEndTokenId = 9 });
        var (tokens, finished) = await Collect(engine.GenerateAsync(new GenerationRequest
        {
            PromptTokens = [0],
            MaxTokens = 8,
            StartsInsideReasoning = true,
            ThinkingBudget = new ThinkingBudget(2, [12, 9]),
        }));
        // sampled 1, 2 (budget spent), forced 12, 9, then the model continues from 9: 10, 11, 12, 13
        Assert.Equal([1, 2, 12, 9, 10, 11, 12, 13], tokens.Select(t => t.TokenId));
        Assert.Equal([false, false, true, true, false, false, false, false], tokens.Select(t => t.Forced));
        Assert.Equal(3, finished.Usage.ReasoningTokens);  // 1, 2 and the forced 12
    }

    [Fact]
    public async Task Generate_Logprobs_AreLogSoftmaxOfRawLogits()
    {
        using var engine = CreateEngine(new FakeRunner(vocabSize: 4));
        var (tokens, _) = await Collect(engine.GenerateAsync(new GenerationRequest { PromptTokens = [0], MaxTokens = 1, TopLogprobs = 2 }));
        TokenLogprobs lp = tokens[0].Logprobs!;
        double expected = 5 - Math.Log(Math.Exp(5) + 3);
        Assert.Equal(expected, lp.Logprob, 1e-5);
        Assert.Equal(1, lp.Top[0].TokenId);
        Assert.Equal(2, lp.Top.Count);
        Assert.Equal(-Math.Log(Math.Exp(5) + 3), lp.Top[1].Logprob, 1e-5);
    }
}

public class InferenceEngineShutdownTests
{
    [Fact]
    public async Task Dispose_EndsRunningAndWaitingRequests()
    {
        // 1 ms a forward pass: the running request cannot reach its length limit (999,999 tokens) before Dispose, however
        // late the 100 ms delay returns (unthrottled, a loaded CI run once generated all of them and finished it by length)
        var runner = new FakeRunner(contextSize: 1_000_000, maxSequences: 1) { ForwardDelay = TimeSpan.FromMilliseconds(1) };
        var engine = new InferenceEngine(runner, _ => new ArgMaxSampler(), _ => new LetterDecoder());
        var streams = Enumerable.Range(0, 3).Select(async _ =>
        {
            GenerationFinished? last = null;
            await foreach (GenerationEvent e in engine.GenerateAsync(new GenerationRequest { PromptTokens = [1] }))
            {
                last = e as GenerationFinished ?? last;
            }

            return last;
        }).ToList();
        await Task.Delay(100);
        engine.Dispose();
        foreach (var s in streams)
        {
            Assert.Equal(FinishReason.Cancelled, (await s.WaitAsync(TimeSpan.FromSeconds(10)))!.Reason);
        }

        Assert.Equal(0, runner.LiveSequences);
    }
}

public class InferenceEngineValidationTests
{
    [Fact]
    public async Task Generate_InvalidSampling_IsARequestErrorAndTheEngineLivesOn()
    {
        var runner = new FakeRunner();
        using var engine = new InferenceEngine(runner, _ => new ArgMaxSampler(), _ => new LetterDecoder());
        var ex = await Assert.ThrowsAsync<GenerationRequestException>(async () =>
        {
            await foreach (GenerationEvent _ in engine.GenerateAsync(new GenerationRequest
            {
                PromptTokens = [1],
                Sampling = new Qwen3Sharp.Sampling.SamplingParams { TopP = 2 },
            }))
            {
            }
        });
        Assert.Equal("top_p", ex.Param);

        var tokens = new List<int>();
        await foreach (GenerationEvent e in engine.GenerateAsync(new GenerationRequest { PromptTokens = [1], MaxTokens = 2 }))
        {
            if (e is TokenGenerated t)
            {
                tokens.Add(t.TokenId);
            }
        }

        Assert.Equal([2, 3], tokens);
    }

    [Fact]
    public async Task Generate_SamplerFactoryThrows_OnlyThatRequestFails()
    {
        int calls = 0;
        using var engine = new InferenceEngine(new FakeRunner(),
            _ => ++calls == 1 ? throw new InvalidOperationException("boom") : new ArgMaxSampler(), _ => new LetterDecoder());
        await Assert.ThrowsAsync<InvalidOperationException>(async () =>
        {
            await foreach (GenerationEvent _ in engine.GenerateAsync(new GenerationRequest { PromptTokens = [1], MaxTokens = 2 }))
            {
            }
        });
        int count = 0;
        await foreach (GenerationEvent e in engine.GenerateAsync(new GenerationRequest { PromptTokens = [1], MaxTokens = 2 }))
        {
            count += e is TokenGenerated ? 1 : 0;
        }

        Assert.Equal(2, count);
        Assert.Equal(0, engine.PendingRequestCount);
    }

    [Fact]
    public async Task Generate_StepFailsInsideTheScheduler_ItsRequestsFail_TheLoopLivesOn() =>
        await StepFailsInsideTheScheduler().WaitAsync(TimeSpan.FromMinutes(1));

    private static async Task StepFailsInsideTheScheduler()
    {
        var runner = new FakeRunner { FailingAllocations = 1 };
        using var engine = new InferenceEngine(runner, _ => new ArgMaxSampler(), _ => new LetterDecoder());
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(async () =>
        {
            await foreach (GenerationEvent _ in engine.GenerateAsync(new GenerationRequest { PromptTokens = [1], MaxTokens = 3 }))
            {
            }
        });
        Assert.Equal("allocation failed", ex.Message);

        await AssertServesOnAsync(engine, runner, maxTokens: 3);
    }

    /// <summary>The loop still serves a request whole, and nothing is left holding a sequence.</summary>
    private static async Task AssertServesOnAsync(InferenceEngine engine, FakeRunner runner, int maxTokens)
    {
        var (tokens, _) = await InferenceEngineTests.Collect(engine.GenerateAsync(new GenerationRequest { PromptTokens = [1], MaxTokens = maxTokens }));
        Assert.Equal(maxTokens, tokens.Count);
        Assert.Equal(0, engine.PendingRequestCount);
        Assert.Equal(0, runner.LiveSequences);
    }

    /// <summary>Arg-max that throws from its <paramref name="failAt"/>-th choice on (as a structured-output mask past its time limit does).</summary>
    private sealed class FailingSampler(int failAt) : ITokenSampler
    {
        private readonly ArgMaxSampler _inner = new();
        private int _calls;

        public int Sample(Span<float> logits) => ++_calls >= failAt
            ? throw new Qwen3Sharp.Structured.GrammarTooComplexException("computing the token mask took too long")
            : _inner.Sample(logits);

        public void Accept(int tokenId) => _inner.Accept(tokenId);
    }

    [Fact]
    public async Task Generate_SamplerThrowsMidGeneration_OnlyThatRequestFails_TheOthersAndTheLoopLiveOn() =>
        // a dead loop thread would leave every reader waiting: bounded, so that regression fails instead of hanging
        await SamplerThrowsMidGeneration().WaitAsync(TimeSpan.FromMinutes(1));

    private static async Task SamplerThrowsMidGeneration()
    {
        var runner = new FakeRunner();
        using var engine = new InferenceEngine(runner,
            q => q.MaxTokens == 9 ? new FailingSampler(failAt: 3) : new ArgMaxSampler(), _ => new LetterDecoder());
        var failing = new List<int>();
        Task<Exception?> first = Task.Run(async () =>
        {
            try
            {
                await foreach (GenerationEvent e in engine.GenerateAsync(new GenerationRequest { PromptTokens = [1], MaxTokens = 9 }))
                {
                    if (e is TokenGenerated t)
                    {
                        failing.Add(t.TokenId);
                    }
                }
            }
            catch (Exception ex)
            {
                return ex;
            }

            return null;
        });
        var (tokens, finished) = await InferenceEngineTests.Collect(engine.GenerateAsync(new GenerationRequest { PromptTokens = [1], MaxTokens = 6 }));

        Assert.IsType<Qwen3Sharp.Structured.GrammarTooComplexException>(await first);
        Assert.Equal([2, 3], failing);   // two tokens, then the third choice threw
        Assert.Equal([2, 3, 4, 5, 6, 7], tokens.Select(t => t.TokenId));
        Assert.Equal(FinishReason.Length, finished.Reason);
        await AssertServesOnAsync(engine, runner, maxTokens: 2);
    }
}
