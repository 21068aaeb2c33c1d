using Qwen3Sharp.Cache;
using Qwen3Sharp.Engine;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Loading;
using Qwen3Sharp.Model;
using Qwen3Sharp.Sampling;
using Qwen3Sharp.Tensors;
using Qwen3Sharp.Tests.Model;
using Xunit.Abstractions;

namespace Qwen3Sharp.Tests.Engine;

/// <summary>The paged, batched engine on real models: batch invariance, preemption under memory pressure, disconnects.</summary>
public sealed class BatchedEngineTests(ITestOutputHelper output)
{
    private static string Demo(string directory)
    {
        ModelSynthesizer.Write(directory, "tiny", new SynthesisOptions
        {
            Seed = 7,
            TokenizerDirectory = Path.Combine(AppContext.BaseDirectory, "Fixtures", "qwen3-tokenizer"),
        });
        return directory;
    }

    /// <summary>The embedded demo model <c>qwen3 serve</c> falls back to (float32 weights, the full vocabulary).</summary>
    private static string TrainedDemo(string directory)
    {
        Qwen3Sharp.Cli.DemoModel.Write(directory);
        return directory;
    }

    private static int[][] Prompts(int vocab, int count)
    {
        var rng = new Random(3);
        return Enumerable.Range(0, count).Select(i => Enumerable.Range(0, 3 + 5 * i).Select(_ => rng.Next(vocab)).ToArray()).ToArray();
    }

