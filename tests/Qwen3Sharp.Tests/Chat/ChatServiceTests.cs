using System.Text.Json.Nodes;
using Qwen3Sharp.Chat;
using Qwen3Sharp.Engine;
using Qwen3Sharp.Tests.TestModels;

namespace Qwen3Sharp.Tests.Chat;

public sealed class ChatServiceTests : IDisposable
{
    private readonly Qwen3Host _host = TinyModel.Load();

    public void Dispose() => _host.Dispose();

    private static JsonArray User(string text) => [new JsonObject { ["role"] = "user", ["content"] = text }];

    private static ChatRequest Greedy(JsonArray messages, bool? thinking = null, int maxTokens = 12) => new()
    {
        Messages = messages,
        EnableThinking = thinking,
        MaxTokens = maxTokens,
        Sampling = new SamplingOverrides { Temperature = 0 },
    };

    /// <summary>Greedy continuation computed with the model alone: prefill, then argmax one token at a time.</summary>
    private int[] DirectGreedy(IReadOnlyList<int> prompt, int count)
    {
        using var model = Qwen3Sharp.Model.Qwen3Model.Load(TinyModel.Directory,
            new Qwen3Sharp.Model.Qwen3ModelOptions { ThreadCount = 1, ContextSize = 1024 });
        using var cache = model.CreateCache();
        var logits = new float[model.VocabSize];
        var output = new List<int>();
        model.Forward(prompt.ToArray(), 0, cache, logits);
        for (int i = 0; i < count; i++)
        {
            int next = Array.IndexOf(logits, logits.Max());
            output.Add(next);
            if (_host.Chat.StopTokenIds.Contains(next))
            {
                break;
            }

            model.Forward([next], prompt.Count + i, cache, logits);
        }

        return [.. output];
    }

    [Fact]
    public async Task Stream_Greedy_EqualsModelCalledDirectly()
    {
        ChatRequest request = Greedy(User("Hello there"), thinking: false, maxTokens: 16);
        PreparedChat prepared = _host.Chat.Prepare(request);
        var tokens = new List<int>();
        await foreach (GenerationEvent e in _host.Engine.GenerateAsync(prepared.Generation))
        {
            if (e is TokenGenerated t)
            {
                tokens.Add(t.TokenId);
            }
        }

        Assert.Equal(DirectGreedy(prepared.PromptTokens, 16), tokens);
        ChatResult result = await _host.Chat.CompleteAsync(request);
        string expected = _host.Tokenizer.Decode(tokens.ToArray(), skipSpecialTokens: true);
        Assert.Equal(expected, result.Content);  // thinking off: everything is content
        Assert.Equal(tokens.Count, result.Usage.CompletionTokens);
        Assert.Equal(prepared.PromptTokens.Count, result.Usage.PromptTokens);
    }

    [Fact]
    public void Prepare_ThinkingOff_PromptEndsWithEmptyThinkBlock()
    {
        PreparedChat p = _host.Chat.Prepare(new ChatRequest { Messages = User("hi"), EnableThinking = false });
        Assert.EndsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n", p.Prompt);
        Assert.False(p.Thinking);
        Assert.False(p.ParserOptions.StartsInsideReasoning);
        Assert.Equal(0.7f, p.Generation.Sampling.Temperature);
        Assert.Equal(0.8f, p.Generation.Sampling.TopP);
    }

    [Fact]
    public void Prepare_NothingSet_ThinkingOnWithQwenThinkingDefaults()
    {
        PreparedChat p = _host.Chat.Prepare(new ChatRequest { Messages = User("hi") });
        Assert.EndsWith("<|im_start|>assistant\n", p.Prompt);
        Assert.True(p.Thinking);
        Assert.Equal(0.6f, p.Generation.Sampling.Temperature);
        Assert.Equal(0.95f, p.Generation.Sampling.TopP);
        Assert.Equal(20, p.Generation.Sampling.TopK);
        Assert.Contains(_host.Tokenizer.ImEnd!.Value, p.Generation.StopTokenIds);
    }

