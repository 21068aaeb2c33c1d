using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Qwen3Sharp.Cli;
using Qwen3Sharp.Engine;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Loading;
using Qwen3Sharp.Server;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Tests.Server;

/// <summary>
/// Batch invariance the way a user sees it: the demo model served with --batch-invariant, or copied into the 8-row float
/// groups with the default kernels, and the default f16 KV cache;
/// a greedy request's answer and logprobs over HTTP are the same alone and with seven other requests running beside it
/// (their prompts prefilled in chunks of a small step budget between its decode steps).
/// </summary>
public sealed class BatchInvariantServerTests
{
    private static readonly string[] Prompts =
    [
        "What is 17 + 25?",
        "Hello!",
        "What's the weather in Paris?",
        "你好，你是谁？",
        "Tom has 3 apples and buys 4 more. How many apples does he have now?",
        "What time is it in Tokyo?",
        "Who are you?",
        "A shop sells pens at 2 dollars each. How much do 6 pens cost?",
    ];

    private static JsonObject Body(string prompt, int maxTokens, bool toTheEnd)
    {
        var body = new JsonObject
        {
            ["model"] = "demo",
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = prompt }),
            ["temperature"] = 0,
            ["max_tokens"] = maxTokens,
            ["logprobs"] = true,
            ["top_logprobs"] = 3,
        };
        if (toTheEnd)
        {
            // <|endoftext|> and <|im_end|> (the real tokenizer's ids) banned: the request decodes all max_tokens
            body["logit_bias"] = new JsonObject { ["151643"] = -100, ["151645"] = -100 };
        }

        return body;
    }

    /// <summary>The choice of a non-streamed completion (message, finish reason and every token's logprobs), as JSON text.</summary>
    private static async Task<string> CompleteAsync(HttpClient http, string prompt, int maxTokens, bool toTheEnd = false)
    {
        using var content = new StringContent(Body(prompt, maxTokens, toTheEnd).ToJsonString(), Encoding.UTF8, "application/json");
        using HttpResponseMessage response = await http.PostAsync("/v1/chat/completions", content);
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        JsonNode choice = JsonNode.Parse(text)!["choices"]![0]!;
        Assert.NotEmpty(choice["logprobs"]!["content"]!.AsArray());
        return choice.ToJsonString();
    }

    [Fact]
    public async Task ChatCompletions_LongPromptInOneChunk_SameAnswerAndLogprobsAsInChunksOf24()
    {
        // A 700-token prompt prefilled in one step takes the pooled elementwise steps (norms, RoPE, SwiGLU and KV writes
        // split across the threads: >= PooledElementwise.MinElements) and one RoPE table for the pass; in chunks of 24
        // tokens every step is below the threshold and runs them on one thread. Batch invariant: the same bits either way.
        string directory = Path.Combine(Path.GetTempPath(), "qwen3sharp-longprompt-" + Guid.NewGuid().ToString("N"));
        DemoModel.Write(directory);
        try
        {
            string prompt = string.Concat(Enumerable.Repeat("Tom has 3 apples and buys 4 more. ", 60)) + "How many apples does he have now?";
            var answers = new List<string>();
            foreach (int chunk in new[] { 1024, 24 })
            {
                using Qwen3Host host = Qwen3Host.Load(directory, new HostOptions
                {
                    ThreadCount = 2, ContextSize = 2048, MaxSequences = 2, MaxBatchedTokens = chunk, BatchInvariant = true,
                    WeightPlacement = WeightPlacement.Mapped,
                });
                Assert.True(host.Tokenizer.Encode(prompt).Length * host.Model.Config.HiddenSize >= Qwen3Sharp.Kernels.PooledElementwise.MinElements);
                await using WebApplication app = Qwen3Server.Build(new ServerOptions { Port = 0, ServedModelNames = ["demo"] }, host.Chat,
                    ["--Logging:LogLevel:Default=Warning"]);
                await app.StartAsync();
                using var http = new HttpClient { BaseAddress = app.GetBoundAddress(), Timeout = TimeSpan.FromSeconds(300) };
                answers.Add(await CompleteAsync(http, prompt, maxTokens: 24));
            }

            Assert.Equal(answers[0], answers[1]);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <param name="floatGroups">
    /// False: served from the mapped file with --batch-invariant. True: the default kernels on the weights copied into the
    /// 8-row float groups (what <c>qwen3 serve</c> does on AVX2 machines), batch invariant without the switch.
    /// </param>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ChatCompletions_BatchInvariantF16Kv_SameAnswerAndLogprobsAloneAndBesideSeven(bool floatGroups)
        => await AloneAndBesideSevenAsync(floatGroups, Prompts[0], longPrompt: false);

    [Fact]
    public async Task ChatCompletions_DeepDecodesSplitByPositions_SameAnswerAndLogprobsAloneAndBesideSeven()
    {
        // A prompt past Attention.MinPartPositions: with the default kernels every decode step of the request splits its
        // attention by positions, the same parts alone and beside seven others, so its answer keeps its bits.
        string prompt = string.Concat(Enumerable.Repeat("Tom has 3 apples and buys 4 more. ", 30)) + "How many apples does he have now?";
        await AloneAndBesideSevenAsync(floatGroups: true, prompt, longPrompt: true);
    }

    private static async Task AloneAndBesideSevenAsync(bool floatGroups, string targetPrompt, bool longPrompt)
    {
        string directory = Path.Combine(Path.GetTempPath(), "qwen3sharp-invariant-" + Guid.NewGuid().ToString("N"));
        DemoModel.Write(directory);
        try
        {
            using Qwen3Host host = Qwen3Host.Load(directory, new HostOptions
            {
                ThreadCount = 2,
                ContextSize = 1024,
                MaxSequences = 8,
                MaxBatchedTokens = 24,
                BatchInvariant = !floatGroups,
                WeightPlacement = floatGroups ? WeightPlacement.Copy : WeightPlacement.Mapped,
                FloatLayout = floatGroups ? QuantLayout.Interleaved8 : null,
            });
            Assert.Equal(floatGroups, host.Model.Weights.Layers[0].QProj.DType.IsFloatGroups());
            Assert.Equal(Cache.KvCacheDType.F16, host.KvCacheDType);
            Assert.Equal(longPrompt, host.Tokenizer.Encode(targetPrompt).Length > Attention.MinPartPositions);
            await using WebApplication app = Qwen3Server.Build(new ServerOptions { Port = 0, ServedModelNames = ["demo"] }, host.Chat,
                ["--Logging:LogLevel:Default=Warning"]);
            await app.StartAsync();
            using var http = new HttpClient { BaseAddress = app.GetBoundAddress(), Timeout = TimeSpan.FromSeconds(300) };

            string alone = await CompleteAsync(http, targetPrompt, maxTokens: 48);

            // The same request while seven others run: they start first and decode longer (all 160 tokens, their end tokens
            // banned: answers that stopped early let a slow machine run the request alone), so every one of its steps is batched.
            Task<string>[] others = Prompts.Skip(1).Select(p => CompleteAsync(http, p, maxTokens: 160, toTheEnd: true)).ToArray();
            while (host.Engine.Stats.RunningRequests < 4 && !others.All(t => t.IsCompleted))
            {
                await Task.Delay(2);
            }

            Task<string> target = CompleteAsync(http, targetPrompt, maxTokens: 48);
            int besides = 0;   // the most requests seen running while it ran
            while (!target.IsCompleted)
            {
                besides = Math.Max(besides, host.Engine.Stats.RunningRequests);
                await Task.Delay(2);
            }

            string together = await target;
            Assert.All(await Task.WhenAll(others), o => Assert.Equal("length", JsonNode.Parse(o)!["finish_reason"]!.GetValue<string>()));
            Assert.True(besides >= 4, $"only {besides} requests ran at once");
            Assert.Equal(alone, together);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
