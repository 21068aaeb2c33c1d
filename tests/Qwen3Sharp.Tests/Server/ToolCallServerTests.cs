using System.ClientModel;
using System.Text;
using System.Text.Json.Nodes;
using Json.Schema;
using OpenAI;
using OpenAI.Chat;

namespace Qwen3Sharp.Tests.Server;

/// <summary>Tool schemas the tests offer: bounded, so that a random-weight model's calls end within the token budget.</summary>
internal static class ToolSchemas
{
    public const string Weather = """{"type":"object","properties":{"city":{"type":"string","maxLength":10},"unit":{"enum":["celsius","fahrenheit"]}},"required":["city","unit"],"additionalProperties":false}""";
    public const string Time = """{"type":"object","properties":{"zone":{"type":"string","pattern":"^[A-Z]{3}$"},"hour24":{"type":"boolean"}},"required":["zone"],"additionalProperties":false}""";

    public static string Of(string name) => name switch
    {
        "get_weather" => Weather,
        "get_time" => Time,
        _ => throw new ArgumentException("no tool " + name),
    };

    public static void AssertValid(string name, string arguments)
    {
        EvaluationResults r = JsonSchema.FromText(Of(name)).Evaluate(JsonNode.Parse(arguments));
        Assert.True(r.IsValid, $"{name}({arguments}) does not validate against its parameters schema");
    }
}

/// <summary>
/// tool_choice required / named and parallel_tool_calls through the official OpenAI .NET SDK, against the synthesized
/// random-weight Qwen3 (real vocabulary): whatever it samples, the calls parse and validate (JsonSchema.Net).
/// </summary>
public sealed class ToolCallServerTests(TinyModelFixture fixture) : IClassFixture<TinyModelFixture>
{
    private ChatClient Client() => new("tiny", new ApiKeyCredential("not-checked"),
        new OpenAIClientOptions { Endpoint = new Uri(fixture.Http.BaseAddress!, "/v1"), NetworkTimeout = TimeSpan.FromSeconds(120) });

    private static ChatCompletionOptions Options(ChatToolChoice choice, bool? parallel, int seed) => new()
    {
        Tools =
        {
            ChatTool.CreateFunctionTool("get_weather", "Current weather in a city", BinaryData.FromString(ToolSchemas.Weather)),
            ChatTool.CreateFunctionTool("get_time", "Time in a zone", BinaryData.FromString(ToolSchemas.Time)),
        },
        ToolChoice = choice,
        AllowParallelToolCalls = parallel,
        Temperature = 1.0f,
#pragma warning disable OPENAI001   // Seed is marked experimental in the SDK; the server honours it, and it keeps these samples reproducible
        Seed = seed,
#pragma warning restore OPENAI001
        MaxOutputTokenCount = 400,
    };

    private static readonly ChatMessage[] Question = [new UserChatMessage("What is the weather in Oslo, and the time there? /no_think")];

    private async Task<(List<(string Name, string Arguments)> Calls, string Content, OpenAI.Chat.ChatFinishReason? Finish)> RunAsync(
        ChatCompletionOptions options, bool stream)
    {
        if (!stream)
        {
            ChatCompletion c = await Client().CompleteChatAsync(Question, options);
            return ([.. c.ToolCalls.Select(t => (t.FunctionName, t.FunctionArguments.ToString()))],
                string.Concat(c.Content.Select(p => p.Text)), c.FinishReason);
        }

        var names = new SortedDictionary<int, string>();
        var arguments = new SortedDictionary<int, StringBuilder>();
        var content = new StringBuilder();
        OpenAI.Chat.ChatFinishReason? finish = null;
        await foreach (StreamingChatCompletionUpdate u in Client().CompleteChatStreamingAsync(Question, options))
        {
            foreach (ChatMessageContentPart p in u.ContentUpdate)
            {
                content.Append(p.Text);
            }

            foreach (StreamingChatToolCallUpdate t in u.ToolCallUpdates)
            {
                if (t.FunctionName is { } name)
                {
                    names[t.Index] = name;
                }

                (arguments.TryGetValue(t.Index, out StringBuilder? sb) ? sb : arguments[t.Index] = new StringBuilder())
                    .Append(t.FunctionArgumentsUpdate?.ToString());
            }

            finish ??= u.FinishReason;
        }

        return ([.. names.Select(n => (n.Value, arguments[n.Key].ToString()))], content.ToString(), finish);
    }

    [Theory]
    [InlineData(false, 1), InlineData(true, 2), InlineData(false, 3), InlineData(true, 4)]
    public async Task Required_CallsParseAndValidate(bool stream, int seed)
    {
        var (calls, content, finish) = await RunAsync(Options(ChatToolChoice.CreateRequiredChoice(), parallel: null, seed), stream);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.ToolCalls, finish);
        Assert.Equal("", content);
        Assert.NotEmpty(calls);
        foreach (var (name, arguments) in calls)
        {
            ToolSchemas.AssertValid(name, arguments);
        }
    }

    [Theory]
    [InlineData(false, "get_time", 5), InlineData(true, "get_time", 6), InlineData(false, "get_weather", 7), InlineData(true, "get_weather", 8)]
    public async Task Named_CallsThatFunction_AndParallelFalseGivesExactlyOne(bool stream, string function, int seed)
    {
        var (calls, content, finish) = await RunAsync(Options(ChatToolChoice.CreateFunctionChoice(function), parallel: false, seed), stream);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.ToolCalls, finish);
        Assert.Equal("", content);
        var (name, arguments) = Assert.Single(calls);
        Assert.Equal(function, name);
        ToolSchemas.AssertValid(name, arguments);
    }

    [Theory]
    [InlineData(false, 9), InlineData(true, 10)]
    public async Task RequiredWithoutParallel_GivesExactlyOneCall(bool stream, int seed)
    {
        var (calls, _, finish) = await RunAsync(Options(ChatToolChoice.CreateRequiredChoice(), parallel: false, seed), stream);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.ToolCalls, finish);
        var (name, arguments) = Assert.Single(calls);
        ToolSchemas.AssertValid(name, arguments);
    }
}
