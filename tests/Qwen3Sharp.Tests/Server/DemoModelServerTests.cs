#pragma warning disable OPENAI001 // reasoning effort is marked experimental in the SDK
using System.ClientModel;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Chat;
using Qwen3Sharp.Cli;
using Qwen3Sharp.Engine;
using Qwen3Sharp.Server;
using Qwen3Sharp.Tests.TestModels;

namespace Qwen3Sharp.Tests.Server;

/// <summary>The embedded demo model, expanded as the program does on first use and served over HTTP.</summary>
public sealed class DemoModelFixture : IAsyncLifetime
{
    public const string Name = "qwen3sharp-demo-tiny-v7";
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "qwen3sharp-demo-" + Guid.NewGuid().ToString("N"));
    private WebApplication? _app;

    public Qwen3Host Host { get; private set; } = null!;

    public HttpClient Http { get; private set; } = null!;

    public Uri BaseAddress { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        DemoModel.Write(_directory);
        Host = Qwen3Host.Load(_directory, new HostOptions { ThreadCount = 2, ContextSize = 2048, MaxSequences = 4 });
        _app = Qwen3Server.Build(new ServerOptions { Port = 0, ServedModelNames = [Name] }, Host.Chat, ["--Logging:LogLevel:Default=Warning"]);
        await _app.StartAsync();
        BaseAddress = _app.GetBoundAddress();
        Http = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(120) };
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        Host.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}

/// <summary>
/// What the demo model was trained to do (tools/demo-model/corpus.py), checked exactly under greedy decoding through the
/// official OpenAI .NET SDK and plain HTTP: the reasoning split, the thinking switches, finish reasons, stop strings, Chinese text in
/// streamed deltas, a tool call (whole and streamed) for a city and tool it was trained on, and an answer from a tool result.
/// </summary>
public sealed class DemoModelServerTests(DemoModelFixture fixture) : IClassFixture<DemoModelFixture>
{
    // The assistant texts of the training corpus (tools/demo-model/corpus.py), which greedy decoding reproduces.
    private const string Pull = "qwen3 pull Qwen/Qwen3-1.7B";
    private const string Identity = "Hello! I am a tiny demonstration model of Qwen3Sharp, trained only to show how the engine works. "
        + "I can greet you, solve small arithmetic word problems step by step, and call tools such as get_weather or get_time. "
        + "For real answers, get the real model: " + Pull;
    private const string IdentityZh = "你好！我是 Qwen3Sharp 的一个很小的演示模型，只用来展示引擎的功能。我可以打招呼、一步一步地解小的算术应用题，"
        + "还可以调用 get_weather 或 get_time 这样的工具。要获得真正的回答，请下载真正的模型：" + Pull;

    private readonly DemoModelFixture _f = fixture;

    private ChatClient Client() => new(DemoModelFixture.Name, new ApiKeyCredential("not-checked"),
        new OpenAIClientOptions { Endpoint = new Uri(_f.BaseAddress, "/v1"), NetworkTimeout = TimeSpan.FromSeconds(120) });

    private static ChatCompletionOptions Greedy(bool thinking = true)
    {
        var o = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 200 };
        if (!thinking)
        {
            o.ReasoningEffortLevel = ChatReasoningEffortLevel.None;
        }