    private static int ArgMax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++)
        {
            if (x[i] > x[best])
            {
                best = i;
            }
        }

        return best;
    }

    /// <summary>Greedy decoding of every prompt together (one forward per step), recording each step's logits.</summary>
    private static (List<int>[] Tokens, List<float[]>[] Logits) Greedy(Qwen3ModelRunner runner, int[][] prompts, int steps)
    {
        int n = prompts.Length, vocab = runner.VocabSize;
        var sequences = prompts.Select(_ => runner.TryAllocateSequence()!).ToArray();
        var tokens = prompts.Select(_ => new List<int>()).ToArray();
        var logits = prompts.Select(_ => new List<float[]>()).ToArray();
        var buffer = new float[(n + 1) * vocab];
        int[] next = new int[n];
        for (int step = 0; step <= steps; step++)
        {
            var ids = new List<int>();
            var entries = new RunnerEntry[n];
            for (int i = 0; i < n; i++)
            {
                int[] part = step == 0 ? prompts[i] : [next[i]];
                entries[i] = new RunnerEntry(sequences[i], ids.Count, part.Length, true);
                ids.AddRange(part);
            }

            runner.ForwardBatch(ids.ToArray(), entries, buffer);
            for (int i = 0; i < n; i++)
            {
                float[] row = buffer.AsSpan(i * vocab, vocab).ToArray();
                logits[i].Add(row);
                next[i] = ArgMax(row);
                tokens[i].Add(next[i]);
            }
        }

        foreach (ISequenceState s in sequences)
        {
            s.Dispose();
        }

        Assert.Equal(0, runner.UsedKvBlockCount);
        return (tokens, logits);
    }

    public static TheoryData<string, KvCacheDType, bool> ModelsAndDTypes()
    {
        var data = new TheoryData<string, KvCacheDType, bool>();
        foreach (string model in new[] { "tiny-a", "tiny-b", "demo", "demo-model" })   // BF16, F32, BF16, F32 weights
        {
            foreach (KvCacheDType dtype in new[] { KvCacheDType.F32, KvCacheDType.BF16, KvCacheDType.F16 })
            {
                data.Add(model, dtype, false);
                data.Add(model, dtype, true);
            }
        }

        data.Add("tiny-a", KvCacheDType.Q8_0, true);   // q8_0 needs head_dim a multiple of 32 (tiny-a and the synthesized demo)
        data.Add("demo", KvCacheDType.Q8_0, true);

        // Copied into the 8-row float groups (the default copy on AVX2 machines): batch invariant with the default kernels
        foreach (KvCacheDType dtype in new[] { KvCacheDType.F16, KvCacheDType.BF16 })
        {
            foreach (string model in new[] { "tiny-a", "tiny-b", "demo", "demo-model" })
            {
                data.Add(model + "-x8", dtype, false);
            }
        }

        data.Add("tiny-a-x8", KvCacheDType.Q8_0, false);

        return data;
    }

    /// <summary>
    /// Logits alone vs in a batch. Batch invariant: identical, bit for bit, with every KV dtype (each token's sums
    /// take its decode order in every product, so k and v are stored with the same bits). Default kernels: within
    /// 1e-4 with the float32 cache (the batched and single-token matrix products differ by float32 rounding only); a
    /// 16-bit cache rounds k and v when storing them, and a 1e-6 difference can cross a rounding boundary (a step of
    /// 2^-8 relative for bf16, 2^-11 for f16), so its bound is the measured worst (bf16 1.6e-3, f16 1.8e-3 on these
    /// models) with a margin. The greedy tokens stay identical either way.
    /// </summary>
    private static double BatchBound(string model, KvCacheDType dtype, bool batchInvariant)
        => batchInvariant || model.EndsWith("-x8", StringComparison.Ordinal) ? 0 : dtype == KvCacheDType.F32 ? 1e-4 : 5e-3;

    [Theory, MemberData(nameof(ModelsAndDTypes))]
    public void ForwardBatch_EightSequences_SameGreedyTokensAndLogitsAsAlone(string model, KvCacheDType dtype, bool batchInvariant)
    {
        using var temp = new TempDir();
        bool x8 = model.EndsWith("-x8", StringComparison.Ordinal);
        string dir = (x8 ? model[..^3] : model) switch
        {
            "demo" => Demo(temp.Path),
            "demo-model" => TrainedDemo(temp.Path),
            string golden => GoldenCase.Dir(golden),
        };
        var m = Qwen3Model.Load(dir, new Qwen3ModelOptions
        {
            ThreadCount = 2,
            ContextSize = 256,
            MaxBatchTokens = 256,
            BatchInvariant = batchInvariant,
            WeightPlacement = x8 ? WeightPlacement.Copy : WeightPlacement.Mapped,
            FloatLayout = x8 ? QuantLayout.Interleaved8 : null,
        });
        if (x8)
        {
            Assert.True(m.Weights.Layers[0].QProj.DType.IsFloatGroups(), $"{model}: {m.Weights.Layers[0].QProj.DType}");
        }

        using var runner = new Qwen3ModelRunner(m, maxSequences: 8, kvBlockCount: 64, dtype);
        int[][] prompts = Prompts(runner.VocabSize, 8);
        const int Steps = 12;
        var (batchTokens, batchLogits) = Greedy(runner, prompts, Steps);
        double worst = 0;
        for (int i = 0; i < prompts.Length; i++)
        {
            var (aloneTokens, aloneLogits) = Greedy(runner, [prompts[i]], Steps);
            Assert.Equal(aloneTokens[0], batchTokens[i]);
            for (int step = 0; step <= Steps; step++)
            {
                for (int v = 0; v < runner.VocabSize; v++)
                {
                    worst = Math.Max(worst, Math.Abs(aloneLogits[0][step][v] - batchLogits[i][step][v]));
                }
            }
        }

        string mode = batchInvariant ? "batch invariant" : "default kernels";
        output.WriteLine($"{model} kv {dtype.Name()} {mode}: max |logit alone - logit in a batch of 8| = {worst:E2}");
        Assert.True(worst <= BatchBound(model, dtype, batchInvariant), $"{model} kv {dtype.Name()} {mode}: logits in a batch differ from alone by {worst:E3}");
    }

    [Fact]
    public void HostOptions_SameKvMemory_16BitHoldsTwiceTheBlocks()
    {
        using var temp = new TempDir();
        string dir = Demo(temp.Path);
        long memory = 40 * KvBlockPool.BytesPerBlock(Qwen3Config.Load(dir), KvCacheDType.F32);
        int Blocks(KvCacheDType dtype)
        {
            using Qwen3Host host = Qwen3Host.Load(dir, new HostOptions { ThreadCount = 1, ContextSize = 4096, KvCacheMemory = memory, KvCacheDType = dtype });
            Assert.Equal(dtype, host.KvCacheDType);
            Assert.Equal(host.KvBlockCount, host.Engine.Stats.KvBlocksTotal);
            Assert.True(host.KvPoolBytes <= memory, $"{dtype}: {host.KvPoolBytes} bytes of KV for a budget of {memory}");
            return host.KvBlockCount;
        }

        Assert.Equal(40, Blocks(KvCacheDType.F32));
        Assert.Equal(80, Blocks(KvCacheDType.BF16));
        Assert.Equal(80, Blocks(KvCacheDType.F16));
        Assert.Equal(KvCacheDType.F16, new HostOptions().KvCacheDType);
    }

    [Theory]
    [InlineData(KvCacheDType.F32)]
    [InlineData(KvCacheDType.BF16)]
    [InlineData(KvCacheDType.F16)]
    public async Task GenerateAsync_ManyConcurrentWithDisconnectsAndPreemption_SameOutputsEveryBlockReturned(KvCacheDType dtype)
    {
        using var temp = new TempDir();
        string dir = Demo(temp.Path);
        var greedy = new SamplingParams { Temperature = 0 };
        int[][] prompts;
        List<int>[] alone;
        // Alone: one request at a time, memory to spare.
        using (Qwen3Host host = Qwen3Host.Load(dir, new HostOptions { ThreadCount = 2, ContextSize = 256, MaxSequences = 1, KvCacheDType = dtype }))
        {
            prompts = Prompts(host.Engine.VocabSize, 12);
            alone = new List<int>[prompts.Length];
            for (int i = 0; i < prompts.Length; i++)
            {
                alone[i] = await Collect(host.Engine, prompts[i], greedy, CancellationToken.None);
            }
        }

        // Together: 8 at a time over 12 KV blocks (192 positions) for 12 requests of up to 58 + 24 tokens each, so the
        // newest are preempted and recomputed; every third request disconnects after a few tokens.
        using (Qwen3Host host = Qwen3Host.Load(dir, new HostOptions
        {
            ThreadCount = 2,
            ContextSize = 256,
            MaxSequences = 8,
            MaxBatchedTokens = 64,
            KvCacheMemory = 12 * KvBlockPool.BytesPerBlock(Qwen3Config.Load(dir), dtype),
            KvCacheDType = dtype,
        }))
        {
            Assert.Equal(12, host.Engine.Stats.KvBlocksTotal);
            var tasks = prompts.Select(async (p, i) =>
            {
                using var cts = new CancellationTokenSource();
                if (i % 3 == 2)
                {
                    int seen = 0;
                    await foreach (GenerationEvent e in host.Engine.GenerateAsync(Request(p, greedy), cts.Token))
                    {
                        if (e is TokenGenerated && ++seen == 3)
                        {
                            break;   // the client goes away
                        }
                    }

                    return null;
                }

                return await Collect(host.Engine, p, greedy, cts.Token);
            }).ToArray();
            List<int>?[] together = await Task.WhenAll(tasks);
            for (int i = 0; i < prompts.Length; i++)
            {
                if (together[i] is { } t)
                {
                    Assert.Equal(alone[i], t);
                }
            }

            for (int i = 0; i < 200 && (host.Engine.PendingRequestCount != 0 || host.Engine.Stats.KvBlocksUsed != 0); i++)
            {
                await Task.Delay(10);
            }

            output.WriteLine($"kv {dtype.Name()}: preemptions {host.Engine.Stats.Preemptions}");
            Assert.True(host.Engine.Stats.Preemptions > 0, "the test meant to force preemption");
            Assert.Equal(0, host.Engine.Stats.KvBlocksUsed);
            Assert.Equal(0, host.Engine.Stats.RunningRequests);
            Assert.Equal(0, host.Engine.Stats.WaitingRequests);
        }
    }

    private static GenerationRequest Request(int[] prompt, SamplingParams sampling) =>
        new() { PromptTokens = prompt, Sampling = sampling, MaxTokens = 24 };

    private static async Task<List<int>> Collect(InferenceEngine engine, int[] prompt, SamplingParams sampling, CancellationToken ct)
    {
        var tokens = new List<int>();
        await foreach (GenerationEvent e in engine.GenerateAsync(Request(prompt, sampling), ct))
        {
            if (e is TokenGenerated g)
            {
                tokens.Add(g.TokenId);
            }
        }

        return tokens;
    }
}