    [Fact]
    public void Prepare_NoThinkSoftSwitch_ReachesModelAndPicksNonThinkingDefaults()
    {
        JsonArray messages =
        [
            new JsonObject { ["role"] = "user", ["content"] = "think hard /think" },
            new JsonObject { ["role"] = "assistant", ["content"] = "ok" },
            new JsonObject { ["role"] = "user", ["content"] = "now quickly /no_think" },
        ];
        PreparedChat p = _host.Chat.Prepare(new ChatRequest { Messages = messages });
        Assert.Contains("now quickly /no_think<|im_end|>", p.Prompt);
        Assert.False(p.Thinking);
        Assert.Equal(0.7f, p.Generation.Sampling.Temperature);
        Assert.Equal(0.8f, p.Generation.Sampling.TopP);
    }

    [Fact]
    public void Prepare_RequestOverridesDefaults()
    {
        PreparedChat p = _host.Chat.Prepare(new ChatRequest
        {
            Messages = User("hi"),
            Sampling = new SamplingOverrides { Temperature = 0.3f, TopK = 5, PresencePenalty = 1.5f, Seed = 42 },
        });
        Assert.Equal(0.3f, p.Generation.Sampling.Temperature);
        Assert.Equal(5, p.Generation.Sampling.TopK);
        Assert.Equal(1.5f, p.Generation.Sampling.PresencePenalty);
        Assert.Equal(42UL, p.Generation.Sampling.Seed);
        Assert.Equal(0.95f, p.Generation.Sampling.TopP);
    }

    private static JsonArray WeatherTool() =>
    [
        new JsonObject
        {
            ["type"] = "function",
            ["function"] = new JsonObject
            {
                ["name"] = "get_weather",
                ["description"] = "Weather in a city",
                ["parameters"] = new JsonObject
                {
                    ["type"] = "object",
                    ["properties"] = new JsonObject { ["city"] = new JsonObject { ["type"] = "string" } },
                    ["required"] = new JsonArray("city"),
                },
            },
        },
    ];

    [Fact]
    public void Prepare_NamedToolChoice_ConstrainsTheAnswerInsteadOfPrefillingIt()
    {
        PreparedChat p = _host.Chat.Prepare(new ChatRequest
        {
            Messages = User("weather in Paris?"),
            Tools = WeatherTool(),
            ToolChoice = new ToolChoice(ToolChoiceMode.Function, "get_weather"),
        });
        Assert.Contains("<tools>", p.Prompt);
        Assert.EndsWith("<|im_start|>assistant\n", p.Prompt);
        Assert.Equal(_host.Tokenizer.Encode(p.Prompt), p.PromptTokens);
        Assert.NotNull(p.Generation.Constraint);
    }

    [Theory, InlineData(true), InlineData(false)]
    public async Task Complete_NamedToolChoice_WritesOneCallWhoseArgumentsValidate(bool parallel)
    {
        ChatResult r = await _host.Chat.CompleteAsync(new ChatRequest
        {
            Messages = User("weather in Paris?"),
            Tools = WeatherAndTimeTools(),
            ToolChoice = new ToolChoice(ToolChoiceMode.Function, "get_time"),
            ParallelToolCalls = parallel,
            EnableThinking = false,
            MaxTokens = 400,
            Sampling = new SamplingOverrides { Seed = 3, Temperature = 1 },
        });
        Assert.Equal(ChatFinishReason.ToolCalls, r.FinishReason);
        Assert.Equal("", r.Content);
        if (!parallel)
        {
            Assert.Single(r.ToolCalls);
        }

        Assert.NotEmpty(r.ToolCalls);
        Assert.All(r.ToolCalls, c =>
        {
            Assert.Equal("get_time", c.Name);
            JsonObject arguments = JsonNode.Parse(c.Arguments)!.AsObject();
            Assert.Equal(["zone"], arguments.Select(p => p.Key));
            Assert.InRange(arguments["zone"]!.GetValue<string>().EnumerateRunes().Count(), 0, 8);   // maxLength counts code points
        });
    }

    private static JsonArray WeatherAndTimeTools()
    {
        JsonArray tools = WeatherTool();
        tools.Add(new JsonObject
        {
            ["type"] = "function",
            ["function"] = new JsonObject
            {
                ["name"] = "get_time",
                ["parameters"] = JsonNode.Parse("""{"type":"object","properties":{"zone":{"type":"string","maxLength":8}},"required":["zone"]}"""),
            },
        });
        return tools;
    }

