using Microsoft.Extensions.AI;
using Qwen3Sharp.Chat;
using ChatFinishReason = Microsoft.Extensions.AI.ChatFinishReason;
using Qwen3Sharp.Engine;
using Qwen3Sharp.Tests.TestModels;

namespace Qwen3Sharp.Tests.Engine;

public sealed class Qwen3ChatClientTests : IDisposable
{
    private readonly Qwen3Host _host = TinyModel.Load();

    public void Dispose() => _host.Dispose();

    [Fact]
    public async Task GetResponse_AndStreaming_AgreeAndReportUsage()
    {
        IChatClient client = _host.AsChatClient("tiny");
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 10, Reasoning = new ReasoningOptions { Effort = ReasoningEffort.None } };
        ChatResponse response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "Hello")], options);
        Assert.Equal("tiny", response.ModelId);
        Assert.Equal(10, response.Usage!.OutputTokenCount);
        Assert.DoesNotContain(response.Messages[0].Contents, c => c is TextReasoningContent);

        var text = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        UsageDetails? usage = null;
        await foreach (ChatResponseUpdate u in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "Hello")], options))
        {
            text.Append(u.Text);
            finish ??= u.FinishReason;
            usage ??= u.Contents.OfType<UsageContent>().FirstOrDefault()?.Details;
        }

        Assert.Equal(response.Text, text.ToString());
        Assert.Equal(ChatFinishReason.Length, finish);
        Assert.Equal(10, usage!.OutputTokenCount);
    }

    [Fact]
    public void ToRequest_MapsMessagesToolsAndOptions()
    {
        var args = new Dictionary<string, object?> { ["city"] = "Paris" };
        ChatMessage[] messages =
        [
            new(ChatRole.User, "weather?"),
            new(ChatRole.Assistant, [new TextReasoningContent("let me look"), new FunctionCallContent("call_1", "get_weather", args)]),
            new(ChatRole.Tool, [new FunctionResultContent("call_1", "sunny")]),
        ];
        AIFunction tool = AIFunctionFactory.Create((string city) => "sunny", "get_weather", "Weather in a city");
        var options = new ChatOptions
        {
            Instructions = "be brief",
            Tools = [tool],
            ToolMode = ChatToolMode.RequireSpecific("get_weather"),
            AllowMultipleToolCalls = false,
            TopK = 7,
            Seed = 5,
            StopSequences = ["END"],
            AdditionalProperties = new AdditionalPropertiesDictionary { ["enable_thinking"] = false, ["min_p"] = 0.1f },
        };

        ChatRequest r = Qwen3ChatClient.ToRequest(messages, options, out bool returnReasoning);

        Assert.True(returnReasoning);
        Assert.Equal(
            """[{"role":"system","content":"be brief"},{"role":"user","content":"weather?"},{"role":"assistant","content":"","reasoning_content":"let me look","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":{"city":"Paris"}}}]},{"role":"tool","tool_call_id":"call_1","content":"sunny"}]""",
            r.Messages.ToJsonString());
        Assert.Equal("get_weather", r.Tools![0]!["function"]!["name"]!.GetValue<string>());
        Assert.Equal("object", r.Tools[0]!["function"]!["parameters"]!["type"]!.GetValue<string>());
        Assert.Equal(new ToolChoice(ToolChoiceMode.Function, "get_weather"), r.ToolChoice);
        Assert.False(r.ParallelToolCalls);
        Assert.False(r.EnableThinking);
        Assert.Equal(7, r.Sampling.TopK);
        Assert.Equal(0.1f, r.Sampling.MinP);
        Assert.Equal(5UL, r.Sampling.Seed);
        Assert.Equal(["END"], r.Stop);
    }

    [Fact]
    public void ToRequest_JsonResponseFormat_BecomesStructuredOutput()
    {
        ChatRequest json = Qwen3ChatClient.ToRequest(
            [new ChatMessage(ChatRole.User, "hi")], new ChatOptions { ResponseFormat = ChatResponseFormat.Json }, out _);
        Assert.Equal(StructuredOutputKind.JsonObject, json.ResponseFormat!.Kind);
        ChatRequest schema = Qwen3ChatClient.ToRequest([new ChatMessage(ChatRole.User, "hi")],
            new ChatOptions { ResponseFormat = ChatResponseFormat.ForJsonSchema(System.Text.Json.JsonDocument.Parse("""{"type":"integer"}""").RootElement) }, out _);
        Assert.Equal(StructuredOutputKind.JsonSchema, schema.ResponseFormat!.Kind);
        Assert.Equal("integer", (string?)schema.ResponseFormat.Schema!["type"]);
    }

    [Fact]
    public async Task GetResponse_ThinkingOn_ReasoningIsNeverInText()
    {
        IChatClient client = _host.AsChatClient();
        ChatResponse r = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "Hi")],
            new ChatOptions { MaxOutputTokens = 24, Seed = 3 });
        Assert.DoesNotContain("<think>", r.Text);
        Assert.DoesNotContain("</think>", r.Text);
        Assert.Equal(r.Usage!.InputTokenCount + r.Usage.OutputTokenCount, r.Usage.TotalTokenCount);
    }
}