        return o;
    }

    private async Task<JsonNode> PostRaw(JsonObject body)
    {
        body["model"] = DemoModelFixture.Name;
        body["temperature"] = 0;
        body["max_tokens"] = 200;
        using HttpResponseMessage r = await _f.Http.PostAsync("/v1/chat/completions", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, text);
        return JsonNode.Parse(text)!["choices"]![0]!;
    }

    [Theory]
    [InlineData("""{"enable_thinking": false}""")]
    [InlineData("""{"chat_template_kwargs": {"enable_thinking": false}}""")]
    [InlineData("""{"reasoning_effort": "none"}""")]
    [InlineData("""{"soft_switch": "/no_think"}""")]
    public async Task Greeting_EveryThinkingSwitch_AnswersDirectlyWithoutReasoning(string form)
    {
        JsonObject extra = JsonNode.Parse(form)!.AsObject();
        string user = "Hi";
        if (extra.Remove("soft_switch", out JsonNode? sw))
        {
            user += " " + (string)sw!;
        }

        var body = new JsonObject { ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = user }) };
        foreach ((string k, JsonNode? v) in extra)
        {
            body[k] = v?.DeepClone();
        }

        JsonNode choice = await PostRaw(body);
        Assert.Equal(Identity, (string)choice["message"]!["content"]!);
        Assert.True(choice["message"]!["reasoning_content"] is null || ((string)choice["message"]!["reasoning_content"]!).Trim().Length == 0);
        Assert.Equal("stop", (string)choice["finish_reason"]!);
    }

    [Fact]
    public async Task StopString_CutsTheAnswer_FinishStop()
    {
        var options = Greedy(thinking: false);
        options.StopSequences.Add("Qwen3Sharp");
        ChatCompletion c = (await Client().CompleteChatAsync([new UserChatMessage("Hello")], options)).Value;
        Assert.Equal("Hello! I am a tiny demonstration model of ", c.Content[0].Text);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.Stop, c.FinishReason);
    }

    private static ChatTool WeatherTool() => ChatTool.CreateFunctionTool("get_weather", "Get the current weather for a city.",
        BinaryData.FromString("""{"type": "object", "properties": {"city": {"type": "string", "description": "The city name"}}, "required": ["city"]}"""));

    // Paris and 北京 are training cities; 合肥 is a held-out one (corpus.py's CITIES_HELD_ZH): no trained row, so the
    // model writes it only by copying the question's token (its row generated from the token id, since v7).
    [Theory]
    [InlineData("What's the weather in Paris?", "Paris")]
    [InlineData("北京天气怎么样？", "北京")]
    [InlineData("合肥天气怎么样？", "合肥")]
    public async Task ToolCall_WeatherInACity_CallsTheToolWithTheCity(string question, string city)
    {
        ChatCompletionOptions options = Greedy();
        options.Tools.Add(WeatherTool());
        ChatCompletion c = (await Client().CompleteChatAsync([new UserChatMessage(question)], options)).Value;
        Assert.Equal(OpenAI.Chat.ChatFinishReason.ToolCalls, c.FinishReason);
        ChatToolCall call = Assert.Single(c.ToolCalls);
        Assert.Equal("get_weather", call.FunctionName);
        Assert.Equal(city, (string)JsonNode.Parse(call.FunctionArguments.ToString())!["city"]!);
        Assert.Empty(c.Content);
    }

    // lookup_time is one of the tool names held out of training (tools/demo-model/corpus.py). Unshaped, the model wrote
    // "lookupx" for both; the server's tool grammar under tool_choice auto keeps the name to the offered one, and the
    // model copies the timezone from the question.
    [Theory]
    [InlineData("Could you tell me the current time for Africa/Nairobi?", true, "Africa/Nairobi")]
    [InlineData("Europe/Dublin现在是什么时间？", false, "Europe/Dublin")]
    public async Task ToolCall_ToolNameHeldOutOfTraining_TheCallNamesTheOfferedTool(string question, bool thinking, string timezone)
    {
        ChatCompletionOptions options = Greedy(thinking);
        options.Tools.Add(ChatTool.CreateFunctionTool("lookup_time", "Look up the current time in a timezone",
            BinaryData.FromString("""{"type":"object","properties":{"timezone":{"type":"string","description":"IANA timezone"}},"required":["timezone"]}""")));
        ChatCompletion c = (await Client().CompleteChatAsync([new UserChatMessage(question)], options)).Value;
        Assert.Equal(OpenAI.Chat.ChatFinishReason.ToolCalls, c.FinishReason);
        ChatToolCall call = Assert.Single(c.ToolCalls);
        Assert.Equal("lookup_time", call.FunctionName);
        Assert.Equal(timezone, (string)JsonNode.Parse(call.FunctionArguments.ToString())!["timezone"]!);
    }

    // Two calls in one assistant turn, as the parser, the SDK and the ids must carry them. The tiny model gets the
    // second city right in Chinese; in English it often repeats the first (tools/demo-model/README.md, "weather2").
    [Theory]
    [InlineData("北京和上海的天气怎么样？", "北京", "上海")]
    public async Task ToolCall_TwoCities_TwoCallsInParallel(string question, string first, string second)
    {
        ChatCompletionOptions options = Greedy();
        options.Tools.Add(WeatherTool());
        ChatCompletion c = (await Client().CompleteChatAsync([new UserChatMessage(question)], options)).Value;
        Assert.Equal(OpenAI.Chat.ChatFinishReason.ToolCalls, c.FinishReason);
        Assert.Equal(2, c.ToolCalls.Count);
        Assert.All(c.ToolCalls, call => Assert.Equal("get_weather", call.FunctionName));
        Assert.Equal([first, second], c.ToolCalls.Select(call => (string)JsonNode.Parse(call.FunctionArguments.ToString())!["city"]!));
        Assert.NotEqual(c.ToolCalls[0].Id, c.ToolCalls[1].Id);
    }

    [Fact]
    public async Task ToolCall_Streamed_DeltasAddUpToTheCall()
    {
        ChatCompletionOptions options = Greedy();
        options.Tools.Add(WeatherTool());
        var arguments = new StringBuilder();
        var content = new StringBuilder();
        string? name = null;
        OpenAI.Chat.ChatFinishReason? finish = null;
        await foreach (StreamingChatCompletionUpdate u in Client().CompleteChatStreamingAsync([new UserChatMessage("What's the weather in Paris?")], options))
        {
            foreach (ChatMessageContentPart p in u.ContentUpdate)
            {
                content.Append(p.Text);
            }

            foreach (StreamingChatToolCallUpdate t in u.ToolCallUpdates)
            {
                Assert.Equal(0, t.Index);
                name ??= t.FunctionName;
                arguments.Append(t.FunctionArgumentsUpdate?.ToString());
            }

            finish ??= u.FinishReason;
        }

        Assert.Equal("", content.ToString());
        Assert.Equal("get_weather", name);
        Assert.Equal("Paris", (string)JsonNode.Parse(arguments.ToString())!["city"]!);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.ToolCalls, finish);
    }

    [Fact]
    public async Task ToolResult_AnswersFromItsContent()
    {
        ChatCompletionOptions options = Greedy(thinking: false);
        options.Tools.Add(WeatherTool());
        OpenAI.Chat.ChatMessage[] messages =
        [
            new UserChatMessage("What's the weather in Paris?"),
            new AssistantChatMessage([ChatToolCall.CreateFunctionToolCall("call_1", "get_weather", BinaryData.FromString("""{"city": "Paris"}"""))]),
            new ToolChatMessage("call_1", """{"city": "Paris", "temperature": 21, "condition": "sunny"}"""),
        ];
        ChatCompletion c = (await Client().CompleteChatAsync(messages, options)).Value;
        Assert.Equal("In Paris it is sunny and 21°C.", c.Content[0].Text);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.Stop, c.FinishReason);
    }

    [Fact]
    public async Task Chinese_StreamedDeltas_AreWholeCharacters()
    {
        var content = new StringBuilder();
        var reasoning = new StringBuilder();
        await foreach (StreamingChatCompletionUpdate u in Client().CompleteChatStreamingAsync([new UserChatMessage("你好")], Greedy()))
        {
            foreach (ChatMessageContentPart p in u.ContentUpdate)
            {
                Assert.DoesNotContain('\uFFFD', p.Text);
                content.Append(p.Text);
            }
        }

        Assert.Equal(IdentityZh, content.ToString());
    }

    [Fact]
    public async Task FunctionInvocationMiddleware_RunsTheToolLoop_AndAnswersFromTheResult()
    {
        // Microsoft.Extensions.AI over the OpenAI SDK's adapter, as an application wires it: the middleware sees the
        // model's call, runs the C# function and sends its result back; the model answers from it.
        var calls = new List<string>();
        AIFunction weather = DemoWeatherTool.Create(calls);
        IChatClient chat = Client().AsIChatClient().AsBuilder().UseFunctionInvocation().Build();
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 200, Tools = [weather] };
        ChatResponse response = await chat.GetResponseAsync([new Microsoft.Extensions.AI.ChatMessage(ChatRole.User, "What's the weather in Paris?")], options);
        Assert.Equal(["Paris"], calls);
        Assert.EndsWith("In Paris it is sunny and 21°C.", response.Text);
        Assert.Equal(Microsoft.Extensions.AI.ChatFinishReason.Stop, response.FinishReason);

        // streamed: the call arrives in deltas, the middleware runs it between the two streamed completions
        calls.Clear();
        var text = new StringBuilder();
        await foreach (ChatResponseUpdate u in chat.GetStreamingResponseAsync([new Microsoft.Extensions.AI.ChatMessage(ChatRole.User, "What's the weather in Paris?")], options))
        {
            text.Append(u.Text);
        }

        Assert.Equal(["Paris"], calls);
        Assert.EndsWith("In Paris it is sunny and 21°C.", text.ToString());
    }
}
