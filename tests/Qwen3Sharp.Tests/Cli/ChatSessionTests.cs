using System.Text;
using System.Text.Json.Nodes;
using Qwen3Sharp.Chat;
using Qwen3Sharp.Cli.Commands;
using Qwen3Sharp.Engine;
using Qwen3Sharp.Tests.TestModels;

namespace Qwen3Sharp.Tests.Cli;

/// <summary>
/// The conversation behind <c>qwen3 chat --tools</c>, on the embedded demo model (greedy): a call is kept until its
/// result is typed, the result goes back as a <c>tool</c> message, and the model answers from it.
/// </summary>
public sealed class ChatSessionTests : IDisposable
{
    private readonly DemoModelHost _demo = new(maxSequences: 1);

    private Qwen3Host Host => _demo.Host;

    public void Dispose() => _demo.Dispose();

    private static JsonArray Tools() => CliOptions.ParseTools("""
        [{"type": "function", "function": {"name": "get_weather", "description": "Get the current weather for a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city name"}}, "required": ["city"]}}}]
        """);

    [Fact]
    public async Task ToolLoop_CallIsPending_ItsResultIsAnswered()
    {
        var session = new ChatCommand.Session(Host.Chat, system: null, thinking: true, Tools(), new SamplingOverrides { Temperature = 0 });
        var content = new StringBuilder();
        var reasoning = new StringBuilder();

        ChatFinishReason first = await session.AskAsync("What's the weather in Paris?", t => content.Append(t), t => reasoning.Append(t), default);

        Assert.Equal(ChatFinishReason.ToolCalls, first);
        ChatCommand.PendingCall call = Assert.Single(session.PendingCalls);
        Assert.Equal("get_weather", call.Name);
        Assert.Equal("Paris", (string)JsonNode.Parse(call.Arguments)!["city"]!);
        Assert.Equal($"get_weather({call.Arguments})", call.Readable);
        Assert.Contains("Paris", reasoning.ToString());
        Assert.Equal("", content.ToString().Trim());

        content.Clear();
        ChatFinishReason second = await session.AnswerToolResultsAsync(["""{"city": "Paris", "temperature": 21, "condition": "sunny"}"""],
            t => content.Append(t), _ => { }, default);

        Assert.Equal(ChatFinishReason.Stop, second);
        Assert.Empty(session.PendingCalls);
        Assert.EndsWith("In Paris it is sunny and 21°C.", content.ToString().Trim());
        Assert.Throws<ArgumentException>(() => { _ = session.AnswerToolResultsAsync(["late"], _ => { }, _ => { }, default); });
    }

    [Fact]
    public async Task NewQuestion_DropsCallsWaitingForResults_FromTheHistoryToo()
    {
        var session = new ChatCommand.Session(Host.Chat, system: null, thinking: false, Tools(), new SamplingOverrides { Temperature = 0 });
        Assert.Equal(ChatFinishReason.ToolCalls, await session.AskAsync("北京天气怎么样？", _ => { }, _ => { }, default));
        Assert.Single(session.PendingCalls);
        Assert.NotNull(session.History[^1]["tool_calls"]);

        await session.AskAsync("hello", _ => { }, _ => { }, default);

        // the unanswered call (an empty assistant message) is gone: the questions follow each other, then the new answer
        Assert.Equal(["user", "user", "assistant"], session.History.Select(m => (string)m["role"]!));
        Assert.Equal("hello", (string)session.History[1]["content"]!);
        Assert.Equal(session.History[^1]["tool_calls"]?.AsArray().Count ?? 0, session.PendingCalls.Count);
    }
}
