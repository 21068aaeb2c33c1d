using System.Text.Json;
using System.Text.Json.Nodes;
using Qwen3Sharp.Chat;
using Qwen3Sharp.Server;

namespace Qwen3Sharp.Tests.Server;

/// <summary>POST /v1/chat/completions over raw HTTP: response and stream shapes, thinking, tools, sampling fields.</summary>
public sealed class ChatCompletionsTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private readonly ServerHarness _server = fixture.Server;

    private static JsonObject Weather() => new()
    {
        ["type"] = "function",
        ["function"] = new JsonObject
        {
            ["name"] = "get_weather",
            ["description"] = "Current weather in a city",
            ["parameters"] = JsonNode.Parse("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"""),
        },
    };

    /// <summary>llama.cpp's stream invariants: role first per choice, one finish_reason per choice and last, [DONE] last.</summary>
    private static void AssertChatStreamInvariants(SseResult sse, int choices, string model = ServerHarness.ModelName)
    {
        Assert.True(sse.EndedWithDone, "stream must end with data: [DONE]");
        Assert.Equal(0, sse.EventsAfterDone);
        string id = (string)sse.Events[0]["id"]!;
        Assert.StartsWith("chatcmpl-", id);
        foreach (JsonNode e in sse.Events)
        {
            Assert.Equal(id, (string)e["id"]!);
            Assert.Equal("chat.completion.chunk", (string)e["object"]!);
            Assert.Equal(model, (string)e["model"]!);
            Assert.True((long)e["created"]! > 1_600_000_000);
        }

        for (int c = 0; c < choices; c++)
        {
            var mine = sse.ChoicesOf(c).ToList();
            Assert.NotEmpty(mine);
            Assert.Equal("assistant", (string?)mine[0]["delta"]!["role"]);
            Assert.Equal("", (string?)mine[0]["delta"]!["content"]);
            Assert.All(mine.Skip(1), x => Assert.Null(x["delta"]!["role"]));
            var finishes = mine.Select((x, i) => (i, f: (string?)x["finish_reason"])).Where(t => t.f is not null).ToList();
            Assert.Single(finishes);
            Assert.Equal(mine.Count - 1, finishes[0].i);
            Assert.All(mine, x => Assert.True(((JsonObject)x).ContainsKey("finish_reason")));
        }
    }

    [Fact]
    public async Task Chat_ThinkingOn_ReasoningSeparatedFromContent()
    {
        JsonNode r = await _server.PostOkAsync("/v1/chat/completions", ServerHarness.ChatBody("Hi"));
        Assert.Equal("chat.completion", (string)r["object"]!);
        Assert.StartsWith("chatcmpl-", (string)r["id"]!);
        Assert.Equal(ServerHarness.ModelName, (string)r["model"]!);
        JsonNode choice = r["choices"]![0]!;
        Assert.Equal(0, (int)choice["index"]!);
        Assert.Equal("stop", (string)choice["finish_reason"]!);
        JsonNode message = choice["message"]!;
        Assert.Equal("assistant", (string)message["role"]!);
        Assert.Equal(Scripts.Answer, (string)message["content"]!);
        Assert.Equal(Scripts.Reasoning, ((string)message["reasoning_content"]!).Trim());
        Assert.Null(message["reasoning"]);
        Assert.Null(choice["logprobs"]);
        Assert.True(((JsonObject)choice).ContainsKey("logprobs"));
    }

    [Fact]
    public async Task ChatStream_ThinkingOn_ReasoningDeltasThenContentDeltas()
    {
        SseResult sse = await _server.StreamAsync("/v1/chat/completions", ServerHarness.ChatBody("Hi", stream: true));
        AssertChatStreamInvariants(sse, 1);
        Assert.Equal(Scripts.Reasoning, sse.Delta("reasoning_content").Trim());
        Assert.Equal(Scripts.Answer, sse.Delta("content"));
        Assert.DoesNotContain("<think>", sse.Delta("content"));
        Assert.Equal("stop", (string?)sse.ChoicesOf(0).Last()["finish_reason"]);
        // per-token deltas: more than one content chunk
        Assert.True(sse.ChoicesOf(0).Count(c => ((string?)c["delta"]!["content"])?.Length > 0) >= 2);
        Assert.DoesNotContain(sse.Events, e => e["usage"] is not null);
    }

    public static TheoryData<string, bool> ThinkingOffForms => new()
    {
        { """{"enable_thinking": false}""", false },
        { """{"enable_thinking": false}""", true },
        { """{"chat_template_kwargs": {"enable_thinking": false}}""", false },
        { """{"chat_template_kwargs": {"enable_thinking": false}}""", true },
        { """{"reasoning_effort": "none"}""", false },
        { """{"reasoning_effort": "none"}""", true },
    };

    [Theory, MemberData(nameof(ThinkingOffForms))]
    public async Task Chat_ThinkingOff_WholeAnswerIsContent(string fields, bool stream)
    {
        JsonObject body = ServerHarness.ChatBody("Hi", stream);
        foreach (var (k, v) in JsonNode.Parse(fields)!.AsObject())
        {
            body[k] = v?.DeepClone();
        }

        if (stream)
        {
            SseResult sse = await _server.StreamAsync("/v1/chat/completions", body);
            AssertChatStreamInvariants(sse, 1);
            Assert.Equal(Scripts.Answer, sse.Delta("content"));
            Assert.Equal("", sse.Delta("reasoning_content"));
        }
        else
        {
            JsonNode message = (await _server.PostOkAsync("/v1/chat/completions", body))["choices"]![0]!["message"]!;
            Assert.Equal(Scripts.Answer, (string)message["content"]!);
            Assert.Null(message["reasoning_content"]);
        }
    }

    [Fact]
    public async Task Chat_TopLevelFlagBeatsTemplateKwargs_ThinkingOn()
    {
        JsonObject body = ServerHarness.ChatBody("Hi");
        body["enable_thinking"] = true;
        body["chat_template_kwargs"] = new JsonObject { ["enable_thinking"] = false };
        JsonNode message = (await _server.PostOkAsync("/v1/chat/completions", body))["choices"]![0]!["message"]!;
        Assert.Equal(Scripts.Reasoning, ((string)message["reasoning_content"]!).Trim());
    }

    [Theory, InlineData(false), InlineData(true)]
    public async Task Chat_ReturnReasoningFalse_OmitsReasoning(bool stream)
    {
        JsonObject body = ServerHarness.ChatBody("Hi", stream);
        body["return_reasoning"] = false;
        if (stream)
        {
            SseResult sse = await _server.StreamAsync("/v1/chat/completions", body);
            AssertChatStreamInvariants(sse, 1);
            Assert.DoesNotContain(sse.ChoiceChunks, e => e["choices"]![0]!["delta"]!["reasoning_content"] is not null);
            Assert.Equal(Scripts.Answer, sse.Delta("content"));
        }
        else
        {
            JsonNode message = (await _server.PostOkAsync("/v1/chat/completions", body))["choices"]![0]!["message"]!;
            Assert.Null(message["reasoning_content"]);
            Assert.Equal(Scripts.Answer, (string)message["content"]!);
        }
    }

    [Fact]
    public async Task Chat_Usage_CountsPromptCompletionAndReasoning()
    {
        JsonNode r = await _server.PostOkAsync("/v1/chat/completions", ServerHarness.ChatBody("Hi"));
        JsonNode usage = r["usage"]!;
        string prompt = _server.Chat.Prepare(new ChatRequest { Messages = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi" }) }).Prompt;
        int promptTokens = ServerHarness.Tokenizer.Encode(prompt).Length;
        int scriptTokens = ServerHarness.Tokenizer.Encode($"<think>\n{Scripts.Reasoning}\n</think>\n\n{Scripts.Answer}").Length + 1;  // + <|im_end|>
        Assert.Equal(promptTokens, (int)usage["prompt_tokens"]!);
        Assert.Equal(scriptTokens, (int)usage["completion_tokens"]!);
        Assert.Equal(promptTokens + scriptTokens, (int)usage["total_tokens"]!);
        Assert.InRange((int)usage["completion_tokens_details"]!["reasoning_tokens"]!, 1, scriptTokens - 1);
    }

    [Fact]
    public async Task ChatStream_IncludeUsage_UsageChunkWithNoChoicesBeforeDone()
    {
        JsonObject body = ServerHarness.ChatBody("Hi", stream: true);
        body["stream_options"] = new JsonObject { ["include_usage"] = true };
        SseResult sse = await _server.StreamAsync("/v1/chat/completions", body);
        AssertChatStreamInvariants(sse, 1);
        JsonNode last = sse.Events[^1];
        Assert.Empty(last["choices"]!.AsArray());
        Assert.True((int)last["usage"]!["completion_tokens"]! > 0);
        Assert.Equal((int)last["usage"]!["prompt_tokens"]! + (int)last["usage"]!["completion_tokens"]!, (int)last["usage"]!["total_tokens"]!);
        Assert.Single(sse.Events, e => e["usage"] is not null);
    }

    [Fact]
    public async Task Chat_Tools_ReturnsToolCallsWithFinishReasonToolCalls()
    {
        JsonObject body = ServerHarness.ChatBody("What is the weather in Paris?");
        body["tools"] = new JsonArray(Weather());
        JsonNode choice = (await _server.PostOkAsync("/v1/chat/completions", body))["choices"]![0]!;
        Assert.Equal("tool_calls", (string)choice["finish_reason"]!);
        JsonNode message = choice["message"]!;
        Assert.Null(message["content"]);
        JsonNode call = Assert.Single(message["tool_calls"]!.AsArray())!;
        Assert.False(string.IsNullOrEmpty((string?)call["id"]));
        Assert.Equal("function", (string)call["type"]!);
        Assert.Equal("get_weather", (string)call["function"]!["name"]!);
        Assert.Equal("Paris", (string)JsonNode.Parse((string)call["function"]!["arguments"]!)!["city"]!);
        Assert.Null(call["index"]);
    }

    [Fact]
    public async Task ChatStream_Tools_OpenAiToolCallDeltas()
    {
        JsonObject body = ServerHarness.ChatBody("What is the weather in two cities?", stream: true);
        body["tools"] = new JsonArray(Weather());
        SseResult sse = await _server.StreamAsync("/v1/chat/completions", body);
        AssertChatStreamInvariants(sse, 1);
        var toolDeltas = sse.ChoicesOf(0).SelectMany(c => c["delta"]!["tool_calls"]?.AsArray() ?? []).Select(x => x!).ToList();
        for (int index = 0; index < 2; index++)
        {
            var mine = toolDeltas.Where(d => (int)d["index"]! == index).ToList();
            JsonNode first = mine[0];
            Assert.False(string.IsNullOrEmpty((string?)first["id"]));
            Assert.Equal("function", (string)first["type"]!);
            Assert.Equal("get_weather", (string)first["function"]!["name"]!);
            Assert.Equal("", (string)first["function"]!["arguments"]!);
            Assert.All(mine.Skip(1), d =>
            {
                Assert.Null(d["id"]);
                Assert.Null(d["type"]);
                Assert.Null(d["function"]!["name"]);
            });
            string arguments = string.Concat(mine.Select(d => (string?)d["function"]!["arguments"]));
            Assert.Equal(index == 0 ? "Paris" : "Rome", (string)JsonNode.Parse(arguments)!["city"]!);
        }

        Assert.Equal("tool_calls", (string?)sse.ChoicesOf(0).Last()["finish_reason"]);
        Assert.Equal("", sse.Delta("content"));
    }

    [Fact]
    public async Task Chat_ParallelToolCallsFalse_EndsTheTurnAfterTheFirstCall()
    {
        JsonObject body = ServerHarness.ChatBody("What is the weather in two cities?");
        body["tools"] = new JsonArray(Weather());
        JsonNode both = await _server.PostOkAsync("/v1/chat/completions", body);
        body["parallel_tool_calls"] = false;
        JsonNode one = await _server.PostOkAsync("/v1/chat/completions", body);
        JsonNode message = one["choices"]![0]!["message"]!;
        JsonNode call = Assert.Single(message["tool_calls"]!.AsArray())!;
        Assert.Equal("Paris", (string)JsonNode.Parse((string)call["function"]!["arguments"]!)!["city"]!);
        Assert.Equal("tool_calls", (string)one["choices"]![0]!["finish_reason"]!);

        // The model was stopped after the first call (end of turn was the only token allowed), not cut afterwards.
        int onePrefix = ServerHarness.Tokenizer.Encode("<think>\nhm\n</think>\n\n" + Scripts.WeatherCall).Length;
        Assert.Equal(2, both["choices"]![0]!["message"]!["tool_calls"]!.AsArray().Count);
        Assert.Equal(onePrefix + 1, (int)one["usage"]!["completion_tokens"]!);
    }

    [Theory]
    [InlineData("\"required\"")]
    [InlineData("""{"type": "function", "function": {"name": "get_weather"}}""")]
    public async Task Chat_ToolChoiceForcesCall_AfterFreeReasoning(string toolChoice)
    {
        JsonObject body = ServerHarness.ChatBody("What is the weather in Paris?");
        body["tools"] = new JsonArray(Weather());
        body["tool_choice"] = JsonNode.Parse(toolChoice);
        JsonNode choice = (await _server.PostOkAsync("/v1/chat/completions", body))["choices"]![0]!;
        Assert.Equal("tool_calls", (string)choice["finish_reason"]!);
        JsonNode call = Assert.Single(choice["message"]!["tool_calls"]!.AsArray())!;
        Assert.Equal("get_weather", (string)call["function"]!["name"]!);
        Assert.Equal(Scripts.Reasoning, ((string)choice["message"]!["reasoning_content"]!).Trim());
        Assert.Equal("Paris", (string)JsonNode.Parse((string)call["function"]!["arguments"]!)!["city"]!);
    }

    private static JsonObject StrictWeather() => new()
    {
        ["type"] = "function",
        ["function"] = new JsonObject
        {
            ["name"] = "get_weather",
            ["strict"] = true,
            ["parameters"] = JsonNode.Parse("""{"type":"object","properties":{"city":{"enum":["Paris","Rome"]},"unit":{"enum":["c","f"]}},"required":["city","unit"],"additionalProperties":false}"""),
        },
    };

    [Theory, InlineData(false), InlineData(true)]
    public async Task Chat_StrictToolUnderAuto_TheCallIsConstrained_TheRestIsFree(bool stream)
    {
        // The scripted model writes {"city": "Paris"}: strict parameters also require "unit", which the constraint adds.
        JsonObject body = ServerHarness.ChatBody("What is the weather in Paris?", stream);
        body["tools"] = new JsonArray(StrictWeather());
        string arguments, reasoning, finish;
        if (stream)
        {
            SseResult sse = await _server.StreamAsync("/v1/chat/completions", body);
            AssertChatStreamInvariants(sse, 1);
            var deltas = sse.ChoicesOf(0).SelectMany(c => c["delta"]!["tool_calls"]?.AsArray() ?? []).ToList();
            Assert.All(deltas, d => Assert.Equal(0, (int)d!["index"]!));
            arguments = string.Concat(deltas.Select(d => (string?)d!["function"]!["arguments"]));
            reasoning = sse.Delta("reasoning_content");
            finish = (string)sse.ChoicesOf(0).Last()["finish_reason"]!;
            Assert.Equal("", sse.Delta("content"));
        }
        else
        {
            JsonNode choice = (await _server.PostOkAsync("/v1/chat/completions", body))["choices"]![0]!;
            JsonNode call = Assert.Single(choice["message"]!["tool_calls"]!.AsArray())!;
            arguments = (string)call["function"]!["arguments"]!;
            reasoning = (string)choice["message"]!["reasoning_content"]!;
            finish = (string)choice["finish_reason"]!;
        }

        Assert.Equal("tool_calls", finish);
        Assert.Equal(Scripts.Reasoning, reasoning.Trim());
        JsonObject args = JsonNode.Parse(arguments)!.AsObject();
        Assert.Equal("Paris", (string)args["city"]!);
        Assert.Contains((string)args["unit"]!, new[] { "c", "f" });
        Assert.Equal(["city", "unit"], args.Select(p => p.Key));
    }

    /// <summary>A non-strict function the scripted model does not name: it writes get_weather({"city": "Paris"}).</summary>
    private static JsonObject Forecast(string parameters = """{"type":"object","properties":{"city":{"enum":["Rome","Oslo"]}},"required":["city"]}""") => new()
    {
        ["type"] = "function",
        ["function"] = new JsonObject
        {
            ["name"] = "get_forecast",
            ["description"] = "Forecast for a city",
            ["parameters"] = JsonNode.Parse(parameters),
        },
    };

    private static async Task<(string Name, string Arguments, string Finish)> OnlyCallAsync(ServerHarness server, JsonObject body, bool stream)
    {
        if (stream)
        {
            SseResult sse = await server.StreamAsync("/v1/chat/completions", body);
            AssertChatStreamInvariants(sse, 1);
            var deltas = sse.ChoicesOf(0).SelectMany(c => c["delta"]!["tool_calls"]?.AsArray() ?? []).ToList();
            Assert.All(deltas, d => Assert.Equal(0, (int)d!["index"]!));
            Assert.Equal("", sse.Delta("content"));
            return ((string)deltas[0]!["function"]!["name"]!, string.Concat(deltas.Select(d => (string?)d!["function"]!["arguments"])),
                (string)sse.ChoicesOf(0).Last()["finish_reason"]!);
        }

        JsonNode choice = (await server.PostOkAsync("/v1/chat/completions", body))["choices"]![0]!;
        Assert.True(choice["message"]!["tool_calls"] is JsonArray, choice.ToJsonString());
        JsonNode call = Assert.Single(choice["message"]!["tool_calls"]!.AsArray())!;
        return ((string)call["function"]!["name"]!, (string)call["function"]!["arguments"]!, (string)choice["finish_reason"]!);
    }

    [Theory, InlineData(false), InlineData(true)]
    public async Task Chat_UnderAuto_EveryCallNamesAnOfferedFunction_WithArgumentsItsSchemaAllows(bool stream)
    {
        // Not strict, tool_choice auto: the server still shapes the call once the model opens it (llama.cpp's lazy tool
        // grammar, ServerOptions.ConstrainToolCalls), so the unoffered get_weather and its "Paris" cannot be written.
        JsonObject body = ServerHarness.ChatBody("What is the weather in Paris?", stream);
        body["tools"] = new JsonArray(Forecast());
        (string name, string arguments, string finish) = await OnlyCallAsync(_server, body, stream);
        Assert.Equal("get_forecast", name);
        Assert.Equal("tool_calls", finish);
        string schema = Forecast()["function"]!["parameters"]!.ToJsonString();
        Assert.True(Json.Schema.JsonSchema.FromText(schema).Evaluate(JsonNode.Parse(arguments)).IsValid, arguments);
    }

    [Fact]
    public async Task Chat_UnderAuto_WithToolCallGrammarStrict_TheCallIsWhatTheModelWrote()
    {
        await using ServerHarness server = await ServerHarness.StartAsync(new ServerOptions { ConstrainToolCalls = false });
        JsonObject body = ServerHarness.ChatBody("What is the weather in Paris?");
        body["tools"] = new JsonArray(Forecast());
        (string name, string arguments, string finish) = await OnlyCallAsync(server, body, stream: false);
        Assert.Equal("get_weather", name);
        Assert.Equal("Paris", (string)JsonNode.Parse(arguments)!["city"]!);
        Assert.Equal("tool_calls", finish);
    }

    [Fact]
    public async Task Chat_UnderAuto_NonStrictSchemaThatCannotCompile_IsNotRefused()
    {
        // maxLength -1 is no schema the compiler accepts: strict, it is a 400 naming it; not strict, the client did not ask
        // for enforcement, so the name is still shaped and the arguments fall back to any JSON object.
        JsonObject tool = Weather();
        tool["function"]!["parameters"] = JsonNode.Parse("""{"type":"object","properties":{"city":{"type":"string","maxLength":-1}}}""");
        JsonObject body = ServerHarness.ChatBody("What is the weather in Paris?");
        body["tools"] = new JsonArray(tool);
        (string name, string arguments, string finish) = await OnlyCallAsync(_server, body, stream: false);
        Assert.Equal("get_weather", name);
        Assert.Equal("Paris", (string)JsonNode.Parse(arguments)!["city"]!);
        Assert.Equal("tool_calls", finish);

        tool["function"]!["strict"] = true;
        HttpResponseMessage refused = await _server.PostAsync("/v1/chat/completions", body.ToJsonString());
        Assert.Equal(400, (int)refused.StatusCode);
        Assert.Contains("maxLength", await refused.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Chat_StrictToolUnderAuto_AnswerWithoutACallIsUntouched()
    {
        JsonObject body = ServerHarness.ChatBody("Hi");
        body["tools"] = new JsonArray(StrictWeather());
        body["parallel_tool_calls"] = false;
        JsonNode choice = (await _server.PostOkAsync("/v1/chat/completions", body))["choices"]![0]!;
        Assert.Equal("stop", (string)choice["finish_reason"]!);
        Assert.Equal(Scripts.Answer, (string)choice["message"]!["content"]!);
    }

    [Fact]
    public async Task Chat_StrictToolWithUnsupportedKeyword_Is400NamingIt()
    {
        JsonObject tool = StrictWeather();
        tool["function"]!["parameters"]!["properties"]!["city"]!["uniqueItems"] = true;
        JsonObject body = ServerHarness.ChatBody("Hi");
        body["tools"] = new JsonArray(tool);
        HttpResponseMessage response = await _server.PostAsync("/v1/chat/completions", body.ToJsonString());
        string text = await response.Content.ReadAsStringAsync();
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Contains("uniqueItems", text);
        Assert.Contains("tools[0].function.parameters", text);
    }

    [Fact]
    public async Task Chat_ToolChoiceNone_AnswersWithoutTools()
    {
        JsonObject body = ServerHarness.ChatBody("What is the weather in Paris?");
        body["tools"] = new JsonArray(Weather());
        body["tool_choice"] = "none";
        JsonNode choice = (await _server.PostOkAsync("/v1/chat/completions", body))["choices"]![0]!;
        Assert.Equal("stop", (string)choice["finish_reason"]!);
        Assert.Null(choice["message"]!["tool_calls"]);
        Assert.Equal(Scripts.Answer, (string)choice["message"]!["content"]!);
    }

    [Theory, InlineData(false), InlineData(true)]
    public async Task Chat_Stop_EndsBeforeStopText(bool stream)
    {
        JsonObject body = ServerHarness.ChatBody("count please", stream);
        body["enable_thinking"] = false;
        body["stop"] = new JsonArray("five", "nine");
        string content;
        string? finish;
        if (stream)
        {
            SseResult sse = await _server.StreamAsync("/v1/chat/completions", body);
            AssertChatStreamInvariants(sse, 1);
            content = sse.Delta("content");
            finish = (string?)sse.ChoicesOf(0).Last()["finish_reason"];
        }
        else
        {
            JsonNode choice = (await _server.PostOkAsync("/v1/chat/completions", body))["choices"]![0]!;
            content = (string)choice["message"]!["content"]!;
            finish = (string?)choice["finish_reason"];
        }

        Assert.Equal(" one two three four ", content);
        Assert.Equal("stop", finish);
    }

    [Theory]
    [InlineData("max_tokens")]
    [InlineData("max_completion_tokens")]
    public async Task Chat_MaxTokens_FinishesWithLength(string field)
    {
        JsonObject body = ServerHarness.ChatBody("count please");
        body["enable_thinking"] = false;
        body[field] = 3;
        JsonNode r = await _server.PostOkAsync("/v1/chat/completions", body);
        Assert.Equal("length", (string)r["choices"]![0]!["finish_reason"]!);
        Assert.Equal(3, (int)r["usage"]!["completion_tokens"]!);
        Assert.Equal(" one two three", (string)r["choices"]![0]!["message"]!["content"]!);
    }

    [Theory, InlineData(false), InlineData(true)]
    public async Task Chat_N3_ThreeIndexedChoices(bool stream)
    {
        JsonObject body = ServerHarness.ChatBody("Hi", stream);
        body["n"] = 3;
        if (stream)
        {
            SseResult sse = await _server.StreamAsync("/v1/chat/completions", body);
            AssertChatStreamInvariants(sse, 3);
            for (int i = 0; i < 3; i++)
            {
                Assert.Equal(Scripts.Answer, sse.Delta("content", i));
            }
        }
        else
        {
            JsonNode r = await _server.PostOkAsync("/v1/chat/completions", body);
            var choices = r["choices"]!.AsArray();
            Assert.Equal([0, 1, 2], choices.Select(c => (int)c!["index"]!));
            Assert.All(choices, c => Assert.Equal(Scripts.Answer, (string)c!["message"]!["content"]!));
            int perChoice = ServerHarness.Tokenizer.Encode($"<think>\n{Scripts.Reasoning}\n</think>\n\n{Scripts.Answer}").Length + 1;
            Assert.Equal(3 * perChoice, (int)r["usage"]!["completion_tokens"]!);
        }
    }

    private async Task<string[]> Dice(long? seed, int n = 1)
    {
        JsonObject body = ServerHarness.ChatBody("roll the dice");
        body["enable_thinking"] = false;
        body["temperature"] = 1.0;
        body["top_k"] = -1;
        body["n"] = n;
        if (seed is { } s)
        {
            body["seed"] = s;
        }

        JsonNode r = await _server.PostOkAsync("/v1/chat/completions", body);
        return r["choices"]!.AsArray().Select(c => (string)c!["message"]!["content"]!).ToArray();
    }

    [Fact]
    public async Task Chat_Seed_SameSeedSameTextAndChoiceIUsesSeedPlusI()
    {
        string[] a = await Dice(1234);
        string[] b = await Dice(1234);
        string[] pair = await Dice(1234, n: 2);
        string[] next = await Dice(1235);
        Assert.Equal(8, a[0].Length);
        Assert.All(a[0], ch => Assert.InRange(ch, '0', '9'));
        Assert.Equal(a[0], b[0]);
        Assert.Equal(a[0], pair[0]);
        Assert.Equal(next[0], pair[1]);
        Assert.NotEqual(pair[0], pair[1]);  // 10^-8 chance of a false failure
    }

    [Theory, InlineData(false), InlineData(true)]
    public async Task Chat_Logprobs_ContentEntriesWithTopAlternatives(bool stream)
    {
        JsonObject body = ServerHarness.ChatBody("Hi", stream);
        body["enable_thinking"] = false;
        body["logprobs"] = true;
        body["top_logprobs"] = 2;
        List<JsonNode> entries;
        if (stream)
        {
            SseResult sse = await _server.StreamAsync("/v1/chat/completions", body);
            AssertChatStreamInvariants(sse, 1);
            entries = sse.ChoicesOf(0).SelectMany(c => c["logprobs"]?["content"]?.AsArray() ?? []).Select(x => x!).ToList();
        }
        else
        {
            JsonNode choice = (await _server.PostOkAsync("/v1/chat/completions", body))["choices"]![0]!;
            entries = choice["logprobs"]!["content"]!.AsArray().Select(x => x!).ToList();
        }

        int[] answerTokens = ServerHarness.Tokenizer.Encode(Scripts.Answer);
        Assert.Equal(answerTokens.Length, entries.Count);  // <|im_end|> is not part of the answer
        Assert.Equal(Scripts.Answer, string.Concat(entries.Select(e => (string)e["token"]!)));
        double expected = -Math.Log(1 + Math.Exp(ScriptedRunner.RunnerUpLogit) + (ScriptedRunner.Vocab - 2) * Math.Exp(-100));
        foreach (JsonNode e in entries)
        {
            Assert.Equal(expected, (double)e["logprob"]!, 1e-4);
            Assert.Equal(System.Text.Encoding.UTF8.GetBytes((string)e["token"]!).Select(b => (int)b), e["bytes"]!.AsArray().Select(b => (int)b!));
            var top = e["top_logprobs"]!.AsArray();
            Assert.Equal(2, top.Count);
            Assert.Equal((string)e["token"]!, (string)top[0]!["token"]!);
            Assert.Equal(expected + ScriptedRunner.RunnerUpLogit, (double)top[1]!["logprob"]!, 1e-3);
        }
    }

    [Theory, InlineData(false), InlineData(true)]
    public async Task Chat_Logprobs_BytesAreTheTokensRawBytes_EvenForPartsOfACharacter(bool stream)
    {
        JsonObject body = ServerHarness.ChatBody("write some rare characters", stream);
        body["enable_thinking"] = false;
        body["logprobs"] = true;
        body["top_logprobs"] = 1;
        List<JsonNode> entries;
        string content;
        if (stream)
        {
            SseResult sse = await _server.StreamAsync("/v1/chat/completions", body);
            entries = sse.ChoicesOf(0).SelectMany(c => c["logprobs"]?["content"]?.AsArray() ?? []).Select(x => x!).ToList();
            content = string.Concat(sse.ChoicesOf(0).Select(c => (string?)c["delta"]?["content"]));
        }
        else
        {
            JsonNode choice = (await _server.PostOkAsync("/v1/chat/completions", body))["choices"]![0]!;
            entries = choice["logprobs"]!["content"]!.AsArray().Select(x => x!).ToList();
            content = (string)choice["message"]!["content"]!;
        }

        Assert.Equal(Scripts.SplitCharacters, content);
        byte[][] bytes = entries.Select(e => e["bytes"]!.AsArray().Select(b => (byte)(int)b!).ToArray()).ToArray();
        // OpenAI: "bytes" lets a client rebuild characters that span tokens; their concatenation is the answer's UTF-8
        Assert.Equal(System.Text.Encoding.UTF8.GetBytes(Scripts.SplitCharacters), bytes.SelectMany(b => b).ToArray());
        var strict = new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true);
        Assert.Contains(bytes, b => !IsWholeUtf8(strict, b));   // the case under test does occur in this answer
        for (int i = 0; i < entries.Count; i++)
        {
            var top = entries[i]["top_logprobs"]!.AsArray();
            Assert.Equal(entries[i]["bytes"]!.ToJsonString(), top[0]!["bytes"]!.ToJsonString());
        }

        static bool IsWholeUtf8(System.Text.UTF8Encoding strict, byte[] b)
        {
            try
            {
                strict.GetString(b);
                return true;
            }
            catch (System.Text.DecoderFallbackException)
            {
                return false;
            }
        }
    }

    [Fact]
    public async Task Chat_LogitBias_BansScriptedToken()
    {
        JsonObject body = ServerHarness.ChatBody("Hi");
        body["enable_thinking"] = false;
        int hello = ServerHarness.Tokenizer.Encode(Scripts.Answer)[0];
        body["logit_bias"] = new JsonObject { [hello.ToString()] = -100 };
        JsonNode message = (await _server.PostOkAsync("/v1/chat/completions", body))["choices"]![0]!["message"]!;
        string content = (string)message["content"]!;
        Assert.StartsWith("?", content);  // the runner-up
        Assert.DoesNotContain("Hello", content);
    }

    [Fact]
    public async Task Chat_ThinkingBudget_ClosesReasoningEarly()
    {
        JsonObject body = ServerHarness.ChatBody("Hi");
        body["thinking_budget"] = 1;
        JsonNode message = (await _server.PostOkAsync("/v1/chat/completions", body))["choices"]![0]!["message"]!;
        Assert.Contains("Considering the limited time by the user", (string)message["reasoning_content"]!);
        Assert.DoesNotContain(Scripts.Reasoning, (string)message["reasoning_content"]!);
    }

    [Fact]
    public async Task Chat_ToolCallArguments_WrittenWithoutUnicodeEscapes()
    {
        JsonObject body = ServerHarness.ChatBody("What is the weather in Paris?");
        body["tools"] = new JsonArray(Weather());
        using HttpResponseMessage r = await _server.PostAsync("/v1/chat/completions", body);
        string raw = await r.Content.ReadAsStringAsync();
        Assert.Contains("\\\"city\\\"", raw);  // \"city\" inside the arguments string
        Assert.DoesNotContain("\\u0022", raw);
    }

    [Fact]
    public async Task Chat_ContentPartsAndDeveloperRole_Accepted()
    {
        var body = new JsonObject
        {
            ["model"] = ServerHarness.Alias,
            ["messages"] = JsonNode.Parse("""
                [{"role": "developer", "content": "Be brief."},
                 {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}], "name": "ann"}]
                """),
            ["enable_thinking"] = false,
        };
        JsonNode r = await _server.PostOkAsync("/v1/chat/completions", body);
        Assert.Equal(ServerHarness.ModelName, (string)r["model"]!);  // an alias answers with the served id
        Assert.Equal(Scripts.Answer, (string)r["choices"]![0]!["message"]!["content"]!);
    }

    [Fact]
    public async Task Chat_DocumentedIgnorableAndUnknownFields_Accepted()
    {
        JsonNode body = JsonNode.Parse($$"""
            {"model": "{{ServerHarness.ModelName}}", "messages": [{"role": "user", "content": "Hi"}],
             "user": "u-1", "safety_identifier": "s-1", "prompt_cache_key": "k", "service_tier": "auto", "store": false,
             "metadata": {"team": "a"}, "response_format": {"type": "text"}, "modalities": ["text"],
             "some_future_field": {"nested": [1, 2]}, "top_k": 20, "min_p": 0.0, "repetition_penalty": 1.0,
             "thinking_budget": 100, "temperature": 0.6, "top_p": 0.95, "presence_penalty": 0.5, "frequency_penalty": 0.1,
             "stop": "zzz", "seed": 7, "logprobs": false, "top_logprobs": 0, "parallel_tool_calls": true, "n": 1,
             "stream": false, "max_completion_tokens": 64, "tool_choice": "auto", "logit_bias": {"1": 0} }
            """)!;
        JsonNode r = await _server.PostOkAsync("/v1/chat/completions", body);
        Assert.Equal(Scripts.Answer, (string)r["choices"]![0]!["message"]!["content"]!);
    }

    [Fact]
    public async Task Chat_AssistantHistoryWithToolCallsAndReasoning_Accepted()
    {
        JsonObject body = ServerHarness.ChatBody("Hi");
        body["messages"] = JsonNode.Parse("""
            [{"role": "user", "content": "weather?"},
             {"role": "assistant", "content": null, "reasoning": "need a tool",
              "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
             {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
             {"role": "user", "content": "thanks"}]
            """);
        body["tools"] = new JsonArray(Weather());
        JsonNode r = await _server.PostOkAsync("/v1/chat/completions", body);
        Assert.Equal(Scripts.Answer, (string)r["choices"]![0]!["message"]!["content"]!);
    }

    [Fact]
    public async Task ChatStream_ClientDisconnects_GenerationIsCancelled()
    {
        _server.Runner.ForwardDelay = TimeSpan.FromMilliseconds(2);
        try
        {
            using var cts = new CancellationTokenSource();
            HttpResponseMessage response = await _server.PostAsync("/v1/chat/completions",
                ServerHarness.ChatBody("sing forever", stream: true), HttpCompletionOption.ResponseHeadersRead, cts.Token);
            Stream stream = await response.Content.ReadAsStreamAsync(cts.Token);
            var reader = new StreamReader(stream);
            int dataLines = 0;
            while (dataLines < 5 && await reader.ReadLineAsync(cts.Token) is { } line)
            {
                dataLines += line.StartsWith("data: ", StringComparison.Ordinal) ? 1 : 0;
            }

            Assert.Equal(5, dataLines);
            Assert.Equal(1, _server.Engine.PendingRequestCount);
            cts.Cancel();
            response.Dispose();
            await _server.WaitForIdleAsync();
        }
        finally
        {
            _server.Runner.ForwardDelay = TimeSpan.Zero;
        }
    }

    [Fact]
    public async Task Chat_ClientGivesUpOnWholeAnswer_GenerationIsCancelled()
    {
        _server.Runner.ForwardDelay = TimeSpan.FromMilliseconds(2);
        try
        {
            using var cts = new CancellationTokenSource();
            Task<HttpResponseMessage> request = _server.PostAsync("/v1/chat/completions", ServerHarness.ChatBody("sing forever"),
                cancellationToken: cts.Token);
            for (int i = 0; i < 500 && _server.Engine.PendingRequestCount == 0; i++)
            {
                await Task.Delay(10);
            }

            Assert.Equal(1, _server.Engine.PendingRequestCount);
            await Task.Delay(50);
            cts.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request);
            await _server.WaitForIdleAsync();
        }
        finally
        {
            _server.Runner.ForwardDelay = TimeSpan.Zero;
        }
    }

    [Fact]
    public async Task ChatStream_EightConcurrentStreams_EachCompleteAndEngineIdle()
    {
        SseResult[] results = await Task.WhenAll(Enumerable.Range(0, 8).Select(i =>
        {
            JsonObject body = ServerHarness.ChatBody(i % 2 == 0 ? "Hi" : "count please", stream: true);
            body["enable_thinking"] = i % 3 != 0;
            return _server.StreamAsync("/v1/chat/completions", body);
        }));
        for (int i = 0; i < 8; i++)
        {
            AssertChatStreamInvariants(results[i], 1);
            Assert.Equal(i % 2 == 0 ? Scripts.Answer : Scripts.Counting, results[i].Delta("content"));
        }

        await _server.WaitForIdleAsync();
    }

    [Fact]
    public async Task Chat_ReasoningFieldModes_Respected()
    {
        foreach ((ReasoningFieldMode mode, bool content, bool reasoning) in new[]
                 { (ReasoningFieldMode.Reasoning, false, true), (ReasoningFieldMode.Both, true, true) })
        {
            await using ServerHarness server = await ServerHarness.StartAsync(new ServerOptions { ReasoningField = mode });
            JsonNode message = (await server.PostOkAsync("/v1/chat/completions", ServerHarness.ChatBody("Hi")))["choices"]![0]!["message"]!;
            Assert.Equal(content, message["reasoning_content"] is not null);
            Assert.Equal(reasoning, message["reasoning"] is not null);
            SseResult sse = await server.StreamAsync("/v1/chat/completions", ServerHarness.ChatBody("Hi", stream: true));
            Assert.Equal(content ? Scripts.Reasoning : "", sse.Delta("reasoning_content").Trim());
            Assert.Equal(reasoning ? Scripts.Reasoning : "", sse.Delta("reasoning").Trim());
        }
    }

    [Fact]
    public async Task Chat_ServerDefaultThinkingOff_RequestCanTurnItOn()
    {
        await using ServerHarness server = await ServerHarness.StartAsync(new ServerOptions { DefaultEnableThinking = false });
        JsonNode off = (await server.PostOkAsync("/v1/chat/completions", ServerHarness.ChatBody("Hi")))["choices"]![0]!["message"]!;
        Assert.Equal(Scripts.Answer, (string)off["content"]!);
        Assert.Null(off["reasoning_content"]);
        JsonObject body = ServerHarness.ChatBody("Hi");
        body["reasoning_effort"] = "low";
        JsonNode on = (await server.PostOkAsync("/v1/chat/completions", body))["choices"]![0]!["message"]!;
        Assert.Equal(Scripts.Reasoning, ((string)on["reasoning_content"]!).Trim());
    }

    [Fact]
    public async Task Chat_SoftSwitchInMessage_ReachesTemplateUntouched()
    {
        var body = new JsonObject { ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi /no_think" }) };
        JsonNode r = await _server.PostOkAsync("/apply-template", body);
        Assert.Contains("<|im_start|>user\nHi /no_think<|im_end|>", (string)r["prompt"]!);
    }

    [Fact]
    public void ResponseDtos_SerializeWithOpenAiFieldNames()
    {
        string json = JsonSerializer.Serialize(new ChatCompletionChunk
        {
            Id = "chatcmpl-x",
            Model = "m",
            Choices = [new ChatChunkChoiceDto { Delta = new ChatDeltaDto { ReasoningContent = "r" } }],
        }, ServerJsonContext.Default.ChatCompletionChunk);
        Assert.Equal("""{"id":"chatcmpl-x","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{"reasoning_content":"r"},"logprobs":null,"finish_reason":null}]}""", json);
    }
}
