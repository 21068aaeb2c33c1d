using System.Diagnostics;
using System.Text.Json.Nodes;
using Qwen3Sharp.Chat;
using Qwen3Sharp.Sampling;
using Qwen3Sharp.Tokenization;

namespace Qwen3Sharp.Engine;

/// <summary>What <see cref="HostOptions.WarmUp"/> ran before the engine took its first request.</summary>
/// <param name="PromptTokens">Tokens of the rendered warm-up chat, prefilled as one chunk.</param>
/// <param name="DecodeSteps">Engine steps after the prefill (two sequences together, then one alone).</param>
/// <param name="Elapsed">Wall time of the whole warm-up.</param>
/// <param name="FirstDecodeStep">The first single-sequence decode step (after the two-sequence steps).</param>
/// <param name="LastDecodeStep">The last single-sequence decode step (the JIT's optimized code by then).</param>
/// <param name="LateJitCompilations">Methods the JIT compiled during the last 10 single-sequence steps (0 once the tiers have settled).</param>
public sealed record WarmUpReport(int PromptTokens, int DecodeSteps, TimeSpan Elapsed, TimeSpan FirstDecodeStep, TimeSpan LastDecodeStep,
    long LateJitCompilations);

/// <summary>
/// llama-server's warm-up, for the .NET JIT: before the engine starts, a short chat goes through the runner as the engine
/// drives it (template, tokenizer, a prefill chunk, sampled decode steps of two sequences and then of one, the incremental
/// detokenizer), so the kernels the first requests run are the tiered JIT's optimized code rather than tier 0.
/// It leaves no trace: the sequences are freed and the prefix-cache entries they made are dropped; the engine (and
/// so its metrics) does not exist yet.
/// </summary>
internal static class EngineWarmUp
{
    /// <summary>
    /// Single-sequence decode steps (after the two-sequence ones). The kernels, called per layer and marked for full
    /// optimization, are at their final speed by the first of them: on the 1.7B Q8_0 model (2 Zen 3 threads) the first
    /// single-sequence step took 132 ms and the 72nd 135 ms, and the 80-step warm-up (8.4–8.9 s there) bought the first
    /// request 0.1 s of time to first token and no decode speed against none at all (`tools/bench/warmup_ab.py`, quiet
    /// machine). What still tiers up later are the methods called once per step (the forward pass's outer loop, the
    /// runner's step, the sampler, the detokenizer; two rounds of 30 calls under tiered PGO), microseconds a step, which
    /// the first requests finish in the background. So 16 steps: the prefill and decode kernels at both batch shapes,
    /// for a fifth of the old start-up time.
    /// </summary>
    internal const int DecodeSteps = 16;

    private const int LateSteps = 10;

    /// <summary>Steps of two sequences together (the small-batch product kernels of concurrent requests).</summary>
    internal const int PairSteps = 8;

    internal const string Text =
        "Warm-up. Summarize in one sentence why a language model server compiles its hot paths before it takes requests: " +
        "the first request should see the same time to first token and the same decode rate as every later one, " +
        "so the kernels, the sampler and the detokenizer run once here, on a prompt long enough for the prefill kernels.";

    public static WarmUpReport? Run(Qwen3ModelRunner runner, Qwen3Tokenizer tokenizer, ChatTemplate template)
    {
        long start = Stopwatch.GetTimestamp();
        string prompt;
        try
        {
            var messages = new JsonArray { new JsonObject { ["role"] = "user", ["content"] = Text } };
            prompt = template.Render(messages, null, addGenerationPrompt: true, new Dictionary<string, JsonNode?> { ["enable_thinking"] = true });
        }
        catch (ChatTemplateException)
        {
            prompt = Text;   // a template that wants more than one user message: the kernels warm up all the same
        }

        int[] tokens = tokenizer.Encode(prompt);
        int shortPrompt = Math.Min(tokens.Length, 20);
        int vocab = runner.VocabSize;
        if (tokens.Length + DecodeSteps + PairSteps + 1 > runner.ContextSize
            || (long)(tokens.Length + DecodeSteps + PairSteps + shortPrompt + 2 * runner.KvBlockSize) > (long)runner.KvBlockCount * runner.KvBlockSize)
        {
            return null;   // a context or KV pool too small for it (test configurations): nothing to warm
        }

        var logits = new float[3L * vocab];   // [rows + 1, vocab]
        ISequenceState? a = runner.TryAllocateSequence();
        ISequenceState? b = runner.MaxSequences > 1 ? runner.TryAllocateSequence() : null;
        try
        {
            if (a is null)
            {
                return null;
            }

            var request = new GenerationRequest { PromptTokens = tokens, Sampling = SamplingDefaults.Resolve(thinking: true) };
            ITokenSampler sampler = SamplerAdapter.Create(request, vocab);
            IncrementalDecoder decoder = tokenizer.CreateIncrementalDecoder(skipSpecialTokens: true);
            int steps = 0;
            runner.ForwardBatch(tokens, [new RunnerEntry(a, 0, tokens.Length, true)], logits);
            int next = Produce(sampler, decoder, logits.AsSpan(0, vocab));
            if (b is not null)
            {
                // a second request arrives: its prompt chunk joins the decode step, then both decode together
                int[] step = new int[1 + shortPrompt];
                step[0] = next;
                tokens.AsSpan(0, shortPrompt).CopyTo(step.AsSpan(1));
                runner.ForwardBatch(step, [new RunnerEntry(a, 0, 1, true), new RunnerEntry(b, 1, shortPrompt, true)], logits);
                next = Produce(sampler, decoder, logits.AsSpan(0, vocab));
                int nextB = Produce(sampler, decoder, logits.AsSpan(vocab, vocab));
                for (int i = 0; i < PairSteps; i++, steps++)
                {
                    runner.ForwardBatch([next, nextB], [new RunnerEntry(a, 0, 1, true), new RunnerEntry(b, 1, 1, true)], logits);
                    next = Produce(sampler, decoder, logits.AsSpan(0, vocab));
                    nextB = Produce(sampler, decoder, logits.AsSpan(vocab, vocab));
                }

                b.Dispose();   // it finishes; the first goes on alone
            }

            TimeSpan first = default, last = default;
            long jitBefore = 0;
            for (int i = 0; i < DecodeSteps; i++, steps++)
            {
                jitBefore = i == DecodeSteps - LateSteps ? System.Runtime.JitInfo.GetCompiledMethodCount() : jitBefore;
                long t0 = Stopwatch.GetTimestamp();
                runner.ForwardBatch([next], [new RunnerEntry(a, 0, 1, true)], logits);
                next = Produce(sampler, decoder, logits.AsSpan(0, vocab));
                last = Stopwatch.GetElapsedTime(t0);
                first = i == 0 ? last : first;
            }

            long lateJit = System.Runtime.JitInfo.GetCompiledMethodCount() - jitBefore;
            decoder.Flush();
            return new WarmUpReport(tokens.Length, steps, Stopwatch.GetElapsedTime(start), first, last, lateJit);
        }
        finally
        {
            b?.Dispose();
            a?.Dispose();
            runner.ResetPrefixCache();   // the warm-up's full blocks were registered as they filled
        }
    }

    private static int Produce(ITokenSampler sampler, IncrementalDecoder decoder, Span<float> logits)
    {
        int token = sampler.Sample(logits);
        sampler.Accept(token);
        decoder.Append(token);
        return token;
    }
}