    [Fact]
    public void Prepare_ToolChoiceNone_LeavesToolsOut()
    {
        PreparedChat p = _host.Chat.Prepare(new ChatRequest
        {
            Messages = User("weather?"),
            Tools = WeatherTool(),
            ToolChoice = new ToolChoice(ToolChoiceMode.None),
        });
        Assert.DoesNotContain("<tools>", p.Prompt);
        Assert.False(p.ParserOptions.ToolsEnabled);
    }

    [Fact]
    public async Task Complete_ForcedToolCallCutOffByMaxTokens_IsContentNotACall()
    {
        ChatResult r = await _host.Chat.CompleteAsync(new ChatRequest
        {
            Messages = User("weather in Paris?"),
            Tools = WeatherTool(),
            ToolChoice = new ToolChoice(ToolChoiceMode.Function, "get_weather"),
            EnableThinking = false,
            MaxTokens = 6,
            Sampling = new SamplingOverrides { Temperature = 0 },
        });
        Assert.Empty(r.ToolCalls);
        const string Opening = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": ";
        string written = r.Content.TrimStart();   // the grammar allows a little whitespace before the call
        Assert.True(Opening.StartsWith(written, StringComparison.Ordinal) || written.StartsWith(Opening, StringComparison.Ordinal), r.Content);
        Assert.Equal(ChatFinishReason.Length, r.FinishReason);
    }

    [Fact]
    public async Task Stream_SameSeed_SameOutput_AndStreamEqualsWhole()
    {
        ChatRequest request = new()
        {
            Messages = User("Tell me something"),
            MaxTokens = 20,
            Sampling = new SamplingOverrides { Seed = 1234, Temperature = 1.0f, TopK = 50, TopP = 1 },
        };
        ChatResult a = await _host.Chat.CompleteAsync(request);
        ChatResult b = await _host.Chat.CompleteAsync(request);
        Assert.Equal(a.Content, b.Content);
        Assert.Equal(a.Reasoning, b.Reasoning);

        var streamed = new System.Text.StringBuilder();
        var reasoning = new System.Text.StringBuilder();
        await foreach (ChatUpdate u in _host.Chat.StreamAsync(request))
        {
            if (u is ContentDelta c)
            {
                streamed.Append(c.Text);
            }
            else if (u is ReasoningDelta r)
            {
                reasoning.Append(r.Text);
            }
        }

        Assert.Equal(a.Content, streamed.ToString());
        Assert.Equal(a.Reasoning ?? "", reasoning.ToString());
    }

    [Fact]
    public async Task Complete_Logprobs_OnePerTokenWithAlternatives()
    {
        ChatResult r = await _host.Chat.CompleteAsync(Greedy(User("hi"), thinking: false, maxTokens: 5));
        Assert.Empty(r.Logprobs);
        ChatResult withLogprobs = await _host.Chat.CompleteAsync(new ChatRequest
        {
            Messages = User("hi"),
            EnableThinking = false,
            MaxTokens = 5,
            TopLogprobs = 3,
            Sampling = new SamplingOverrides { Temperature = 0 },
        });
        Assert.Equal(withLogprobs.Usage.CompletionTokens, withLogprobs.Logprobs.Count);
        foreach (TokenLogprobsUpdate lp in withLogprobs.Logprobs)
        {
            Assert.Equal(3, lp.Logprobs.Top.Count);
            Assert.Equal(lp.Logprobs.Top[0].TokenId, lp.Logprobs.TokenId);  // greedy picks the most likely
            Assert.True(lp.Logprobs.Logprob <= 0);
        }
    }

    [Fact]
    public void Prepare_PromptLongerThanContext_IsARequestError()
    {
        string longText = string.Concat(Enumerable.Repeat("word ", 2000));
        var ex = Assert.Throws<GenerationRequestException>(() =>
            _host.Engine.GenerateAsync(_host.Chat.Prepare(new ChatRequest { Messages = User(longText) }).Generation)
                .GetAsyncEnumerator().MoveNextAsync().AsTask().GetAwaiter().GetResult());
        Assert.Contains("context", ex.Message);
    }
}
